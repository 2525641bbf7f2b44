//! The GLB director as a library: its configuration (`director.conf`),
//! the engine-agnostic packet path, and the engines that feed it.
//!
//! * [`config`] — loading and validating `director.conf`.
//! * [`path`] — batches of frames in, encapsulated frames and verdicts
//!   out, with per-core counters.
//! * [`engine`] — packet sources: [`engine::pcap`] replays a capture file.
//! * [`dpdk`] — the safe layer over DPDK that the `glb-director` binary
//!   runs on (all of the crate's `unsafe` is there).

pub mod cli;
pub mod config;
pub mod dpdk;
pub mod engine;
pub mod path;

pub use config::DirectorConfig;
