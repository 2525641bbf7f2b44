// SPDX-License-Identifier: BSD-3-Clause
/*
 * The root shim (SPEC §14): the program attached to the interface. It
 * tail-calls slots 0, 1 and 2 of root_array in turn; a slot that is empty
 * falls through to the next, and a frame no slot takes goes to the kernel.
 * Programs in the slots (a capture hook, a filter, the director) can be
 * replaced at any time without detaching anything.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <glb_maps.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

GLB_PROG_ARRAY(root_array, 3);

SEC("xdp")
int xdp_root(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &root_array, 0);
	bpf_tail_call(ctx, &root_array, 1);
	bpf_tail_call(ctx, &root_array, 2);
	return XDP_PASS;
}
