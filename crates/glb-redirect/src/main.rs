//! `glb-redirect [--listen 0.0.0.0:19523] [--tun glbredirect0] ...`

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use glb_redirect::cli::{Args, Mode};
use glb_redirect::counters::{Shared, Snapshot};
use glb_redirect::fast_path::FastPath;
use glb_redirect::nfqueue::{NfQueue, NfqWorker};
use glb_redirect::stats::{StatsFile, Statsd};
use glb_redirect::sys::{self, Signals};
use glb_redirect::sysctl;
use glb_redirect::tun::Tun;
use glb_redirect::worker::{self, LocalAddrs, Settings, Worker};
use tracing_subscriber::EnvFilter;

const STATSD_EVERY: Duration = Duration::from_secs(10);
const ADDRS_EVERY: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once: the log goes to standard error too.
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new("warn,glb_redirect=info"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

fn run(args: Args) -> Result<()> {
    // Before any thread starts, so every thread inherits the mask and the
    // signals wait for the main loop.
    let signals = Signals::block().context("cannot block signals")?;
    // One daemon per GUE port and TUN device in a network namespace: a
    // second one would silently take half of the traffic.
    let _instance = glb_redirect::instance::claim(&args).context("cannot start")?;
    let stats_file = StatsFile::new(&args.stats_file)?;
    let allow = args.allow();
    if allow.sources.is_open() {
        tracing::warn!(
            "no --allow-source: GUE is accepted from any address, so anyone who reaches UDP {} \
             can relay packets through this proxy; list the directors and proxies (docs/redirect.md)",
            args.listen.port()
        );
    } else {
        tracing::info!("GUE accepted only from {}", allow.sources);
    }
    if allow.hops.is_open() {
        tracing::warn!("no --allow-hop: second chances go to any hop a packet names");
    } else {
        tracing::info!("second chances only to {}", allow.hops);
    }
    let mut statsd = args
        .statsd
        .map(|to| Statsd::new(to, &args.statsd_prefix))
        .transpose()
        .context("cannot open the statsd socket")?;

    let workers = usize::from(args.workers);
    let addrs = Arc::new(LocalAddrs::default());
    let host_addrs = sys::local_ipv4_addrs().context("cannot list local addresses")?;
    addrs.update(host_addrs.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let mut shared = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    let batch = usize::from(args.batch);

    match args.mode {
        Mode::Socket => {
            let mut queues = Vec::with_capacity(workers);
            for _ in 0..workers {
                queues.push(Tun::open(&args.tun)?);
            }
            sys::set_link_up(&args.tun).with_context(|| format!("cannot bring {} up", args.tun))?;
            if args.no_sysctl {
                tracing::info!("leaving sysctls alone (--no-sysctl)");
            } else {
                for c in sysctl::prepare_local_delivery(&args.tun)? {
                    tracing::info!("set {c}");
                }
            }
            let settings = Settings {
                listen: args.listen,
                batch,
                udp_checksum: !args.no_udp_checksum,
                extra_local: args.local_ips.clone(),
                allow: allow.clone(),
            };
            for (i, tun) in queues.into_iter().enumerate() {
                let udp = worker::gue_socket(args.listen)?;
                let counters = Arc::new(Shared::default());
                shared.push(counters.clone());
                let (settings, addrs) = (settings.clone(), addrs.clone());
                handles.push(spawn_worker(i, &stop, move || {
                    Worker::new(settings, udp, tun, counters, addrs).map(|w| Box::new(w) as _)
                })?);
            }
            tracing::info!(
                "listening for GUE on {} with {workers} worker(s); local delivery via {}",
                args.listen,
                args.tun,
            );
        }
        Mode::Nfqueue => {
            for i in 0..workers {
                let queue = args
                    .queue_num
                    .checked_add(i as u16)
                    .context("--queue-num plus --workers goes past queue 65535")?;
                let nfq = NfQueue::open(queue)?;
                let counters = Arc::new(Shared::default());
                shared.push(counters.clone());
                let (addrs, extra, allow) = (addrs.clone(), args.local_ips.clone(), allow.clone());
                handles.push(spawn_worker(i, &stop, move || {
                    NfqWorker::new(nfq, batch, extra, allow, counters, addrs)
                        .map(|w| Box::new(w) as _)
                })?);
            }
            tracing::info!(
                "serving NFQUEUE {}..={} with {workers} worker(s); the kernel decapsulates",
                args.queue_num,
                usize::from(args.queue_num) + workers - 1,
            );
        }
    }

    // After the sockets, so that what the program leaves to the daemon
    // has somewhere to go.
    let mut fast_path = start_fast_path(&args, &allow, &host_addrs)?;
    let snapshot = |fast_path: &Option<FastPath>| {
        let mut s = Snapshot::sum(shared.iter().map(|s| &**s));
        if let Some(f) = fast_path {
            s.add_fast_path(f.forwarded());
        }
        s
    };
    stats_file.write(&snapshot(&fast_path))?;
    tracing::info!("stats in {}", stats_file.path().display());
    notify(glb_io::notify::ready());

    let interval = Duration::from_millis(args.stats_interval_ms);
    let mut watchdog = glb_io::notify::Watchdog::from_env();
    if let Some(w) = &watchdog {
        tracing::info!(
            "systemd watchdog: WATCHDOG=1 every {:?} while every worker makes progress",
            w.every()
        );
    }
    // Woken often enough for both the stats file and the watchdog.
    let wake = watchdog
        .as_ref()
        .map_or(interval, |w| interval.min(w.every() / 2));
    let (mut last_statsd, mut last_addrs) = (Instant::now(), Instant::now());
    let mut next_stats = Instant::now() + interval;
    loop {
        if let Some(w) = watchdog.as_mut() {
            let progress = || {
                (0u32..)
                    .zip(shared.iter())
                    .map(|(i, s)| (i, s.passes()))
                    .collect()
            };
            match w.check(Instant::now(), progress) {
                glb_io::notify::Fed::NotDue | glb_io::notify::Fed::Alive(None) => {}
                glb_io::notify::Fed::Alive(Some(e)) => {
                    tracing::warn!("cannot send WATCHDOG=1: {e}")
                }
                glb_io::notify::Fed::Stalled(workers) => tracing::error!(
                    "worker(s) {workers:?} made no progress in {:?}: not telling systemd's watchdog the daemon is alive",
                    w.every()
                ),
            }
        }
        if let Some(sig) = signals.wait(wake) {
            if sig == libc::SIGHUP {
                tracing::info!("SIGHUP: nothing to reload");
            } else {
                tracing::info!("signal {sig}: stopping");
                break;
            }
        }
        if handles.iter().any(|h| h.is_finished()) {
            stop.store(true, Ordering::Relaxed);
            bail!("a worker thread stopped unexpectedly");
        }
        if last_addrs.elapsed() >= ADDRS_EVERY {
            last_addrs = Instant::now();
            match sys::local_ipv4_addrs() {
                Ok(a) => {
                    if let Some(f) = fast_path.as_mut() {
                        sync_local(f, &a, &args.local_ips);
                    }
                    addrs.update(a)
                }
                Err(e) => tracing::warn!("cannot list local addresses: {e}"),
            }
        }
        if Instant::now() < next_stats {
            continue;
        }
        next_stats = Instant::now() + interval;
        let snap = snapshot(&fast_path);
        if let Err(e) = stats_file.write(&snap) {
            tracing::warn!("{e}");
        }
        if let Some(s) = statsd.as_mut() {
            if last_statsd.elapsed() >= STATSD_EVERY {
                last_statsd = Instant::now();
                s.send(&snap);
            }
        }
    }

    notify(glb_io::notify::stopping());
    // Detached first, so that packets in flight reach the workers, which
    // are still draining; its count is kept for the last stats.
    let fast_forwarded = fast_path.take().map_or(0, |f| f.forwarded());
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let mut snap = snapshot(&None);
    snap.add_fast_path(fast_forwarded);
    stats_file.write(&snap)?;
    if let Some(s) = statsd.as_mut() {
        s.send(&snap);
    }
    Ok(())
}

/// Loads and attaches the fast path when `--fast-path` names interfaces.
fn start_fast_path(
    args: &Args,
    allow: &glb_redirect::allow::Allow,
    host_addrs: &[std::net::Ipv4Addr],
) -> Result<Option<FastPath>> {
    if args.fast_path.is_empty() {
        return Ok(None);
    }
    if args.no_sysctl {
        if !sysctl::fast_path_ready() {
            tracing::warn!(
                "{} is not 1 (--no-sysctl): the fast path cannot look routes up and leaves \
                 every packet to the daemon",
                sysctl::FAST_PATH_FORWARDING
            );
        }
    } else {
        for c in sysctl::prepare_fast_path()? {
            tracing::info!("set {c} for the fast path");
        }
    }
    let mut f = FastPath::load(args.listen, allow)?;
    sync_local(&mut f, host_addrs, &args.local_ips);
    // Twice on one hook would only run the program twice.
    let mut ifaces = args.fast_path.clone();
    ifaces.sort();
    ifaces.dedup();
    for iface in &ifaces {
        f.attach(iface)?;
    }
    tracing::info!(
        "fast path on {}: second chances no local connection owns are forwarded in the kernel",
        ifaces.join(",")
    );
    Ok(Some(f))
}

/// Tells the fast path this host's addresses (a failure leaves the old
/// set, which at worst hands a packet to the daemon or forwards one to an
/// address the daemon would have treated as this host's).
fn sync_local(f: &mut FastPath, host: &[std::net::Ipv4Addr], extra: &[std::net::Ipv4Addr]) {
    if let Err(e) = f.set_local(host.iter().chain(extra).copied()) {
        tracing::warn!("cannot update the fast path's local addresses: {e}");
    }
}

/// A packet loop of either front end.
trait Run {
    fn run(&mut self, stop: &AtomicBool);
}

impl Run for Worker {
    fn run(&mut self, stop: &AtomicBool) {
        Worker::run(self, stop)
    }
}

impl Run for NfqWorker {
    fn run(&mut self, stop: &AtomicBool) {
        NfqWorker::run(self, stop)
    }
}

/// Starts worker `i`: `build` runs on the new thread (the buffers are
/// per thread) and its failure is reported here, before start-up goes on.
fn spawn_worker(
    i: usize,
    stop: &Arc<AtomicBool>,
    build: impl FnOnce() -> std::io::Result<Box<dyn Run>> + Send + 'static,
) -> Result<thread::JoinHandle<()>> {
    let (ready_tx, ready_rx) = mpsc::sync_channel::<std::io::Result<()>>(1);
    let worker_stop = stop.clone();
    let h = thread::Builder::new()
        .name(format!("redirect-{i}"))
        .spawn(move || match build() {
            Ok(mut w) => {
                let _ = ready_tx.send(Ok(()));
                w.run(&worker_stop);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })
        .context("cannot start a worker thread")?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(h),
        Ok(Err(e)) => {
            stop.store(true, Ordering::Relaxed);
            bail!("worker {i}: {e}")
        }
        Err(_) => bail!("worker {i} died while starting"),
    }
}

/// Tells systemd (Type=notify) about our state; a no-op elsewhere.
fn notify(result: std::io::Result<bool>) {
    if let Err(e) = result {
        tracing::warn!("cannot notify systemd: {e}");
    }
}
