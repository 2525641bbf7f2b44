/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the second-chance fast path and its loader (src/fast_path.rs)
 * share. Addresses and ports are in network byte order, as on the wire.
 */
#ifndef GLB_FAST_PATH_H
#define GLB_FAST_PATH_H

#include <linux/types.h>

/* gfp_config.flags */
#define GFP_ALLOW_SOURCES 1 /* --allow-source given: gfp_allow_sources applies */
#define GFP_ALLOW_HOPS 2    /* --allow-hop given: gfp_allow_hops applies */

struct gfp_config {
	__u32 flags;
	/* --listen's address; 0 for any local address (gfp_local). */
	__u32 listen_addr;
	__u16 listen_port;
	__u16 pad;
};

/* An LPM trie key: `prefixlen` leading bits of `addr`. */
struct gfp_prefix {
	__u32 prefixlen;
	__u32 addr;
};

/* A hop's route as bpf_fib_lookup last gave it. */
struct gfp_route {
	__u64 looked_up; /* bpf_ktime_get_ns() */
	__u32 ifindex;
	__u32 fits; /* IP length the lookup found within the route's MTU */
	__u8 smac[6];
	__u8 dmac[6];
	__u32 pad;
};

/* Per CPU, what the program took from the daemon. */
struct gfp_counters {
	/* Sent on to the next hop (each also a socket lookup). */
	__u64 forwarded;
};

#endif
