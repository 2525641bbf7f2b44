/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The contract between glb_encap.c and its loader (src/maps.rs mirrors
 * every struct here, and a test checks the sizes on both sides).
 *
 * Everything the program reads is kept twice, once per *generation*: the
 * loader writes a new forwarding table into the generation not in use and
 * then bumps glb_state[0].seq, whose low bit is the generation packets
 * use, so a packet sees one table from its first lookup to its last.
 * Arrays interleave the generations (index * 2 + gen); the bind tries
 * carry the generation as the first key byte.
 */
#ifndef GLB_XDP_H
#define GLB_XDP_H

#include <linux/types.h>

#define GLB_GENS 2
#define GLB_MAX_BACKENDS 256
#define GLB_TABLE_ROWS 65536
/* A bind id that matches nothing. */
#define GLB_NO_BIND 0xffff

/* glb_settings[gen].flags */
#define GLB_F_UDP_CHECKSUM 0x01
#define GLB_F_FORWARD_ECHO 0x02

/* Hash field bits (glb_settings.hash_fields / alt_hash_fields). */
#define GLB_H_SRC_ADDR 0x01
#define GLB_H_DST_ADDR 0x02
#define GLB_H_SRC_PORT 0x04
#define GLB_H_DST_PORT 0x08

struct glb_state {
	/* Tables installed so far; the generation in use is seq & 1. */
	__u32 seq;
};

/* director.conf, as it shapes one generation. */
struct glb_settings {
	__u8 gateway_mac[6];
	__u8 flags;
	/* Main fields; 0 means the generation was never written. */
	__u8 hash_fields;
	/* 0 when director.conf has no alt_hash_fields. */
	__u8 alt_hash_fields;
	__u8 pad[3];
	__be32 src_ip;
};

/* A backend: its IPv4 address; usable is 0 for IPv6 and empty slots.
 * Side by side, so a route reads one cache line per backend. */
struct glb_backend {
	__be32 ip;
	__u32 usable;
};

/* One forwarding table: its flow hash key and its backends. */
struct glb_table {
	/* SipHash key words: hash_key bytes 0..8 and 8..16, little-endian. */
	__u64 k0;
	__u64 k1;
	struct glb_backend backends[GLB_MAX_BACKENDS];
};

/* A table's 65,536 rows of {primary, secondary} backend indexes. */
struct glb_rows {
	__u8 row[GLB_TABLE_ROWS][2];
};

/*
 * Bind tries (LPM): the key is the generation, a protocol (6, 17, or 0
 * for the protocol-blind index ICMP uses) and the address; prefixlen
 * counts 16 bits for the first two bytes plus the bind's prefix.
 */
struct glb_key_v4 {
	__u32 prefixlen;
	__u8 gen;
	__u8 proto;
	__u8 addr[4];
	/* Keys are passed whole: no byte of them may be left unwritten. */
	__u8 pad[2];
};

struct glb_key_v6 {
	__u32 prefixlen;
	__u8 gen;
	__u8 proto;
	__u8 addr[16];
	__u8 pad[2];
};

/*
 * What a trie entry leads to: every bind that contains the entry's
 * prefix, flattened into port intervals. glb_intervals[(first + i) * 2 +
 * gen] for i < count hold ascending port_start values (the first is 0);
 * the bind of a port is that of the last interval starting at or below
 * it, i.e. the first bind in file order whose range holds the port.
 */
struct glb_class {
	__u32 first;
	__u16 count;
	/* The first bind of the class regardless of port (ICMP echo), and
	 * its table. */
	__u16 any_port_bind;
	__u32 any_port_table;
	__u32 pad;
};

/* A bind id (GLB_NO_BIND for none) and the table it belongs to. */
struct glb_interval {
	__u16 port_start;
	__u16 bind;
	__u32 table;
};

/* glb_port_macs: an interface's own address. */
struct glb_mac {
	__u8 addr[6];
};

/* Per-bind and per-backend traffic (per CPU). */
struct glb_traffic {
	__u64 packets;
	__u64 bytes;
};

/* Outcome counters (glb_counters, per CPU), one u64 each, by index. */
enum glb_counter {
	GLB_C_PROCESSED,
	/* Not an IPv4/IPv6 packet a bind can match (non-IP, malformed,
	 * later fragment, other protocol): passed to the kernel. */
	GLB_C_UNKNOWN_FORMAT,
	/* Could match a bind but none did: passed to the kernel. */
	GLB_C_NO_MATCHING_BIND,
	GLB_C_MATCHED,
	GLB_C_ENCAPSULATED,
	GLB_C_ENCAPSULATED_BYTES,
	/* Matched, but the headers the route needs or the packet itself are
	 * cut off, or a chosen backend is not IPv4: dropped. */
	GLB_C_ROUTE_FAILED,
	/* Internal errors (dropped, or passed when no table is loaded). */
	GLB_C_ERROR_TABLE,
	GLB_C_ERROR_SECRET,
	GLB_C_ERROR_HASH_CONFIG,
	GLB_C_ERROR_MISSING_ROW,
	GLB_C_ERROR_CREATING_SPACE,
	GLB_C_ERROR_MISSING_GATEWAY_MAC,
	GLB_C_ERROR_MISSING_SOURCE_ADDRESS,
	/* Verdicts. */
	GLB_C_XDP_TX,
	GLB_C_XDP_PASS,
	GLB_C_XDP_DROP,
	GLB_C_COUNT,
};

/* The last IPv4 TCP/UDP classification of a CPU: frames to the same
 * destination, protocol and port as the one before (most of a burst on a
 * director with few VIPs) skip the bind lookup. Tagged with the table
 * sequence it was made under, so it never outlives a reload. */
struct glb_memo {
	/* glb_state.seq + 1; 0 when empty. */
	__u32 seq_plus1;
	__u32 dst;
	__u16 port;
	__u8 proto;
	__u8 pad;
	__u16 bind;
	__u16 pad2;
	__u32 table;
	/* The receiving interface of the last frame sent back, plus one (0:
	 * none yet), and whether glb_port_macs named its address (mac). */
	__u32 port_plus1;
	__u8 mac[6];
	__u8 mac_known;
	__u8 pad3;
};

/* Per CPU: the classification memo and the outcome counters. */
struct glb_counters {
	struct glb_memo memo;
	__u64 c[GLB_C_COUNT];
};

#endif
