//! The daemon's own configuration file (`/etc/glb/healthcheck.conf`).
//!
//! The keys of the original (`forwarding_table.src`, `forwarding_table.dst`,
//! `reload_command`) mean what they meant there. Two optional keys are ours:
//! `listen` (the loopback address of `/health`) and `reload_hold_ms` (the
//! minimum time between two reload commands). Unknown keys are reported as
//! warnings, not errors, so a file written for the original keeps working.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Where `/health` and `/debug/vars` listen unless the file says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:19520";
/// Minimum time between two runs of the reload command, unless configured.
pub const DEFAULT_RELOAD_HOLD: Duration = Duration::from_secs(10);
/// Allowed `reload_hold_ms`: up to an hour.
pub const RELOAD_HOLD_MS: std::ops::RangeInclusive<u64> = 0..=3_600_000;

/// A validated `healthcheck.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The forwarding table the operator edits (`forwarding_table.src.json`).
    pub src: PathBuf,
    /// The checked table this daemon writes (`forwarding_table.checked.json`).
    pub dst: PathBuf,
    /// Shell command run (with `/bin/sh -c`) after the checked file changed.
    pub reload_command: Option<String>,
    /// Minimum time between two reload commands caused by health changes.
    pub reload_hold: Duration,
    /// Loopback address of the status listener.
    pub listen: SocketAddr,
    /// Keys present in the file that this daemon does not know.
    pub unknown_keys: Vec<String>,
}

#[derive(Deserialize)]
struct RawConfig {
    forwarding_table: RawForwardingTable,
    #[serde(default)]
    reload_command: Option<String>,
    #[serde(default)]
    reload_hold_ms: Option<u64>,
    #[serde(default)]
    listen: Option<String>,
}

#[derive(Deserialize)]
struct RawForwardingTable {
    src: String,
    dst: String,
}

const KNOWN_TOP: &[&str] = &[
    "forwarding_table",
    "reload_command",
    "reload_hold_ms",
    "listen",
];
const KNOWN_FT: &[&str] = &["src", "dst"];

pub use glb_io::config::ConfigError;

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = glb_io::config::read(path)?;
        Config::parse(&path.display().to_string(), &text)
    }

    /// Validates configuration text; `name` prefixes every error.
    pub fn parse(name: &str, text: &str) -> Result<Config, ConfigError> {
        let err = |key: &str, message: String| ConfigError::new(name, key, message);
        let value: Value =
            glb_core::json::document(text).map_err(|m| ConfigError::whole(name, m))?;
        let top = glb_core::json::top_object(&value, "with \"forwarding_table\"")
            .map_err(|m| ConfigError::whole(name, m))?;
        let mut unknown_keys: Vec<String> = top
            .keys()
            .filter(|k| !KNOWN_TOP.contains(&k.as_str()))
            .cloned()
            .collect();
        if let Some(ft) = top.get("forwarding_table").and_then(Value::as_object) {
            unknown_keys.extend(
                ft.keys()
                    .filter(|k| !KNOWN_FT.contains(&k.as_str()))
                    .map(|k| format!("forwarding_table.{k}")),
            );
        }

        let raw: RawConfig =
            deserialize_checked(value).map_err(|(key, message)| err(&key, message))?;
        if raw.forwarding_table.src.is_empty() {
            return Err(err("forwarding_table.src", "is empty".into()));
        }
        if raw.forwarding_table.dst.is_empty() {
            return Err(err("forwarding_table.dst", "is empty".into()));
        }
        if glb_io::file_id::same_file(
            Path::new(&raw.forwarding_table.src),
            Path::new(&raw.forwarding_table.dst),
        ) {
            return Err(err(
                "forwarding_table.dst",
                "is the same file as forwarding_table.src; the checked table would \
                 overwrite its source"
                    .into(),
            ));
        }
        let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            err(
                "listen",
                format!("{listen_text:?} is not an address:port such as {DEFAULT_LISTEN}"),
            )
        })?;
        if !listen.ip().is_loopback() {
            return Err(err(
                "listen",
                format!(
                    "{listen} is not a loopback address; the status listener only serves \
                     this host"
                ),
            ));
        }
        if let Some(ms) = raw.reload_hold_ms.filter(|ms| !RELOAD_HOLD_MS.contains(ms)) {
            return Err(err(
                "reload_hold_ms",
                format!(
                    "{ms} is outside {}-{} (one hour)",
                    RELOAD_HOLD_MS.start(),
                    RELOAD_HOLD_MS.end()
                ),
            ));
        }
        let reload_command = raw.reload_command.filter(|c| !c.trim().is_empty());
        Ok(Config {
            src: PathBuf::from(raw.forwarding_table.src),
            dst: PathBuf::from(raw.forwarding_table.dst),
            reload_command,
            reload_hold: raw
                .reload_hold_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_RELOAD_HOLD),
            listen,
            unknown_keys,
        })
    }
}

/// Deserializes; an error is the key at fault and the problem.
fn deserialize_checked(value: Value) -> Result<RawConfig, (String, String)> {
    let fail = |key: &str, message: &str| Err((key.to_owned(), message.to_owned()));
    // Check the shape by hand first so the messages name the key in the
    // file's own terms rather than serde's.
    match value.get("forwarding_table") {
        None => return fail("forwarding_table", "missing (with \"src\" and \"dst\")"),
        Some(Value::Object(o)) => {
            for key in KNOWN_FT {
                let path = format!("forwarding_table.{key}");
                match o.get(*key) {
                    None => return fail(&path, "missing"),
                    Some(Value::String(_)) => {}
                    Some(_) => return fail(&path, "must be a string"),
                }
            }
        }
        Some(_) => return fail("forwarding_table", "must be an object"),
    }
    match value.get("reload_command") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => return fail("reload_command", "must be a string"),
    }
    match value.get("listen") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => return fail("listen", "must be a string such as \"127.0.0.1:19520\""),
    }
    match value.get("reload_hold_ms") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64().is_some() => {}
        Some(_) => return fail("reload_hold_ms", "must be a whole number of milliseconds"),
    }
    serde_json::from_value(value).map_err(|e| (String::new(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = r#"{
      "forwarding_table": {
        "src": "/etc/glb/forwarding_table.src.json",
        "dst": "/etc/glb/forwarding_table.checked.json"
      },
      "reload_command": "glb-director-cli build-config /etc/glb/forwarding_table.checked.json /etc/glb/forwarding_table.checked.bin && systemctl reload glb-director"
    }"#;

    #[test]
    fn reads_the_original_file() {
        let c = Config::parse("hc.conf", ORIGINAL).unwrap();
        assert_eq!(c.src, PathBuf::from("/etc/glb/forwarding_table.src.json"));
        assert_eq!(
            c.dst,
            PathBuf::from("/etc/glb/forwarding_table.checked.json")
        );
        assert!(c.reload_command.unwrap().starts_with("glb-director-cli"));
        assert_eq!(c.reload_hold, Duration::from_secs(10));
        assert_eq!(c.listen, "127.0.0.1:19520".parse().unwrap());
        assert!(c.unknown_keys.is_empty());
    }

    #[test]
    fn optional_keys_and_unknown_keys() {
        let text = r#"{"forwarding_table": {"src": "a", "dst": "b", "x": 1},
                       "listen": "127.0.0.9:1234", "reload_hold_ms": 0, "colour": "red"}"#;
        let c = Config::parse("hc.conf", text).unwrap();
        assert_eq!(c.reload_command, None);
        assert_eq!(c.reload_hold, Duration::ZERO);
        assert_eq!(c.listen, "127.0.0.9:1234".parse().unwrap());
        assert_eq!(c.unknown_keys, vec!["colour", "forwarding_table.x"]);
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let cases = [
            ("", "hc.conf: file is empty"),
            ("{", "hc.conf: not valid JSON"),
            ("[]", "must be a JSON object"),
            ("\u{feff}[]", "must be a JSON object"),
            (
                "// x\n{}",
                "hc.conf: line 1: a comment; JSON has no comments",
            ),
            (
                r#"{"forwarding_table": {"src": "a", "dst": "b"}, "reload_hold_ms": 18446744073709551615}"#,
                "hc.conf: reload_hold_ms: 18446744073709551615 is outside 0-3600000",
            ),
            ("{}", "hc.conf: forwarding_table: missing"),
            (
                r#"{"forwarding_table": {"src": "a"}}"#,
                "hc.conf: forwarding_table.dst: missing",
            ),
            (
                r#"{"forwarding_table": {"src": 1, "dst": "b"}}"#,
                "hc.conf: forwarding_table.src: must be a string",
            ),
            (
                r#"{"forwarding_table": {"src": "a", "dst": "a"}}"#,
                "forwarding_table.dst: is the same file",
            ),
            (
                r#"{"forwarding_table": {"src": "a", "dst": "./a"}}"#,
                "forwarding_table.dst: is the same file",
            ),
            (
                r#"{"forwarding_table": {"src": "a", "dst": "b"}, "reload_command": 5}"#,
                "hc.conf: reload_command: must be a string",
            ),
            (
                r#"{"forwarding_table": {"src": "a", "dst": "b"}, "listen": "0.0.0.0:19520"}"#,
                "not a loopback address",
            ),
            (
                r#"{"forwarding_table": {"src": "a", "dst": "b"}, "listen": "localhost"}"#,
                "hc.conf: listen: ",
            ),
            (
                r#"{"forwarding_table": {"src": "a", "dst": "b"}, "reload_hold_ms": -1}"#,
                "hc.conf: reload_hold_ms: ",
            ),
        ];
        for (text, want) in cases {
            let e = Config::parse("hc.conf", text).unwrap_err().to_string();
            assert!(e.starts_with("hc.conf: "), "{e}");
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
    }
}
