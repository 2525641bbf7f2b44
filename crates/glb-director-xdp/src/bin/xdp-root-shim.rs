//! `xdp-root-shim TAILCALL_OBJ BPFFS_PIN_PATH IFACE` (SPEC §14): attaches
//! the root program to IFACE, pins its program array at BPFFS_PIN_PATH,
//! sends READY=1 and stays running; SIGINT or SIGTERM detaches and
//! removes the pin.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use aya::Ebpf;
use aya::programs::Xdp;
use glb_director::control::Signals;
use glb_director_xdp::attach::{self, Mode};
use glb_director_xdp::cli::ShimArgs as Args;
use glb_director_xdp::{error_chain, maps};
use tracing::{info, warn};

fn main() -> ExitCode {
    glb_director_xdp::cli::main(run)
}

fn run(args: &Args) -> Result<()> {
    let signals = Signals::install().context("installing signal handlers")?;
    let obj = &args.tailcall_obj;
    let mut ebpf = Ebpf::load_file(obj)
        .map_err(|e| anyhow!(error_chain(&e)))
        .with_context(|| format!("loading {}", obj.display()))?;
    let prog: &mut Xdp = ebpf
        .program_mut(maps::program::ROOT)
        .with_context(|| format!("{} has no program {}", obj.display(), maps::program::ROOT))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| anyhow!(error_chain(&e)))?;
    prog.load()
        .map_err(|e| anyhow!(error_chain(&e)))
        .with_context(|| format!("loading {} into the kernel", maps::program::ROOT))?;
    let array = ebpf
        .map(maps::name::ROOT_ARRAY)
        .with_context(|| format!("{} has no map {}", obj.display(), maps::name::ROOT_ARRAY))?;
    attach::pin_replacing(array, &args.pin_path).map_err(|e| anyhow!(error_chain(&e)))?;

    let prog: &mut Xdp = ebpf
        .program_mut(maps::program::ROOT)
        .and_then(|p| p.try_into().ok())
        .expect("loaded above");
    let attached =
        attach::attach(prog, &args.iface, args.generic).map_err(|e| anyhow!(error_chain(&e)));
    let (link, mode) = match attached {
        Ok(a) => a,
        Err(e) => {
            let _ = std::fs::remove_file(&args.pin_path);
            return Err(e);
        }
    };
    info!(
        iface = %args.iface,
        pin = %args.pin_path.display(),
        mode = if mode == Mode::Native { "native" } else { "generic" },
        "root program attached; slots 0-2 of the pinned array are tail-called in turn"
    );
    match glb_io::notify::ready() {
        Ok(_) => {}
        Err(e) => warn!("cannot notify systemd (NOTIFY_SOCKET): {e}"),
    }
    while !signals.stop_requested() {
        std::thread::sleep(Duration::from_millis(100));
    }
    info!("stopping");
    let _ = glb_io::notify::stopping();
    if let Err(e) = prog.detach(link) {
        warn!("detaching from {}: {}", args.iface, error_chain(&e));
    }
    if let Err(e) = std::fs::remove_file(&args.pin_path) {
        warn!("removing {}: {e}", args.pin_path.display());
    }
    info!(iface = %args.iface, "detached");
    Ok(())
}
