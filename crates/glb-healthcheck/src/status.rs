//! What the daemon knows about every target, shared between the round loop
//! (which writes it) and the status listener (which serves it).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::counters::Counters;
use crate::dampen::Dampener;
use crate::target::Target;

/// The latest raw result of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastResult {
    /// Whether the check passed.
    pub ok: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// When it finished.
    pub at: SystemTime,
    /// How long it took.
    pub elapsed: Duration,
}

/// Everything known about one target.
#[derive(Debug, Clone, Default)]
pub struct TargetStatus {
    /// Dampened health.
    pub dampener: Dampener,
    /// The latest raw result; `None` until the first check finished.
    pub last: Option<LastResult>,
    /// Number of results so far.
    pub results: u64,
}

/// State shared by the round loop and the status listener.
#[derive(Debug)]
pub struct Shared {
    /// Event counters.
    pub counters: Arc<Counters>,
    /// Every target of the current source table.
    targets: Mutex<BTreeMap<Target, TargetStatus>>,
    /// Number of the round most recently completed.
    pub round: AtomicU64,
    /// Number of distinct targets in the current table.
    pub target_count: AtomicU64,
}

impl Shared {
    /// Empty state around `counters`.
    pub fn new(counters: Arc<Counters>) -> Shared {
        Shared {
            counters,
            targets: Mutex::new(BTreeMap::new()),
            round: AtomicU64::new(0),
            target_count: AtomicU64::new(0),
        }
    }

    /// The target map, locked.
    pub fn targets(&self) -> MutexGuard<'_, BTreeMap<Target, TargetStatus>> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `GET /health`: every target with its dampened health and latest result.
    pub fn health_json(&self) -> Value {
        let targets = self.targets();
        let list: Vec<Value> = targets
            .iter()
            .map(|(t, s)| {
                let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
                v["target"] = Value::from(t.to_string());
                v["healthy"] = s.dampener.reported().map_or(Value::Null, Value::from);
                v["results"] = Value::from(s.results);
                v["streak"] = Value::from(s.dampener.streak());
                v["last"] = match &s.last {
                    None => Value::Null,
                    Some(l) => json!({
                        "ok": l.ok,
                        "error": l.error,
                        "at_unix_ms": l.at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
                        "duration_ms": l.elapsed.as_micros() as f64 / 1000.0,
                    }),
                };
                v
            })
            .collect();
        json!({
            "round": self.round.load(Ordering::Relaxed),
            "targets": list,
        })
    }

    /// `GET /debug/vars`: the counters and a few gauges.
    pub fn vars_json(&self) -> Value {
        let mut v = self.counters.to_json();
        v["targets"] = Value::from(self.target_count.load(Ordering::Relaxed));
        v["version"] = Value::from(env!("CARGO_PKG_VERSION"));
        v
    }
}
