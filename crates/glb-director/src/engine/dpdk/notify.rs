//! systemd readiness notification (`sd_notify`): one datagram with
//! `KEY=VALUE` lines to the Unix socket named by `NOTIFY_SOCKET` (a path,
//! or `@name` for the abstract namespace).

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `READY=1`) when `NOTIFY_SOCKET` is set; returns
/// whether it was sent.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let bytes = target.as_bytes();
    if bytes.is_empty() {
        return Ok(false);
    }
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), &target)?;
    }
    Ok(true)
}
