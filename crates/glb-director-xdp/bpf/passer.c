// SPDX-License-Identifier: BSD-3-Clause
/*
 * The passer (SPEC §14): passes every frame to the kernel. A veth drops
 * frames sent with XDP_TX unless the peer has an XDP program attached;
 * attaching this one there changes nothing else.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
