//! The `gue` and `fou` checks: an ICMP echo request wrapped in IPv4 and then
//! in GUE (or GRE-in-UDP) is sent by UDP to the proxy, which decapsulates it
//! and answers the echo directly. Replies come back as plain ICMP, so one
//! raw ICMP socket reads them all and matches each to its check by the
//! unique payload the check sent. A reply is used at most once; replies
//! that arrive after their check gave up are counted as late.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::counters::Counters;
use crate::probe::{self, Encap};
use crate::target::{CheckKind, Target};

/// The raw ICMP listener and the checks waiting for a reply.
#[derive(Debug)]
pub struct Tunnel {
    inner: Arc<Inner>,
    reader: JoinHandle<()>,
}

#[derive(Debug)]
struct Inner {
    pending: Mutex<HashMap<Vec<u8>, oneshot::Sender<()>>>,
    /// Starts every payload of this process, so that a reply to one of our
    /// probes can be told from somebody else's ping.
    prefix: String,
    seq: AtomicU64,
    ident: u16,
    counters: Arc<Counters>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Tunnel {
    /// Opens the raw ICMP socket (needs root or `CAP_NET_RAW`) and starts
    /// reading replies. Must be called inside the tokio runtime.
    pub fn open(counters: Arc<Counters>) -> io::Result<Tunnel> {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot open a raw ICMP socket for gue/fou checks ({e}); \
                     run as root or grant CAP_NET_RAW"
                ),
            )
        })?;
        socket.set_nonblocking(true)?;
        // Every ICMP packet of the host lands here; room for bursts of
        // replies from thousands of proxies at the start of a round.
        let _ = socket.set_recv_buffer_size(4 << 20);
        // SAFETY: the Socket owns its descriptor and returns the same one
        // until it is dropped, which only the AsyncFd can do now.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        let inner = Arc::new(Inner {
            pending: Mutex::new(HashMap::new()),
            prefix: format!("glbhc_{:016x}_", random_u64()),
            seq: AtomicU64::new(0),
            ident: std::process::id() as u16,
            counters,
        });
        let reader = tokio::spawn(read_replies(fd, inner.clone()));
        Ok(Tunnel { inner, reader })
    }

    /// Sends one probe to `target` and waits for its echo reply. The caller
    /// bounds the wait; dropping the future forgets the probe, and a reply
    /// arriving after that is counted as late.
    pub async fn probe(&self, target: &Target) -> Result<(), String> {
        let encap = match target.kind {
            CheckKind::Gue => Encap::Gue,
            CheckKind::Fou => Encap::GreInUdp,
            other => return Err(format!("{other} is not a tunnel check")),
        };
        let IpAddr::V4(dst) = target.ip else {
            return Err("tunnel checks carry IPv4 only".into());
        };
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .await
            .map_err(|e| format!("UDP socket: {e}"))?;
        sock.connect(target.socket_addr())
            .await
            .map_err(|e| format!("UDP connect: {e}"))?;
        // The inner packet must come from the address the proxy will
        // answer to, which is the one the kernel picked for the route.
        let src = match sock.local_addr().map(|a| a.ip()) {
            Ok(IpAddr::V4(a)) => a,
            _ => return Err("no local IPv4 address towards the proxy".into()),
        };
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let payload = format!("{}{seq:x}", self.inner.prefix).into_bytes();
        let (tx, rx) = oneshot::channel();
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(payload.clone(), tx);
        let _forget = Forget {
            inner: &self.inner,
            payload: &payload,
        };
        let packet = probe::echo_request(encap, src, dst, self.inner.ident, seq as u16, &payload);
        sock.send(&packet).await.map_err(|e| format!("send: {e}"))?;
        Counters::bump(&self.inner.counters.tunnel_probes_sent);
        rx.await.map_err(|_| "the ICMP reader stopped".to_string())
    }

    /// Checks still waiting for a reply.
    pub fn pending(&self) -> usize {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// Removes a probe from the pending set when its check ends, however it ends.
struct Forget<'a> {
    inner: &'a Inner,
    payload: &'a [u8],
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(self.payload);
    }
}

impl Inner {
    fn on_packet(&self, packet: &[u8]) {
        let Some(payload) = probe::echo_reply_payload(packet) else {
            return;
        };
        let waiting = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(payload);
        match waiting {
            Some(tx) => {
                Counters::bump(&self.counters.icmp_replies_matched);
                let _ = tx.send(());
            }
            None if payload.starts_with(self.prefix.as_bytes()) => {
                Counters::bump(&self.counters.icmp_replies_late);
                tracing::debug!("late or duplicate tunnel echo reply ignored");
            }
            None => Counters::bump(&self.counters.icmp_replies_unknown),
        }
    }
}

async fn read_replies(fd: AsyncFd<Socket>, inner: Arc<Inner>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let mut guard = match fd.readable().await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "raw ICMP socket failed; tunnel checks will time out");
                return;
            }
        };
        match guard.try_io(|s| {
            let mut sock: &Socket = s.get_ref();
            sock.read(&mut buf)
        }) {
            Ok(Ok(n)) => inner.on_packet(&buf[..n]),
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "reading the raw ICMP socket"),
            Err(_would_block) => {}
        }
    }
}

/// Uniqueness, not secrecy: payloads of two daemons on one host must differ.
fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok()
    {
        return u64::from_ne_bytes(bytes);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    now ^ (u64::from(std::process::id()) << 32)
}
