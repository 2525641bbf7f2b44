//! The forwarding-table JSON model (`forwarding_table.json`, `.src.json`,
//! `.checked.json`).
//!
//! Parsing is strict about everything the table compiler and the health
//! checker use and ignores every other key, because one file feeds both
//! tools and operators annotate it freely. Every error names the source,
//! the table (index and name), the entry and the field, e.g.
//!
//! ```text
//! forwarding_table.json: table 0 ("example1"), backend 3: "ip": "10.0.0.x" is not an IPv4 or IPv6 address
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::hash::Key16;

/// Most backends one table can hold (a limit of the binary format).
pub const MAX_BACKENDS: usize = 256;
/// Most binds one table can hold (a limit of the binary format).
pub const MAX_BINDS: usize = 256;
/// Most tables one file can hold: 1,024 tables make a binary table of
/// 550 MB, which the director holds in memory whole; a file with more is
/// refused before anything is allocated for them.
pub const MAX_TABLES: usize = 1024;
/// Allowed `healthchecks.interval_ms` (0 means the default, 2000).
pub const INTERVAL_MS: std::ops::RangeInclusive<u64> = 100..=3_600_000;
/// Allowed `healthchecks.timeout_ms` (0 means the default, 1000).
pub const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 10..=60_000;
/// Allowed `healthchecks.trigger` (0 means the default, 3).
pub const TRIGGER: std::ops::RangeInclusive<u32> = 1..=100;

/// A parsed and validated forwarding-table file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardingTables {
    /// Tables in file order; classification tries them in this order.
    pub tables: Vec<Table>,
    /// The health checker's top-level settings (ignored by the compiler).
    pub healthchecks: HealthCheckSettings,
}

/// One independent load balancer: its VIPs (binds), proxies (backends) and keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Optional operator-facing name, used in messages and logs.
    pub name: Option<String>,
    /// Keys the per-packet flow hash. Secret.
    pub hash_key: Key16,
    /// Keys the rendezvous table generation. Secret, not stored in the binary.
    pub seed: Key16,
    /// The addresses, protocols and ports this table serves, in match order.
    pub binds: Vec<Bind>,
    /// The proxies, in the order their indexes are stored in rows.
    pub backends: Vec<Backend>,
}

/// A VIP prefix, protocol and port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bind {
    /// The address as written (host bits are kept, as the original does).
    pub addr: IpAddr,
    /// Prefix length; 32 or 128 when the JSON gave none.
    pub prefix_len: u8,
    /// TCP or UDP.
    pub proto: Proto,
    /// First destination port served (inclusive).
    pub port_start: u16,
    /// Last destination port served (inclusive).
    pub port_end: u16,
}

/// Transport protocol of a bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// IP protocol 6.
    Tcp,
    /// IP protocol 17.
    Udp,
}

impl Proto {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }

    /// The protocol for an IP protocol number, if it is TCP or UDP.
    pub const fn from_number(n: u8) -> Option<Self> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            _ => None,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One proxy of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The proxy's address; GUE packets are sent here.
    pub addr: IpAddr,
    /// Administrative state.
    pub state: BackendState,
    /// Health as written by the checker; `None` when the key is absent
    /// (treated as unhealthy, like the original).
    pub healthy: Option<bool>,
    /// How the health checker probes this backend.
    pub healthchecks: BackendChecks,
}

impl Backend {
    /// Whether the backend counts as healthy (a missing `healthy` does not).
    pub fn is_healthy(&self) -> bool {
        self.healthy == Some(true)
    }
}

/// A backend's administrative state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    /// Normal member.
    Active,
    /// Same as active in the table; tells operators not to change another host now.
    Filling,
    /// Kept in rows but demoted to secondary: takes no new connections.
    Draining,
    /// Ignored entirely when generating rows.
    Inactive,
}

impl fmt::Display for BackendState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendState::Active => "active",
            BackendState::Filling => "filling",
            BackendState::Draining => "draining",
            BackendState::Inactive => "inactive",
        })
    }
}

/// The probes configured for one backend (`"healthchecks"` of a backend).
/// An unknown kind of check is an error, not a check quietly skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendChecks {
    /// HTTP GET on this port.
    #[serde(default)]
    pub http: Option<Port>,
    /// Path of the HTTP check; `/` when absent.
    #[serde(default)]
    pub http_uri: Option<String>,
    /// TCP connect on this port.
    #[serde(default)]
    pub tcp: Option<Port>,
    /// ICMP echo inside GUE to this UDP port (normally 19523).
    #[serde(default)]
    pub gue: Option<Port>,
    /// ICMP echo inside GRE-in-UDP (FOU) to this UDP port.
    #[serde(default)]
    pub fou: Option<Port>,
}

/// The health checker's timing settings (top-level `"healthchecks"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct HealthCheckSettings {
    /// Time between rounds.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Per-check timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Consecutive opposite results needed to flip a backend's health.
    #[serde(default = "default_trigger")]
    pub trigger: u32,
}

fn default_interval_ms() -> u64 {
    2000
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_trigger() -> u32 {
    3
}

impl Default for HealthCheckSettings {
    fn default() -> Self {
        HealthCheckSettings {
            interval_ms: default_interval_ms(),
            timeout_ms: default_timeout_ms(),
            trigger: default_trigger(),
        }
    }
}

/// A TCP/UDP port number read strictly from JSON (an integer 0..=65535).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PortVisitor;
        impl Visitor<'_> for PortVisitor {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number 0-65535")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                u16::try_from(v)
                    .map(Port)
                    .map_err(|_| E::custom(format_args!("{v} is not a port number (0-65535)")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format_args!("{v} is not a port number (0-65535)")))
                    .and_then(|v| self.visit_u64(v))
            }
        }
        d.deserialize_u64(PortVisitor)
    }
}

/// Reads a string and makes a value of it with `parse`, whose error is
/// the message; anything but a string is refused as not `expected`.
fn text<'de, D: Deserializer<'de>, T>(
    d: D,
    expected: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    struct TextVisitor<T, F> {
        expected: &'static str,
        parse: F,
        value: PhantomData<fn() -> T>,
    }
    impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for TextVisitor<T, F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expected)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
    }
    d.deserialize_str(TextVisitor {
        expected,
        parse,
        value: PhantomData,
    })
}

/// Reads one of a fixed set of words, with a message listing them for
/// anything else (a number, a misspelling).
fn word<'de, D: Deserializer<'de>, T: Copy>(
    d: D,
    words: &'static [(&'static str, T)],
    expected: &'static str,
) -> Result<T, D::Error> {
    text(d, expected, |v| {
        words
            .iter()
            .find(|(w, _)| *w == v)
            .map(|(_, t)| *t)
            .ok_or_else(|| format!("{v:?} is not {expected}"))
    })
}

impl<'de> Deserialize<'de> for Proto {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        word(
            d,
            &[("tcp", Proto::Tcp), ("udp", Proto::Udp)],
            "\"tcp\" or \"udp\"",
        )
    }
}

impl<'de> Deserialize<'de> for BackendState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        word(
            d,
            &[
                ("active", BackendState::Active),
                ("filling", BackendState::Filling),
                ("draining", BackendState::Draining),
                ("inactive", BackendState::Inactive),
            ],
            "one of \"active\", \"filling\", \"draining\", \"inactive\"",
        )
    }
}

/// A backend's `healthchecks`: an object of known kinds only.
fn backend_checks<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BackendChecks>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Object(_) => {
            let c: BackendChecks = serde_json::from_value(v).map_err(de::Error::custom)?;
            if c.http_uri.is_some() && c.http.is_none() {
                return Err(de::Error::custom(
                    "\"http_uri\" without \"http\": give the port of the HTTP check too",
                ));
            }
            Ok(Some(c))
        }
        other => Err(de::Error::custom(format_args!(
            "expected an object such as {{\"http\": 80, \"gue\": 19523}}, not {}",
            crate::json::kind(&other)
        ))),
    }
}

/// An address with an optional `/prefix`, as written in a bind's `ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_prefix(&text).map_err(de::Error::custom)
    }
}

fn parse_prefix(text: &str) -> Result<Prefix, String> {
    let (addr_text, len_text) = text
        .split_once('/')
        .map_or((text, None), |(a, l)| (a, Some(l)));
    let addr: IpAddr = addr_text
        .parse()
        .map_err(|_| format!("{text:?} is not an IPv4 or IPv6 address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len_text {
        None => max,
        Some(l) => prefix_len(l, max).ok_or_else(|| {
            format!("{text:?}: the prefix length must be a number from 0 to {max}")
        })?,
    };
    Ok(Prefix { addr, len })
}

/// The prefix length after a `/`, from 0 to `max`: digits only, without
/// leading zeros (`/+8` and `/008` are typos, not prefixes).
pub fn prefix_len(text: &str, max: u8) -> Option<u8> {
    let plain = !text.is_empty()
        && text.len() <= 3
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    plain
        .then(|| text.parse::<u8>().ok())
        .flatten()
        .filter(|n| *n <= max)
}

/// A plain IPv4/IPv6 address read from JSON, with an error that quotes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Addr(IpAddr);

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map(Addr)
            .map_err(|_| de::Error::custom(format_args!("{text:?} is not an IPv4 or IPv6 address")))
    }
}

/// A 32-hex-digit secret read from JSON. Errors never echo the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HexKey(Key16);

impl<'de> Deserialize<'de> for HexKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text(d, "a string of 32 hex digits", |v| {
            Key16::from_hex(v).map(HexKey).map_err(|e| e.to_string())
        })
    }
}

#[derive(Deserialize)]
struct RawFile {
    tables: Vec<RawTable>,
    #[serde(default)]
    healthchecks: Option<HealthCheckSettings>,
}

#[derive(Deserialize)]
struct RawTable {
    #[serde(default)]
    name: Option<String>,
    hash_key: HexKey,
    seed: HexKey,
    binds: Vec<RawBind>,
    backends: Vec<RawBackend>,
}

#[derive(Deserialize)]
struct RawBind {
    ip: Prefix,
    proto: Proto,
    #[serde(default)]
    port: Option<Port>,
    #[serde(default)]
    port_start: Option<Port>,
    #[serde(default)]
    port_end: Option<Port>,
}

#[derive(Deserialize)]
struct RawBackend {
    ip: Addr,
    state: BackendState,
    #[serde(default)]
    healthy: Option<bool>,
    #[serde(default, deserialize_with = "backend_checks")]
    healthchecks: Option<BackendChecks>,
}

/// Where in a forwarding-table file something is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// Table index and, when the file gives one, its name.
    pub table: Option<(usize, Option<String>)>,
    /// `("bind" | "backend", index)` inside the table.
    pub entry: Option<(&'static str, usize)>,
    /// The JSON key at fault.
    pub field: Option<String>,
}

impl Location {
    fn table(index: usize, name: &Option<String>) -> Self {
        Location {
            table: Some((index, name.clone())),
            ..Location::default()
        }
    }

    fn entry(mut self, kind: &'static str, index: usize) -> Self {
        self.entry = Some((kind, index));
        self
    }

    fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_owned());
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some((i, name)) = &self.table {
            parts.push(match name {
                Some(n) => format!("table {i} ({n:?})"),
                None => format!("table {i}"),
            });
        }
        if let Some((kind, i)) = self.entry {
            parts.push(format!("{kind} {i}"));
        }
        f.write_str(&parts.join(", "))?;
        if let Some(field) = &self.field {
            if !parts.is_empty() {
                f.write_str(": ")?;
            }
            write!(f, "{field:?}")?;
        }
        Ok(())
    }
}

/// A forwarding-table file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {}{message}", location_prefix(.location))]
pub struct ModelError {
    /// The file name (or other label) the caller gave for the text.
    pub source_name: String,
    /// Which table, entry and field (boxed to keep `Result`s small).
    pub location: Box<Location>,
    /// What is wrong.
    pub message: String,
}

fn location_prefix(loc: &Location) -> String {
    let s = loc.to_string();
    if s.is_empty() { s } else { format!("{s}: ") }
}

/// Something legal but suspicious in a forwarding-table file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Which table and entry.
    pub location: Location,
    /// What looks wrong and what it will do.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", location_prefix(&self.location), self.message)
    }
}

/// What is wrong with a table's list of `n` `what`s (binds, backends),
/// if it is empty or longer than `max`.
fn list_size_problem(what: &str, n: usize, max: usize) -> Option<String> {
    if n == 0 {
        Some(format!("a table needs at least one {what}"))
    } else if n > max {
        Some(format!("{n} {what}s; a table holds at most {max}"))
    } else {
        None
    }
}

impl ForwardingTables {
    /// Parses and validates a forwarding-table JSON document. `source_name`
    /// (usually the file path) prefixes every error message.
    pub fn from_json(source_name: &str, text: &str) -> Result<Self, ModelError> {
        let err = |location: Location, message: String| ModelError {
            source_name: source_name.to_owned(),
            location: Box::new(location),
            message,
        };
        let doc = crate::json::document(text).map_err(|m| err(Location::default(), m))?;
        crate::json::top_object(&doc, "with a \"tables\" array")
            .map_err(|m| err(Location::default(), m))?;
        // Counted before anything is built for them.
        if let Some(n) = doc["tables"].as_array().map(Vec::len) {
            if n > MAX_TABLES {
                return Err(err(
                    Location::default().field("tables"),
                    format!("{n} tables; a file holds at most {MAX_TABLES}"),
                ));
            }
        }
        let names: Vec<Option<String>> = doc["tables"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| t["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let raw: RawFile = match serde_path_to_error::deserialize(doc) {
            Ok(raw) => raw,
            Err(e) => {
                let mut location = location_of(e.path(), &names);
                let mut message = e.into_inner().to_string();
                // serde reports a missing key against the enclosing object;
                // name it as the field instead.
                if let Some(field) = message
                    .strip_prefix("missing field `")
                    .and_then(|m| m.strip_suffix('`'))
                {
                    location.field = Some(field.to_owned());
                    message = "missing (required)".into();
                }
                return Err(err(location, message));
            }
        };
        let hc = raw.healthchecks.unwrap_or_default();
        for (key, value, range) in [
            ("interval_ms", hc.interval_ms, &INTERVAL_MS),
            ("timeout_ms", hc.timeout_ms, &TIMEOUT_MS),
            (
                "trigger",
                u64::from(hc.trigger),
                &(*TRIGGER.start() as u64..=*TRIGGER.end() as u64),
            ),
        ] {
            if value != 0 && !range.contains(&value) {
                return Err(err(
                    Location::default().field(&format!("healthchecks.{key}")),
                    format!(
                        "{value} is outside {}-{} (0 or absent means the default)",
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }

        let mut tables = Vec::with_capacity(raw.tables.len());
        for (ti, t) in raw.tables.into_iter().enumerate() {
            let at = Location::table(ti, &t.name);
            for (what, n, max) in [
                ("bind", t.binds.len(), MAX_BINDS),
                ("backend", t.backends.len(), MAX_BACKENDS),
            ] {
                if let Some(m) = list_size_problem(what, n, max) {
                    return Err(err(at.field(&format!("{what}s")), m));
                }
            }
            if t.backends.iter().all(|b| b.state == BackendState::Inactive) {
                return Err(err(
                    at.field("backends"),
                    "every backend is inactive; a table needs at least one usable backend".into(),
                ));
            }
            let mut binds = Vec::with_capacity(t.binds.len());
            for (bi, b) in t.binds.into_iter().enumerate() {
                let at = at.clone().entry("bind", bi);
                let (start, end) = match (b.port, b.port_start, b.port_end) {
                    (Some(p), _, _) => (p.0, p.0),
                    (None, Some(s), Some(e)) if s.0 <= e.0 => (s.0, e.0),
                    (None, Some(s), Some(e)) => {
                        return Err(err(
                            at.field("port_start"),
                            format!("{} is greater than port_end {}", s.0, e.0),
                        ));
                    }
                    (None, Some(_), None) => {
                        return Err(err(
                            at.field("port_end"),
                            "missing (port_start needs port_end)".into(),
                        ));
                    }
                    (None, None, Some(_)) => {
                        return Err(err(
                            at.field("port_start"),
                            "missing (port_end needs port_start)".into(),
                        ));
                    }
                    (None, None, None) => {
                        return Err(err(
                            at.field("port"),
                            "missing (give \"port\" or \"port_start\" and \"port_end\")".into(),
                        ));
                    }
                };
                binds.push(Bind {
                    addr: b.ip.addr,
                    prefix_len: b.ip.len,
                    proto: b.proto,
                    port_start: start,
                    port_end: end,
                });
            }
            let backends = t
                .backends
                .into_iter()
                .map(|b| Backend {
                    addr: b.ip.0,
                    state: b.state,
                    healthy: b.healthy,
                    healthchecks: b.healthchecks.unwrap_or_default(),
                })
                .collect();
            tables.push(Table {
                name: t.name,
                hash_key: t.hash_key.0,
                seed: t.seed.0,
                binds,
                backends,
            });
        }
        Ok(ForwardingTables {
            tables,
            healthchecks: hc,
        })
    }

    /// Legal but suspicious things an operator should hear about: backends
    /// without a `healthy` field, more than one non-active backend in a
    /// table, the same backend address listed twice.
    pub fn warnings(&self) -> Vec<Warning> {
        let mut out = Vec::new();
        for (ti, t) in self.tables.iter().enumerate() {
            let at = Location::table(ti, &t.name);
            for (bi, b) in t.backends.iter().enumerate() {
                if b.healthy.is_none() {
                    out.push(Warning {
                        location: at.clone().entry("backend", bi),
                        message: format!(
                            "{}: no \"healthy\" field; it counts as unhealthy",
                            b.addr
                        ),
                    });
                }
                if t.backends[..bi].iter().any(|o| o.addr == b.addr) {
                    out.push(Warning {
                        location: at.clone().entry("backend", bi),
                        message: format!("{} is listed more than once", b.addr),
                    });
                }
            }
            let not_active: Vec<String> = t
                .backends
                .iter()
                .enumerate()
                .filter(|(_, b)| b.state != BackendState::Active)
                .map(|(i, b)| format!("backend {i} ({}, {})", b.addr, b.state))
                .collect();
            if not_active.len() > 1 {
                out.push(Warning {
                    location: at,
                    message: format!(
                        "{} backends are not active ({}); change one host at a time",
                        not_active.len(),
                        not_active.join(", ")
                    ),
                });
            }
        }
        out
    }
}

/// Turns a serde path like `tables[0].backends[3].ip` into a [`Location`],
/// with the table's name from `names` (each table's `name`, when it has one).
fn location_of(path: &serde_path_to_error::Path, names: &[Option<String>]) -> Location {
    use serde_path_to_error::Segment;
    let segs: Vec<&Segment> = path.iter().collect();
    let mut loc = Location::default();
    let mut i = 0;
    if let (Some(Segment::Map { key }), Some(Segment::Seq { index })) = (segs.first(), segs.get(1))
    {
        if key == "tables" {
            let name = names.get(*index).cloned().flatten();
            loc.table = Some((*index, name));
            i = 2;
            if let (Some(Segment::Map { key }), Some(Segment::Seq { index })) =
                (segs.get(2), segs.get(3))
            {
                let kind = match key.as_str() {
                    "binds" => Some("bind"),
                    "backends" => Some("backend"),
                    _ => None,
                };
                if let Some(kind) = kind {
                    loc.entry = Some((kind, *index));
                    i = 4;
                }
            }
        }
    }
    let rest: Vec<String> = segs[i.min(segs.len())..]
        .iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(key.clone()),
            Segment::Seq { index } => Some(format!("[{index}]")),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    if !rest.is_empty() {
        loc.field = Some(rest.join("."));
    }
    loc
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
      "healthchecks": {"interval_ms": 500},
      "tables": [{
        "name": "example1",
        "hash_key": "12345678901234561234567890123456",
        "seed": "34567890123456783456789012345678",
        "extra": [1, 2, 3],
        "binds": [
          {"ip": "10.10.10.10", "proto": "tcp", "port": 80},
          {"ip": "fdb4:98ce:52d4::42", "proto": "tcp", "port": 80},
          {"ip": "10.20.0.0/24", "proto": "udp", "port_start": 5000, "port_end": 5100},
          {"ip": "10.30.0.1", "proto": "udp", "port": 53, "port_start": 1, "port_end": 9}
        ],
        "backends": [
          {"ip": "192.168.50.10", "state": "active", "healthy": true,
           "healthchecks": {"http": 80, "http_uri": "/status", "gue": 19523}},
          {"ip": "192.168.50.11", "state": "draining", "healthy": true},
          {"ip": "192.168.50.12", "state": "filling"}
        ]
      }]
    }"#;

    fn parse(text: &str) -> Result<ForwardingTables, ModelError> {
        ForwardingTables::from_json("ft.json", text)
    }

    /// The message for `text`, which must be refused.
    fn error_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_spec_example() {
        let ft = parse(GOOD).unwrap();
        assert_eq!(ft.healthchecks.interval_ms, 500);
        assert_eq!(ft.healthchecks.timeout_ms, 1000);
        assert_eq!(ft.healthchecks.trigger, 3);
        let t = &ft.tables[0];
        assert_eq!(t.name.as_deref(), Some("example1"));
        assert_eq!(t.binds[0].prefix_len, 32);
        assert_eq!(t.binds[1].prefix_len, 128);
        assert_eq!(t.binds[2].prefix_len, 24);
        assert_eq!((t.binds[2].port_start, t.binds[2].port_end), (5000, 5100));
        // `port` wins over a range given alongside it.
        assert_eq!((t.binds[3].port_start, t.binds[3].port_end), (53, 53));
        assert_eq!(t.backends[0].healthchecks.http, Some(Port(80)));
        assert_eq!(
            t.backends[0].healthchecks.http_uri.as_deref(),
            Some("/status")
        );
        assert_eq!(t.backends[2].healthy, None);
        assert!(!t.backends[2].is_healthy());
    }

    #[test]
    fn warnings_name_the_backend() {
        let w: Vec<String> = parse(GOOD)
            .unwrap()
            .warnings()
            .iter()
            .map(|w| w.to_string())
            .collect();
        assert!(
            w.iter()
                .any(|w| w.starts_with("table 0 (\"example1\"), backend 2: ")
                    && w.contains("no \"healthy\""))
        );
        assert!(w.iter().any(|w| w.contains("2 backends are not active")));
    }

    fn bad_backend_ip(ip: &str) -> String {
        GOOD.replace("192.168.50.12", ip)
    }

    #[test]
    fn error_names_file_table_entry_and_field() {
        let e = error_of(&bad_backend_ip("10.0.0.x"));
        assert_eq!(
            e,
            r#"ft.json: table 0 ("example1"), backend 2: "ip": "10.0.0.x" is not an IPv4 or IPv6 address"#
        );
    }

    #[test]
    fn rejects_bad_fields() {
        // (in the good file, replace, with: the error must name)
        let cases = [
            ("\"port\": 80}", "\"port\": 70000}", "bind 0: \"port\""),
            ("\"port\": 80}", "\"port\": \"80\"}", "bind 0: \"port\""),
            ("\"port\": 80}", "\"port\": -1}", "bind 0: \"port\""),
            ("10.20.0.0/24", "10.20.0.0/33", "bind 2: \"ip\""),
            ("10.20.0.0/24", "10.20.0.0/x", "bind 2: \"ip\""),
            ("fdb4:98ce:52d4::42", "fdb4::42/129", "bind 1: \"ip\""),
            ("\"udp\"", "\"sctp\"", "bind 2: \"proto\""),
            ("\"draining\"", "\"standby\"", "backend 1: \"state\""),
            (
                "5000, \"port_end\": 5100",
                "5100, \"port_end\": 5000",
                "bind 2: \"port_start\"",
            ),
            (", \"port_end\": 5100", "", "bind 2: \"port_end\""),
            (
                "\"34567890123456783456789012345678\"",
                "\"3456\"",
                "table 0 (\"example1\"): \"seed\"",
            ),
            (
                "\"seed\": \"34567890123456783456789012345678\",",
                "",
                "table 0 (\"example1\"): \"seed\": missing (required)",
            ),
            (
                "\"healthy\": true,\n",
                "\"healthy\": \"yes\",\n",
                "backend 0: \"healthy\"",
            ),
        ];
        for (from, to, want) in cases {
            let e = error_of(&GOOD.replace(from, to));
            assert!(e.contains(want), "{e:?} should contain {want:?}");
            assert!(!e.contains("1234567890123456"), "secret leaked: {e}");
        }
    }

    #[test]
    fn hash_key_errors_never_echo_the_key() {
        let text = GOOD.replace(
            "12345678901234561234567890123456",
            "1234567890123456123456789012345z",
        );
        let e = error_of(&text);
        assert!(e.contains("\"hash_key\""), "{e}");
        assert!(!e.contains("123456789012345"), "{e}");
    }

    #[test]
    fn rejects_structural_problems() {
        assert!(error_of("").contains("empty"));
        assert!(error_of("[]").contains("top level"));
        let e = error_of("{\"tables\": [ {\"hash_key\": ");
        assert!(e.starts_with("ft.json: not valid JSON"), "{e}");
        assert!(error_of("{}").contains("tables"));
        assert!(parse("{\"tables\": [] } x").is_err());
        let all_inactive = GOOD
            .replace("\"active\"", "\"inactive\"")
            .replace("\"draining\"", "\"inactive\"")
            .replace("\"filling\"", "\"inactive\"");
        assert!(error_of(&all_inactive).contains("usable backend"));
        assert_eq!(parse("{\"tables\": []}").unwrap().tables.len(), 0);
    }

    #[test]
    fn wrong_types_name_the_field_not_json_syntax() {
        let e = error_of(&GOOD.replace(
            "\"proto\": \"tcp\", \"port\": 80}",
            "\"proto\": 6, \"port\": 80}",
        ));
        assert_eq!(
            e,
            r#"ft.json: table 0 ("example1"), bind 0: "proto": invalid type: integer `6`, expected "tcp" or "udp""#
        );
        let e = error_of(&GOOD.replace("\"draining\"", "\"drain\""));
        assert!(e.ends_with(r#"backend 1: "state": "drain" is not one of "active", "filling", "draining", "inactive""#), "{e}");
    }

    #[test]
    fn bom_and_comments_are_named() {
        assert!(parse(&format!("\u{feff}{GOOD}")).is_ok());
        let e = error_of(&format!("// edited by ops\n{GOOD}"));
        assert_eq!(
            e,
            "ft.json: line 1: a comment; JSON has no comments (remove it)"
        );
        let e = error_of("[]");
        assert!(e.contains("must be a JSON object"), "{e}");
    }

    #[test]
    fn prefix_lengths_are_plain_numbers() {
        for bad in [
            "10.20.0.0/+8",
            "10.20.0.0/008",
            "10.20.0.0/",
            "10.20.0.0/ 8",
            "10.20.0.0/0x8",
        ] {
            let e = error_of(&GOOD.replace("10.20.0.0/24", bad));
            assert!(
                e.contains("bind 2: \"ip\"") && e.contains("prefix length"),
                "{bad}: {e}"
            );
        }
        for good in ["10.20.0.0/0", "10.20.0.0/8", "10.20.0.0/32"] {
            assert!(parse(&GOOD.replace("10.20.0.0/24", good)).is_ok(), "{good}");
        }
    }

    #[test]
    fn unknown_or_malformed_healthchecks_are_errors() {
        let checks = "\"healthchecks\": {\"http\": 80, \"http_uri\": \"/status\", \"gue\": 19523}";
        for (bad, want) in [
            ("\"healthchecks\": {\"bogus\": 1}", "unknown field `bogus`"),
            (
                "\"healthchecks\": {\"http\": 80, \"htpp_uri\": \"/\"}",
                "unknown field `htpp_uri`",
            ),
            ("\"healthchecks\": []", "expected an object"),
            ("\"healthchecks\": 80", "expected an object"),
            (
                "\"healthchecks\": {\"http_uri\": \"/x\"}",
                "without \"http\"",
            ),
        ] {
            let e = error_of(&GOOD.replace(checks, bad));
            assert!(
                e.starts_with("ft.json: table 0 (\"example1\"), backend 0: \"healthchecks\": ")
                    && e.contains(want),
                "{bad}: {e}"
            );
        }
        // No checks at all is allowed (a backend without checks is healthy).
        assert!(parse(&GOOD.replace(checks, "\"healthchecks\": {}")).is_ok());
    }

    #[test]
    fn checker_timings_have_ranges_and_zero_means_default() {
        // (the setting, as written instead of the good one: the key named)
        for (bad, key) in [
            ("\"interval_ms\": 18446744073709551615", "interval_ms"),
            ("\"interval_ms\": 5", "interval_ms"),
            (
                "\"interval_ms\": 500, \"timeout_ms\": 3600000",
                "timeout_ms",
            ),
            ("\"interval_ms\": 500, \"trigger\": 1000", "trigger"),
        ] {
            let e = error_of(&GOOD.replace("\"interval_ms\": 500", bad));
            assert!(
                e.starts_with(&format!("ft.json: \"healthchecks.{key}\": "))
                    && e.contains("outside"),
                "{e}"
            );
        }
        let ok = parse(&GOOD.replace("\"interval_ms\": 500", "\"interval_ms\": 0, \"trigger\": 0"))
            .unwrap();
        assert_eq!(
            (ok.healthchecks.interval_ms, ok.healthchecks.trigger),
            (0, 0)
        );
    }

    #[test]
    fn too_many_tables_are_refused_before_they_are_built() {
        let t = r#"{"hash_key": "12345678901234561234567890123456", "seed": "34567890123456783456789012345678",
                    "binds": [{"ip": "10.0.0.1", "proto": "tcp", "port": 80}],
                    "backends": [{"ip": "10.0.0.2", "state": "active", "healthy": true}]}"#;
        let many = format!("{{\"tables\": [{}]}}", vec![t; MAX_TABLES + 1].join(","));
        let e = error_of(&many);
        assert_eq!(
            e,
            "ft.json: \"tables\": 1025 tables; a file holds at most 1024"
        );
    }
}
