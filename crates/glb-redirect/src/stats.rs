//! Publishing the counters: an atomically replaced stats file (readable
//! with `cat`, no debugger needed) and, optionally, statsd.

use std::fs;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

use crate::counters::Snapshot;

/// Writes the stats file: the new contents go to a temporary file beside
/// it that is then renamed over it, so readers never see half a file.
#[derive(Debug)]
pub struct StatsFile {
    path: PathBuf,
    tmp: PathBuf,
}

impl StatsFile {
    /// Prepares to write `path`, creating its directory when missing.
    pub fn new(path: &Path) -> io::Result<StatsFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        Ok(StatsFile {
            path: path.to_owned(),
            tmp: PathBuf::from(tmp),
        })
    }

    /// Replaces the file with `snap`.
    pub fn write(&self, snap: &Snapshot) -> io::Result<()> {
        fs::write(&self.tmp, snap.render())
            .and_then(|()| fs::rename(&self.tmp, &self.path))
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot write {}: {e}", self.path.display()),
                )
            })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Sends counter increases to a statsd server over UDP.
#[derive(Debug)]
pub struct Statsd {
    sock: UdpSocket,
    to: SocketAddr,
    prefix: String,
    last: Snapshot,
}

impl Statsd {
    /// A sender to `to` whose metric names start with `prefix`.
    pub fn new(to: SocketAddr, prefix: &str) -> io::Result<Statsd> {
        let bind: SocketAddr = if to.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal address")
        } else {
            "[::]:0".parse().expect("literal address")
        };
        Ok(Statsd {
            sock: UdpSocket::bind(bind)?,
            to,
            prefix: prefix.to_owned(),
            last: Snapshot::default(),
        })
    }

    /// Sends what changed since the previous call. Lines are packed into
    /// datagrams of at most 1,400 bytes.
    pub fn send(&mut self, now: &Snapshot) {
        let lines = now.statsd_deltas(&self.last, &self.prefix);
        self.last = *now;
        let mut packet = String::new();
        for l in lines {
            if !packet.is_empty() && packet.len() + 1 + l.len() > 1400 {
                let _ = self.sock.send_to(packet.as_bytes(), self.to);
                packet.clear();
            }
            if !packet.is_empty() {
                packet.push('\n');
            }
            packet.push_str(&l);
        }
        if !packet.is_empty() {
            let _ = self.sock.send_to(packet.as_bytes(), self.to);
        }
    }
}
