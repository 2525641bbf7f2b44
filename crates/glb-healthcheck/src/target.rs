//! What gets probed: one (check type, address, port, path) per target.
//!
//! Targets are de-duplicated across tables: a proxy listed in three tables
//! with the same checks is probed once per round, and the one result feeds
//! all three entries.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use glb_core::model::{Backend, BackendState};
use serde::Serialize;

/// The kind of probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// HTTP GET, healthy on a 2xx answer.
    Http,
    /// TCP connect.
    Tcp,
    /// ICMP echo inside IPv4 inside GUE, answered directly by the proxy.
    Gue,
    /// ICMP echo inside IPv4 inside GRE-in-UDP, answered directly by the proxy.
    Fou,
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckKind::Http => "http",
            CheckKind::Tcp => "tcp",
            CheckKind::Gue => "gue",
            CheckKind::Fou => "fou",
        })
    }
}

/// One thing to probe each round.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Target {
    /// The kind of probe.
    #[serde(rename = "type")]
    pub kind: CheckKind,
    /// The proxy's address.
    pub ip: IpAddr,
    /// TCP or UDP port probed.
    pub port: u16,
    /// Path of an HTTP check (always starts with `/`); `None` for other kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

impl Target {
    /// The socket address probed.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// The URL of an HTTP check.
    pub fn url(&self) -> String {
        let uri = self.uri.as_deref().unwrap_or("/");
        format!("http://{}{uri}", self.socket_addr())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            CheckKind::Http => f.write_str(&self.url()),
            kind => write!(f, "{kind} {}", self.socket_addr()),
        }
    }
}

/// The targets probing `backend`, in the order http, tcp, gue, fou. Inactive
/// backends have none: they are not checked at all.
pub fn targets_of(backend: &Backend) -> Vec<Target> {
    if backend.state == BackendState::Inactive {
        return Vec::new();
    }
    let c = &backend.healthchecks;
    let ip = backend.addr;
    let mut out = Vec::new();
    if let Some(port) = c.http {
        let uri = c.http_uri.clone().unwrap_or_else(|| "/".to_owned());
        out.push(Target {
            kind: CheckKind::Http,
            ip,
            port: port.0,
            uri: Some(uri),
        });
    }
    for (kind, port) in [
        (CheckKind::Tcp, c.tcp),
        (CheckKind::Gue, c.gue),
        (CheckKind::Fou, c.fou),
    ] {
        if let Some(port) = port {
            out.push(Target {
                kind,
                ip,
                port: port.0,
                uri: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use glb_core::model::{BackendChecks, Port};

    fn backend(state: BackendState, checks: BackendChecks) -> Backend {
        Backend {
            addr: "192.0.2.7".parse().unwrap(),
            state,
            healthy: None,
            healthchecks: checks,
        }
    }

    #[test]
    fn every_configured_check_becomes_a_target() {
        let b = backend(
            BackendState::Draining,
            BackendChecks {
                http: Some(Port(8080)),
                http_uri: None,
                tcp: Some(Port(22)),
                gue: Some(Port(19523)),
                fou: Some(Port(19524)),
            },
        );
        let shown: Vec<String> = targets_of(&b).iter().map(|t| t.to_string()).collect();
        assert_eq!(
            shown,
            [
                "http://192.0.2.7:8080/",
                "tcp 192.0.2.7:22",
                "gue 192.0.2.7:19523",
                "fou 192.0.2.7:19524"
            ]
        );
    }

    #[test]
    fn inactive_and_unchecked_backends_have_no_targets() {
        let checks = BackendChecks {
            http: Some(Port(80)),
            ..BackendChecks::default()
        };
        assert!(targets_of(&backend(BackendState::Inactive, checks)).is_empty());
        assert!(targets_of(&backend(BackendState::Active, BackendChecks::default())).is_empty());
    }

    #[test]
    fn ipv6_urls_are_bracketed() {
        let t = Target {
            kind: CheckKind::Http,
            ip: "fd00::1".parse().unwrap(),
            port: 80,
            uri: Some("/status?x=1".into()),
        };
        assert_eq!(t.url(), "http://[fd00::1]:80/status?x=1");
    }
}
