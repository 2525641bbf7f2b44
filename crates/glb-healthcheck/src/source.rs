//! The source forwarding table (`forwarding_table.src.json`) as the checker
//! sees it, and the checked table rendered from it.
//!
//! Validation is glb-core's: a file the table compiler would reject is
//! rejected here too, with the same message. The checked file is rendered
//! from the source document itself (a `serde_json::Value`), changing nothing
//! but each backend's `healthy`, so every key the operator wrote survives
//! the round trip, including ones neither tool knows.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use glb_core::ForwardingTables;
use glb_core::model::{BackendState, HealthCheckSettings};
use serde_json::Value;

use crate::target::{CheckKind, Target, targets_of};

/// Timing of the rounds, from the table's top-level `healthchecks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Time from the start of one round to the start of the next.
    pub interval: Duration,
    /// Bound on every single check.
    pub timeout: Duration,
    /// Consecutive opposite results needed to flip a target's health.
    pub trigger: u32,
}

impl Settings {
    /// Like the original, a zero (or absent) value means "use the default".
    fn from_model(s: HealthCheckSettings) -> Settings {
        let d = HealthCheckSettings::default();
        let pick = |v: u64, default: u64| if v == 0 { default } else { v };
        Settings {
            interval: Duration::from_millis(pick(s.interval_ms, d.interval_ms)),
            timeout: Duration::from_millis(pick(s.timeout_ms, d.timeout_ms)),
            trigger: if s.trigger == 0 { d.trigger } else { s.trigger },
        }
    }
}

/// One backend entry of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendPlan {
    /// The proxy's address.
    pub ip: IpAddr,
    /// Administrative state.
    pub state: BackendState,
    /// What to probe; empty for inactive backends and backends without checks.
    pub targets: Vec<Target>,
    /// `healthy` as the source file has it (`None` when absent).
    pub source_healthy: Option<bool>,
}

/// One table: a label for logs and its backends in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePlan {
    /// The table's `name`, or `table N` when it has none.
    pub label: String,
    /// Backends in file order.
    pub backends: Vec<BackendPlan>,
}

/// A validated source table.
#[derive(Debug, Clone)]
pub struct SourceTable {
    /// The document exactly as parsed, unknown keys included.
    pub doc: Value,
    /// Per table, per backend: what to check.
    pub tables: Vec<TablePlan>,
    /// Round timing.
    pub settings: Settings,
    /// Legal but suspicious things, for the log.
    pub warnings: Vec<String>,
}

impl SourceTable {
    /// Reads and validates the source table at `path`.
    pub fn load(path: &Path) -> Result<SourceTable, String> {
        let name = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
        SourceTable::parse(&name, &text)
    }

    /// Validates source text; `name` prefixes every message.
    pub fn parse(name: &str, text: &str) -> Result<SourceTable, String> {
        let model = ForwardingTables::from_json(name, text).map_err(|e| e.to_string())?;
        let doc: Value = glb_core::json::document(text).map_err(|e| format!("{name}: {e}"))?;
        let mut warnings: Vec<String> = model
            .warnings()
            .iter()
            .map(|w| format!("{name}: {w}"))
            .collect();
        let settings = Settings::from_model(model.healthchecks);
        if settings.timeout > settings.interval {
            warnings.push(format!(
                "{name}: \"healthchecks\": timeout_ms {} is longer than interval_ms {}; \
                 rounds will start late",
                settings.timeout.as_millis(),
                settings.interval.as_millis()
            ));
        }

        let mut tables = Vec::with_capacity(model.tables.len());
        for (ti, t) in model.tables.iter().enumerate() {
            let label = match &t.name {
                Some(n) => n.clone(),
                None => format!("table {ti}"),
            };
            let at_table = match &t.name {
                Some(n) => format!("{name}: table {ti} ({n:?})"),
                None => format!("{name}: table {ti}"),
            };
            let mut backends = Vec::with_capacity(t.backends.len());
            for (bi, b) in t.backends.iter().enumerate() {
                let at = format!("{at_table}, backend {bi}");
                let targets = targets_of(b);
                for target in &targets {
                    check_target(&at, target)?;
                    if matches!(target.kind, CheckKind::Gue | CheckKind::Fou) && b.addr.is_ipv6() {
                        warnings.push(format!(
                            "{at}: \"healthchecks.{}\": tunnel checks carry IPv4 only; \
                             {} will always fail this check",
                            target.kind, b.addr
                        ));
                    }
                }
                backends.push(BackendPlan {
                    ip: b.addr,
                    state: b.state,
                    targets,
                    source_healthy: b.healthy,
                });
            }
            tables.push(TablePlan { label, backends });
        }
        Ok(SourceTable {
            doc,
            tables,
            settings,
            warnings,
        })
    }

    /// Every distinct target across all tables.
    pub fn targets(&self) -> BTreeSet<Target> {
        self.tables
            .iter()
            .flat_map(|t| t.backends.iter())
            .flat_map(|b| b.targets.iter().cloned())
            .collect()
    }

    /// The checked table: the source document with `healthy` set on every
    /// backend from `health[table][backend]`, pretty-printed, ending in a
    /// newline.
    pub fn render(&self, health: &[Vec<bool>]) -> Vec<u8> {
        let mut doc = self.doc.clone();
        if let Some(tables) = doc.get_mut("tables").and_then(Value::as_array_mut) {
            for (t, table_health) in tables.iter_mut().zip(health) {
                if let Some(backends) = t.get_mut("backends").and_then(Value::as_array_mut) {
                    for (b, healthy) in backends.iter_mut().zip(table_health) {
                        if let Some(obj) = b.as_object_mut() {
                            obj.insert("healthy".to_owned(), Value::Bool(*healthy));
                        }
                    }
                }
            }
        }
        let mut out = serde_json::to_vec_pretty(&doc).expect("a Value always serializes");
        out.push(b'\n');
        out
    }
}

/// Checks what glb-core leaves to the checker: that a probe can be sent.
fn check_target(at: &str, target: &Target) -> Result<(), String> {
    if target.port == 0 {
        return Err(format!(
            "{at}: \"healthchecks.{}\": port 0 cannot be probed",
            target.kind
        ));
    }
    if let Some(uri) = &target.uri {
        if !uri.starts_with('/') {
            return Err(format!(
                "{at}: \"healthchecks.http_uri\": {uri:?} must start with \"/\""
            ));
        }
        if crate::http::request_target(uri).is_none() {
            return Err(format!(
                "{at}: \"healthchecks.http_uri\": {uri:?} is not a valid URL path"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"{
      "healthchecks": {"interval_ms": 0, "timeout_ms": 300, "trigger": 2, "note": "x"},
      "operator": {"ticket": 42},
      "tables": [
        {"name": "one", "hash_key": "12345678901234561234567890123456",
         "seed": "34567890123456783456789012345678", "owner": "team-a",
         "binds": [{"ip": "10.10.10.10", "proto": "tcp", "port": 80, "comment": "vip"}],
         "backends": [
           {"ip": "192.0.2.1", "state": "active", "healthy": false, "rack": "r1",
            "healthchecks": {"http": 80, "http_uri": "/status", "gue": 19523}},
           {"ip": "192.0.2.2", "state": "inactive",
            "healthchecks": {"tcp": 22}},
           {"ip": "192.0.2.3", "state": "draining", "healthy": true}
         ]},
        {"hash_key": "12345678901234561234567890123456",
         "seed": "34567890123456783456789012345678",
         "binds": [{"ip": "10.10.10.11", "proto": "udp", "port": 53}],
         "backends": [
           {"ip": "192.0.2.1", "state": "active", "healthy": true,
            "healthchecks": {"http": 80, "http_uri": "/status", "tcp": 81}}
         ]}
      ]
    }"#;

    #[test]
    fn targets_are_deduplicated_and_inactive_skipped() {
        let s = SourceTable::parse("src.json", SRC).unwrap();
        let shown: Vec<String> = s.targets().iter().map(|t| t.to_string()).collect();
        assert_eq!(
            shown,
            [
                "http://192.0.2.1:80/status",
                "tcp 192.0.2.1:81",
                "gue 192.0.2.1:19523"
            ]
        );
        assert_eq!(s.tables[0].label, "one");
        assert_eq!(s.tables[1].label, "table 1");
        assert!(s.tables[0].backends[1].targets.is_empty());
    }

    #[test]
    fn zero_settings_mean_default() {
        let s = SourceTable::parse("src.json", SRC).unwrap();
        assert_eq!(
            s.settings,
            Settings {
                interval: Duration::from_millis(2000),
                timeout: Duration::from_millis(300),
                trigger: 2
            }
        );
    }

    #[test]
    fn render_changes_only_healthy() {
        let s = SourceTable::parse("src.json", SRC).unwrap();
        let out = s.render(&[vec![true, false, false], vec![false]]);
        let got: Value = serde_json::from_slice(&out).unwrap();
        let mut want: Value = serde_json::from_str(SRC).unwrap();
        want["tables"][0]["backends"][0]["healthy"] = Value::Bool(true);
        want["tables"][0]["backends"][1]["healthy"] = Value::Bool(false);
        want["tables"][0]["backends"][2]["healthy"] = Value::Bool(false);
        want["tables"][1]["backends"][0]["healthy"] = Value::Bool(false);
        assert_eq!(got, want);
        assert!(out.ends_with(b"}\n"));
    }

    #[test]
    fn rejects_what_glb_core_rejects_and_bad_probes() {
        let e = SourceTable::parse("src.json", &SRC.replace("192.0.2.3", "192.0.2.x")).unwrap_err();
        assert!(
            e.starts_with("src.json: table 0 (\"one\"), backend 2: \"ip\""),
            "{e}"
        );
        let e = SourceTable::parse(
            "src.json",
            &SRC.replace("\"/status\", \"gue\"", "\"status\", \"gue\""),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "src.json: table 0 (\"one\"), backend 0: \"healthchecks.http_uri\": \"status\" must start with \"/\""
        );
        let e =
            SourceTable::parse("src.json", &SRC.replace("\"tcp\": 81", "\"tcp\": 0")).unwrap_err();
        assert_eq!(
            e,
            "src.json: table 1, backend 0: \"healthchecks.tcp\": port 0 cannot be probed"
        );
        assert!(SourceTable::parse("src.json", "{}").is_err());
        assert!(
            SourceTable::parse("src.json", "")
                .unwrap_err()
                .contains("empty")
        );
    }

    #[test]
    fn warns_about_missing_healthy_and_slow_timeouts() {
        let text = SRC.replace("\"timeout_ms\": 300", "\"timeout_ms\": 5000");
        let s = SourceTable::parse("src.json", &text).unwrap();
        assert!(
            s.warnings
                .iter()
                .any(|w| w.contains("backend 1") && w.contains("healthy"))
        );
        assert!(
            s.warnings
                .iter()
                .any(|w| w.contains("rounds will start late"))
        );
        assert!(s.warnings.iter().all(|w| !w.contains("1234567890123456")));
    }
}
