//! A stand-in for systemd's notification socket: a datagram socket in
//! a test's temporary folder, to point `NOTIFY_SOCKET` at.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Binds `notify` in `dir`; reads on the socket wait at most `patience`.
/// Returns the path (for `NOTIFY_SOCKET`) and the socket.
pub fn listener(dir: &Path, patience: Duration) -> (PathBuf, UnixDatagram) {
    let path = dir.join("notify");
    let sock =
        UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("cannot bind {}: {e}", path.display()));
    sock.set_read_timeout(Some(patience))
        .expect("a read timeout on a fresh socket");
    (path, sock)
}

/// The next notification, trailing newline dropped; `None` on timeout.
pub fn next(sock: &UnixDatagram) -> Option<String> {
    let mut buf = [0u8; 1024];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).trim_end().to_owned())
}
