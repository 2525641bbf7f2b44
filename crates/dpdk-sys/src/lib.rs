//! Raw FFI bindings to the system DPDK (22.11, Debian 12 `libdpdk-dev`).
//!
//! Generated at build time by bindgen from `pkg-config libdpdk`, with a
//! narrow allowlist (EAL, lcores, ethdev control path, mempool, mbuf, ring,
//! timers). DPDK's `static inline` fast path and its macros are reached
//! through a small C shim: `glb_X` forwards to DPDK's `X`, for example
//! [`glb_rte_eth_rx_burst`], [`glb_rte_pktmbuf_prepend`],
//! [`glb_rte_pktmbuf_mtod`] and [`glb_rte_errno`].
//!
//! This crate is only the raw layer: every function is `unsafe` and the safe
//! wrapper lives with its user (`glb-director`). See README.md beside this
//! file for how to run DPDK on a machine without a NIC (EAL arguments,
//! hugepages, where the drivers come from) and for the linking gotchas.
#![no_std]
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    missing_debug_implementations,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
