//! The probes themselves. Each check is bounded by the round's timeout and
//! reports why it failed in words an operator can act on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::counters::Counters;
use crate::http::HttpCheck;
use crate::target::{CheckKind, Target};
use crate::tunnel::Tunnel;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the target passed.
    pub ok: bool,
    /// Why it failed; `None` when it passed.
    pub error: Option<String>,
    /// Whether the failure was the timeout.
    pub timed_out: bool,
    /// How long the check took.
    pub elapsed: Duration,
}

/// What a target's check keeps from one round to the next (the `http`
/// check's request and connection).
#[derive(Debug)]
pub struct Check {
    http: Option<HttpCheck>,
}

impl Check {
    /// The check of `target`, not run yet.
    pub fn new(target: &Target) -> Check {
        let http = match target.kind {
            CheckKind::Http => {
                HttpCheck::new(target.socket_addr(), target.uri.as_deref().unwrap_or("/"))
            }
            _ => None,
        };
        Check { http }
    }

    /// Whether an `http` check keeps a connection for its next run.
    pub fn has_connection(&self) -> bool {
        self.http.as_ref().is_some_and(HttpCheck::has_connection)
    }
}

/// Runs checks of every kind.
#[derive(Debug, Clone)]
pub struct Prober {
    tunnel: Option<Arc<Tunnel>>,
    counters: Arc<Counters>,
}

impl Prober {
    /// A prober; `tunnel` is needed only when gue/fou targets exist.
    pub fn new(tunnel: Option<Arc<Tunnel>>, counters: Arc<Counters>) -> Prober {
        Prober { tunnel, counters }
    }

    /// The tunnel listener, if one is open.
    pub fn tunnel(&self) -> Option<&Arc<Tunnel>> {
        self.tunnel.as_ref()
    }

    /// Checks `target` once with `check`, giving up after `timeout`.
    pub async fn check(&self, target: &Target, check: &mut Check, timeout: Duration) -> Outcome {
        Counters::bump(&self.counters.checks_sent);
        let start = Instant::now();
        let result = tokio::time::timeout(timeout, self.run(target, check)).await;
        let elapsed = start.elapsed();
        let (ok, error, timed_out) = match result {
            Ok(Ok(())) => (true, None, false),
            Err(_) => (
                false,
                Some(format!("no answer within {} ms", timeout.as_millis())),
                true,
            ),
            Ok(Err(why)) => (false, Some(why), false),
        };
        if ok {
            Counters::bump(&self.counters.checks_ok);
        } else {
            Counters::bump(&self.counters.checks_failed);
        }
        if timed_out {
            Counters::bump(&self.counters.timeouts);
        }
        Outcome {
            ok,
            error,
            timed_out,
            elapsed,
        }
    }

    async fn run(&self, target: &Target, check: &mut Check) -> Result<(), String> {
        match target.kind {
            CheckKind::Http => match &mut check.http {
                Some(http) => http.run().await,
                None => Err("the URL path cannot be requested".into()),
            },
            CheckKind::Tcp => {
                let stream = TcpStream::connect(target.socket_addr())
                    .await
                    .map_err(|e| format!("connect: {}", io_reason(&e)))?;
                abort(&stream);
                Ok(())
            }
            CheckKind::Gue | CheckKind::Fou => match &self.tunnel {
                Some(t) => t.probe(target).await,
                None => Err("no raw ICMP socket is open for tunnel checks".into()),
            },
        }
    }
}

/// Makes closing `stream` reset the connection rather than shut it down.
///
/// A `tcp` check has learnt all it wanted once the connection is up: an
/// orderly close would cost a FIN exchange with the target and leave the
/// connection in TIME_WAIT here for a minute — with thousands of targets
/// checked every second, a table of hundreds of thousands of dead
/// connections. A reset ends it at once on both sides (as load
/// balancers' TCP checks commonly do).
pub fn abort(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// `Connection refused` rather than `Connection refused (os error 111)`.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}
