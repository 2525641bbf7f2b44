//! `glb-director-pcap`: replays a capture through the director's packet
//! path and writes the encapsulated frames (and optionally a verdict per
//! frame) — e.g. to see where every flow of a production capture would go
//! with a new forwarding table.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use glb_core::encap::Encapsulator;
use glb_core::forward::Forwarder;
use glb_core::table::TableFile;
use glb_core::wire::ethernet;
use glb_director::DirectorConfig;
use glb_director::cli::PcapArgs as Args;
use glb_director::engine::pcap::{self, Job};

fn run(args: &Args) -> Result<()> {
    let loaded = DirectorConfig::load(&args.config_file)?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let cfg = loaded.config;
    let bytes = std::fs::read(&args.forwarding_table)
        .with_context(|| format!("{}: cannot read", args.forwarding_table.display()))?;
    let file = TableFile::parse(&bytes).with_context(|| {
        format!(
            "{}: not a valid forwarding table",
            args.forwarding_table.display()
        )
    })?;
    let fwd = Forwarder::new(&file, cfg.route_options())
        .with_context(|| format!("{}: cannot load", args.forwarding_table.display()))?;
    // A capture file has no port, hence no source MAC.
    let enc = Encapsulator::new(cfg.encap_params(ethernet::Address::ZERO));
    let job = Job {
        input: &args.pcap_file,
        output: &args.output,
        verdicts: args.verdicts.as_deref(),
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
