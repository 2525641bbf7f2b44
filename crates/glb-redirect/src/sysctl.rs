//! The kernel settings local delivery through the TUN device needs.
//!
//! A decapsulated packet enters on the TUN device with the client's
//! source address, but the route back to the client leaves through
//! another interface. Strict reverse-path filtering (`rp_filter = 1`)
//! would drop it, so the device gets `rp_filter = 0`; because the kernel
//! applies the larger of `all` and the device's value, a strict `all` is
//! relaxed to loose (2). `accept_local = 1` lets packets whose source is
//! one of this host's own addresses in (a health check or a client
//! running on the proxy itself).

use std::fs;
use std::io;
use std::path::Path;

/// One setting that was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The sysctl file, e.g. `/proc/sys/net/ipv4/conf/glbredirect0/rp_filter`.
    pub path: String,
    /// Value before.
    pub old: String,
    /// Value written.
    pub new: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {} (was {})", self.path, self.new, self.old)
    }
}

fn set(path: &str, value: &str, changes: &mut Vec<Change>) -> io::Result<()> {
    let old = fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {path}: {e}")))?;
    let old = old.trim().to_owned();
    if old != value {
        fs::write(path, value).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot write {value} to {path}: {e}"))
        })?;
        changes.push(Change {
            path: path.to_owned(),
            old,
            new: value.to_owned(),
        });
    }
    Ok(())
}

/// Applies the settings for TUN device `tun` in the current network
/// namespace and returns what changed.
pub fn prepare_local_delivery(tun: &str) -> io::Result<Vec<Change>> {
    let mut changes = Vec::new();
    set(
        &format!("/proc/sys/net/ipv4/conf/{tun}/rp_filter"),
        "0",
        &mut changes,
    )?;
    set(
        &format!("/proc/sys/net/ipv4/conf/{tun}/accept_local"),
        "1",
        &mut changes,
    )?;
    let all = "/proc/sys/net/ipv4/conf/all/rp_filter";
    if fs::read_to_string(all)
        .map(|v| v.trim() == "1")
        .unwrap_or(false)
    {
        set(all, "2", &mut changes)?;
    }
    let v6 = format!("/proc/sys/net/ipv6/conf/{tun}/disable_ipv6");
    if Path::new(&v6).exists() {
        set(&v6, "0", &mut changes)?;
    }
    Ok(changes)
}

/// The fast path's route lookups (bpf_fib_lookup) name the loopback
/// device, as the kernel does for this host's own packets, and the kernel
/// answers them only for a device with forwarding on. On lo that routes
/// nothing: packets arrive on lo only for this host's own addresses.
pub const FAST_PATH_FORWARDING: &str = "/proc/sys/net/ipv4/conf/lo/forwarding";

/// Turns forwarding on for lo (see [`FAST_PATH_FORWARDING`]) and returns
/// what changed.
pub fn prepare_fast_path() -> io::Result<Vec<Change>> {
    let mut changes = Vec::new();
    set(FAST_PATH_FORWARDING, "1", &mut changes)?;
    Ok(changes)
}

/// Whether lo has forwarding on (for `--no-sysctl`, which leaves it to
/// the administrator).
pub fn fast_path_ready() -> bool {
    fs::read_to_string(FAST_PATH_FORWARDING).is_ok_and(|v| v.trim() == "1")
}
