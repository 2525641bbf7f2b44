/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The map declarations every program here uses, in libbpf's BTF form
 * (an anonymous struct in the .maps section), so that where a map is
 * declared only what sets it apart (kind, key, value, size) is written.
 */
#ifndef GLB_MAPS_H
#define GLB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* A map of `max` values of type `value_type` by `key_type`; `flags` as
 * the kind of map requires (BPF_F_NO_PREALLOC for a trie), else 0. */
#define GLB_MAP(map_name, map_type, key_type, value_type, max, flags) \
	struct {                                                      \
		__uint(type, map_type);                               \
		__type(key, key_type);                                \
		__type(value, value_type);                            \
		__uint(max_entries, max);                             \
		__uint(map_flags, flags);                             \
	} map_name SEC(".maps")

/* `max` slots of programs for bpf_tail_call. */
#define GLB_PROG_ARRAY(map_name, max)                  \
	struct {                                       \
		__uint(type, BPF_MAP_TYPE_PROG_ARRAY); \
		__uint(key_size, sizeof(__u32));       \
		__uint(value_size, sizeof(__u32));     \
		__uint(max_entries, max);              \
	} map_name SEC(".maps")

#endif
