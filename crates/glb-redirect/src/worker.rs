//! The packet loop. Each worker owns one `SO_REUSEPORT` UDP socket on the
//! GUE port, one TUN queue, one raw socket and one netlink socket, and
//! handles a batch at a time:
//!
//! 1. one `recvmmsg` takes up to `batch` datagrams;
//! 2. each is validated and classified ([`crate::decide`]);
//! 3. the ones that depend on the socket table are looked up together
//!    ([`crate::sockdiag`]: one send, one receive);
//! 4. local ones are written to the TUN device, the rest get their outer
//!    headers rebuilt in place ([`crate::forward`]) and leave with one
//!    `sendmmsg` on the raw socket.
//!
//! Counters are gathered per batch and published once per batch.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::counters::{Counter, Local, Shared};
use crate::decide::{self, Class, LocalReason, Parsed, SocketKey, Verdict};
use crate::forward::{self, OUTER_LEN, Outer};
use crate::sockdiag::{Found, SockDiag};
use crate::sys::{self, Ring};
use crate::tun::Tun;

/// Largest datagram a slot holds; larger ones are dropped as truncated.
pub const MAX_DATAGRAM: usize = 16 * 1024;

/// How often a blocked worker wakes up to look at the stop flag.
const WAKEUP: Duration = Duration::from_millis(200);

/// Settings shared by all workers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address and port the GUE socket binds.
    pub listen: SocketAddrV4,
    /// Datagrams per batch.
    pub batch: usize,
    /// Whether forwarded packets carry a UDP checksum.
    pub udp_checksum: bool,
    /// Addresses that count as this host besides the interface
    /// addresses.
    pub extra_local: Vec<Ipv4Addr>,
}

/// This host's IPv4 addresses, refreshed by the main thread. Workers
/// keep their own copy and only take the lock when the generation moved.
#[derive(Debug, Default)]
pub struct LocalAddrs {
    generation: AtomicU64,
    addrs: Mutex<Arc<Vec<Ipv4Addr>>>,
}

impl LocalAddrs {
    /// Replaces the list when it changed.
    pub fn update(&self, mut addrs: Vec<Ipv4Addr>) {
        addrs.sort();
        addrs.dedup();
        let mut cur = self.addrs.lock().unwrap_or_else(|p| p.into_inner());
        if **cur != addrs {
            *cur = Arc::new(addrs);
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    fn snapshot(&self) -> (u64, Arc<Vec<Ipv4Addr>>) {
        let g = self.generation.load(Ordering::Acquire);
        let a = self.addrs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (g, a)
    }
}

/// Opens the GUE socket for one worker.
pub fn gue_socket(listen: SocketAddrV4) -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    sys::setsockopt_int(s.as_fd(), libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
    sys::setsockopt_int(s.as_fd(), libc::IPPROTO_IP, libc::IP_RECVTOS, 1)?;
    sys::setsockopt_int(s.as_fd(), libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
    let want = 8 << 20;
    if sys::setsockopt_int(s.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, want).is_err() {
        let _ = s.set_recv_buffer_size(want as usize);
    }
    s.set_read_timeout(Some(WAKEUP))?;
    s.bind(&listen.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {listen}: {e}")))?;
    Ok(s)
}

/// Opens the raw socket forwarded packets leave through (the IPv4 header
/// is ours: `IPPROTO_RAW` implies `IP_HDRINCL`).
pub fn raw_socket() -> io::Result<Socket> {
    let s = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(libc::IPPROTO_RAW)),
    )
    .map_err(|e| io::Error::new(e.kind(), format!("cannot open a raw IPv4 socket: {e}")))?;
    let want = 4 << 20;
    if sys::setsockopt_int(s.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, want).is_err() {
        let _ = s.set_send_buffer_size(want as usize);
    }
    Ok(s)
}

/// What phase 2 decided for one datagram, before lookups are answered.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Done(Verdict, Option<Parsed>),
    Lookup(Parsed),
}

/// One worker's sockets, buffers and counters.
pub struct Worker {
    settings: Settings,
    udp: Socket,
    raw: Socket,
    tun: Tun,
    diag: SockDiag,
    ring: Ring,
    shared: Arc<Shared>,
    local: Local,
    addrs: Arc<LocalAddrs>,
    addrs_seen: (u64, Arc<Vec<Ipv4Addr>>),
    pending: Vec<Pending>,
    keys: Vec<SocketKey>,
    found: Vec<Found>,
    sends: Vec<(usize, usize, SocketAddrV4)>,
    warned: [bool; 3],
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("listen", &self.settings.listen)
            .field("tun", &self.tun.name())
            .finish()
    }
}

impl Worker {
    /// Builds a worker around its sockets. Must run on the worker's own
    /// thread (the buffers are not `Send`).
    pub fn new(
        settings: Settings,
        udp: Socket,
        tun: Tun,
        shared: Arc<Shared>,
        addrs: Arc<LocalAddrs>,
    ) -> io::Result<Worker> {
        let batch = settings.batch.max(1);
        let raw = raw_socket()?;
        let diag = SockDiag::open(batch)?;
        let addrs_seen = addrs.snapshot();
        Ok(Worker {
            udp,
            raw,
            tun,
            diag,
            ring: Ring::new(batch, MAX_DATAGRAM, OUTER_LEN),
            shared,
            local: Local::default(),
            addrs,
            addrs_seen,
            pending: Vec::with_capacity(batch),
            keys: Vec::with_capacity(batch),
            found: Vec::with_capacity(batch),
            sends: Vec::with_capacity(batch),
            warned: [false; 3],
            settings,
        })
    }

    /// Runs until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let n = match self.ring.recv(self.udp.as_fd(), 0) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    self.local.bump(Counter::ReceiveErrors);
                    self.warn_once(2, "receive", &e);
                    self.publish();
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            self.process(n);
            self.publish();
        }
    }

    fn publish(&mut self) {
        self.shared.add(&self.local);
        self.local.clear();
    }

    fn warn_once(&mut self, which: usize, what: &str, e: &io::Error) {
        if !self.warned[which] {
            self.warned[which] = true;
            tracing::warn!("{what} failed: {e} (counted; further failures are only counted)");
        }
    }

    fn is_self(&self, hop: Ipv4Addr, dst: Option<Ipv4Addr>) -> bool {
        dst == Some(hop)
            || self.addrs_seen.1.binary_search(&hop).is_ok()
            || self.settings.extra_local.contains(&hop)
    }

    /// Handles the `n` datagrams the last receive left in the ring.
    pub fn process(&mut self, n: usize) {
        if self.addrs.generation.load(Ordering::Acquire) != self.addrs_seen.0 {
            self.addrs_seen = self.addrs.snapshot();
        }
        self.pending.clear();
        self.keys.clear();
        self.local.add(Counter::Total, n as u64);
        for i in 0..n {
            let meta = self.ring.meta[i];
            let p = if meta.truncated {
                Pending::Done(Verdict::Drop(decide::DropReason::Truncated), None)
            } else {
                match decide::classify(self.ring.payload(i)) {
                    Err(d) => Pending::Done(Verdict::Drop(d), None),
                    Ok(p) => match p.class {
                        Class::Local(r) => Pending::Done(Verdict::Local(r), Some(p)),
                        Class::Lookup(k) => {
                            self.keys.push(k);
                            Pending::Lookup(p)
                        }
                    },
                }
            };
            self.pending.push(p);
        }

        if !self.keys.is_empty() {
            self.local
                .add(Counter::SocketLookups, self.keys.len() as u64);
            self.diag.lookup(&self.keys, &mut self.found);
        }

        self.sends.clear();
        let mut k = 0;
        for i in 0..n {
            let meta = self.ring.meta[i];
            let (verdict, parsed) = match self.pending[i] {
                Pending::Done(v, p) => (v, p),
                Pending::Lookup(p) => {
                    let f = self.found.get(k).copied().unwrap_or(Found::Error);
                    k += 1;
                    if f == Found::Error {
                        self.local.bump(Counter::SocketLookupErrors);
                    }
                    let v = if f.is_local_connection() {
                        Verdict::Local(LocalReason::Established)
                    } else {
                        decide::second_chance(self.ring.payload(i), &p, |h| {
                            self.is_self(h, meta.dst)
                        })
                    };
                    (v, Some(p))
                }
            };
            match (verdict, parsed) {
                (Verdict::Drop(d), _) => self.local.bump(Counter::dropped(d)),
                (Verdict::Local(r), Some(p)) => {
                    self.local.bump(Counter::local(r));
                    let inner = p.inner(self.ring.payload(i));
                    if let Err(e) = self.tun.write_packet(inner) {
                        self.local.bump(Counter::LocalDeliveryErrors);
                        self.warn_once(0, "local delivery to the TUN device", &e);
                    }
                }
                (Verdict::Forward(hop), Some(_)) => {
                    let Some(src) = meta.dst.or_else(|| {
                        (!self.settings.listen.ip().is_unspecified())
                            .then(|| *self.settings.listen.ip())
                    }) else {
                        self.local.bump(Counter::ForwardErrors);
                        continue;
                    };
                    let outer = Outer {
                        src,
                        dst: hop,
                        src_port: meta.src.map(|a| a.port()).unwrap_or(0),
                        dst_port: self.settings.listen.port(),
                        tos: meta.tos.unwrap_or(0),
                        ttl: meta.ttl.unwrap_or(64),
                        udp_checksum: self.settings.udp_checksum,
                    };
                    let frame = self.ring.frame_mut(i, meta.len);
                    match forward::build(frame, &outer) {
                        Ok(()) => {
                            self.sends
                                .push((i, OUTER_LEN + meta.len, SocketAddrV4::new(hop, 0)))
                        }
                        Err(_) => self.local.bump(Counter::ForwardErrors),
                    }
                }
                // A local or forward verdict always comes with a parse.
                (_, None) => self.local.bump(Counter::ForwardErrors),
            }
        }

        if !self.sends.is_empty() {
            let (sent, failed, err) = self.ring.send(self.raw.as_fd(), &self.sends);
            self.local.add(Counter::ForwardedToAlternate, sent as u64);
            self.local.add(Counter::ForwardErrors, failed as u64);
            if let Some(e) = err {
                self.warn_once(1, "forwarding on the raw socket", &e);
            }
        }
    }
}
