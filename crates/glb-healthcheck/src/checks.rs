//! The probes themselves. Each check is bounded by the round's timeout and
//! reports why it failed in words an operator can act on.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::counters::Counters;
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

/// Runs checks of every kind.
#[derive(Debug, Clone)]
pub struct Prober {
    http: reqwest::Client,
    tunnel: Option<Arc<Tunnel>>,
    counters: Arc<Counters>,
}

impl Prober {
    /// A prober; `tunnel` is needed only when gue/fou targets exist.
    pub fn new(tunnel: Option<Arc<Tunnel>>, counters: Arc<Counters>) -> anyhow::Result<Prober> {
        let http = reqwest::Client::builder()
            // A check must reach the proxy itself, never an HTTP proxy.
            .no_proxy()
            // A fresh connection per check: a proxy that stopped accepting
            // connections must fail its check even if an old one still works.
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::limited(10))
            // One result per check: a retried request would hide a failure.
            .retry(reqwest::retry::never())
            .tcp_nodelay(true)
            .user_agent(concat!("glb-healthcheck/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Prober {
            http,
            tunnel,
            counters,
        })
    }

    /// The tunnel listener, if one is open.
    pub fn tunnel(&self) -> Option<&Arc<Tunnel>> {
        self.tunnel.as_ref()
    }

    /// Runs one check of `target`, giving up after `timeout`.
    pub async fn check(&self, target: &Target, timeout: Duration) -> Outcome {
        Counters::bump(&self.counters.checks_sent);
        let start = Instant::now();
        let result = tokio::time::timeout(timeout, self.run(target, timeout)).await;
        let elapsed = start.elapsed();
        let (ok, error, timed_out) = match result {
            Ok(Ok(())) => (true, None, false),
            Ok(Err(Failure::Timeout)) | Err(_) => (
                false,
                Some(format!("no answer within {} ms", timeout.as_millis())),
                true,
            ),
            Ok(Err(Failure::Other(why))) => (false, Some(why), false),
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

    async fn run(&self, target: &Target, timeout: Duration) -> Result<(), Failure> {
        match target.kind {
            CheckKind::Http => self.http_get(target, timeout).await,
            CheckKind::Tcp => TcpStream::connect(target.socket_addr())
                .await
                .map(drop)
                .map_err(|e| Failure::Other(format!("connect: {}", io_reason(&e)))),
            CheckKind::Gue | CheckKind::Fou => match &self.tunnel {
                Some(t) => t.probe(target).await.map_err(Failure::Other),
                None => Err(Failure::Other(
                    "no raw ICMP socket is open for tunnel checks".into(),
                )),
            },
        }
    }

    async fn http_get(&self, target: &Target, timeout: Duration) -> Result<(), Failure> {
        let resp = self
            .http
            .get(target.url())
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    Failure::Timeout
                } else {
                    Failure::Other(reqwest_reason(&e))
                }
            })?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure::Other(format!("HTTP status {status}")))
        }
    }
}

enum Failure {
    Timeout,
    Other(String),
}

/// `Connection refused` rather than `Connection refused (os error 111)`.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// The most specific cause in reqwest's error chain, which is what tells
/// an operator what happened ("Connection refused", "connection closed
/// before message completed", "too many redirects").
fn reqwest_reason(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    if e.is_redirect() {
        parts.push("redirect failed".into());
    } else if e.is_connect() {
        parts.push("connect".into());
    }
    let mut deepest: Option<String> = None;
    let mut source = e.source();
    while let Some(s) = source {
        deepest = Some(match s.downcast_ref::<std::io::Error>() {
            Some(io) => io_reason(io),
            None => s.to_string(),
        });
        source = s.source();
    }
    parts.push(deepest.unwrap_or_else(|| e.to_string()));
    parts.join(": ")
}
