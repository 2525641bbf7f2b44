/* See shim.h: each glb_X forwards to DPDK's inline X. */
#include <rte_config.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include "shim.h"

int glb_rte_errno(void) { return rte_errno; }
void glb_rte_errno_set(int value) { rte_errno = value; }

unsigned int glb_rte_lcore_id(void) { return rte_lcore_id(); }
void glb_rte_pause(void) { rte_pause(); }

uint64_t glb_rte_get_tsc_cycles(void) { return rte_get_tsc_cycles(); }
uint64_t glb_rte_get_timer_cycles(void) { return rte_get_timer_cycles(); }
uint64_t glb_rte_get_timer_hz(void) { return rte_get_timer_hz(); }
void glb_rte_delay_us(unsigned int us) { rte_delay_us(us); }
void glb_rte_delay_ms(unsigned int ms) { rte_delay_ms(ms); }

uint16_t glb_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			      struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t glb_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			      struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *glb_rte_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int glb_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp,
			       struct rte_mbuf **mbufs, unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void glb_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

char *glb_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *glb_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

char *glb_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

int glb_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

void *glb_rte_pktmbuf_mtod(const struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

uint16_t glb_rte_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

uint32_t glb_rte_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

uint16_t glb_rte_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t glb_rte_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

uint16_t glb_rte_pktmbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }

int glb_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m)
{
	return rte_pktmbuf_is_contiguous(m);
}

uint16_t glb_rte_pktmbuf_port(const struct rte_mbuf *m) { return m->port; }
void glb_rte_pktmbuf_set_port(struct rte_mbuf *m, uint16_t port) { m->port = port; }
uint64_t glb_rte_pktmbuf_ol_flags(const struct rte_mbuf *m) { return m->ol_flags; }
uint32_t glb_rte_pktmbuf_rss_hash(const struct rte_mbuf *m) { return m->hash.rss; }

unsigned int glb_rte_ring_enqueue_burst(struct rte_ring *r,
					void *const *obj_table, unsigned int n,
					unsigned int *free_space)
{
	return rte_ring_enqueue_burst(r, obj_table, n, free_space);
}

unsigned int glb_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table,
					unsigned int n, unsigned int *available)
{
	return rte_ring_dequeue_burst(r, obj_table, n, available);
}

unsigned int glb_rte_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }

unsigned int glb_rte_ring_free_count(const struct rte_ring *r)
{
	return rte_ring_free_count(r);
}
