//! Generates the DPDK bindings with bindgen, compiles the C shim for DPDK's
//! inline fast path, and links the DPDK shared libraries that
//! `pkg-config libdpdk` reports.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Functions exported by the DPDK shared libraries that we bind directly.
/// Kept narrow so bindgen has little to generate and rustc little to compile.
const FUNCTIONS: &[&str] = &[
    // EAL
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_eal_process_type",
    "rte_eal_has_hugepages",
    "rte_eal_hotplug_add",
    "rte_eal_hotplug_remove",
    "rte_dev_probe",
    "rte_strerror",
    "rte_exit",
    "rte_log_set_global_level",
    "rte_log_get_global_level",
    // lcores
    "rte_socket_id",
    "rte_lcore_count",
    "rte_lcore_index",
    "rte_lcore_is_enabled",
    "rte_lcore_to_socket_id",
    "rte_lcore_to_cpu_id",
    "rte_get_main_lcore",
    "rte_get_next_lcore",
    "rte_eal_remote_launch",
    "rte_eal_mp_remote_launch",
    "rte_eal_wait_lcore",
    "rte_eal_mp_wait_lcore",
    "rte_eal_get_lcore_state",
    // timers
    "rte_get_tsc_hz",
    "rte_delay_us_block",
    "rte_delay_us_sleep",
    // ethdev control path
    "rte_eth_dev_count_avail",
    "rte_eth_dev_count_total",
    "rte_eth_find_next",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_get_name_by_port",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_info_get",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_dev_set_mtu",
    "rte_eth_macaddr_get",
    "rte_eth_promiscuous_enable",
    "rte_eth_promiscuous_disable",
    "rte_eth_link_get",
    "rte_eth_link_get_nowait",
    "rte_eth_stats_get",
    "rte_eth_stats_reset",
    "rte_eth_dev_rss_hash_update",
    "rte_eth_dev_rss_hash_conf_get",
    "rte_eth_dev_rss_reta_update",
    "rte_eth_dev_rss_reta_query",
    // mempool and mbufs
    "rte_pktmbuf_pool_create",
    "rte_pktmbuf_free_bulk",
    "rte_mempool_free",
    "rte_mempool_lookup",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    // rings
    "rte_ring_create",
    "rte_ring_free",
    "rte_ring_lookup",
    // our shim for the inline fast path
    "glb_.*",
];

/// Types bound on purpose (everything the functions above reference is
/// pulled in as well).
const TYPES: &[&str] = &[
    "rte_mbuf",
    "rte_mempool",
    "rte_ring",
    "rte_ether_addr",
    "rte_eth_conf",
    "rte_eth_rxconf",
    "rte_eth_txconf",
    "rte_eth_dev_info",
    "rte_eth_stats",
    "rte_eth_link",
    "rte_eth_rss_conf",
    "rte_eth_rss_reta_entry64",
    "rte_eth_rx_mq_mode",
    "rte_eth_tx_mq_mode",
    "rte_proc_type_t",
    "rte_lcore_state_t",
    "rte_rmt_call_main_t",
    "lcore_function_t",
];

/// Plain `#define` constants (bindgen evaluates these itself), and the
/// `glb_const_*` values wrapper.h computes from function-like macros.
const VARS: &[&str] = &[
    "RTE_MAX_LCORE",
    "RTE_MAX_ETHPORTS",
    "RTE_MAX_QUEUES_PER_PORT",
    "RTE_PKTMBUF_HEADROOM",
    "RTE_MBUF_DEFAULT_DATAROOM",
    "RTE_MEMPOOL_CACHE_MAX_SIZE",
    "RTE_ETHER_ADDR_LEN",
    "RTE_ETHER_HDR_LEN",
    "RTE_ETHER_MTU",
    "RTE_ETH_NAME_MAX_LEN",
    "RTE_ETH_RETA_GROUP_SIZE",
    "RTE_ETH_RSS_RETA_SIZE_.*",
    "RTE_ETH_LINK_.*",
    "RTE_MBUF_F_.*",
    "RING_F_.*",
    "SOCKET_ID_ANY",
    "LCORE_ID_ANY",
    "RTE_LOG_EMERG",
    "RTE_LOG_ALERT",
    "RTE_LOG_CRIT",
    "RTE_LOG_ERR",
    "RTE_LOG_WARNING",
    "RTE_LOG_NOTICE",
    "RTE_LOG_INFO",
    "RTE_LOG_DEBUG",
    "glb_const_.*",
];

/// Strips the `glb_const_` prefix so the Rust constant carries DPDK's name.
#[derive(Debug)]
struct Renamer;

impl bindgen::callbacks::ParseCallbacks for Renamer {
    fn item_name(&self, info: bindgen::callbacks::ItemInfo) -> Option<String> {
        info.name.strip_prefix("glb_const_").map(str::to_owned)
    }
}

fn pkg_config(args: &[&str]) -> Vec<String> {
    let exe = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    let out = Command::new(&exe)
        .args(args)
        .arg("libdpdk")
        .output()
        .unwrap_or_else(|e| {
            panic!("dpdk-sys: cannot run `{exe}` ({e}); install pkg-config and libdpdk-dev")
        });
    if !out.status.success() {
        panic!(
            "dpdk-sys: `{exe} {} libdpdk` failed: {}; install libdpdk-dev (DPDK 22.11)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout)
        .expect("pkg-config output is UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let csrc = manifest.join("csrc");
    for f in ["wrapper.h", "shim.h", "shim.c"] {
        println!("cargo:rerun-if-changed={}", csrc.join(f).display());
    }
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let version = pkg_config(&["--modversion"]).join("");
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major != 22 {
        panic!("dpdk-sys: needs DPDK 22.x (Debian 12 libdpdk-dev), pkg-config reports {version}");
    }

    // The cflags carry `-include rte_config.h` and `-march=...`, which the
    // headers depend on, so they go to clang and cc verbatim.
    let cflags = pkg_config(&["--cflags"]);

    // Link: DPDK must be linked as shared libraries. EAL then notices it
    // is a shared build and loads every driver in its plugin directory
    // (pmds-23.0), which is how vdevs such as net_pcap become available.
    for arg in pkg_config(&["--libs"]) {
        if let Some(dir) = arg.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = arg.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
        // `-Wl,--as-needed` is rustc's default on GNU targets already.
    }

    let mut shim = cc::Build::new();
    shim.file(csrc.join("shim.c")).include(&csrc).opt_level(2);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.flag_if_supported("-Wno-unused-parameter");
    shim.compile("glb_dpdk_shim");

    let mut builder = bindgen::Builder::default()
        .header(csrc.join("wrapper.h").display().to_string())
        .clang_args(&cflags)
        .clang_arg(format!("-I{}", csrc.display()))
        .parse_callbacks(Box::new(Renamer))
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .default_enum_style(bindgen::EnumVariation::NewType {
            is_bitfield: false,
            is_global: false,
        })
        .derive_default(true)
        .derive_debug(false)
        .prepend_enum_name(false)
        .generate_comments(false)
        .layout_tests(true)
        .merge_extern_blocks(true)
        .use_core();
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for t in TYPES {
        builder = builder.allowlist_type(t);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }
    let bindings = builder
        .generate()
        .expect("dpdk-sys: bindgen failed on the DPDK headers (is libclang-dev installed?)");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings
        .write_to_file(&out)
        .expect("dpdk-sys: cannot write bindings.rs");
}
