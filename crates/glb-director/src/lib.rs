//! The director's control plane: everything a director does that does not
//! depend on how packets arrive, shared by every engine (`glb-director`
//! on DPDK in `glb-director-dpdk`, the offline `glb-director-pcap`, the
//! XDP director).
//!
//! * [`config`] — `director.conf`, validated, with errors naming the file
//!   and key.
//! * [`table`] — loading the binary forwarding table, for start-up and for
//!   every reload.
//! * [`control`] — the housekeeping loop an engine's main thread runs:
//!   signals (`SIGUSR1` reloads, `SIGINT`/`SIGTERM` stop), table reloads,
//!   statsd every 10 s, readiness (`READY=1`) and stopping.
//! * [`counters`] — per-core packet counters, written by their core and
//!   read by the metrics.
//! * [`logging`] — the tracing set-up every director binary uses.
//! * [`cli`] — the command lines of `glb-director` and `glb-director-pcap`
//!   (here so the manual pages are rendered without building an engine).
//! * [`idle`] — how a polling core backs off when it has nothing to do.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod control;
pub mod counters;
pub mod idle;
pub mod logging;
pub mod table;

pub use config::DirectorConfig;
