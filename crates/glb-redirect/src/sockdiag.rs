//! "Is this flow one of ours?" — exact-match TCP socket lookups over
//! `NETLINK_SOCK_DIAG`.
//!
//! Each lookup is a `SOCK_DIAG_BY_FAMILY` request *without* `NLM_F_DUMP`:
//! the kernel hashes the 4-tuple straight into its socket tables
//! (established, then listening) and answers with the one socket found or
//! `ENOENT`. A whole batch of requests goes down in one `send` and the
//! answers come back with one `recvmmsg`, so a batch of packets costs two
//! system calls, not two per packet. Each worker owns its netlink socket:
//! there is no lock in the daemon, and since Linux 6.9 none in the
//! kernel's diag path either (older kernels serialise requests on
//! `sock_diag_mutex`).
//!
//! A found socket counts as "ours" unless it is a listener (which the
//! kernel returns when no connection matches) or closed; in particular
//! `SYN_RECV` request sockets, every state of an open connection and
//! `TIME_WAIT` all count, so handshakes and closing connections finish
//! where they started.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;

use socket2::Socket;

use crate::decide::SocketKey;
use crate::sys::{self, Ring};

const NLMSG_HDR_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
/// `struct inet_diag_req_v2`.
const REQ_LEN: usize = 56;
/// The whole request message.
pub const MSG_LEN: usize = NLMSG_HDR_LEN + REQ_LEN;
const INET_DIAG_NOCOOKIE: u32 = !0;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_CAP_ACK: libc::c_int = 10;

const TCP_CLOSE: u8 = 7;
const TCP_LISTEN: u8 = 10;

/// What one lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A socket in this TCP state (`linux/tcp_states.h` numbering).
    Socket(u8),
    /// No socket for the tuple.
    Nothing,
    /// The lookup failed (no answer, or an error other than ENOENT).
    Error,
}

impl Found {
    /// Whether the flow belongs to this host: a connection in any state
    /// but closed — not a listener.
    pub fn is_local_connection(self) -> bool {
        matches!(self, Found::Socket(s) if s != TCP_LISTEN && s != TCP_CLOSE)
    }
}

/// Appends one exact-match request for `key` with sequence number `seq`.
pub fn encode_request(out: &mut Vec<u8>, seq: u32, key: &SocketKey) {
    let family = match key.local {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    } as u8;
    out.extend_from_slice(&(MSG_LEN as u32).to_ne_bytes());
    out.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    out.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    // inet_diag_req_v2
    out.push(family);
    out.push(libc::IPPROTO_TCP as u8);
    out.push(0); // no extensions
    out.push(0);
    out.extend_from_slice(&(!0u32).to_ne_bytes()); // states: ignored by exact match
    // inet_diag_sockid: "src" is the local end, "dst" the remote one.
    out.extend_from_slice(&key.local_port.to_be_bytes());
    out.extend_from_slice(&key.remote_port.to_be_bytes());
    push_addr(out, key.local);
    push_addr(out, key.remote);
    out.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    out.extend_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
    out.extend_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
}

fn push_addr(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => {
            out.extend_from_slice(&a.octets());
            out.extend_from_slice(&[0; 12]);
        }
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

/// Decodes one answer: its sequence number and what it says. `None` for
/// anything that is not an answer to an exact-match request.
pub fn decode_reply(b: &[u8]) -> Option<(u32, Found)> {
    if b.len() < NLMSG_HDR_LEN {
        return None;
    }
    let ty = u16::from_ne_bytes([b[4], b[5]]);
    let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
    let body = &b[NLMSG_HDR_LEN..];
    match ty {
        SOCK_DIAG_BY_FAMILY => {
            // inet_diag_msg: family, state, ...
            let state = *body.get(1)?;
            Some((seq, Found::Socket(state)))
        }
        NLMSG_ERROR => {
            let err = i32::from_ne_bytes(body.get(..4)?.try_into().ok()?);
            if err == -libc::ENOENT {
                Some((seq, Found::Nothing))
            } else {
                Some((seq, Found::Error))
            }
        }
        _ => None,
    }
}

/// A worker's netlink socket and buffers.
#[derive(Debug)]
pub struct SockDiag {
    sock: Socket,
    req: Vec<u8>,
    ring: Ring,
    seq: u32,
    /// Whether an exchange ended before all its answers were read, so
    /// that some may still be queued.
    leftovers: bool,
}

impl SockDiag {
    /// Opens a `NETLINK_SOCK_DIAG` socket in the current network
    /// namespace, sized for batches of up to `batch` lookups.
    pub fn open(batch: usize) -> io::Result<SockDiag> {
        // All answers of a batch are queued before we read any.
        let want = (batch * 2048).max(256 * 1024) as libc::c_int;
        let sock = sys::netlink_socket(libc::NETLINK_SOCK_DIAG, "NETLINK_SOCK_DIAG", want)?;
        // Errors then carry only the header of the request, not a copy.
        let _ = sys::setsockopt_int(sock.as_fd(), SOL_NETLINK, NETLINK_CAP_ACK, 1);
        Ok(SockDiag {
            sock,
            req: Vec::with_capacity(batch * MSG_LEN),
            ring: Ring::new(batch.max(1), 1024, 0),
            seq: 0,
            leftovers: false,
        })
    }

    /// Looks up every key; `out[i]` gets the answer for `keys[i]`. At
    /// most the batch size given to [`SockDiag::open`] per call.
    pub fn lookup(&mut self, keys: &[SocketKey], out: &mut Vec<Found>) {
        out.clear();
        out.resize(keys.len(), Found::Error);
        for chunk_start in (0..keys.len()).step_by(self.ring.len()) {
            let end = (chunk_start + self.ring.len()).min(keys.len());
            self.lookup_chunk(&keys[chunk_start..end], &mut out[chunk_start..end]);
        }
    }

    fn lookup_chunk(&mut self, keys: &[SocketKey], out: &mut [Found]) {
        // Leftovers of an earlier, failed exchange must not be taken for
        // answers to this one. (Only then: the empty read would be one
        // more system call per batch.)
        if self.leftovers {
            self.drain();
            self.leftovers = false;
        }
        let base = self.seq;
        self.seq = self.seq.wrapping_add(keys.len() as u32);
        self.req.clear();
        for (i, k) in keys.iter().enumerate() {
            encode_request(&mut self.req, base.wrapping_add(i as u32), k);
        }
        match self.sock.send(&self.req) {
            Ok(n) if n == self.req.len() => {}
            _ => {
                self.leftovers = true;
                return;
            }
        }
        // The kernel answers every request before send() returns, so
        // everything is queued already; never block waiting for more.
        let mut pending = keys.len();
        while pending > 0 {
            let n = match self.ring.recv(self.sock.as_fd(), libc::MSG_DONTWAIT) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            for i in 0..n {
                let Some((seq, found)) = decode_reply(self.ring.payload(i)) else {
                    continue;
                };
                let idx = seq.wrapping_sub(base) as usize;
                if let Some(slot) = out.get_mut(idx) {
                    *slot = found;
                    pending = pending.saturating_sub(1);
                }
            }
        }
        self.leftovers = pending > 0;
    }

    fn drain(&mut self) {
        while let Ok(n) = self.ring.recv(self.sock.as_fd(), libc::MSG_DONTWAIT) {
            if n == 0 {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};

    #[test]
    fn request_layout() {
        let key = SocketKey {
            local: IpAddr::V4(Ipv4Addr::new(10, 10, 10, 10)),
            local_port: 80,
            remote: IpAddr::V4(Ipv4Addr::new(192, 168, 40, 2)),
            remote_port: 0x1234,
        };
        let mut b = Vec::new();
        encode_request(&mut b, 7, &key);
        assert_eq!(b.len(), 72);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 72);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 20);
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), 1);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        assert_eq!(&b[16..20], &[2, 6, 0, 0]);
        assert_eq!(&b[24..28], &[0, 80, 0x12, 0x34]);
        assert_eq!(&b[28..32], &[10, 10, 10, 10]);
        assert_eq!(&b[32..44], &[0; 12]);
        assert_eq!(&b[44..48], &[192, 168, 40, 2]);
        assert_eq!(&b[60..64], &[0; 4]);
        assert_eq!(&b[64..72], &[0xff; 8]);

        let key6 = SocketKey {
            local: IpAddr::V6(Ipv6Addr::LOCALHOST),
            local_port: 1,
            remote: IpAddr::V6(Ipv6Addr::LOCALHOST),
            remote_port: 2,
        };
        let mut b = Vec::new();
        encode_request(&mut b, 0, &key6);
        assert_eq!(b[16], libc::AF_INET6 as u8);
        assert_eq!(&b[28..44], &Ipv6Addr::LOCALHOST.octets());
    }

    #[test]
    fn replies_decode() {
        let mut b = vec![0u8; 16 + 72];
        b[4..6].copy_from_slice(&20u16.to_ne_bytes());
        b[8..12].copy_from_slice(&9u32.to_ne_bytes());
        b[17] = 1;
        assert_eq!(decode_reply(&b), Some((9, Found::Socket(1))));
        let mut e = vec![0u8; 16 + 20];
        e[4..6].copy_from_slice(&2u16.to_ne_bytes());
        e[8..12].copy_from_slice(&3u32.to_ne_bytes());
        e[16..20].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(decode_reply(&e), Some((3, Found::Nothing)));
        e[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        assert_eq!(decode_reply(&e), Some((3, Found::Error)));
        assert_eq!(decode_reply(&e[..10]), None);
        assert_eq!(decode_reply(&e[..17]), None);
        assert!(!Found::Socket(TCP_LISTEN).is_local_connection());
        assert!(Found::Socket(1).is_local_connection());
        assert!(Found::Socket(3).is_local_connection());
        assert!(!Found::Nothing.is_local_connection());
    }

    /// Real kernel lookups over loopback: an established connection is
    /// found from the server's side, a listener alone is not a
    /// connection, and an unknown tuple finds nothing.
    #[test]
    fn finds_real_sockets() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let cport = client.local_addr().unwrap().port();
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let keys = [
            SocketKey {
                local: lo,
                local_port: port,
                remote: lo,
                remote_port: cport,
            },
            SocketKey {
                local: lo,
                local_port: port,
                remote: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
                remote_port: 9,
            },
            SocketKey {
                local: lo,
                local_port: 1,
                remote: lo,
                remote_port: 9,
            },
        ];
        let mut diag = SockDiag::open(2).unwrap();
        let mut out = Vec::new();
        // Chunked: three keys through a batch of two.
        diag.lookup(&keys, &mut out);
        assert_eq!(out[0], Found::Socket(1), "ESTABLISHED");
        assert_eq!(out[1], Found::Socket(TCP_LISTEN));
        assert_eq!(out[2], Found::Nothing);
        assert!(out[0].is_local_connection());
        assert!(!out[1].is_local_connection());
        // The socket stays usable for further batches.
        diag.lookup(&keys[..1], &mut out);
        assert_eq!(out, [Found::Socket(1)]);
    }
}
