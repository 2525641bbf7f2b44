//! `glb-director-xdp`: the GLB director as an XDP program (SPEC §14).
//!
//! ```text
//! glb-director-xdp --pid-file=/run/glb-director-xdp.pid \
//!     --xdp-root-path=/sys/fs/bpf/xdp_root_array@eth0 \
//!     --config-file=/etc/glb/director.conf \
//!     --forwarding-table=/etc/glb/forwarding_table.bin \
//!     --bpf-program=/usr/share/glb-director-xdp/glb_encap.o
//! glb-director-xdp --interface eth0 --config-file ... --forwarding-table ...
//! ```
//!
//! The maps are filled before the program is put in service, so the
//! insertion into the root array (or the attachment) is the cut-over.
//! `SIGUSR1` reloads the table, `SIGINT`/`SIGTERM` take the program out of
//! service and exit 0.

#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use aya::programs::xdp::XdpLinkId;
use glb_core::wire::ethernet;
use glb_director::DirectorConfig;
use glb_director::config::DpdkKeys;
use glb_director::control::{Housekeeping, Signals};
use glb_director_xdp::attach::{self, Interface, Mode, RootSlot};
use glb_director_xdp::cli::DirectorArgs as Args;
use glb_director_xdp::engine::XdpEngine;
use glb_director_xdp::error_chain;
use glb_director_xdp::maps;
use glb_director_xdp::program::Director;
use tracing::{info, warn};

fn main() -> ExitCode {
    glb_director_xdp::cli::main(run)
}

/// Where the program is in service, to take it out again.
struct InService {
    slots: Vec<RootSlot>,
    links: Vec<(String, XdpLinkId)>,
}

fn run(args: &Args) -> Result<()> {
    // First, so a signal during start-up is not lost.
    let signals = Signals::install().context("installing signal handlers")?;
    let cfg = DirectorConfig::load_with(&args.config_file, DpdkKeys::Optional)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .report_warnings(|w| warn!("{w}"));
    if !cfg.lcores.is_empty() || !cfg.flow_paths.is_empty() {
        info!(
            "director.conf: lcores and flow_paths are for the DPDK director; the XDP director ignores them"
        );
    }

    let director = Director::load_file(&args.bpf_program, args.max_tables)
        .map_err(|e| anyhow::anyhow!(error_chain(&e)))
        .with_context(|| format!("loading {}", args.bpf_program.display()))?;
    // The source MAC comes from the interface; the encapsulation settings
    // handed to the image builder only carry the rest.
    let mut engine = XdpEngine::new(
        director,
        cfg.route_options(),
        cfg.encap_params(ethernet::Address::ZERO),
    );
    let tables = engine.load_table(&args.forwarding_table)?;
    info!(
        table = %args.forwarding_table.display(),
        tables,
        program = %args.bpf_program.display(),
        "forwarding table loaded into the program's maps"
    );

    let mut service = InService {
        slots: Vec::new(),
        links: Vec::new(),
    };
    let result = put_in_service(args, &mut engine, &mut service).and_then(|()| {
        if let Some(pid) = &args.pid_file {
            glb_io::atomic_file::replace(pid, format!("{}\n", std::process::id()).as_bytes())
                .with_context(|| format!("writing the pid file {}", pid.display()))?;
        }
        let mut hk = Housekeeping::new(signals, &args.forwarding_table, cfg.statsd_port);
        hk.run(&mut engine)
    });
    take_out_of_service(args, &mut engine, service);
    if let Some(pid) = &args.pid_file {
        let _ = std::fs::remove_file(pid);
    }
    result
}

fn put_in_service(args: &Args, engine: &mut XdpEngine, service: &mut InService) -> Result<()> {
    let director = engine.director();
    if !args.xdpcap_hook_path.is_empty() {
        let hook = director
            .map_mut(maps::name::XDPCAP_HOOK)
            .map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
        match attach::pin_replacing(hook, Path::new(&args.xdpcap_hook_path)) {
            Ok(()) => {
                info!(path = %Path::new(&args.xdpcap_hook_path).display(), "xdpcap hook pinned")
            }
            Err(e) => warn!(
                "xdpcap hook not pinned, captures are unavailable: {}",
                error_chain(&e)
            ),
        }
    }
    for path in &args.xdp_root_path {
        let mut slot = RootSlot::open(path, args.xdp_root_idx)
            .map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
        if let Some((name, iface)) = Interface::of_root_pin(path) {
            set_mac(director, &name, &iface)?;
        }
        slot.set(director.program_fd())
            .map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
        info!(root = %path.display(), slot = args.xdp_root_idx, "in service in the root array");
        service.slots.push(slot);
    }
    for name in &args.interface {
        let iface = Interface::lookup(name).with_context(|| format!("interface {name}"))?;
        set_mac(director, name, &iface)?;
        let (id, mode) = attach::attach(director.program(), name, false)
            .map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
        let mode = match mode {
            Mode::Native => "native",
            Mode::Generic => "generic",
        };
        info!(iface = %name, mode, "attached");
        service.links.push((name.clone(), id));
    }
    Ok(())
}

fn set_mac(director: &mut Director, name: &str, iface: &Interface) -> Result<()> {
    director
        .set_port_mac(iface.ifindex, iface.mac)
        .map_err(|e| anyhow::anyhow!(error_chain(&e)))
        .with_context(|| format!("interface {name}"))
}

fn take_out_of_service(args: &Args, engine: &mut XdpEngine, service: InService) {
    for mut slot in service.slots {
        match slot.clear() {
            Ok(()) => info!(root = %slot.path().display(), "out of service in the root array"),
            Err(e) => warn!("{}", error_chain(&e)),
        }
    }
    let prog = engine.director().program();
    for (name, id) in service.links {
        match prog.detach(id) {
            Ok(()) => info!(iface = %name, "detached"),
            Err(e) => warn!(iface = %name, "detaching: {}", error_chain(&e)),
        }
    }
    if !args.xdpcap_hook_path.is_empty() {
        remove_pin(Path::new(&args.xdpcap_hook_path));
    }
}

fn remove_pin(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!(path = %path.display(), "removing the pin: {e}");
    }
}
