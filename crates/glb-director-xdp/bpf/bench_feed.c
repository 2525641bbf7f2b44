// SPDX-License-Identifier: BSD-3-Clause
/*
 * The benchmark's harness for ns per frame: run with BPF_PROG_TEST_RUN in
 * live-frame mode (BPF_F_TEST_XDP_LIVE_FRAMES) and a repeat count, it
 * writes the next of the benchmark's frames into the frame the kernel
 * hands it, then tail-calls the program under test (feed_target[0]: the
 * director, or the XDP_TX-only ceiling).
 *
 * Why: without live frames the kernel reruns the program on the frame the
 * previous repetition left (the director's own output); with them it
 * resets the frame's start and end for each repetition but not its bytes,
 * which stay as the previous user of the page left them. Writing the
 * frame here is what a NIC does before every receive, and costs both
 * programs under test the same.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <glb_maps.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define FRAME 64
#define FEED_CAP 65536

struct feed_frame {
	__u8 b[FRAME];
};

/* The frames, in order; feed_state.count of them are in use. */
GLB_MAP(feed_frames, BPF_MAP_TYPE_ARRAY, __u32, struct feed_frame, FEED_CAP, 0);

struct feed_state {
	/* Set by the benchmark. */
	__u32 count;
	/* Per CPU: the next frame. */
	__u32 next;
	/* Per CPU: frames fed, and tail calls that found no program. */
	__u64 fed;
	__u64 missed;
};

GLB_MAP(feed_state, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct feed_state, 1, 0);
GLB_PROG_ARRAY(feed_target, 1);

SEC("xdp")
int xdp_bench_feed(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct feed_state *st = bpf_map_lookup_elem(&feed_state, &zero);
	if (!st || data + FRAME > data_end)
		return XDP_DROP;
	__u32 i = st->next;
	struct feed_frame *f = bpf_map_lookup_elem(&feed_frames, &i);
	if (!f)
		return XDP_DROP;
	st->next = i + 1 >= st->count ? 0 : i + 1;
	st->fed += 1;
	__builtin_memcpy(data, f->b, FRAME);
	bpf_tail_call(ctx, &feed_target, 0);
	st->missed += 1;
	return XDP_DROP;
}
