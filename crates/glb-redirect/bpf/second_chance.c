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

GLB_MAP(gfp_config, BPF_MAP_TYPE_ARRAY, __u32, struct gfp_config, 1, 0);
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
 * bound keeps every offset below constant for the verifier. */
#define MAX_HOPS 7
#define OUTER_LEN (ETH_LEN + IP4_LEN + UDP_LEN + GUE_GLB_LEN)
/* The most any packet needs linear: outer headers, every hop, an inner
 * IPv6 header and the fixed TCP header. */
#define LOOPBACK_IFINDEX 1
#define PULL_LEN (OUTER_LEN + 4 * MAX_HOPS + 40 + 20)

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

static __always_inline int is_local(const struct gfp_config *cfg, __u32 addr)
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

/* Inner TCP without SYN, whole as the daemon requires, and no local
 * connection: 1; anything else (the daemon decides): 0. `inner` points at
 * the inner IP header, `room` bytes of GUE payload from there. */
static __always_inline int unowned_tcp(struct __sk_buff *skb, void *inner, void *data_end,
				       __u8 proto, __u32 room)
{
	struct bpf_sock_tuple tuple = {};
	struct tcphdr *th;
	__u32 len;

	if (proto == 4) {
		struct iphdr *ip = inner;
		if ((void *)(ip + 1) > data_end)
			return 0;
		/* Options, fragments and other protocols are the daemon's. */
		if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_TCP ||
		    (ip->frag_off & bpf_htons(0x3fff)))
			return 0;
		len = bpf_ntohs(ip->tot_len);
		if (len < IP4_LEN + sizeof(*th) || len > room)
			return 0;
		th = (void *)(ip + 1);
		if ((void *)(th + 1) > data_end)
			return 0;
		tuple.ipv4.saddr = ip->saddr;
		tuple.ipv4.daddr = ip->daddr;
		tuple.ipv4.sport = th->source;
		tuple.ipv4.dport = th->dest;
		len = sizeof(tuple.ipv4);
	} else {
		struct ipv6hdr *ip6 = inner;
		if ((void *)(ip6 + 1) > data_end)
			return 0;
		/* Extension headers are the daemon's (it drops them). */
		if (ip6->version != 6 || ip6->nexthdr != IPPROTO_TCP)
			return 0;
		len = bpf_ntohs(ip6->payload_len);
		if (len < sizeof(*th) || len + sizeof(*ip6) > room)
			return 0;
		th = (void *)(ip6 + 1);
		if ((void *)(th + 1) > data_end)
			return 0;
		__builtin_memcpy(tuple.ipv6.saddr, &ip6->saddr, 16);
		__builtin_memcpy(tuple.ipv6.daddr, &ip6->daddr, 16);
		tuple.ipv6.sport = th->source;
		tuple.ipv6.dport = th->dest;
		len = sizeof(tuple.ipv6);
	}
	if (th->syn)
		return 0;
	return !owned(skb, &tuple, len);
}

SEC("classifier")
int glb_second_chance(struct __sk_buff *skb)
{
	__u32 zero = 0;
	const struct gfp_config *cfg = bpf_map_lookup_elem(&gfp_config, &zero);
	if (!cfg || skb->protocol != bpf_htons(ETH_P_IP) || skb->vlan_present ||
	    skb->gso_segs > 1)
		return PASS;
	if (skb->data_end - skb->data < PULL_LEN && skb->len > skb->data_end - skb->data)
		bpf_skb_pull_data(skb, skb->len < PULL_LEN ? skb->len : PULL_LEN);

	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_LEN;
	struct udphdr *udp = data + ETH_LEN + IP4_LEN;
	struct gue_glb *gue = data + ETH_LEN + IP4_LEN + UDP_LEN;
	if ((void *)(gue + 1) > data_end)
		return PASS;

	/* Outer: an unfragmented datagram to our GUE port on our address. */
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->version != 4 || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_UDP || (ip->frag_off & bpf_htons(0x3fff)) ||
	    udp->dest != cfg->listen_port)
		return PASS;
	if (cfg->listen_addr ? ip->daddr != cfg->listen_addr : !is_local(cfg, ip->daddr))
		return PASS;
	__u32 udp_len = bpf_ntohs(udp->len);
	if (udp_len < UDP_LEN + GUE_GLB_LEN || udp_len > bpf_ntohs(ip->tot_len) - IP4_LEN ||
	    ETH_LEN + IP4_LEN + udp_len > skb->len)
		return PASS;
	if ((cfg->flags & GFP_ALLOW_SOURCES) && !allowed(&gfp_allow_sources, ip->saddr))
		return PASS;

	/* GUE with GLB's private data (SPEC §11 step 1), a hop left. */
	__u8 hlen = gue->ver_c_hlen & 0x1f;
	__u8 hops = gue->hop_count;
	if ((gue->ver_c_hlen & 0xe0) || hops > MAX_HOPS || hlen != hops + 1 ||
	    (gue->proto != 4 && gue->proto != 41) || gue->next_hop >= hops)
		return PASS;
	__u32 *hop_list = (void *)(gue + 1);
	__u32 gue_len = GUE_GLB_LEN + 4 * hops;
	if (udp_len < UDP_LEN + gue_len)
		return PASS;
	__u8 next = gue->next_hop & MAX_HOPS;
	if ((void *)(hop_list + next + 1) > data_end)
		return PASS;
	__u32 hop = hop_list[next];
	if (is_local(cfg, hop) ||
	    ((cfg->flags & GFP_ALLOW_HOPS) && !allowed(&gfp_allow_hops, hop)))
		return PASS;

	/* Steps 2 and 3: only TCP that no local connection owns. */
	void *inner = (void *)gue + (gue_len & 0xff);
	__u32 room = udp_len - UDP_LEN - gue_len;
	if (!unowned_tcp(skb, inner, data_end, gue->proto, room))
		return PASS;

	/* Step 4: where the hop is, from this host's point of view (not as
	 * a router: proxies do not forward). */
	struct bpf_fib_lookup fib = {
		.family = 2 /* AF_INET */,
		.l4_protocol = IPPROTO_UDP,
		.sport = udp->source,
		.dport = udp->dest,
		.tot_len = bpf_ntohs(ip->tot_len),
		.ifindex = LOOPBACK_IFINDEX,
		.tos = ip->tos,
		.ipv4_src = ip->daddr,
		.ipv4_dst = hop,
	};
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
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
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);

	/* The old destination stays in both sums (now as the source), so
	 * the address change is the old source replaced by the hop. A zero
	 * UDP checksum (none sent) stays zero. */
	const __u32 ip_check = ETH_LEN + offsetof(struct iphdr, check);
	const __u32 udp_check = ETH_LEN + IP4_LEN + offsetof(struct udphdr, check);
	bpf_l3_csum_replace(skb, ip_check, old_src, hop, 4);
	bpf_l3_csum_replace(skb, ip_check, old_frag, bpf_htons(0x4000), 2);
	bpf_l4_csum_replace(skb, udp_check, old_src, hop,
			    BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | 4);
	bpf_l4_csum_replace(skb, udp_check, old_word, new_word, BPF_F_MARK_MANGLED_0 | 2);

	struct gfp_counters *c = bpf_map_lookup_elem(&gfp_counters, &zero);
	if (c)
		c->forwarded++;
	return bpf_redirect(fib.ifindex, 0);
}
