//! systemd service notification (`Type=notify` units), through the
//! `sd-notify` crate: one datagram of `KEY=VALUE` lines to the socket
//! named by `NOTIFY_SOCKET`. Outside systemd (no `NOTIFY_SOCKET`) every
//! call does nothing and succeeds.
//!
//! A daemon says [`ready`] once it serves, [`stopping`] when it begins
//! to shut down, and — when the unit sets `WatchdogSec=` — [`watchdog`]
//! at least every [`watchdog_interval`].

use std::io;
use std::time::{Duration, Instant};

pub use sd_notify::NotifyState as State;

/// Whether the process runs under a service manager that listens
/// (`NOTIFY_SOCKET` is set).
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty())
}

/// Sends `states` in one datagram; returns whether anything was sent.
pub fn send(states: &[State<'_>]) -> io::Result<bool> {
    if !enabled() {
        return Ok(false);
    }
    sd_notify::notify(states)?;
    Ok(true)
}

/// `READY=1`: start-up is complete.
pub fn ready() -> io::Result<bool> {
    send(&[State::Ready])
}

/// `STOPPING=1`: the daemon is shutting down.
pub fn stopping() -> io::Result<bool> {
    send(&[State::Stopping])
}

/// `WATCHDOG=1`: the daemon is alive.
pub fn watchdog() -> io::Result<bool> {
    send(&[State::Watchdog])
}

/// How often to send [`watchdog`] when the unit asks for it: half of
/// `WatchdogSec=`, as sd_watchdog_enabled(3) recommends.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

/// systemd's watchdog, fed only while a daemon's packet workers make
/// progress: a thread that merely runs (the main loop) proves nothing when
/// the loop that would hang is a worker's.
///
/// Each worker advances a counter on every pass of its loop; the main loop
/// calls [`Watchdog::check`] often, with those counters. Every
/// [`Watchdog::every`] it sends `WATCHDOG=1` if each counter moved since
/// the previous check, and otherwise names the workers that did not, so
/// that systemd restarts the daemon once `WatchdogSec=` passes.
#[derive(Debug)]
pub struct Watchdog {
    every: Duration,
    next: Instant,
    seen: Vec<(u32, u64)>,
}

/// What a [`Watchdog::check`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fed {
    /// Not due yet.
    NotDue,
    /// Every worker moved: `WATCHDOG=1` was sent (or failed to be, with
    /// this error).
    Alive(Option<String>),
    /// These workers did not move: nothing was sent.
    Stalled(Vec<u32>),
}

impl Watchdog {
    /// The watchdog the unit asks for (`WatchdogSec=`), if any.
    pub fn from_env() -> Option<Watchdog> {
        watchdog_interval().map(Watchdog::new)
    }

    /// A watchdog checked every `every`, first at once.
    pub fn new(every: Duration) -> Watchdog {
        Watchdog {
            every,
            next: Instant::now(),
            seen: Vec::new(),
        }
    }

    /// How often it checks (half of `WatchdogSec=`).
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Checks the workers' `(id, passes)` when due, and feeds systemd if
    /// they all moved.
    pub fn check(&mut self, now: Instant, progress: impl FnOnce() -> Vec<(u32, u64)>) -> Fed {
        if now < self.next {
            return Fed::NotDue;
        }
        self.next = now + self.every;
        let progress = progress();
        let stuck = stalled(&self.seen, &progress);
        self.seen = progress;
        if stuck.is_empty() {
            Fed::Alive(watchdog().err().map(|e| e.to_string()))
        } else {
            Fed::Stalled(stuck)
        }
    }
}

/// The workers of `now` whose counter has not moved since `before`
/// (workers that were not there before count as moving).
pub fn stalled(before: &[(u32, u64)], now: &[(u32, u64)]) -> Vec<u32> {
    now.iter()
        .filter(|(id, n)| before.iter().any(|(b, m)| b == id && m == n))
        .map(|(id, _)| *id)
        .collect()
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;
    #[test]
    fn a_worker_whose_counter_did_not_move_is_stalled() {
        assert_eq!(stalled(&[], &[(1, 0), (2, 0)]), Vec::<u32>::new());
        assert_eq!(
            stalled(&[(1, 5), (2, 9)], &[(1, 6), (2, 10)]),
            Vec::<u32>::new()
        );
        assert_eq!(stalled(&[(1, 5), (2, 9)], &[(1, 6), (2, 9)]), vec![2]);
        assert_eq!(stalled(&[(1, 5), (2, 9)], &[(1, 5), (2, 9)]), vec![1, 2]);
        // A counter that wrapped still moved.
        assert_eq!(stalled(&[(3, u64::MAX)], &[(3, 0)]), Vec::<u32>::new());
    }

    #[test]
    fn checks_only_when_due_and_withholds_the_ping_while_stalled() {
        let mut w = Watchdog::new(Duration::from_secs(5));
        let t0 = Instant::now();
        // No NOTIFY_SOCKET in this test's expectations: Alive(None) means
        // "nothing failed", whether or not a manager listens.
        assert!(matches!(w.check(t0, || vec![(0, 1)]), Fed::Alive(_)));
        assert_eq!(
            w.check(t0 + Duration::from_secs(1), || unreachable!()),
            Fed::NotDue
        );
        assert_eq!(
            w.check(t0 + Duration::from_secs(6), || vec![(0, 1)]),
            Fed::Stalled(vec![0])
        );
        assert!(matches!(
            w.check(t0 + Duration::from_secs(12), || vec![(0, 2)]),
            Fed::Alive(_)
        ));
    }

    /// One test touches the environment, so nothing else in this crate's
    /// tests reads NOTIFY_SOCKET concurrently.
    #[test]
    fn sends_only_when_a_manager_listens() {
        let dir = tempfile::tempdir().unwrap();
        let (path, listener) = glb_testkit::notify::listener(dir.path(), Duration::from_secs(10));
        // SAFETY: this crate's only test that reads or writes the
        // environment; nothing else runs concurrently with it here.
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        assert!(!ready().unwrap());
        // SAFETY: as above.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        assert!(ready().unwrap());
        assert!(stopping().unwrap());
        assert_eq!(
            glb_testkit::notify::next(&listener).as_deref(),
            Some("READY=1")
        );
        assert_eq!(
            glb_testkit::notify::next(&listener).as_deref(),
            Some("STOPPING=1")
        );
        // SAFETY: as above.
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
    }
}
