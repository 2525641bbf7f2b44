/* Everything bindgen sees: the DPDK headers we bind, our shim, and
 * constants DPDK only provides as function-like macros (RTE_BIT64 and
 * friends), which bindgen cannot evaluate. Each `glb_const_X` is renamed
 * to plain `X` on the Rust side by build.rs. */
#include <rte_config.h>
#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "shim.h"

#define GLB_U64(name) static const uint64_t glb_const_##name = (name);

GLB_U64(RTE_ETH_RSS_IPV4)
GLB_U64(RTE_ETH_RSS_FRAG_IPV4)
GLB_U64(RTE_ETH_RSS_NONFRAG_IPV4_TCP)
GLB_U64(RTE_ETH_RSS_NONFRAG_IPV4_UDP)
GLB_U64(RTE_ETH_RSS_NONFRAG_IPV4_OTHER)
GLB_U64(RTE_ETH_RSS_IPV6)
GLB_U64(RTE_ETH_RSS_FRAG_IPV6)
GLB_U64(RTE_ETH_RSS_NONFRAG_IPV6_TCP)
GLB_U64(RTE_ETH_RSS_NONFRAG_IPV6_UDP)
GLB_U64(RTE_ETH_RSS_NONFRAG_IPV6_OTHER)
GLB_U64(RTE_ETH_RSS_IPV6_EX)
GLB_U64(RTE_ETH_RSS_IPV6_TCP_EX)
GLB_U64(RTE_ETH_RSS_IPV6_UDP_EX)
GLB_U64(RTE_ETH_RSS_L3_SRC_ONLY)
GLB_U64(RTE_ETH_RSS_L3_DST_ONLY)
GLB_U64(RTE_ETH_RSS_L4_SRC_ONLY)
GLB_U64(RTE_ETH_RSS_L4_DST_ONLY)
GLB_U64(RTE_ETH_RSS_IP)
GLB_U64(RTE_ETH_RSS_TCP)
GLB_U64(RTE_ETH_RSS_UDP)
GLB_U64(RTE_ETH_RSS_PROTO_MASK)

GLB_U64(RTE_ETH_RX_OFFLOAD_IPV4_CKSUM)
GLB_U64(RTE_ETH_RX_OFFLOAD_UDP_CKSUM)
GLB_U64(RTE_ETH_RX_OFFLOAD_TCP_CKSUM)
GLB_U64(RTE_ETH_RX_OFFLOAD_CHECKSUM)
GLB_U64(RTE_ETH_RX_OFFLOAD_SCATTER)
GLB_U64(RTE_ETH_RX_OFFLOAD_RSS_HASH)

GLB_U64(RTE_ETH_TX_OFFLOAD_IPV4_CKSUM)
GLB_U64(RTE_ETH_TX_OFFLOAD_UDP_CKSUM)
GLB_U64(RTE_ETH_TX_OFFLOAD_TCP_CKSUM)
GLB_U64(RTE_ETH_TX_OFFLOAD_MULTI_SEGS)
GLB_U64(RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)

GLB_U64(RTE_ETH_LINK_SPEED_FIXED)

GLB_U64(RTE_MBUF_DEFAULT_BUF_SIZE)
