// SPDX-License-Identifier: BSD-3-Clause
/* Built and run on the host by build.rs: prints the sizes of glb_xdp.h's
 * structs as Rust constants, so the loader's mirrors are checked at
 * compile time. */
#include <stdio.h>
#include <stddef.h>

#include "glb_xdp.h"

#define SIZE(T, NAME) printf("pub const %s: usize = %zu;\n", NAME, sizeof(struct T))

int main(void)
{
	SIZE(glb_state, "STATE");
	SIZE(glb_settings, "SETTINGS");
	SIZE(glb_table, "TABLE");
	SIZE(glb_rows, "ROWS");
	SIZE(glb_key_v4, "KEY_V4");
	SIZE(glb_key_v6, "KEY_V6");
	SIZE(glb_class, "CLASS");
	SIZE(glb_interval, "INTERVAL");
	SIZE(glb_backend, "BACKEND");
	SIZE(glb_memo, "MEMO");
	SIZE(glb_mac, "MAC");
	SIZE(glb_traffic, "TRAFFIC");
	SIZE(glb_counters, "COUNTERS");
	printf("pub const SETTINGS_SRC_IP: usize = %zu;\n", offsetof(struct glb_settings, src_ip));
	printf("pub const TABLE_BACKENDS: usize = %zu;\n", offsetof(struct glb_table, backends));
	printf("pub const COUNTERS_C: usize = %zu;\n", offsetof(struct glb_counters, c));
	printf("pub const COUNTER_COUNT: usize = %d;\n", GLB_C_COUNT);
	return 0;
}
