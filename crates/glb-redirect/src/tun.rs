//! A TUN device for local delivery: an IP packet written to it enters the
//! kernel as if it had arrived on that interface, so the local TCP/IP
//! stack handles the decapsulated packet for the VIP and answers the
//! client directly.
//!
//! The device is not persistent: it disappears when the last queue is
//! closed, i.e. when the daemon exits.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use crate::sys;

/// One queue of a (multi-queue) TUN device.
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
}

impl Tun {
    /// Creates (for the first queue) or attaches to (for later ones) the
    /// TUN device `name`: layer 3, no packet-information prefix,
    /// multi-queue so each worker can own a queue.
    pub fn open(name: &str) -> io::Result<Tun> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open("/dev/net/tun")
            .map_err(|e| io::Error::new(e.kind(), format!("cannot open /dev/net/tun: {e}")))?;
        let mut ifr = sys::ifreq_for(name)?;
        ifr.ifr_ifru.ifru_flags =
            (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE) as libc::c_short;
        // SAFETY: TUNSETIFF reads the name and flags of the ifreq we own
        // and may write the chosen name back into it.
        if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("cannot create TUN device {name}: {e}"),
            ));
        }
        Ok(Tun {
            file,
            name: name.to_owned(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Hands one IP packet to the kernel.
    pub fn write_packet(&self, packet: &[u8]) -> io::Result<()> {
        let n = (&self.file).write(packet)?;
        if n != packet.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("TUN took {n} of {} bytes", packet.len()),
            ));
        }
        Ok(())
    }

    /// Reads one packet the kernel routed to the device (used by tests
    /// and tools that route into a TUN; the daemon never reads).
    pub fn read_packet(&self, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::Read;
        (&self.file).read(buf)
    }

    /// Waits up to `timeout_ms` milliseconds for a packet to read.
    pub fn poll_readable(&self, timeout_ms: i32) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd that lives for the call, for a descriptor we own.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        Ok(r > 0 && pfd.revents & libc::POLLIN != 0)
    }
}
