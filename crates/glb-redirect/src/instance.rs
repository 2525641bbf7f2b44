//! One daemon per GUE port and per TUN device in a network namespace.
//!
//! `SO_REUSEPORT` and multi-queue TUN devices would let a second
//! `glb-redirect` with the same settings start and quietly take half of
//! the traffic. Each daemon holds two abstract Unix sockets named after
//! its port and its device (abstract names live and die with the
//! network namespace and the process: nothing to clean up after a crash);
//! a second daemon finds them taken and names the first one's pid.

use std::io;
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

use crate::cli::{Args, Mode};

/// The claims of the running daemon; released when dropped (or at exit).
#[derive(Debug)]
pub struct Instance {
    _held: Vec<UnixListener>,
}

fn claim_one(name: &str, what: &str) -> io::Result<UnixListener> {
    let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    match UnixListener::bind_addr(&addr) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            let holder = UnixStream::connect_addr(&addr)
                .and_then(|s| crate::sys::peer_pid(s.as_fd()))
                .map(|pid| format!("pid {pid}"))
                .unwrap_or_else(|_| "a process".into());
            Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "another glb-redirect ({holder}) already serves {what} in this network namespace; \
                     stop it first (two would split the traffic between them)"
                ),
            ))
        }
        Err(e) => Err(e),
    }
}

/// Claims the GUE port (socket mode) or NFQUEUE numbers, and the TUN device.
pub fn claim(args: &Args) -> io::Result<Instance> {
    let mut held = Vec::new();
    match args.mode {
        Mode::Socket => {
            let port = args.listen.port();
            held.push(claim_one(
                &format!("glb-redirect/udp/{port}"),
                &format!("UDP port {port}"),
            )?);
            held.push(claim_one(
                &format!("glb-redirect/tun/{}", args.tun),
                &format!("TUN device {}", args.tun),
            )?);
        }
        Mode::Nfqueue => {
            for q in 0..args.workers {
                let q = args.queue_num.saturating_add(q);
                held.push(claim_one(
                    &format!("glb-redirect/nfqueue/{q}"),
                    &format!("NFQUEUE {q}"),
                )?);
            }
        }
    }
    Ok(Instance { _held: held })
}
