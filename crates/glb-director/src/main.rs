//! `glb-director`: the GLB director on DPDK.
//!
//! ```text
//! glb-director [EAL args] -- --config-file /etc/glb/director.conf \
//!     --forwarding-table /etc/glb/forwarding_table.bin [--debug]
//! ```
//!
//! Everything before `--` goes to DPDK's EAL; everything after is ours.
//! `SIGUSR1` reloads the forwarding table, `SIGINT`/`SIGTERM` stop
//! cleanly (exit 0). Readiness goes to systemd via `NOTIFY_SOCKET`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use glb_core::forward::{Forwarder, RouteOptions};
use glb_core::table::TableFile;
use glb_director::DirectorConfig;
use glb_director::cli::DirectorArgs as Args;
use glb_director::dpdk::eal::Eal;
use glb_director::engine::dpdk::cores::IdlePolicy;
use glb_director::engine::dpdk::stats::Statsd;
use glb_director::engine::dpdk::{Director, Options, notify, stats_line};
use tracing::{debug, error, info, warn};

/// How often metrics go to statsd (SPEC §9).
const STATSD_INTERVAL: Duration = Duration::from_secs(10);
/// How often the housekeeping loop wakes up.
const TICK: Duration = Duration::from_millis(20);

/// Splits argv at the first `--`: EAL arguments (with the program name)
/// and ours (with the program name). Without `--`, everything is ours.
fn split_args(argv: Vec<String>) -> (Vec<String>, Vec<String>) {
    let prog = argv
        .first()
        .cloned()
        .unwrap_or_else(|| "glb-director".into());
    match argv.iter().position(|a| a == "--") {
        Some(i) => {
            let eal = argv[..i].to_vec();
            let mut ours = vec![prog];
            ours.extend_from_slice(&argv[i + 1..]);
            (eal, ours)
        }
        None => (vec![prog], argv),
    }
}

fn load_table(path: &Path, options: RouteOptions) -> Result<Forwarder> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let file = TableFile::parse(&bytes)
        .with_context(|| format!("{}: not a valid forwarding table", path.display()))?;
    Forwarder::new(&file, options).with_context(|| format!("{}: cannot load", path.display()))
}

fn init_logging(debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

struct Signals {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

fn install_signals() -> Result<Signals> {
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .with_context(|| format!("cannot handle signal {sig}"))?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&reload))
        .context("cannot handle SIGUSR1")?;
    Ok(Signals { stop, reload })
}

fn run(eal_args: Vec<String>, args: Args) -> Result<()> {
    // Signals first, so a stop or reload during start-up is not lost.
    let signals = install_signals()?;

    let loaded = DirectorConfig::load(&args.config_file)?;
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let cfg = loaded.config;
    let fwd = load_table(&args.forwarding_table, cfg.route_options())?;
    info!(
        table = %args.forwarding_table.display(),
        tables = fwd.num_tables(),
        flow_hash = fwd.lane_engine().name(),
        "forwarding table loaded"
    );

    let eal = Eal::init(&eal_args)
        .context("DPDK EAL initialisation failed (see the EAL messages above)")?;
    let opts = Options {
        idle: IdlePolicy {
            spin_polls: args.idle_spin_polls,
            sleep: Duration::from_micros(args.idle_sleep_us),
            max_sleep: Duration::from_micros(args.idle_max_sleep_us),
        },
        ..Options::default()
    };
    let config_name = args.config_file.display().to_string();
    let mut director = match Director::start(&eal, &config_name, &cfg, fwd, &opts) {
        Ok(d) => d,
        Err(e) => {
            // SAFETY: start failed before any lcore kept running (it
            // stops what it launched) and no DPDK object is used after.
            let _ = unsafe { eal.cleanup() };
            return Err(e.into());
        }
    };

    let mut statsd = Statsd::new(cfg.statsd_port, director.queues())
        .map_err(|e| warn!("statsd disabled: cannot open a UDP socket: {e}"))
        .ok();
    // Logged before READY=1, so whoever waits for readiness finds the
    // line already written.
    info!(statsd_port = cfg.statsd_port, "director running");
    match notify::notify("READY=1") {
        Ok(true) => debug!("told systemd READY=1"),
        Ok(false) => {}
        Err(e) => warn!("cannot notify systemd (NOTIFY_SOCKET): {e}"),
    }

    let started = Instant::now();
    let mut next_statsd = started + STATSD_INTERVAL;
    let print_every = args
        .stats_interval
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64);
    let mut next_print = print_every.map(|d| started + d);
    let mut core_failure = None;
    while !signals.stop.load(Ordering::SeqCst) {
        let exited = director.exited_cores();
        if !exited.is_empty() {
            core_failure = Some(exited);
            break;
        }
        if signals.reload.swap(false, Ordering::SeqCst) {
            match load_table(&args.forwarding_table, cfg.route_options()) {
                Ok(fwd) => {
                    let tables = fwd.num_tables();
                    director.swap_table(fwd);
                    info!(
                        table = %args.forwarding_table.display(),
                        tables,
                        "forwarding table reloaded"
                    );
                }
                Err(e) => error!("reload failed, still serving the previous table: {e:#}"),
            }
        }
        director.reap();
        let now = Instant::now();
        if now >= next_statsd {
            next_statsd += STATSD_INTERVAL;
            if let Some(s) = statsd.as_mut() {
                if let Err(e) = s.report(director.sample()) {
                    debug!("statsd: {e}");
                }
            }
        }
        if let (Some(at), Some(every)) = (next_print, print_every) {
            if now >= at {
                next_print = Some(at + every);
                println!(
                    "{}",
                    stats_line(started.elapsed().as_secs_f64(), &director.sample())
                );
            }
        }
        std::thread::sleep(TICK);
    }

    info!("stopping");
    let _ = notify::notify("STOPPING=1");
    if print_every.is_some() {
        println!(
            "{}",
            stats_line(started.elapsed().as_secs_f64(), &director.sample())
        );
    }
    let report = director.stop(&eal);
    drop(director);
    // SAFETY: every lcore has returned and every port is closed; nothing
    // touches DPDK after this.
    if let Err(e) = unsafe { eal.cleanup() } {
        warn!("{e}");
    }
    for e in &report.port_errors {
        warn!("{e}");
    }
    if report.buffers_in_use != 0 {
        debug!(
            buffers = report.buffers_in_use,
            "buffers not returned to the pool"
        );
    }
    if let Some(cores) = core_failure {
        bail!("lcore(s) {cores:?} stopped working on their own; the director stopped");
    }
    if !report.failed_lcores.is_empty() {
        bail!(
            "lcore loop(s) failed (lcore, code): {:?}",
            report.failed_lcores
        );
    }
    info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    let (eal_args, ours) = split_args(std::env::args().collect());
    let args = match Args::try_parse_from(ours) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(args.debug);
    match run(eal_args, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
