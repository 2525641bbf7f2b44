// SPDX-License-Identifier: BSD-3-Clause
/*
 * The benchmark's traffic generator, run with BPF_PROG_TEST_RUN in live
 * mode (BPF_F_TEST_XDP_LIVE_FRAMES) on the peer of the interface under
 * test: every run sends the frame out again with XDP_TX, from the next of
 * 10,000 flows (source 10.1.x.y, source port 1024 + flow, as
 * script/bench-director's capture). The page pool hands the same pages out
 * again with whatever the receiver left in them (a director encapsulates
 * in place), so every run writes the whole frame from gen_template.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include <glb_maps.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define FLOWS 10000
#define FRAME 64

struct gen_frame {
	__u8 b[FRAME];
};

GLB_MAP(gen_template, BPF_MAP_TYPE_ARRAY, __u32, struct gen_frame, 1, 0);
GLB_MAP(gen_next, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u32, 1, 0);

SEC("xdp")
int xdp_bench_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	__u32 zero = 0;
	__u32 *next = bpf_map_lookup_elem(&gen_next, &zero);
	struct gen_frame *t = bpf_map_lookup_elem(&gen_template, &zero);
	if (!next || !t || data + FRAME > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(p, t->b, FRAME);
	__u32 i = *next;
	*next = i + 1 >= FLOWS ? 0 : i + 1;
	/* Source 10.1.(i / 256).(i % 256), port 1024 + i; the IPv4 header
	 * checksum is left as it was (the director does not check it). */
	p[14 + 14] = i / 256;
	p[14 + 15] = i % 256;
	*(__u16 *)(p + 34) = bpf_htons(1024 + i);
	return XDP_TX;
}
