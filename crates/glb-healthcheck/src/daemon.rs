//! The round loop: probe every target, dampen, decide each backend's
//! health, write the checked table and run the reload command; reload the
//! source on `SIGHUP`, stop on `SIGTERM`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use glb_core::model::BackendState;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinHandle;

use crate::checks::{Outcome, Prober};
use crate::config::Config;
use crate::counters::Counters;
use crate::round::{Finished, Pace, Slot};
use crate::source::{BackendPlan, SourceTable};
use crate::status::{LastResult, Shared, TargetStatus};
use crate::target::{CheckKind, Target};
use crate::tunnel::Tunnel;
use glb_io::atomic_file;

/// How long `SIGTERM` waits for a running reload command before leaving.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Rounds running at once: a round's last checks end while the next one
/// begins (see [`crate::round`]); a third waits.
const ROUNDS_IN_FLIGHT: usize = 2;

/// The running daemon.
#[derive(Debug)]
pub struct Daemon {
    config: Config,
    source: SourceTable,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    prober: Arc<Prober>,
    /// Every target of the source and its check, in target order.
    slots: Arc<[Arc<Slot>]>,
    /// Health of every backend as last decided, `[table][backend]`.
    health: Vec<Vec<bool>>,
    /// Something changed that the checked file does not show yet.
    dirty: bool,
    /// After a reload (or at start-up): write and run the reload command
    /// once this round has completed, whatever the hold time says.
    force_from_round: Option<u64>,
    /// No write caused by a health change before this instant.
    next_allowed: Instant,
    last_written: Option<Vec<u8>>,
    reload_task: Option<JoinHandle<bool>>,
    rounds_started: u64,
    listener: Option<TcpListener>,
    signals: Option<Signals>,
}

/// Installed first thing at start-up: until then `SIGHUP` would kill us.
#[derive(Debug)]
struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }
}

struct RoundRun {
    id: u64,
    late_start: bool,
    /// The slots the round checks, in the order of its outcomes.
    slots: Arc<[Arc<Slot>]>,
    handle: JoinHandle<Finished>,
}

fn has_tunnel_targets(source: &SourceTable) -> bool {
    source
        .targets()
        .iter()
        .any(|t| matches!(t.kind, CheckKind::Gue | CheckKind::Fou))
}

fn log_warnings(source: &SourceTable) {
    for w in &source.warnings {
        tracing::warn!("{w}");
    }
}

impl Daemon {
    /// Everything start-up does before the first round: load and validate
    /// the source, open the raw socket if tunnel checks exist, bind the
    /// status listener and write the checked file once. Any failure here
    /// is fatal.
    pub async fn start(config: Config) -> anyhow::Result<Daemon> {
        let signals = Signals::install()?;
        for key in &config.unknown_keys {
            tracing::warn!(key, "unknown key in the configuration file, ignored");
        }
        let source = SourceTable::load(&config.src).map_err(anyhow::Error::msg)?;
        log_warnings(&source);
        let counters = Arc::new(Counters::default());
        Counters::bump(&counters.reloads);
        let shared = Arc::new(Shared::new(counters.clone()));
        let tunnel = if has_tunnel_targets(&source) {
            Some(Arc::new(Tunnel::open(counters.clone())?))
        } else {
            None
        };
        let prober = Arc::new(Prober::new(tunnel, counters.clone()));
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {} for /health", config.listen))?;

        let mut daemon = Daemon {
            health: Vec::new(),
            source,
            shared,
            counters,
            prober,
            slots: Arc::from(Vec::new()),
            dirty: true,
            force_from_round: Some(1),
            next_allowed: Instant::now(),
            last_written: None,
            reload_task: None,
            rounds_started: 0,
            listener: Some(listener),
            signals: Some(signals),
            config,
        };
        daemon.sync_targets();
        daemon.health = daemon.decide_health(&daemon.shared.targets());

        let removed = atomic_file::remove_stale_temps(&daemon.config.dst);
        if removed > 0 {
            tracing::info!(removed, "removed temporary files left by an earlier run");
        }
        let bytes = daemon.source.render(&daemon.health);
        atomic_file::replace(&daemon.config.dst, &bytes).with_context(|| {
            format!(
                "cannot write the checked table {}",
                daemon.config.dst.display()
            )
        })?;
        Counters::bump(&daemon.counters.writes);
        daemon.last_written = Some(bytes);
        tracing::info!(
            src = %daemon.config.src.display(),
            dst = %daemon.config.dst.display(),
            tables = daemon.source.tables.len(),
            targets = daemon.shared.target_count.load(Ordering::Relaxed),
            listen = %daemon.config.listen,
            "started; checked table written before the first round"
        );
        Ok(daemon)
    }

    /// Runs rounds until `SIGTERM` or `SIGINT`.
    pub async fn run(mut self) -> anyhow::Result<()> {
        let Signals {
            mut hup,
            mut term,
            mut int,
        } = self.signals.take().context("already running")?;
        let listener = self.listener.take().context("already running")?;
        let api = tokio::spawn(crate::api::serve(listener, self.shared.clone()));

        let mut next_start = Instant::now();
        let mut rounds: VecDeque<RoundRun> = VecDeque::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_start.into()), if rounds.len() < ROUNDS_IN_FLIGHT => {
                    let interval = self.source.settings.interval;
                    let now = Instant::now();
                    let late_start = now.saturating_duration_since(next_start) > slack(interval);
                    rounds.push_back(self.start_round(late_start));
                    // After waiting for a round, go on from now rather
                    // than catching up with rounds in a burst.
                    next_start = (next_start + interval).max(now);
                }
                joined = async { (&mut rounds.front_mut().expect("guarded").handle).await }, if !rounds.is_empty() => {
                    let r = rounds.pop_front().expect("guarded");
                    match joined {
                        Ok(finished) => {
                            if r.late_start || finished.behind {
                                Counters::bump(&self.counters.rounds_late);
                            }
                            self.finish_round(r.id, &r.slots, finished.outcomes).await;
                        }
                        Err(e) => tracing::error!(error = %e, "a round failed"),
                    }
                }
                Some(()) = hup.recv() => self.reload_source(),
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        tracing::info!("stopping");
        for r in rounds {
            r.handle.abort();
        }
        api.abort();
        if let Some(mut task) = self.reload_task.take() {
            if !task.is_finished() {
                tracing::info!("waiting for the running reload command");
                if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
                    // Dropping the run ends the command's process group.
                    tracing::warn!("the reload command is still running; ending it");
                    task.abort();
                    let _ = task.await;
                }
            }
        }
        Ok(())
    }

    fn start_round(&mut self, late_start: bool) -> RoundRun {
        self.rounds_started += 1;
        let settings = self.source.settings;
        let pace = Pace {
            spread: settings.interval,
            timeout: settings.timeout,
            slack: slack(settings.interval),
        };
        let slots = self.slots.clone();
        let handle = tokio::spawn(crate::round::run(self.prober.clone(), slots.clone(), pace));
        RoundRun {
            id: self.rounds_started,
            late_start,
            slots,
            handle,
        }
    }

    async fn finish_round(&mut self, id: u64, slots: &[Arc<Slot>], outcomes: Vec<Option<Outcome>>) {
        let trigger = self.source.settings.trigger;
        let now = SystemTime::now();
        let new_health;
        {
            let mut map = self.shared.targets();
            for (slot, outcome) in slots.iter().zip(outcomes) {
                // Gone when a reload removed it during the round.
                let (Some(st), Some(outcome)) = (map.get_mut(&slot.target), outcome) else {
                    continue;
                };
                let before = st.dampener.reported();
                let after = st.dampener.observe(outcome.ok, trigger);
                if before.is_some_and(|b| b != after) {
                    Counters::bump(&self.counters.health_changes);
                }
                st.results += 1;
                st.last = Some(LastResult {
                    ok: outcome.ok,
                    error: outcome.error,
                    at: now,
                    elapsed: outcome.elapsed,
                });
            }
            new_health = self.decide_health(&map);
            self.log_changes(&new_health, &map);
        }
        self.shared.round.store(id, Ordering::Relaxed);
        Counters::bump(&self.counters.rounds);
        if new_health != self.health {
            self.dirty = true;
        }
        self.health = new_health;
        self.maybe_write(id).await;
    }

    /// Health of every backend: all of its checks pass (dampened). A
    /// backend without checks is healthy; an inactive one is never checked
    /// and never claimed healthy; one whose checks have no result yet keeps
    /// the `healthy` its source entry has.
    fn decide_health(&self, map: &BTreeMap<Target, TargetStatus>) -> Vec<Vec<bool>> {
        self.source
            .tables
            .iter()
            .map(|t| t.backends.iter().map(|b| backend_health(b, map)).collect())
            .collect()
    }

    fn log_changes(&self, new: &[Vec<bool>], map: &BTreeMap<Target, TargetStatus>) {
        for (ti, table) in self.source.tables.iter().enumerate() {
            let (mut up, mut down) = (0usize, 0usize);
            for (bi, b) in table.backends.iter().enumerate() {
                let now = new[ti][bi];
                if now {
                    up += 1;
                } else {
                    down += 1;
                }
                let before = self.health.get(ti).and_then(|t| t.get(bi)).copied();
                if before.is_none_or(|was| was == now) {
                    continue;
                }
                if now {
                    tracing::info!(
                        table = %table.label,
                        backend = %b.ip,
                        healthy = true,
                        "backend is healthy again: all checks pass"
                    );
                } else {
                    tracing::warn!(
                        table = %table.label,
                        backend = %b.ip,
                        healthy = false,
                        failing = %failing_checks(b, map),
                        "backend is unhealthy"
                    );
                }
            }
            tracing::debug!(
                table = %table.label,
                healthy = up,
                unhealthy = down,
                "round summary"
            );
        }
    }

    async fn maybe_write(&mut self, completed_round: u64) {
        // A forced write (start-up, SIGHUP) happens even when the health
        // is what was last written: a round that was in flight at the
        // SIGHUP may have found nothing changed and cleared `dirty`.
        let forced = self.force_from_round.is_some_and(|r| completed_round >= r);
        if !self.dirty && !forced {
            return;
        }
        if self.reload_task.as_ref().is_some_and(|t| !t.is_finished()) {
            tracing::debug!("the previous reload command is still running; writing later");
            return;
        }
        self.reload_task = None;
        let now = Instant::now();
        if !forced && now < self.next_allowed {
            tracing::debug!(
                wait_ms = (self.next_allowed - now).as_millis() as u64,
                "health changed, but the last reload was too recent; holding the change"
            );
            return;
        }
        let bytes = self.source.render(&self.health);
        if !forced && self.last_written.as_deref() == Some(&bytes[..]) {
            // Changed and changed back within the hold time.
            self.dirty = false;
            return;
        }
        let path = self.config.dst.clone();
        let to_write = bytes.clone();
        let written =
            tokio::task::spawn_blocking(move || atomic_file::replace(&path, &to_write)).await;
        let error = match written {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(error) = error {
            Counters::bump(&self.counters.write_failures);
            tracing::error!(
                file = %self.config.dst.display(),
                error,
                "cannot write the checked table; will try again after the next round"
            );
            return;
        }
        Counters::bump(&self.counters.writes);
        tracing::info!(file = %self.config.dst.display(), "checked table written");
        self.last_written = Some(bytes);
        self.dirty = false;
        self.force_from_round = None;
        self.next_allowed = now + self.config.reload_hold;
        match &self.config.reload_command {
            Some(cmd) => {
                let cmd = cmd.clone();
                let counters = self.counters.clone();
                self.reload_task = Some(tokio::spawn(async move {
                    crate::reload_command::run(&cmd, counters).await
                }));
            }
            None => tracing::info!("no reload_command configured; nothing told about the change"),
        }
    }

    fn reload_source(&mut self) {
        tracing::info!(file = %self.config.src.display(), "SIGHUP: reloading the source table");
        let new = match SourceTable::load(&self.config.src) {
            Ok(s) => s,
            Err(e) => {
                Counters::bump(&self.counters.reload_failures);
                tracing::error!(error = %e, "cannot reload the source table; still using the previous one");
                return;
            }
        };
        if has_tunnel_targets(&new) && self.prober.tunnel().is_none() {
            let opened = Tunnel::open(self.counters.clone())
                .map_err(anyhow::Error::from)
                .map(|t| Prober::new(Some(Arc::new(t)), self.counters.clone()));
            match opened {
                Ok(p) => self.prober = Arc::new(p),
                Err(e) => {
                    Counters::bump(&self.counters.reload_failures);
                    tracing::error!(error = %e, "cannot reload the source table; still using the previous one");
                    return;
                }
            }
        }
        log_warnings(&new);
        self.source = new;
        self.sync_targets();
        self.health = self.decide_health(&self.shared.targets());
        self.dirty = true;
        // Written once the first round that checks the new table is done.
        self.force_from_round = Some(self.rounds_started + 1);
        Counters::bump(&self.counters.reloads);
        tracing::info!(
            tables = self.source.tables.len(),
            targets = self.shared.target_count.load(Ordering::Relaxed),
            "source table reloaded; new targets are checked from the next round"
        );
    }

    /// Makes the slots and the shared target map hold exactly the source's
    /// targets, keeping what is known about those that stay (their dampened
    /// health, their checks and connections).
    fn sync_targets(&mut self) {
        let wanted = self.source.targets();
        {
            let mut map = self.shared.targets();
            map.retain(|t, _| wanted.contains(t));
            for t in &wanted {
                map.entry(t.clone()).or_default();
            }
            self.shared
                .target_count
                .store(map.len() as u64, Ordering::Relaxed);
        }
        let mut kept: BTreeMap<&Target, &Arc<Slot>> =
            self.slots.iter().map(|s| (&s.target, s)).collect();
        let slots: Vec<Arc<Slot>> = wanted
            .into_iter()
            .map(|t| match kept.remove(&t) {
                Some(slot) => slot.clone(),
                None => Slot::new(t),
            })
            .collect();
        self.slots = slots.into();
    }
}

/// How late a round's start, or a check's, may be before the round
/// counts as late.
fn slack(interval: Duration) -> Duration {
    (interval / 10).max(Duration::from_millis(20))
}

fn backend_health(b: &BackendPlan, map: &BTreeMap<Target, TargetStatus>) -> bool {
    if b.state == BackendState::Inactive {
        return false;
    }
    let mut unknown = false;
    for t in &b.targets {
        match map.get(t).and_then(|s| s.dampener.reported()) {
            Some(false) => return false,
            Some(true) => {}
            None => unknown = true,
        }
    }
    if unknown {
        b.source_healthy.unwrap_or(false)
    } else {
        true
    }
}

/// "http://10.0.0.1:80/: HTTP status 500 Internal Server Error; tcp 10.0.0.1:22: connect: Connection refused"
fn failing_checks(b: &BackendPlan, map: &BTreeMap<Target, TargetStatus>) -> String {
    let parts: Vec<String> = b
        .targets
        .iter()
        .filter_map(|t| {
            let st = map.get(t)?;
            match st.dampener.reported() {
                Some(false) => {
                    let why = match &st.last {
                        Some(l) if l.ok => "passing again, not yet enough times in a row".into(),
                        Some(l) => l.error.clone().unwrap_or_else(|| "failed".into()),
                        None => "failed".into(),
                    };
                    Some(format!("{t}: {why}"))
                }
                None => Some(format!("{t}: not checked yet")),
                Some(true) => None,
            }
        })
        .collect();
    if parts.is_empty() {
        "not checked".into()
    } else {
        parts.join("; ")
    }
}
