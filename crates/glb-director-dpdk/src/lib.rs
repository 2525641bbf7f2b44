//! The director's DPDK engine: the `glb-director` binary.
//!
//! * [`rte`] — a safe layer over the parts of DPDK the director uses (EAL
//!   and lcores, ports and queues, the buffer pool, buffers, rings). Every
//!   `unsafe` block of the engine is in it.
//! * [`plan`] — from `director.conf` to what runs on which lcore; pure.
//! * [`cores`] — the loops of run-to-completion, distributor and worker
//!   cores and the exception path they serve.
//! * [`director`] — setting everything up, swapping tables, sampling
//!   counters, stopping.
//! * [`stats`] — the metrics of SPEC §9.
//!
//! The control plane (configuration, table loading, signals, statsd,
//! readiness) is the engine-independent `glb-director` crate.
#![deny(unsafe_code)]

pub mod cores;
pub mod director;
pub mod plan;
#[allow(unsafe_code)]
pub mod rte;
pub mod stats;
