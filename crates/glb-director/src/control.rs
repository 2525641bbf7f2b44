//! The housekeeping every director engine's main thread does while its
//! packet workers run: it reacts to signals, reloads the forwarding
//! table, sends metrics and tells systemd how the director is doing.
//!
//! An engine implements [`Engine`]; its `main` installs [`Signals`] first
//! (so a signal during start-up is not lost), starts its packet workers,
//! and hands both to [`Housekeeping::run`], which returns once the
//! director is told to stop or the engine reports a failure:
//!
//! ```text
//! let signals = Signals::install()?;
//! ...start the engine...
//! let mut hk = Housekeeping::new(signals, table_path, cfg.statsd_port);
//! hk.run(&mut engine)?;   // READY=1 ... SIGUSR1 reloads ... STOPPING=1
//! ```
//!
//! * `SIGUSR1` reloads the table (`systemctl reload` sends it): the engine
//!   loads the file and puts it in service; if that fails, the error is
//!   logged and the previous table keeps serving.
//! * `SIGINT` and `SIGTERM` stop the loop (the engine then stops cleanly).
//! * Every [`STATSD_INTERVAL`] the engine's metric lines go to statsd on
//!   127.0.0.1 (best effort).
//! * `READY=1` is sent once the loop starts, after the engine logged that
//!   it runs; `STOPPING=1` when it ends.
//! * When the unit sets `WatchdogSec=`, `WATCHDOG=1` goes out every half
//!   interval, but only while every packet worker of the engine has made
//!   progress since the previous one ([`Engine::progress`]): a wedged
//!   datapath core stops the pings, and systemd restarts the director.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use glb_io::{notify, statsd::Statsd};
use tracing::{debug, error, info, warn};

/// How often metrics go to statsd (SPEC §9).
pub const STATSD_INTERVAL: Duration = Duration::from_secs(10);
/// How often the loop wakes up.
pub const TICK: Duration = Duration::from_millis(20);

/// What a director engine offers its housekeeping.
pub trait Engine {
    /// Why the engine failed or a table could not be put in service.
    type Error: std::fmt::Display;

    /// Loads the forwarding table at `path` and puts it in service;
    /// returns how many tables it holds. On error the engine keeps the
    /// table it has.
    fn reload(&mut self, path: &Path) -> Result<usize, Self::Error>;

    /// The statsd lines for what happened since the previous call.
    fn metrics(&mut self) -> Vec<String>;

    /// Called on every tick (about every [`TICK`]); an error ends the
    /// loop, and [`Housekeeping::run`] returns it.
    fn tick(&mut self) -> Result<(), Self::Error>;

    /// Each packet worker's id and a counter its loop advances on every
    /// pass. An engine whose datapath is not a loop of its own (XDP runs
    /// in the kernel) has none, and the watchdog then only vouches for the
    /// housekeeping loop.
    fn progress(&self) -> Vec<(u32, u64)> {
        Vec::new()
    }
}

/// The signals a director reacts to, caught into flags that the
/// housekeeping loop polls.
#[derive(Debug, Clone)]
pub struct Signals {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

impl Signals {
    /// Catches `SIGINT` and `SIGTERM` (stop) and `SIGUSR1` (reload).
    pub fn install() -> io::Result<Signals> {
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop))?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&reload))?;
        Ok(Signals { stop, reload })
    }

    /// Whether a stop was asked for.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Whether a reload was asked for since the previous call.
    pub fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::SeqCst)
    }
}

/// The housekeeping loop's state.
#[derive(Debug)]
pub struct Housekeeping {
    signals: Signals,
    table: PathBuf,
    statsd: Option<Statsd>,
    statsd_port: u16,
}

impl Housekeeping {
    /// Housekeeping that reloads `table` and reports to statsd on
    /// 127.0.0.1:`statsd_port` (metrics are disabled, with a warning, when
    /// no UDP socket can be opened).
    pub fn new(signals: Signals, table: &Path, statsd_port: u16) -> Housekeeping {
        let statsd = Statsd::localhost(statsd_port)
            .map_err(|e| warn!("statsd disabled: cannot open a UDP socket: {e}"))
            .ok();
        Housekeeping {
            signals,
            table: table.to_owned(),
            statsd,
            statsd_port,
        }
    }

    /// The signals it reacts to.
    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// Announces readiness, then serves until a stop signal or an engine
    /// failure (returned). Sends `STOPPING=1` either way.
    pub fn run<E: Engine>(&mut self, engine: &mut E) -> Result<(), E::Error> {
        // Logged before READY=1, so whoever waits for readiness finds the
        // line already written.
        info!(statsd_port = self.statsd_port, "director running");
        report_notify(notify::ready(), "READY=1");
        let result = self.serve(engine);
        info!("stopping");
        report_notify(notify::stopping(), "STOPPING=1");
        result
    }

    fn serve<E: Engine>(&mut self, engine: &mut E) -> Result<(), E::Error> {
        let mut next_statsd = Instant::now() + STATSD_INTERVAL;
        let mut watchdog = notify::Watchdog::from_env();
        if let Some(w) = &watchdog {
            info!(every = ?w.every(), "systemd watchdog: WATCHDOG=1 while every datapath core makes progress");
        }
        while !self.signals.stop_requested() {
            engine.tick()?;
            if let Some(w) = watchdog.as_mut() {
                match w.check(Instant::now(), || engine.progress()) {
                    notify::Fed::NotDue | notify::Fed::Alive(None) => {}
                    notify::Fed::Alive(Some(e)) => warn!("cannot send WATCHDOG=1: {e}"),
                    notify::Fed::Stalled(lcores) => error!(
                        ?lcores,
                        "datapath core(s) made no progress in {:?}: not telling systemd's watchdog the director is alive",
                        w.every()
                    ),
                }
            }
            if self.signals.take_reload() {
                match engine.reload(&self.table) {
                    Ok(tables) => info!(
                        table = %self.table.display(),
                        tables,
                        "forwarding table reloaded"
                    ),
                    Err(e) => error!("reload failed, still serving the previous table: {e}"),
                }
            }
            if Instant::now() >= next_statsd {
                next_statsd += STATSD_INTERVAL;
                let lines = engine.metrics();
                if let Some(s) = &self.statsd {
                    if let Err(e) = s.send(&lines) {
                        debug!("statsd: {e}");
                    }
                }
            }
            std::thread::sleep(TICK);
        }
        Ok(())
    }
}

fn report_notify(result: io::Result<bool>, what: &str) {
    match result {
        Ok(true) => debug!("told systemd {what}"),
        Ok(false) => {}
        Err(e) => warn!("cannot notify systemd (NOTIFY_SOCKET): {e}"),
    }
}
