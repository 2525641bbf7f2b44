//! The command lines of `glb-director` and `glb-director-pcap`, in the
//! library so that the manual pages (crates/glb-man) are rendered from this
//! one definition.

use std::path::PathBuf;

use clap::Parser;
use glb_core::hash::LaneEngine;

use crate::idle::IdlePolicy;

/// GLB director: the DPDK datapath of the GLB load balancer.
///
/// Receives packets for the virtual IPs on DPDK ports, classifies them to a
/// forwarding table, hashes the flow to one of the table's rows and
/// GUE-encapsulates each packet to the row's primary proxy, carrying the
/// secondary for the proxy's second chance. DPDK's EAL arguments (cores,
/// memory, devices) go before `--`, the director's options after it.
#[derive(Debug, Parser)]
#[command(
    name = "glb-director",
    version,
    override_usage = "glb-director [EAL OPTIONS] -- --config-file <FILE> --forwarding-table <FILE> [OPTIONS]"
)]
pub struct DirectorArgs {
    /// director.conf (JSON).
    #[arg(long, value_name = "FILE")]
    pub config_file: PathBuf,
    /// Binary forwarding table (from `glb-director-cli build-config`);
    /// re-read on SIGUSR1.
    #[arg(long, value_name = "FILE")]
    pub forwarding_table: PathBuf,
    /// Log at debug level (RUST_LOG overrides).
    #[arg(long)]
    pub debug: bool,
    /// Print cumulative port and core counters on stdout every SECS
    /// seconds (a `stats t=... key=value ...` line), for benchmarks and
    /// troubleshooting.
    #[arg(long, value_name = "SECS")]
    pub stats_interval: Option<f64>,
    /// Idle back-off: once a core has polled this many times in a row
    /// without packets, it sleeps between polls.
    #[arg(long, value_name = "POLLS", default_value_t = IdlePolicy::default().spin_polls)]
    pub idle_spin_polls: u32,
    /// First sleep of an idle core, in microseconds; each further empty
    /// poll doubles it up to --idle-max-sleep-us. 0 turns the back-off off
    /// (cores always busy-poll).
    #[arg(long, value_name = "MICROSECONDS", default_value_t = IdlePolicy::default().sleep.as_micros() as u64)]
    pub idle_sleep_us: u64,
    /// Longest sleep of an idle core, in microseconds.
    #[arg(long, value_name = "MICROSECONDS", default_value_t = IdlePolicy::default().max_sleep.as_micros() as u64)]
    pub idle_max_sleep_us: u64,
    #[command(flatten)]
    pub lane_engine: LaneEngineArg,
}

/// The vector instructions the flow hash runs on, for both engines.
#[derive(Debug, Clone, clap::Args)]
pub struct LaneEngineArg {
    /// Vector instructions of the flow hash: auto (the best this CPU
    /// has), avx512, avx2 or portable (plain x86-64). Every engine gives
    /// the same hashes; naming one is for comparing them (an engine the
    /// CPU lacks is refused).
    #[arg(
        long = "lane-engine",
        value_name = "ENGINE",
        env = "GLB_LANE_ENGINE",
        default_value = "auto"
    )]
    pub engine: LaneEngine,
}

/// Replay a pcap capture through the GLB director's packet path.
#[derive(Debug, Parser)]
#[command(name = "glb-director-pcap", version)]
pub struct PcapArgs {
    /// director.conf (JSON).
    #[arg(long, value_name = "CONFIG")]
    pub config_file: PathBuf,
    /// Binary forwarding table (from `glb-director-cli build-config`).
    #[arg(long, value_name = "TABLE.bin")]
    pub forwarding_table: PathBuf,
    /// Input capture (classic pcap, Ethernet).
    #[arg(long, value_name = "IN.pcap")]
    pub pcap_file: PathBuf,
    /// Output capture: one encapsulated frame per forwarded input frame.
    #[arg(long, value_name = "OUT.pcap")]
    pub output: PathBuf,
    /// Also write one verdict line per input frame.
    #[arg(long, value_name = "FILE")]
    pub verdicts: Option<PathBuf>,
    #[command(flatten)]
    pub lane_engine: LaneEngineArg,
}
