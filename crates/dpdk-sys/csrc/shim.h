/*
 * Out-of-line wrappers for the DPDK 22.11 fast-path API that is only
 * available as `static inline` functions or macros, so Rust can call it.
 * Every wrapper is a plain forward to the inline it is named after
 * (`glb_X` wraps `X`), with the same arguments and return value.
 */
#ifndef GLB_DPDK_SHIM_H
#define GLB_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

/* rte_errno is a per-lcore thread-local reached only through a macro. */
int glb_rte_errno(void);
void glb_rte_errno_set(int value);

unsigned int glb_rte_lcore_id(void);
void glb_rte_pause(void);

/* Cycle counter and delays (rte_cycles.h inlines). */
uint64_t glb_rte_get_tsc_cycles(void);
uint64_t glb_rte_get_timer_cycles(void);
uint64_t glb_rte_get_timer_hz(void);
void glb_rte_delay_us(unsigned int us);
void glb_rte_delay_ms(unsigned int ms);

/* Ethernet device fast path. */
uint16_t glb_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			      struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t glb_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			      struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* Packet mbufs. */
struct rte_mbuf *glb_rte_pktmbuf_alloc(struct rte_mempool *mp);
int glb_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp,
			       struct rte_mbuf **mbufs, unsigned int count);
void glb_rte_pktmbuf_free(struct rte_mbuf *m);
char *glb_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *glb_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *glb_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int glb_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
/* rte_pktmbuf_mtod(m, void *): start of the first segment's data. */
void *glb_rte_pktmbuf_mtod(const struct rte_mbuf *m);
uint16_t glb_rte_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t glb_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t glb_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t glb_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
uint16_t glb_rte_pktmbuf_nb_segs(const struct rte_mbuf *m);
int glb_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m);
uint16_t glb_rte_pktmbuf_port(const struct rte_mbuf *m);
void glb_rte_pktmbuf_set_port(struct rte_mbuf *m, uint16_t port);
uint64_t glb_rte_pktmbuf_ol_flags(const struct rte_mbuf *m);
uint32_t glb_rte_pktmbuf_rss_hash(const struct rte_mbuf *m);

/* Rings (multi/single producer/consumer is fixed by the ring's flags). */
unsigned int glb_rte_ring_enqueue_burst(struct rte_ring *r,
					void *const *obj_table, unsigned int n,
					unsigned int *free_space);
unsigned int glb_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table,
					unsigned int n, unsigned int *available);
unsigned int glb_rte_ring_count(const struct rte_ring *r);
unsigned int glb_rte_ring_free_count(const struct rte_ring *r);

#endif
