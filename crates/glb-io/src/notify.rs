//! systemd service notification (`Type=notify` units), through the
//! `sd-notify` crate: one datagram of `KEY=VALUE` lines to the socket
//! named by `NOTIFY_SOCKET`. Outside systemd (no `NOTIFY_SOCKET`) every
//! call does nothing and succeeds.
//!
//! A daemon says [`ready`] once it serves, [`stopping`] when it begins
//! to shut down, and — when the unit sets `WatchdogSec=` — [`watchdog`]
//! at least every [`watchdog_interval`].

use std::io;
use std::time::Duration;

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

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

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
