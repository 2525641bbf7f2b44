//! `glb-director-pcap`: replays a capture through the director's packet
//! path and writes the encapsulated frames (and optionally a verdict per
//! frame) — e.g. to see where every flow of a production capture would go
//! with a new forwarding table.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use glb_core::encap::Encapsulator;
use glb_core::wire::ethernet;
use glb_director::DirectorConfig;
use glb_director::cli::PcapArgs as Args;
use glb_director::table::load_forwarder;
use glb_director_pcap::{self as pcap, Job};

fn run(args: &Args) -> Result<()> {
    let cfg =
        DirectorConfig::load(&args.config_file)?.report_warnings(|w| eprintln!("warning: {w}"));
    let fwd = load_forwarder(
        &args.forwarding_table,
        cfg.route_options(),
        args.lane_engine.engine,
    )?;
    // A capture file has no port, hence no source MAC.
    let enc = Encapsulator::new(cfg.encap_params(ethernet::Address::ZERO));
    let reads = [
        ("configuration", args.config_file.as_path()),
        ("forwarding table", args.forwarding_table.as_path()),
    ];
    let job = Job {
        input: &args.pcap_file,
        output: &args.output,
        verdicts: args.verdicts.as_deref(),
        reads: &reads,
    };
    let s = pcap::run(&fwd, &enc, &job)?;
    let c = s.counters;
    eprintln!(
        "{} frames: {} encapsulated, {} unclassified, {} route failures, {} encapsulation failures",
        s.frames, c.encap_success, c.unmatched, c.route_failed, c.encap_failure
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("glb-director-pcap: {e:#}");
            ExitCode::FAILURE
        }
    }
}
