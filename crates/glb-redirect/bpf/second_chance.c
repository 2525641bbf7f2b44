// SPDX-License-Identifier: BSD-3-Clause
/*
 * glb-redirect's fast path: a TC ingress program that sends second
 * chances on to the next proxy in the kernel (SPEC §11 step 4), so those
 * packets never reach the daemon's socket.
 *
 * It takes only the packets whose outcome is certain: a valid GLB GUE
 * datagram to this host's GUE port, from an allowed source, carrying an
 * inner TCP segment without SYN that no local connection owns, with a
 * hop left that is allowed and not this host, and a route and neighbour
 * for that hop. Everything else — local delivery, drops and the counting
 * of them, anything unusual — goes on unchanged (TC_ACT_UNSPEC, so other
 * classifiers still run) to the daemon, whose decision is the reference:
 * the program forwards only what the daemon would forward.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "fast_path.h"
#include <glb_maps.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define LOCAL_CAP 1024
#define ALLOW_CAP 1024

/* Set by the loader before loading (read-only data: the verifier sees
 * constants, and reading it costs no map lookup). */
const volatile struct gfp_config gfp_config = {};
/* This host's addresses (and --local-ip), kept current by the daemon. */
GLB_MAP(gfp_local, BPF_MAP_TYPE_HASH, __u32, __u8, LOCAL_CAP, 0);
GLB_MAP(gfp_allow_sources, BPF_MAP_TYPE_LPM_TRIE, struct gfp_prefix, __u8, ALLOW_CAP,
	BPF_F_NO_PREALLOC);
GLB_MAP(gfp_allow_hops, BPF_MAP_TYPE_LPM_TRIE, struct gfp_prefix, __u8, ALLOW_CAP,
	BPF_F_NO_PREALLOC);
GLB_MAP(gfp_counters, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct gfp_counters, 1, 0);

#define PASS TC_ACT_UNSPEC
#define TCP_LISTEN_ 10
#define ETH_LEN 14
#define IP4_LEN 20
#define UDP_LEN 8
#define GUE_GLB_LEN 8 /* GUE base header and GLB's private data word */
/* More hops than directors list (they list one) go to the daemon; the
 * bound keeps the offsets past the hop list small for the verifier. */
#define MAX_HOPS 7
/* Ethernet to GLB's private data: the part rewritten in place. */
#define OUTER_LEN (ETH_LEN + IP4_LEN + UDP_LEN + GUE_GLB_LEN)
/* Route lookups name lo, as the kernel does for this host's own packets. */
#define LOOPBACK_IFINDEX 1

/* The GUE base header and GLB's private data (SPEC §8). */
struct gue_glb {
	__u8 ver_c_hlen;
	__u8 proto;
	__u16 flags;
	__u16 private_type;
	__u8 next_hop;
	__u8 hop_count;
};

static __always_inline int allowed(void *trie, __u32 addr)
{
	struct gfp_prefix key = { .prefixlen = 32, .addr = addr };
	return bpf_map_lookup_elem(trie, &key) != NULL;
}

static __always_inline int is_local(__u32 addr)
{
	return bpf_map_lookup_elem(&gfp_local, &addr) != NULL;
}

/* Whether a local TCP socket, in any state of a connection, owns the
 * flow of the packet `tuple` describes. A listener alone does not count
 * (as in the daemon's lookup). */
static __always_inline int owned(struct __sk_buff *skb, struct bpf_sock_tuple *tuple, __u32 len)
{
	struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, tuple, len, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	int connection = sk->state != TCP_LISTEN_;
	bpf_sk_release(sk);
	return connection;
}

/* How long a route looked up for a hop is used before it is looked up
 * again. The kernel's own neighbour entries stay in use for seconds after
 * a change, so this adds little; it saves a FIB and neighbour lookup on
 * nearly every packet. */
#define ROUTE_TTL_NS (100 * 1000 * 1000)

struct route_key {
	__u32 src;
	__u32 hop;
};

/* Each CPU's last answer for a (source, hop): a CPU reads only its own
 * entry, so an update is never seen half written. */
GLB_MAP(gfp_routes, BPF_MAP_TYPE_LRU_PERCPU_HASH, struct route_key, struct gfp_route, 256, 0);

/* The interface and addresses to send a packet of `len` bytes from `src`
 * to `hop` by, or NULL when there is no route or no resolved neighbour
 * (or it is too big for the route's MTU). */
static __always_inline struct gfp_route *route_to(struct __sk_buff *skb, __u32 src, __u32 hop,
						  __u32 len)
{
	struct route_key key = { .src = src, .hop = hop };
	__u64 now = bpf_ktime_get_ns();
	struct gfp_route *r = bpf_map_lookup_elem(&gfp_routes, &key);
	if (r && now - r->looked_up < ROUTE_TTL_NS && len <= r->fits)
		return r;

	struct bpf_fib_lookup fib;
	/* Every byte set: without CAP_PERFMON the verifier refuses to pass
	 * uninitialised stack to a helper. */
	__builtin_memset(&fib, 0, sizeof(fib));
	fib.family = 2; /* AF_INET */
	fib.l4_protocol = IPPROTO_UDP;
	fib.tot_len = len;
	fib.ifindex = LOOPBACK_IFINDEX;
	fib.ipv4_src = src;
	fib.ipv4_dst = hop;
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return NULL;
	/* The lookup checked this packet's length against the route's MTU:
	 * a bigger packet asks again. */
	struct gfp_route fresh = { .looked_up = now, .ifindex = fib.ifindex, .fits = len };
	__builtin_memcpy(fresh.smac, fib.smac, ETH_ALEN);
	__builtin_memcpy(fresh.dmac, fib.dmac, ETH_ALEN);
	bpf_map_update_elem(&gfp_routes, &key, &fresh, BPF_ANY);
	return bpf_map_lookup_elem(&gfp_routes, &key);
}

/* A header checksum after a 32-bit word went from `from` to `to` and a
 * 16-bit one from `from16` to `to16` (RFC 1624: ~(~HC + ~m + m')). The
 * IP header is not in the UDP checksum's offload state, so it is done
 * here rather than by a helper. */
static __always_inline __u16 csum_replace(__u16 check, __u32 from, __u32 to, __u16 from16,
					  __u16 to16)
{
	__u32 sum = (__u16)~check;
	sum += (__u16)~(from & 0xffff) + (__u16)~(from >> 16) + (to & 0xffff) + (to >> 16);
	sum += (__u16)~from16 + to16;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* The inner headers the decision reads, copied out of the packet: they
 * sit after the hop list, at an offset that varies, and direct access at
 * a variable offset needs CAP_PERFMON. */
struct inner_v4 {
	struct iphdr ip;
	struct tcphdr tcp;
};

struct inner_v6 {
	struct ipv6hdr ip;
	struct tcphdr tcp;
};

/* Inner TCP without SYN, whole as the daemon requires, and no local
 * connection: 1; anything else (the daemon decides): 0. The inner IP
 * header is at `off`, with `room` bytes of GUE payload from there. */
static __always_inline int unowned_tcp(struct __sk_buff *skb, __u32 off, __u8 proto, __u32 room)
{
	struct bpf_sock_tuple tuple = {};
	__u32 len;

	if (proto == 4) {
		struct inner_v4 in;
		if (bpf_skb_load_bytes(skb, off, &in, sizeof(in)))
			return 0;
		/* Options, fragments and other protocols are the daemon's. */
		if (in.ip.version != 4 || in.ip.ihl != 5 || in.ip.protocol != IPPROTO_TCP ||
		    (in.ip.frag_off & bpf_htons(0x3fff)))
			return 0;
		len = bpf_ntohs(in.ip.tot_len);
		if (len < sizeof(in) || len > room)
			return 0;
		tuple.ipv4.saddr = in.ip.saddr;
		tuple.ipv4.daddr = in.ip.daddr;
		tuple.ipv4.sport = in.tcp.source;
		tuple.ipv4.dport = in.tcp.dest;
		if (in.tcp.syn)
			return 0;
		len = sizeof(tuple.ipv4);
	} else {
		struct inner_v6 in;
		if (bpf_skb_load_bytes(skb, off, &in, sizeof(in)))
			return 0;
		/* Extension headers are the daemon's (it drops them). */
		if (in.ip.version != 6 || in.ip.nexthdr != IPPROTO_TCP)
			return 0;
		len = bpf_ntohs(in.ip.payload_len);
		if (len < sizeof(in.tcp) || len + sizeof(in.ip) > room)
			return 0;
		__builtin_memcpy(tuple.ipv6.saddr, &in.ip.saddr, 16);
		__builtin_memcpy(tuple.ipv6.daddr, &in.ip.daddr, 16);
		tuple.ipv6.sport = in.tcp.source;
		tuple.ipv6.dport = in.tcp.dest;
		if (in.tcp.syn)
			return 0;
		len = sizeof(tuple.ipv6);
	}
	return !owned(skb, &tuple, len);
}

SEC("classifier")
int glb_second_chance(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IP) || skb->vlan_present ||
	    skb->gso_segs > 1)
		return PASS;
	/* The outer headers, which are rewritten in place, must be linear. */
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (data + OUTER_LEN > data_end) {
		bpf_skb_pull_data(skb, OUTER_LEN);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_LEN;
	struct udphdr *udp = data + ETH_LEN + IP4_LEN;
	struct gue_glb *gue = data + ETH_LEN + IP4_LEN + UDP_LEN;
	if ((void *)(gue + 1) > data_end)
		return PASS;

	/* Outer: an unfragmented datagram to our GUE port on our address. */
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->version != 4 || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_UDP || (ip->frag_off & bpf_htons(0x3fff)) ||
	    udp->dest != gfp_config.listen_port)
		return PASS;
	if (gfp_config.listen_addr ? ip->daddr != gfp_config.listen_addr : !is_local(ip->daddr))
		return PASS;
	/* Lengths as the IP and UDP layers check them. (Checksums are not
	 * verified: one that was wrong stays wrong after the incremental
	 * update, and the next hop's kernel drops the packet instead.) */
	__u32 ip_len = bpf_ntohs(ip->tot_len);
	__u32 udp_len = bpf_ntohs(udp->len);
	if (ip_len < IP4_LEN + UDP_LEN || ETH_LEN + ip_len > skb->len ||
	    udp_len < UDP_LEN + GUE_GLB_LEN || udp_len > ip_len - IP4_LEN)
		return PASS;
	if ((gfp_config.flags & GFP_ALLOW_SOURCES) && !allowed(&gfp_allow_sources, ip->saddr))
		return PASS;

	/* GUE with GLB's private data (SPEC §11 step 1), a hop left. */
	__u8 hlen = gue->ver_c_hlen & 0x1f;
	__u8 hops = gue->hop_count;
	if ((gue->ver_c_hlen & 0xe0) || hops > MAX_HOPS || hlen != hops + 1 ||
	    (gue->proto != 4 && gue->proto != 41) || gue->next_hop >= hops)
		return PASS;
	__u32 gue_len = GUE_GLB_LEN + 4 * hops;
	if (udp_len < UDP_LEN + gue_len)
		return PASS;
	__u32 hop;
	if (bpf_skb_load_bytes(skb, OUTER_LEN + 4 * (gue->next_hop & MAX_HOPS), &hop, 4))
		return PASS;
	if (is_local(hop) ||
	    ((gfp_config.flags & GFP_ALLOW_HOPS) && !allowed(&gfp_allow_hops, hop)))
		return PASS;

	/* Steps 2 and 3: only TCP that no local connection owns. */
	if (!unowned_tcp(skb, OUTER_LEN + 4 * hops, gue->proto, udp_len - UDP_LEN - gue_len))
		return PASS;

	/* Step 4: where the hop is (from this host, not as a router). */
	struct gfp_route *route = route_to(skb, ip->daddr, hop, ip_len);
	if (!route)
		return PASS; /* the daemon's send resolves a missing neighbour */

	/* Rewrite: from the address it was sent to, to the hop, the next hop
	 * counted; TTL, TOS and identification kept, DF set. */
	__u32 old_src = ip->saddr;
	__u16 old_frag = ip->frag_off;
	__u16 *hop_word = (void *)&gue->next_hop;
	__u16 old_word = *hop_word;
	ip->saddr = ip->daddr;
	ip->daddr = hop;
	ip->frag_off = bpf_htons(0x4000);
	gue->next_hop += 1;
	__u16 new_word = *hop_word;
	__builtin_memcpy(eth->h_dest, route->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, route->smac, ETH_ALEN);

	/* The old destination stays in both sums (now as the source), so
	 * the address change is the old source replaced by the hop. A zero
	 * UDP checksum (none sent) stays zero. */
	const __u32 udp_check = ETH_LEN + IP4_LEN + offsetof(struct udphdr, check);
	ip->check = csum_replace(ip->check, old_src, hop, old_frag, bpf_htons(0x4000));
	bpf_l4_csum_replace(skb, udp_check, old_src, hop,
			    BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | 4);
	bpf_l4_csum_replace(skb, udp_check, old_word, new_word, BPF_F_MARK_MANGLED_0 | 2);

	__u32 zero = 0;
	struct gfp_counters *c = bpf_map_lookup_elem(&gfp_counters, &zero);
	if (c)
		c->forwarded++;
	return bpf_redirect(route->ifindex, 0);
}
