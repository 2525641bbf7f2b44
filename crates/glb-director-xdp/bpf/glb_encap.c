// SPDX-License-Identifier: BSD-3-Clause
/*
 * The GLB director as an XDP program (SPEC §6-8, §14).
 *
 * Each frame is inspected exactly as glb-core's packet::inspect does,
 * classified against the bind tries, hashed with SipHash-2-4 under its
 * table's key, routed through the table's rows and encapsulated in GUE in
 * place, then sent back out of the receiving interface (XDP_TX). Frames
 * that match no bind go on to the kernel (XDP_PASS); frames that match
 * but cannot be routed are dropped, as the DPDK director drops them.
 *
 * The layout of every map is in glb_xdp.h. Nothing here allocates,
 * loops without a bound, or reads a byte it has not checked.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "glb_xdp.h"
#include <glb_maps.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Capacity the loader may change (EbpfLoader::set_max_entries). */
#define TABLES_CAP 16
#define BINDS_CAP (TABLES_CAP * 256)
#define INTERVALS_CAP 65536
#define TRIE_CAP (GLB_GENS * 2 * BINDS_CAP)

GLB_MAP(glb_state, BPF_MAP_TYPE_ARRAY, __u32, struct glb_state, 1, 0);
GLB_MAP(glb_settings, BPF_MAP_TYPE_ARRAY, __u32, struct glb_settings, GLB_GENS, 0);
GLB_MAP(glb_tables, BPF_MAP_TYPE_ARRAY, __u32, struct glb_table, GLB_GENS * TABLES_CAP, 0);
GLB_MAP(glb_rows, BPF_MAP_TYPE_ARRAY, __u32, struct glb_rows, GLB_GENS * TABLES_CAP, 0);
GLB_MAP(glb_binds_v4, BPF_MAP_TYPE_LPM_TRIE, struct glb_key_v4, struct glb_class, TRIE_CAP,
	BPF_F_NO_PREALLOC);
GLB_MAP(glb_binds_v6, BPF_MAP_TYPE_LPM_TRIE, struct glb_key_v6, struct glb_class, TRIE_CAP,
	BPF_F_NO_PREALLOC);
GLB_MAP(glb_intervals, BPF_MAP_TYPE_ARRAY, __u32, struct glb_interval,
	GLB_GENS * INTERVALS_CAP, 0);
GLB_MAP(glb_counters, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct glb_counters, 1, 0);
GLB_MAP(glb_bind_traffic, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct glb_traffic,
	GLB_GENS * BINDS_CAP, 0);
GLB_MAP(glb_backend_traffic, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct glb_traffic,
	GLB_GENS * TABLES_CAP * GLB_MAX_BACKENDS, 0);

/* The source MAC of encapsulated frames, by receiving interface. Where
 * the loader did not name the interface, the received frame's
 * destination (our own address) is used. */
GLB_MAP(glb_port_macs, BPF_MAP_TYPE_HASH, __u32, struct glb_mac, 64, 0);

/* xdpcap's hook: one slot per XDP action, tail-called with the verdict so
 * a capture sees every frame with its outcome. Empty slots fall through. */
GLB_PROG_ARRAY(xdpcap_hook, 5);

#define IPPROTO_ICMPV6_ 58
#define ICMP_DEST_UNREACH_ 3
#define ICMP_FRAG_NEEDED_ 4
#define ICMP_ECHO_ 8
#define ICMPV6_PKT_TOOBIG_ 2
#define ICMPV6_ECHO_REQUEST_ 128

#define GUE_PORT 19523
#define OUTER_TTL 64
#define ETH_LEN 14
#define IP4_LEN 20
#define IP6_LEN 40
#define UDP_LEN 8
#define GUE_GLB_LEN 8
#define FIXED_HDR (ETH_LEN + IP4_LEN + UDP_LEN + GUE_GLB_LEN)

/* What a frame offers (glb-core's packet::Inspection). */
enum lookup_kind {
	LOOKUP_NONE,
	LOOKUP_TRANSPORT,
	LOOKUP_ICMP_ERROR,
	LOOKUP_ECHO,
};

struct flow {
	__u8 kind;
	__u8 v6;
	__u8 proto;
	__u8 gue_proto;
	__u8 complete;
	__u8 flow_complete;
	__u16 flow_hint;
	/* Ports in host order. */
	__u16 src_port;
	__u16 dst_port;
	__u16 ip_len;
	/* The classification key: destination, or for ICMP errors the
	 * quoted source, and the port the bind's range must hold. */
	__u16 match_port;
	/* Hash addresses (flow order, reversed for ICMP errors), raw. */
	__u32 src[4];
	__u32 dst[4];
	/* Classification addresses, raw. */
	__u32 match_addr[4];
	/* ICMP errors: the outer destination, which the bind must hold. */
	__u32 outer_dst[4];
};

static __always_inline void count(struct glb_counters *c, enum glb_counter i)
{
	c->c[i] += 1;
}

static __always_inline __u16 rd16(const void *p)
{
	return bpf_ntohs(*(const __u16 *)p);
}

static __always_inline void copy_addr(__u32 *dst, const void *src, int v6)
{
	const __u32 *s = src;
	dst[0] = s[0];
	if (v6) {
		dst[1] = s[1];
		dst[2] = s[2];
		dst[3] = s[3];
	}
}

/* The reversed flow of a quoted packet (SPEC §7): the error belongs to the
 * connection the quoted packet was part of. `ports` holds what follows the
 * quoted IP header, `plen` bytes of it. Returns 0 when not even the quoted
 * source port is there. */
static __always_inline int icmp_error(struct flow *f, const __u8 *quoted, const __u8 *ports,
				      __u32 plen, const void *data_end, int v6)
{
	int off_src = v6 ? 8 : 12, off_dst = v6 ? 24 : 16;
	if (plen < 2 || (const void *)(ports + 2) > data_end)
		return 0;
	__u16 sport = rd16(ports), dport = 0;
	f->flow_complete = 0;
	if (plen >= 4 && (const void *)(ports + 4) <= data_end) {
		dport = rd16(ports + 2);
		f->flow_complete = 1;
	}
	f->kind = LOOKUP_ICMP_ERROR;
	copy_addr(f->match_addr, quoted + off_src, v6);
	f->match_port = sport;
	/* The flow runs from the quoted destination to the quoted source. */
	copy_addr(f->src, quoted + off_dst, v6);
	copy_addr(f->dst, quoted + off_src, v6);
	f->src_port = dport;
	f->dst_port = sport;
	f->flow_hint = dport;
	return 1;
}

static __always_inline void echo(struct flow *f, const __u8 *ip, int v6, __u16 hint, __u32 l4len)
{
	int off_src = v6 ? 8 : 12, off_dst = v6 ? 24 : 16;
	f->kind = LOOKUP_ECHO;
	copy_addr(f->src, ip + off_src, v6);
	copy_addr(f->dst, ip + off_dst, v6);
	copy_addr(f->match_addr, ip + off_dst, v6);
	f->src_port = 0;
	f->dst_port = 0;
	f->flow_hint = hint;
	f->flow_complete = l4len >= 8;
}

static __always_inline void transport(struct flow *f, const __u8 *ip, const __u8 *l4, int v6,
				      __u8 proto)
{
	int off_src = v6 ? 8 : 12, off_dst = v6 ? 24 : 16;
	f->kind = LOOKUP_TRANSPORT;
	f->proto = proto;
	copy_addr(f->src, ip + off_src, v6);
	copy_addr(f->dst, ip + off_dst, v6);
	copy_addr(f->match_addr, ip + off_dst, v6);
	f->src_port = rd16(l4);
	f->dst_port = rd16(l4 + 2);
	f->match_port = f->dst_port;
	f->flow_hint = f->src_port;
}

/* The length of the IP header an ICMP error quotes (`qlen` bytes are
 * there), or 0 when it is not all there. */
static __always_inline __u32 quoted_ip_len(const __u8 *q, __u32 qlen, const void *data_end,
					   int v6)
{
	__u32 min = v6 ? IP6_LEN : IP4_LEN;
	if (qlen < min || (const void *)(q + min) > data_end || (q[0] >> 4) != (v6 ? 6 : 4))
		return 0;
	if (v6)
		return IP6_LEN;
	__u32 ihl = (q[0] & 0x0f) * 4;
	return ihl < IP4_LEN || ihl > qlen ? 0 : ihl;
}

/* What follows the IP header at `ip`: `l4len` bytes of protocol `proto`
 * that the stated length allows within the frame. Only the ICMP messages
 * differ between the two versions: IPv4's fragmentation needed and echo
 * request, IPv6's packet too big and echo request. */
static __always_inline void inspect_l4(struct flow *f, const __u8 *ip, const __u8 *l4,
				       __u32 l4len, __u8 proto, const void *data_end, int v6)
{
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		if (l4len >= 4 && (const void *)(l4 + 4) <= data_end)
			transport(f, ip, l4, v6, proto);
		return;
	}
	if (proto != (v6 ? IPPROTO_ICMPV6_ : IPPROTO_ICMP) || l4len < 1 ||
	    (const void *)(l4 + 1) > data_end)
		return;
	int too_big = v6 ? l4[0] == ICMPV6_PKT_TOOBIG_
			 : l4[0] == ICMP_DEST_UNREACH_ && l4len >= 2 &&
				   (const void *)(l4 + 2) <= data_end && l4[1] == ICMP_FRAG_NEEDED_;
	if (too_big) {
		if (l4len < 8)
			return;
		const __u8 *q = l4 + 8;
		__u32 qlen = l4len - 8, qhdr = quoted_ip_len(q, qlen, data_end, v6);
		if (!qhdr)
			return;
		if (icmp_error(f, q, q + qhdr, qlen - qhdr, data_end, v6))
			copy_addr(f->outer_dst, ip + (v6 ? 24 : 16), v6);
	} else if (l4[0] == (v6 ? ICMPV6_ECHO_REQUEST_ : ICMP_ECHO_)) {
		/* The hint: IPv4's identification, the low 16 bits of IPv6's
		 * flow label. */
		echo(f, ip, v6, rd16(ip + (v6 ? 2 : 4)), l4len);
	}
}

/* glb-core's inspect_ipv4: `avail` is what the frame holds after the
 * Ethernet header. */
static __always_inline void inspect_v4(struct flow *f, const __u8 *ip, const void *data_end,
				       __u32 avail)
{
	if ((const void *)(ip + IP4_LEN) > data_end || (ip[0] >> 4) != 4)
		return;
	__u32 ihl = (ip[0] & 0x0f) * 4;
	if (ihl < IP4_LEN || ihl > avail)
		return;
	__u32 total = rd16(ip + 2);
	f->gue_proto = 4;
	f->ip_len = total;
	f->complete = total >= ihl && total <= avail;
	f->flow_complete = 1;
	/* A later fragment has no transport header. */
	if (rd16(ip + 6) & 0x1fff)
		return;
	/* The payload the stated length allows, within the frame. */
	__u32 end = total < ihl ? ihl : total > avail ? avail : total;
	inspect_l4(f, ip, ip + ihl, end - ihl, ip[9], data_end, 0);
}

static __always_inline void inspect_v6(struct flow *f, const __u8 *ip, const void *data_end,
				       __u32 avail)
{
	if ((const void *)(ip + IP6_LEN) > data_end || (ip[0] >> 4) != 6)
		return;
	__u32 total = IP6_LEN + rd16(ip + 4);
	f->v6 = 1;
	f->gue_proto = 41;
	/* Larger than any frame XDP sees; the packet is then incomplete,
	 * and encapsulation refuses what IPv4 cannot carry. */
	f->ip_len = total > 0xffff ? 0xffff : total;
	f->complete = total <= avail;
	f->flow_complete = 1;
	__u32 end = total > avail ? avail : total;
	inspect_l4(f, ip, ip + IP6_LEN, end - IP6_LEN, ip[6], data_end, 1);
}

/* ---- classification ---- */

/* Leading bits two raw (network order) words share. */
static __always_inline __u32 common_bits32(__u32 a, __u32 b)
{
	__u32 x = bpf_ntohl(a ^ b), n = 0;
	/* clang 14 cannot lower __builtin_clz for BPF. */
	if (!x)
		return 32;
	/* Binary search: while the top `w` bits are clear, count and drop
	 * them. */
#pragma unroll
	for (__u32 w = 16; w >= 1; w /= 2) {
		if (!(x >> (32 - w))) {
			n += w;
			x <<= w;
		}
	}
	return n;
}

/* The bind whose interval holds `port` (and its table), by binary search
 * over the class's ascending interval starts. */
static __always_inline __u32 interval_bind(const struct glb_class *cl, __u32 gen, __u16 port,
					   __u32 *table)
{
	__u32 lo = 0, n = cl->count;
	if (n == 0)
		return GLB_NO_BIND;
	/* 17 halvings cover the 65,536 intervals a class can have. */
	for (int i = 0; i < 17; i++) {
		if (n <= 1)
			break;
		__u32 half = n / 2, mid = lo + half;
		__u32 k = (cl->first + mid) * GLB_GENS + gen;
		struct glb_interval *iv = bpf_map_lookup_elem(&glb_intervals, &k);
		if (!iv)
			return GLB_NO_BIND;
		if (iv->port_start <= port)
			lo = mid;
		n -= half;
	}
	__u32 k = (cl->first + lo) * GLB_GENS + gen;
	struct glb_interval *iv = bpf_map_lookup_elem(&glb_intervals, &k);
	if (!iv)
		return GLB_NO_BIND;
	*table = iv->table;
	return iv->bind;
}

static __always_inline const struct glb_class *find_class(const struct flow *f, __u32 gen,
							  __u8 proto, __u32 bits)
{
	if (f->v6) {
		struct glb_key_v6 k = {.prefixlen = 16 + bits, .gen = gen, .proto = proto};
		__builtin_memcpy(k.addr, f->match_addr, 16);
		return bpf_map_lookup_elem(&glb_binds_v6, &k);
	}
	struct glb_key_v4 k = {.prefixlen = 16 + bits, .gen = gen, .proto = proto};
	__builtin_memcpy(k.addr, f->match_addr, 4);
	return bpf_map_lookup_elem(&glb_binds_v4, &k);
}

/* SPEC §6. The trie finds the longest bind prefix holding the address;
 * its class lists every bind that holds it, in file order. For an ICMP
 * error the bind must hold the outer destination too: looking up no more
 * bits than the two addresses share finds exactly the binds holding
 * both. */
static __always_inline __u32 classify(const struct flow *f, __u32 gen, __u8 flags, __u32 *table)
{
	const struct glb_class *cl;
	switch (f->kind) {
	case LOOKUP_TRANSPORT:
		cl = find_class(f, gen, f->proto, f->v6 ? 128 : 32);
		return cl ? interval_bind(cl, gen, f->match_port, table) : GLB_NO_BIND;
	case LOOKUP_ICMP_ERROR: {
		__u32 bits = 0;
		if (f->v6) {
#pragma unroll
			for (int i = 0; i < 4; i++) {
				__u32 c = common_bits32(f->match_addr[i], f->outer_dst[i]);
				if (bits == 32 * (__u32)i)
					bits += c;
			}
		} else {
			bits = common_bits32(f->match_addr[0], f->outer_dst[0]);
		}
		cl = find_class(f, gen, 0, bits);
		return cl ? interval_bind(cl, gen, f->match_port, table) : GLB_NO_BIND;
	}
	case LOOKUP_ECHO:
		if (!(flags & GLB_F_FORWARD_ECHO))
			return GLB_NO_BIND;
		cl = find_class(f, gen, 0, f->v6 ? 128 : 32);
		if (!cl)
			return GLB_NO_BIND;
		*table = cl->any_port_table;
		return cl->any_port_bind;
	}
	return GLB_NO_BIND;
}

/* ---- SipHash-2-4 (SPEC §7) ---- */

#define ROTL(x, b) (__u64)(((x) << (b)) | ((x) >> (64 - (b))))

struct sip {
	__u64 v0, v1, v2, v3;
};

static __always_inline void sip_round(struct sip *s)
{
	s->v0 += s->v1;
	s->v1 = ROTL(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = ROTL(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = ROTL(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = ROTL(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = ROTL(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = ROTL(s->v2, 32);
}

static __always_inline void sip_block(struct sip *s, __u64 m)
{
	s->v3 ^= m;
	sip_round(s);
	sip_round(s);
	s->v0 ^= m;
}

/* The message: the selected fields in SPEC order, at most 36 bytes. */
struct msg {
	__u64 w[5];
};

/* ORs the raw bytes of field piece `v` (as loaded from memory: 4 or 2
 * bytes in network order) in at byte `off` of the message, whose words
 * SipHash reads little-endian. Every field is made of 2- or 4-byte
 * pieces at offsets that are multiples of their size, so no piece
 * straddles two words. The message is built in registers: bytes stored
 * one field at a time and read back as words would stall each load on
 * the stores it overlaps. */
static __always_inline void put(struct msg *m, __u32 off, __u64 v)
{
	m->w[off / 8] |= v << (8 * (off % 8));
}

static __always_inline __u32 put_addr(struct msg *m, __u32 off, const __u32 *a, __u32 alen)
{
	put(m, off, a[0]);
	if (alen == 16) {
		put(m, off + 4, a[1]);
		put(m, off + 8, a[2]);
		put(m, off + 12, a[3]);
	}
	return off + alen;
}

/* Lays the selected fields out for field set `fields` (a constant at
 * every call site, so every piece has a fixed offset) and returns the
 * message length. */
static __always_inline __u32 lay_out(struct msg *m, __u8 fields, const struct flow *f, __u32 alen)
{
	__u32 n = 0;
	if (fields & GLB_H_SRC_ADDR)
		n = put_addr(m, n, f->src, alen);
	if (fields & GLB_H_DST_ADDR)
		n = put_addr(m, n, f->dst, alen);
	if (fields & GLB_H_SRC_PORT) {
		put(m, n, bpf_htons(f->src_port));
		n += 2;
	}
	if (fields & GLB_H_DST_PORT) {
		put(m, n, bpf_htons(f->dst_port));
		n += 2;
	}
	return n;
}

#define LAYOUT_CASE(F)                                          \
	case F:                                                 \
		n = f->v6 ? lay_out(&m, F, f, 16) : lay_out(&m, F, f, 4); \
		break;

static __always_inline __u64 flow_hash(const struct glb_table *t, __u8 fields, const struct flow *f)
{
	struct msg m = {};
	__u32 n = 0;
	switch (fields & 0x0f) {
		LAYOUT_CASE(1) LAYOUT_CASE(2) LAYOUT_CASE(3) LAYOUT_CASE(4)
		LAYOUT_CASE(5) LAYOUT_CASE(6) LAYOUT_CASE(7) LAYOUT_CASE(8)
		LAYOUT_CASE(9) LAYOUT_CASE(10) LAYOUT_CASE(11) LAYOUT_CASE(12)
		LAYOUT_CASE(13) LAYOUT_CASE(14) LAYOUT_CASE(15)
	}
	struct sip s = {
		.v0 = t->k0 ^ 0x736f6d6570736575ULL,
		.v1 = t->k1 ^ 0x646f72616e646f6dULL,
		.v2 = t->k0 ^ 0x6c7967656e657261ULL,
		.v3 = t->k1 ^ 0x7465646279746573ULL,
	};
	/* Whole words, then the last (zero-padded) one with the length. */
	__u64 last = 0;
#pragma unroll
	for (int i = 0; i < 5; i++) {
		if (8 * (__u32)i + 8 <= n) {
			sip_block(&s, m.w[i]);
		} else {
			last = m.w[i];
			break;
		}
	}
	sip_block(&s, last | ((__u64)(n & 0xff) << 56));
	s.v2 ^= 0xff;
	sip_round(&s);
	sip_round(&s);
	sip_round(&s);
	sip_round(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

/* ---- encapsulation (SPEC §8) ---- */

static __always_inline __u16 fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

static __always_inline __u64 halves(__be32 a)
{
	__u32 h = bpf_ntohl(a);
	return (h >> 16) + (h & 0xffff);
}

/* The ones'-complement sum (as 16-bit big-endian words) of `len` bytes at
 * `p`, or -1 if they are not all inside the frame. */
static __always_inline __s64 sum_bytes(__u8 *p, __u32 len, const void *data_end)
{
	__u64 sum = 0;
	__u32 off = 0;
	/* XDP frames are at most a page. */
	if (len >= 4096)
		return -1;
	/* The length is summed bit by bit from 2048 down to 4: chunks of 256
	 * bytes and more by bpf_csum_diff (at most 512 bytes a call, in
	 * 4-byte multiples), smaller ones inline in 8-byte words, as a call
	 * costs more than summing a minimum-size frame. Both sum native-order
	 * 32-bit words. `off` is masked after every step so that the verifier
	 * sees the same range whichever bits were set, and prunes the paths. */
#define SUM(N)                                                        \
	{                                                             \
		__u8 *c = p + off;                                    \
		if ((void *)(c + (N)) > data_end)                      \
			return -1;                                    \
		__s64 r = bpf_csum_diff(0, 0, (__be32 *)c, (N), 0);   \
		if (r < 0)                                            \
			return -1;                                    \
		sum += (__u32)r;                                      \
		off = (off + (N)) & 0xfff;                            \
	}
/* Bit N of the length, summed inline. */
#define SUM_BIT_INLINE(N)                                             \
	if (len & (N)) {                                              \
		__u8 *c = p + off;                                    \
		if ((void *)(c + (N)) > data_end)                      \
			return -1;                                    \
		if ((N) == 4) {                                       \
			sum += *(__u32 *)c;                           \
		} else {                                              \
			_Pragma("unroll") for (int k = 0; k < (N) / 8; k++) { \
				__u64 w = *(__u64 *)(c + 8 * k);      \
				sum += (w & 0xffffffff) + (w >> 32);  \
			}                                             \
		}                                                     \
		off = (off + (N)) & 0xfff;                            \
	}
	if (len & 2048) {
		SUM(512) SUM(512) SUM(512) SUM(512)
	}
	if (len & 1024) {
		SUM(512) SUM(512)
	}
	if (len & 512)
		SUM(512)
	if (len & 256)
		SUM(256)
	SUM_BIT_INLINE(128) SUM_BIT_INLINE(64) SUM_BIT_INLINE(32)
	SUM_BIT_INLINE(16) SUM_BIT_INLINE(8) SUM_BIT_INLINE(4)
#undef SUM_BIT_INLINE
#undef SUM
	/* The words were summed in native order; bring the sum to network
	 * order before the last 0-3 bytes are added as network-order words. */
	__u16 folded = fold(sum);
	sum = bpf_ntohs(folded);
	if (len & 2) {
		__u8 *c = p + off;
		if ((void *)(c + 2) > data_end)
			return -1;
		sum += ((__u32)c[0] << 8) | c[1];
		off = (off + 2) & 0xfff;
	}
	if (len & 1) {
		__u8 *c = p + off;
		if ((void *)(c + 1) > data_end)
			return -1;
		sum += (__u32)c[0] << 8;
	}
	return sum;
}

struct route {
	__u64 hash;
	__be32 hops[4];
	__u32 hop_count;
	__u32 table;
	__u8 primary;
};

/* Copies a MAC address; `src` is 4-byte aligned. */
static __always_inline void put_mac(__u8 *dst, const __u8 *src)
{
	*(__u32 *)dst = *(const __u32 *)src;
	*(__u16 *)(dst + 4) = *(const __u16 *)(src + 4);
}

/* Writes the outer headers in front of the inner packet, which starts
 * right after a `hdr`-byte gap at the (new) frame start. */
static __always_inline int encapsulate(struct xdp_md *ctx, const struct flow *f,
				       const struct route *r, const struct glb_settings *st,
				       const __u8 *src_mac, struct glb_counters *c)
{
	__u32 extra = r->hop_count - 1;
	__u32 hdr = FIXED_HDR + 4 * extra;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 frame = data_end - data;
	__u32 ip_len = f->ip_len;

	/* Ethernet padding is not part of the inner packet. */
	if (frame > ETH_LEN + ip_len) {
		if (bpf_xdp_adjust_tail(ctx, -(int)(frame - ETH_LEN - ip_len))) {
			count(c, GLB_C_ERROR_CREATING_SPACE);
			return -1;
		}
	}
	if (bpf_xdp_adjust_head(ctx, -(int)(hdr - ETH_LEN))) {
		count(c, GLB_C_ERROR_CREATING_SPACE);
		return -1;
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + FIXED_HDR + 12 > data_end) {
		count(c, GLB_C_ERROR_CREATING_SPACE);
		return -1;
	}
	__u8 *eth = data;
	__u8 *ip = eth + ETH_LEN;
	__u8 *udp = ip + IP4_LEN;
	__u8 *gue = udp + UDP_LEN;
	__u32 ip_total = hdr - ETH_LEN + ip_len;
	__u32 udp_len = ip_total - IP4_LEN;
	if (ip_total > 0xffff) {
		count(c, GLB_C_ERROR_CREATING_SPACE);
		return -1;
	}

	/* Fields are copied in words: a byte-aligned copy (all the compiler
	 * may assume of frame pointers) is one load and store per byte. */
	put_mac(eth, st->gateway_mac);
	put_mac(eth + 6, src_mac);
	*(__u16 *)(eth + 12) = bpf_htons(ETH_P_IP);

	__u64 ip_sum = 0x4500 + 0x4000 + ((OUTER_TTL << 8) | IPPROTO_UDP) + halves(st->src_ip) +
		       ip_total + halves(r->hops[0]);
	/* Whole words where the fields allow: little-endian values of the
	 * header bytes in wire order. */
	*(__u32 *)(ip + 0) = 0x45 | (__u32)bpf_htons(ip_total) << 16;
	*(__u32 *)(ip + 4) = (__u32)bpf_htons(0x4000) << 16;
	*(__u32 *)(ip + 8) =
		OUTER_TTL | IPPROTO_UDP << 8 | (__u32)bpf_htons((__u16)~fold(ip_sum)) << 16;
	*(__u32 *)(ip + 12) = st->src_ip;
	*(__u32 *)(ip + 16) = r->hops[0];

	__u16 sport = 0x8000 | (((__u16)r->hash ^ f->flow_hint) & 0x7fff);
	*(__u32 *)(udp + 0) = bpf_htons(sport) | (__u32)bpf_htons(GUE_PORT) << 16;
	*(__u32 *)(udp + 4) = bpf_htons(udp_len);

	/* GUE: version 0, C 0, hlen; protocol; flags 0. GLB private data:
	 * type 0, next hop 0, hop count, then the hops after the first. */
	*(__u64 *)gue = (1 + extra) | (__u64)f->gue_proto << 8 | (__u64)extra << 56;
	*(__u32 *)(gue + 8) = r->hops[1];
	__u64 hop_sum = halves(r->hops[1]);
	if (extra == 3) {
		*(__u32 *)(gue + 12) = r->hops[2];
		*(__u32 *)(gue + 16) = r->hops[3];
		hop_sum += halves(r->hops[2]) + halves(r->hops[3]);
	}

	if (st->flags & GLB_F_UDP_CHECKSUM) {
		__s64 inner = sum_bytes((__u8 *)data + (hdr & 0xff), ip_len, data_end);
		if (inner < 0) {
			count(c, GLB_C_ERROR_CREATING_SPACE);
			return -1;
		}
		__u64 sum = halves(st->src_ip) + halves(r->hops[0]) + IPPROTO_UDP + 2 * (__u64)udp_len +
			    sport + GUE_PORT + (((1 + extra) << 8) | f->gue_proto) + extra + hop_sum +
			    (__u64)inner;
		__u16 csum = ~fold(sum);
		*(__u16 *)(udp + 6) = bpf_htons(csum ? csum : 0xffff);
	}
	return 0;
}

/* Hands the verdict to xdpcap's hook, if one is attached. */
static __always_inline int finish(struct xdp_md *ctx, struct glb_counters *c, int action)
{
	if (c)
		count(c, action == XDP_TX ? GLB_C_XDP_TX : action == XDP_PASS ? GLB_C_XDP_PASS : GLB_C_XDP_DROP);
	bpf_tail_call(ctx, &xdpcap_hook, action);
	return action;
}

static __always_inline int add_traffic(void *map, __u32 key, __u64 bytes)
{
	struct glb_traffic *t = bpf_map_lookup_elem(map, &key);
	if (!t)
		return -1;
	t->packets += 1;
	t->bytes += bytes;
	return 0;
}

static __always_inline int table_hops(const struct glb_table *t, const struct glb_rows *rows,
				      __u64 hash, __be32 *hops, __u8 *primary)
{
	__u32 row = hash & 0xffff;
	__u8 p = rows->row[row][0], s = rows->row[row][1];
	const struct glb_backend *bp = &t->backends[p], *bs = &t->backends[s];
	if (!bp->usable || !bs->usable)
		return -1;
	hops[0] = bp->ip;
	hops[1] = bs->ip;
	*primary = p;
	return 0;
}

SEC("xdp")
int glb_encap(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct glb_counters *c = bpf_map_lookup_elem(&glb_counters, &zero);
	if (!c)
		return XDP_PASS;
	count(c, GLB_C_PROCESSED);

	struct glb_state *state = bpf_map_lookup_elem(&glb_state, &zero);
	if (!state)
		return finish(ctx, c, XDP_PASS);
	__u32 seq = state->seq, gen = seq & 1;
	struct glb_settings *st = bpf_map_lookup_elem(&glb_settings, &gen);
	if (!st || !st->hash_fields) {
		count(c, GLB_C_ERROR_HASH_CONFIG);
		return finish(ctx, c, XDP_PASS);
	}

	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (data + ETH_LEN > data_end) {
		count(c, GLB_C_UNKNOWN_FORMAT);
		return finish(ctx, c, XDP_PASS);
	}
	__u32 avail = data_end - data - ETH_LEN;
	__u8 *eth = data;
	__u16 ethertype = rd16(eth + 12);
	struct flow f = {};
	if (ethertype == ETH_P_IP)
		inspect_v4(&f, eth + ETH_LEN, data_end, avail);
	else if (ethertype == ETH_P_IPV6)
		inspect_v6(&f, eth + ETH_LEN, data_end, avail);
	if (f.kind == LOOKUP_NONE) {
		count(c, GLB_C_UNKNOWN_FORMAT);
		return finish(ctx, c, XDP_PASS);
	}

	__u32 bind, table = 0;
	struct glb_memo *m = &c->memo;
	if (f.kind == LOOKUP_TRANSPORT && !f.v6) {
		if (m->seq_plus1 == seq + 1 && m->dst == f.match_addr[0] && m->port == f.match_port &&
		    m->proto == f.proto) {
			bind = m->bind;
			table = m->table;
		} else {
			bind = classify(&f, gen, st->flags, &table);
			m->seq_plus1 = seq + 1;
			m->dst = f.match_addr[0];
			m->port = f.match_port;
			m->proto = f.proto;
			m->bind = bind;
			m->table = table;
		}
	} else {
		bind = classify(&f, gen, st->flags, &table);
	}
	if (bind == GLB_NO_BIND) {
		count(c, GLB_C_NO_MATCHING_BIND);
		return finish(ctx, c, XDP_PASS);
	}
	count(c, GLB_C_MATCHED);
	__u32 frame_bytes = data_end - data;
	add_traffic(&glb_bind_traffic, bind * GLB_GENS + gen, frame_bytes);

	__u32 tk = table * GLB_GENS + gen;
	struct glb_table *t = bpf_map_lookup_elem(&glb_tables, &tk);
	if (!t) {
		count(c, GLB_C_ERROR_TABLE);
		return finish(ctx, c, XDP_DROP);
	}
	struct glb_rows *rows = bpf_map_lookup_elem(&glb_rows, &tk);
	if (!rows) {
		count(c, GLB_C_ERROR_MISSING_ROW);
		return finish(ctx, c, XDP_DROP);
	}
	if (!f.complete || !f.flow_complete) {
		count(c, GLB_C_ROUTE_FAILED);
		return finish(ctx, c, XDP_DROP);
	}

	struct route r = {.table = table, .hop_count = 2};
	r.hash = flow_hash(t, st->hash_fields, &f);
	if (table_hops(t, rows, r.hash, &r.hops[0], &r.primary)) {
		count(c, GLB_C_ROUTE_FAILED);
		return finish(ctx, c, XDP_DROP);
	}
	if (st->alt_hash_fields) {
		__u8 alt_primary;
		__u64 alt = flow_hash(t, st->alt_hash_fields, &f);
		if (table_hops(t, rows, alt, &r.hops[2], &alt_primary)) {
			count(c, GLB_C_ROUTE_FAILED);
			return finish(ctx, c, XDP_DROP);
		}
		r.hop_count = 4;
	}

	if (!st->src_ip) {
		count(c, GLB_C_ERROR_MISSING_SOURCE_ADDRESS);
		return finish(ctx, c, XDP_DROP);
	}
	const __u8 *g = st->gateway_mac;
	if (!(g[0] | g[1] | g[2] | g[3] | g[4] | g[5])) {
		count(c, GLB_C_ERROR_MISSING_GATEWAY_MAC);
		return finish(ctx, c, XDP_DROP);
	}
	/* Our own address: the interface's, when the loader named it, else
	 * the one the frame was sent to. Copied before the headers move. The
	 * loader names interfaces before the program is in service, so what
	 * the map says of an interface is remembered per CPU. */
	__u8 src_mac[8] __attribute__((aligned(8)));
	__u32 ifindex = ctx->ingress_ifindex;
	if (m->port_plus1 != ifindex + 1) {
		struct glb_mac *port_mac = bpf_map_lookup_elem(&glb_port_macs, &ifindex);
		m->port_plus1 = ifindex + 1;
		m->mac_known = port_mac != 0;
		if (port_mac)
			__builtin_memcpy(m->mac, port_mac->addr, ETH_ALEN);
	}
	if (m->mac_known)
		put_mac(src_mac, m->mac);
	else
		__builtin_memcpy(src_mac, eth, ETH_ALEN);

	if (encapsulate(ctx, &f, &r, st, src_mac, c))
		return finish(ctx, c, XDP_DROP);
	count(c, GLB_C_ENCAPSULATED);
	__u64 out_bytes = (long)ctx->data_end - (long)ctx->data;
	c->c[GLB_C_ENCAPSULATED_BYTES] += out_bytes;
	add_traffic(&glb_backend_traffic,
		    (r.table * GLB_MAX_BACKENDS + r.primary) * GLB_GENS + gen, out_bytes);
	return finish(ctx, c, XDP_TX);
}
