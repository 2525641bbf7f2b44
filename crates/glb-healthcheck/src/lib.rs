//! `glb-healthcheck`: the director's view of which proxies are alive.
//!
//! The daemon reads the source forwarding table, probes every backend each
//! round (HTTP, TCP, or an ICMP echo through the GUE / GRE-in-UDP tunnel),
//! dampens flapping, and writes the checked table with `healthy` filled in,
//! then runs the operator's reload command so the director picks it up.
//!
//! * [`config`] — `healthcheck.conf`.
//! * [`source`] — the source table, its targets, and the checked rendering.
//! * [`target`] — what gets probed.
//! * [`checks`] — the probes of every kind and the per-check timeout.
//! * [`http`] — the `http` check's lean HTTP/1.1 client and its kept
//!   connections.
//! * [`round`] — one round, its checks paced over the round's start.
//! * [`tunnel`] / [`probe`] — the gue/fou probes and their replies.
//! * [`dampen`] — flap dampening.
//! * [`daemon`] — the round loop, file writing, reloads and signals.
//! * [`api`] / [`status`] / [`counters`] — `/health` and `/debug/vars`.
//! * [`reload_command`] — telling the director (the checked table is
//!   replaced with `glb_io::atomic_file`).

pub mod api;
pub mod checks;
pub mod cli;
pub mod config;
pub mod counters;
pub mod daemon;
pub mod dampen;
pub mod http;
pub mod probe;
pub mod reload_command;
pub mod round;
pub mod source;
pub mod status;
pub mod target;
pub mod tunnel;
