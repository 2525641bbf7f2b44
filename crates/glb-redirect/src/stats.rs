//! Publishing the counters: an atomically replaced stats file (readable
//! with `cat`, no debugger needed) and, optionally, statsd.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use glb_io::atomic_file;

use crate::counters::Snapshot;

/// The stats file, replaced as a whole on every write so readers never
/// see half of it.
#[derive(Debug)]
pub struct StatsFile {
    path: PathBuf,
}

impl StatsFile {
    /// Prepares to write `path`, creating its directory when missing;
    /// refuses a path that is not a file, and sweeps temporary files a
    /// killed earlier run left beside it.
    pub fn new(path: &Path) -> io::Result<StatsFile> {
        if let atomic_file::Destination::Refused { what } = atomic_file::Destination::of(path) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("--stats-file {} is {what}, not a file", path.display()),
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        atomic_file::remove_stale_temps(path);
        Ok(StatsFile {
            path: path.to_owned(),
        })
    }

    /// Replaces the file with `snap`.
    pub fn write(&self, snap: &Snapshot) -> io::Result<()> {
        atomic_file::replace(&self.path, snap.render().as_bytes())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Sends counter increases to a statsd server.
#[derive(Debug)]
pub struct Statsd {
    client: glb_io::statsd::Statsd,
    prefix: String,
    last: Snapshot,
}

impl Statsd {
    /// A sender to `to` whose metric names start with `prefix`.
    pub fn new(to: SocketAddr, prefix: &str) -> io::Result<Statsd> {
        Ok(Statsd {
            client: glb_io::statsd::Statsd::new(to)?,
            prefix: prefix.to_owned(),
            last: Snapshot::default(),
        })
    }

    /// Sends what changed since the previous call (best effort: metrics
    /// never stop the daemon).
    pub fn send(&mut self, now: &Snapshot) {
        let lines = now.statsd_deltas(&self.last, &self.prefix);
        self.last = *now;
        if let Err(e) = self.client.send(&lines) {
            tracing::debug!("statsd: {e}");
        }
    }
}
