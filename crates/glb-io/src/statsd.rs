//! statsd over UDP: metric lines (`name:value|c|#tag:v`) packed into as
//! few datagrams as fit, sent best effort — a missing listener is not an
//! error, metrics are never worth stalling a daemon for.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// Largest datagram sent: fits a 1500-byte MTU with IPv6 or IPv4 and UDP
/// headers (and the usual tunnel overhead) without fragmenting.
pub const MAX_DATAGRAM: usize = 1432;

/// Packs lines into newline-separated datagrams of at most
/// [`MAX_DATAGRAM`] bytes; a line never spans two datagrams (one longer
/// than the limit goes alone).
pub fn pack<S: AsRef<str>>(lines: &[S]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for l in lines {
        let l = l.as_ref();
        if !cur.is_empty() && cur.len() + 1 + l.len() > MAX_DATAGRAM {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push('\n');
        }
        cur.push_str(l);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A statsd client: a non-blocking UDP socket aimed at one server.
#[derive(Debug)]
pub struct Statsd {
    socket: UdpSocket,
    target: SocketAddr,
}

impl Statsd {
    /// A client for `target`.
    pub fn new(target: SocketAddr) -> io::Result<Statsd> {
        let bind: SocketAddr = if target.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(bind)?;
        socket.set_nonblocking(true)?;
        Ok(Statsd { socket, target })
    }

    /// A client for 127.0.0.1:`port`, where the GLB daemons' statsd listens.
    pub fn localhost(port: u16) -> io::Result<Statsd> {
        Statsd::new((Ipv4Addr::LOCALHOST, port).into())
    }

    /// The server.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Sends `lines`; returns how many datagrams went out. Nobody
    /// listening, or a full socket buffer, drops the datagram silently;
    /// other socket errors are returned.
    pub fn send<S: AsRef<str>>(&self, lines: &[S]) -> io::Result<usize> {
        let mut sent = 0;
        for d in pack(lines) {
            match self.socket.send_to(d.as_bytes(), self.target) {
                Ok(_) => sent += 1,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused | io::ErrorKind::WouldBlock
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn datagrams_split_on_line_boundaries() {
        let lines: Vec<String> = (0..100)
            .map(|i| format!("glb.some.metric:{i}|c|#core:1"))
            .collect();
        let d = pack(&lines);
        assert!(d.len() > 1);
        assert!(d.iter().all(|g| g.len() <= MAX_DATAGRAM));
        let back: Vec<&str> = d.iter().flat_map(|g| g.split('\n')).collect();
        assert_eq!(back, lines.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(pack::<&str>(&[]).is_empty());
    }

    #[test]
    fn sends_to_a_listener_and_shrugs_off_a_missing_one() {
        let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let c = Statsd::localhost(port).unwrap();
        assert_eq!(c.send(&["a:1|c", "b:2|c|#port:0"]).unwrap(), 1);
        let mut buf = [0u8; 2048];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"a:1|c\nb:2|c|#port:0");
        drop(server);
        // Nobody listens any more: not an error.
        for _ in 0..3 {
            c.send(&["a:1|c"]).unwrap();
        }
    }
}
