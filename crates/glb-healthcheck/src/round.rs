//! One round: every target checked once, the checks paced evenly over the
//! interval, their outcomes collected for the round loop.
//!
//! Starting thousands of checks in the same millisecond makes the checker
//! (and the proxies) busy enough that answers which did arrive in time are
//! read too late, so a round spreads its starts over the whole interval: a
//! single timer steps through the round and starts, at each step, the
//! checks whose turn has come. Target `i` of `n` starts `interval * i / n`
//! into every round, so each is still probed once per interval, and its
//! timeout runs from its own start. The last checks of a round therefore
//! end while the next round is beginning: two rounds are in flight at
//! once, and a [`Slot`] makes a target's checks take turns.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::checks::{Check, Outcome, Prober};
use crate::target::Target;

/// The pacing timer's step: checks whose turn comes within one step start
/// together. Coarse enough that the timer wakes the daemon 200 times a
/// second rather than once per check, fine enough that no burst of starts
/// is noticeable (25 checks a step at 5,000 targets a second).
const STEP: Duration = Duration::from_millis(5);

/// A target and its check, shared by the rounds in flight: a round's
/// check of a target starts only once the previous round's has ended.
#[derive(Debug)]
pub struct Slot {
    /// What is probed.
    pub target: Target,
    check: Mutex<Check>,
}

impl Slot {
    /// A slot for `target`, whose check has not run yet.
    pub fn new(target: Target) -> Arc<Slot> {
        let check = Mutex::new(Check::new(&target));
        Arc::new(Slot { target, check })
    }
}

/// How one round ran.
#[derive(Debug)]
pub struct Finished {
    /// Each slot's outcome, in slot order; `None` for a check that could
    /// not run.
    pub outcomes: Vec<Option<Outcome>>,
    /// Some check started more than the slack after its turn (the checker
    /// fell behind, or the target's previous check was still running).
    pub behind: bool,
}

/// How a round paces its checks.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Time over which the round starts its checks.
    pub spread: Duration,
    /// Bound on every check.
    pub timeout: Duration,
    /// Lateness a check's start may have before the round counts as late.
    pub slack: Duration,
}

/// Runs every slot's check once, the `i`-th of `n` starting
/// `pace.spread * i / n` after the round began.
pub async fn run(prober: Arc<Prober>, slots: Arc<[Arc<Slot>]>, pace: Pace) -> Finished {
    let n = slots.len();
    let begin = Instant::now();
    let mut outcomes: Vec<Option<Outcome>> = Vec::new();
    outcomes.resize_with(n, || None);
    let mut behind = false;
    let mut running = JoinSet::new();
    let mut record = |r: Result<(usize, Outcome, bool), tokio::task::JoinError>| match r {
        Ok((i, outcome, late)) => {
            outcomes[i] = Some(outcome);
            behind |= late;
        }
        // A check that panicked has no outcome; its target keeps the
        // previous one.
        Err(e) => tracing::error!(error = %e, "a check failed to run"),
    };
    for i in 0..n {
        let due = begin + pace.spread.mul_f64(i as f64 / n as f64);
        // Collect what finished while waiting for the next turn, so that a
        // round holds only the checks in flight.
        while due > Instant::now() + STEP {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => break,
                Some(r) = running.join_next() => record(r),
            }
        }
        let (prober, slot) = (prober.clone(), slots[i].clone());
        running.spawn(async move {
            let mut check = slot.check.lock().await;
            let late = Instant::now().saturating_duration_since(due) > pace.slack;
            let outcome = prober.check(&slot.target, &mut check, pace.timeout).await;
            (i, outcome, late)
        });
    }
    while let Some(r) = running.join_next().await {
        record(r);
    }
    Finished { outcomes, behind }
}
