//! Fuzz targets: every parser of the suite that takes outside input, as
//! a function of raw bytes that must return (not panic, not abort) and
//! must leave no partial file behind, whatever the bytes.
//!
//! | target | what it feeds |
//! |---|---|
//! | `frame` | a frame into the director's packet path (inspect, classify, hash, route, encapsulate) |
//! | `gue` | a GUE payload into glb-redirect's decision (validation, classification, second chance) |
//! | `table_bin` | a binary forwarding table into the director's loader, then a route through it |
//! | `table_json` | forwarding-table JSON into the compiler's and the checker's parsers; what compiles must load |
//! | `director_conf` | `director.conf` |
//! | `healthcheck_conf` | `healthcheck.conf` |
//! | `http_response` | an answer to the health checker's `http` check: head, body framing, redirect target |
//! | `pcap` | a capture file into glb-director-pcap's replay: an error leaves no output and no temporary file |
//!
//! `script/fuzz SECONDS` drives them with libFuzzer (coverage-guided);
//! inputs that failed are kept in `corpus/TARGET/` and replayed by
//! `cargo test -p glb-fuzz`.
#![forbid(unsafe_code)]

mod targets;

pub use targets::*;

/// A target: takes any bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// Every target, by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("frame", targets::frame),
    ("gue", targets::gue),
    ("table_bin", targets::table_bin),
    ("table_json", targets::table_json),
    ("director_conf", targets::director_conf),
    ("healthcheck_conf", targets::healthcheck_conf),
    ("http_response", targets::http_response),
    ("pcap", targets::pcap),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The names of every target.
pub fn names() -> Vec<&'static str> {
    TARGETS.iter().map(|(n, _)| *n).collect()
}
