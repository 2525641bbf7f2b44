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

#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use glb_core::hash::LaneEngine;
use glb_core::route::RouteOptions;
use glb_director::DirectorConfig;
use glb_director::cli::DirectorArgs as Args;
use glb_director::control::{Engine, Housekeeping, Signals};
use glb_director::idle::IdlePolicy;
use glb_director::table::{TableError, load_forwarder};
use glb_director_dpdk::director::{Director, Options, stats_line};
use glb_director_dpdk::rte::eal::Eal;
use glb_director_dpdk::stats::Metrics;
use tracing::{debug, info, warn};

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

/// Why the running director gave up.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("lcore(s) {0:?} stopped working on their own; the director stopped")]
    CoresExited(Vec<u32>),
}

/// The running DPDK director as its housekeeping sees it.
struct Running<'a, 'eal> {
    director: &'a Director<'eal>,
    options: RouteOptions,
    engine: LaneEngine,
    metrics: Metrics,
    started: Instant,
    print_every: Option<Duration>,
    next_print: Option<Instant>,
}

impl Engine for Running<'_, '_> {
    type Error = Failure;

    fn reload(&mut self, path: &Path) -> Result<usize, Failure> {
        let fwd = load_forwarder(path, self.options, self.engine)?;
        let tables = fwd.num_tables();
        self.director.swap_table(fwd);
        Ok(tables)
    }

    fn metrics(&mut self) -> Vec<String> {
        self.metrics.lines(self.director.sample())
    }

    fn progress(&self) -> Vec<(u32, u64)> {
        self.director.progress()
    }

    fn tick(&mut self) -> Result<(), Failure> {
        let exited = self.director.exited_cores();
        if !exited.is_empty() {
            return Err(Failure::CoresExited(exited));
        }
        self.director.reap();
        if let (Some(at), Some(every)) = (self.next_print, self.print_every) {
            if Instant::now() >= at {
                self.next_print = Some(at + every);
                self.print_stats();
            }
        }
        Ok(())
    }
}

impl Running<'_, '_> {
    fn print_stats(&self) {
        println!(
            "{}",
            stats_line(
                self.started.elapsed().as_secs_f64(),
                &self.director.sample()
            )
        );
    }
}

fn run(eal_args: Vec<String>, args: Args) -> Result<()> {
    // Signals first, so a stop or reload during start-up is not lost.
    let signals = Signals::install().context("cannot handle signals")?;

    let cfg = DirectorConfig::load(&args.config_file)?.report_warnings(|w| warn!("{w}"));
    let fwd = load_forwarder(
        &args.forwarding_table,
        cfg.route_options(),
        args.lane_engine.engine,
    )?;
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
    let result = serve(&eal, &args, &cfg, fwd, &opts, signals);
    // Safe only now: every DPDK object borrowed the EAL and is gone.
    if let Err(e) = eal.cleanup() {
        warn!("{e}");
    }
    result
}

/// Runs the director on the initialised EAL until it is told to stop.
fn serve(
    eal: &Eal,
    args: &Args,
    cfg: &DirectorConfig,
    fwd: glb_core::route::Forwarder,
    opts: &Options,
    signals: Signals,
) -> Result<()> {
    let config_name = args.config_file.display().to_string();
    let director = Director::open(eal, &config_name, cfg, fwd, opts)?;
    let print_every = args
        .stats_interval
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64);
    let (served, lcores) = eal.scope(|scope| {
        if let Err(e) = director.launch(scope) {
            return (Err(anyhow::Error::from(e)), scope.join_all());
        }
        let started = Instant::now();
        let mut running = Running {
            metrics: Metrics::new(director.queues()),
            director: &director,
            options: cfg.route_options(),
            engine: args.lane_engine.engine,
            started,
            print_every,
            next_print: print_every.map(|d| started + d),
        };
        let mut housekeeping = Housekeeping::new(signals, &args.forwarding_table, cfg.statsd_port);
        let served = housekeeping.run(&mut running);
        if print_every.is_some() {
            running.print_stats();
        }
        director.stop_cores();
        (served.map_err(anyhow::Error::from), scope.join_all())
    });
    let report = director.close();
    for e in &report.port_errors {
        warn!("{e}");
    }
    if report.buffers_in_use != 0 {
        debug!(
            buffers = report.buffers_in_use,
            "buffers not returned to the pool"
        );
    }
    served?;
    let failed: Vec<(u32, i32)> = lcores.into_iter().filter(|&(_, rc)| rc != 0).collect();
    if !failed.is_empty() {
        bail!("lcore loop(s) failed (lcore, code): {failed:?}");
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
    glb_director::logging::init(args.debug);
    match run(eal_args, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
