//! The packet loop. Each worker owns one `SO_REUSEPORT` UDP socket on the
//! GUE port, one TUN queue, one raw socket and one netlink socket, and
//! handles a batch at a time:
//!
//! 1. one `recvmmsg` takes up to `batch` datagrams;
//! 2. each is validated and classified ([`crate::decide`]);
//! 3. the ones that depend on the socket table are looked up together
//!    ([`crate::sockdiag`]: one send, one receive), one lookup for each
//!    run of one flow's packets;
//! 4. local ones are written to the TUN device, the rest get their outer
//!    headers rebuilt in place ([`crate::forward`]) and leave with one
//!    `sendmmsg` on the raw socket.
//!
//! Counters are gathered per batch and published once per batch.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::allow::Allow;
use crate::counters::{Counter, Local, Shared};
use crate::decide::{self, Class, DropReason, LocalReason, Parsed, SocketKey, Verdict};
use crate::forward::{self, OUTER_LEN, Outer};
use crate::sockdiag::{Found, SockDiag};
use crate::sys::{self, Ring, SendItem};
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
    /// Who may send GUE here and which hops may get a second chance.
    pub allow: Allow,
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

/// What classification decided for one datagram, before lookups are
/// answered.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Done(Verdict, Option<Parsed>),
    /// Waiting for the answer to lookup `.1` of the batch.
    Lookup(Parsed, usize),
}

/// How many of the batch's latest distinct lookups a new one is compared
/// with: packets of one flow arrive in runs (a window of segments, a
/// train of ACKs), and a run needs one lookup, not one per packet.
const RECENT_LOOKUPS: usize = 4;

/// The outcome for one datagram of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub verdict: Verdict,
    /// The parsed GUE packet (present for every local or forward verdict).
    pub parsed: Option<Parsed>,
}

/// Classification plus batched socket-table lookups for a batch of GUE
/// payloads; shared by the socket front end ([`Worker`]) and the NFQUEUE
/// one ([`crate::nfqueue`]).
#[derive(Debug)]
pub struct Decider {
    diag: SockDiag,
    pending: Vec<Pending>,
    keys: Vec<SocketKey>,
    found: Vec<Found>,
    addrs: Arc<LocalAddrs>,
    addrs_seen: (u64, Arc<Vec<Ipv4Addr>>),
    extra_local: Vec<Ipv4Addr>,
    allow: Allow,
}

impl Decider {
    /// A decider with its own netlink socket, for batches of `batch`.
    pub fn new(
        batch: usize,
        addrs: Arc<LocalAddrs>,
        extra_local: Vec<Ipv4Addr>,
        allow: Allow,
    ) -> io::Result<Self> {
        let addrs_seen = addrs.snapshot();
        Ok(Decider {
            diag: SockDiag::open(batch)?,
            pending: Vec::with_capacity(batch),
            keys: Vec::with_capacity(batch),
            found: Vec::with_capacity(batch),
            addrs,
            addrs_seen,
            extra_local,
            allow,
        })
    }

    fn is_self(&self, hop: Ipv4Addr, dst: Option<Ipv4Addr>) -> bool {
        dst == Some(hop)
            || self.addrs_seen.1.binary_search(&hop).is_ok()
            || self.extra_local.contains(&hop)
    }

    /// Decides for datagrams `0..n`. `item(i)` gives datagram `i`'s GUE
    /// payload, the address it was sent to and the one it came from, or
    /// why it is unusable.
    /// `out[i]` receives the decision for datagram `i`.
    pub fn decide<'a>(
        &mut self,
        n: usize,
        item: impl Fn(usize) -> Result<(&'a [u8], Option<Ipv4Addr>, Option<Ipv4Addr>), DropReason>,
        counters: &mut Local,
        out: &mut Vec<Decision>,
    ) {
        if self.addrs.generation.load(Ordering::Acquire) != self.addrs_seen.0 {
            self.addrs_seen = self.addrs.snapshot();
        }
        self.pending.clear();
        self.keys.clear();
        let mut needed = 0u64;
        for i in 0..n {
            let allowed = |(gue, _, src): (&'a [u8], _, Option<Ipv4Addr>)| {
                // A datagram whose source is unknown is let through only
                // when no list restricts sources.
                if self.allow.sources.is_open() || src.is_some_and(|s| self.allow.sources.allows(s))
                {
                    Ok(gue)
                } else {
                    Err(DropReason::SourceNotAllowed)
                }
            };
            let p = match item(i).and_then(allowed).and_then(decide::classify) {
                Err(d) => Pending::Done(Verdict::Drop(d), None),
                Ok(p) => match p.class {
                    Class::Local(r) => Pending::Done(Verdict::Local(r), Some(p)),
                    Class::Lookup(k) => {
                        needed += 1;
                        let recent = self.keys.len().saturating_sub(RECENT_LOOKUPS);
                        let idx = match self.keys[recent..].iter().rposition(|x| *x == k) {
                            Some(j) => recent + j,
                            None => {
                                self.keys.push(k);
                                self.keys.len() - 1
                            }
                        };
                        Pending::Lookup(p, idx)
                    }
                },
            };
            self.pending.push(p);
        }
        if !self.keys.is_empty() {
            // Counted per packet that needed one, as before lookups of a
            // flow's run were shared.
            counters.add(Counter::SocketLookups, needed);
            self.diag.lookup(&self.keys, &mut self.found);
        }
        out.clear();
        for i in 0..n {
            let d = match self.pending[i] {
                Pending::Done(verdict, parsed) => Decision { verdict, parsed },
                Pending::Lookup(p, k) => {
                    let f = self.found.get(k).copied().unwrap_or(Found::Error);
                    if f == Found::Error {
                        counters.bump(Counter::SocketLookupErrors);
                    }
                    let verdict = if f.is_local_connection() {
                        Verdict::Local(LocalReason::Established)
                    } else {
                        match item(i) {
                            Ok((gue, dst, _)) => {
                                match decide::second_chance(gue, &p, |h| self.is_self(h, dst)) {
                                    Verdict::Forward(hop) if !self.allow.hops.allows(hop) => {
                                        Verdict::Drop(DropReason::HopNotAllowed)
                                    }
                                    v => v,
                                }
                            }
                            Err(d) => Verdict::Drop(d),
                        }
                    };
                    Decision {
                        verdict,
                        parsed: Some(p),
                    }
                }
            };
            out.push(d);
        }
    }
}

/// What both front ends (the GUE socket's [`Worker`] and the NFQUEUE
/// one) do around their decisions: receive a batch into the ring, send
/// the forwarded packets from the raw socket, and gather the counters
/// that are published once per batch.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) ring: Ring,
    raw: Socket,
    /// The batch's forwarded packets, sent by [`Batch::send_forwarded`].
    pub(crate) sends: Vec<SendItem>,
    shared: Arc<Shared>,
    pub(crate) local: Local,
    warned_receive: bool,
    warned_send: bool,
}

impl Batch {
    /// A ring of `slots` slots of `slot_len` bytes after `headroom`, and
    /// the raw socket forwarded packets leave by.
    pub(crate) fn new(
        slots: usize,
        slot_len: usize,
        headroom: usize,
        shared: Arc<Shared>,
    ) -> io::Result<Batch> {
        Ok(Batch {
            ring: Ring::new(slots, slot_len, headroom),
            raw: raw_socket()?,
            sends: Vec::with_capacity(slots),
            shared,
            local: Local::default(),
            warned_receive: false,
            warned_send: false,
        })
    }

    /// Receives the next batch from `from` into the ring: how many
    /// arrived, or `None` when nothing did before the wake-up or the
    /// receive failed (counted, warned about once as `what`, and waited
    /// out briefly so a lasting error does not spin).
    pub(crate) fn receive(&mut self, from: BorrowedFd<'_>, what: &str) -> Option<usize> {
        self.shared.pass();
        match self.ring.recv(from, 0) {
            Ok(n) => Some(n),
            Err(e) if is_idle(&e) => None,
            Err(e) => {
                self.local.bump(Counter::ReceiveErrors);
                warn_once(&mut self.warned_receive, what, &e);
                self.publish();
                std::thread::sleep(Duration::from_millis(10));
                None
            }
        }
    }

    /// Sends [`Batch::sends`] from the raw socket and counts the outcome.
    pub(crate) fn send_forwarded(&mut self) {
        if self.sends.is_empty() {
            return;
        }
        let (sent, failed, err) = self.ring.send(self.raw.as_fd(), &self.sends);
        self.local.add(Counter::ForwardedToAlternate, sent as u64);
        self.local.add(Counter::ForwardErrors, failed as u64);
        if let Some(e) = err {
            warn_once(&mut self.warned_send, "forwarding on the raw socket", &e);
        }
    }

    /// Adds the batch's counters to the shared ones.
    pub(crate) fn publish(&mut self) {
        self.shared.add(&self.local);
        self.local.clear();
    }
}

/// One worker's sockets, buffers and counters.
pub struct Worker {
    settings: Settings,
    udp: Socket,
    tun: Tun,
    /// Whether a failed delivery to `tun` has been logged.
    warned_delivery: bool,
    decider: Decider,
    batch: Batch,
    decisions: Vec<Decision>,
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
        Ok(Worker {
            udp,
            tun,
            warned_delivery: false,
            // The raw socket first, so that without the privilege for it
            // that is the error reported, as it always was.
            batch: Batch::new(batch, MAX_DATAGRAM, OUTER_LEN, shared)?,
            decider: Decider::new(
                batch,
                addrs,
                settings.extra_local.clone(),
                settings.allow.clone(),
            )?,
            decisions: Vec::with_capacity(batch),
            settings,
        })
    }

    /// Runs until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            if let Some(n) = self.batch.receive(self.udp.as_fd(), "receive") {
                self.process(n);
                self.batch.publish();
            }
        }
    }

    /// Handles the `n` datagrams the last receive left in the ring.
    pub fn process(&mut self, n: usize) {
        self.batch.local.add(Counter::Total, n as u64);
        let ring = &self.batch.ring;
        self.decider.decide(
            n,
            |i| {
                let m = &ring.meta[i];
                if m.truncated {
                    Err(DropReason::Truncated)
                } else {
                    Ok((ring.payload(i), m.dst, m.src.map(|a| *a.ip())))
                }
            },
            &mut self.batch.local,
            &mut self.decisions,
        );

        self.batch.sends.clear();
        for i in 0..n {
            let meta = self.batch.ring.meta[i];
            let Decision { verdict, parsed } = self.decisions[i];
            match (verdict, parsed) {
                (Verdict::Drop(d), _) => self.batch.local.bump(Counter::dropped(d)),
                (Verdict::Local(r), Some(p)) => {
                    self.batch.local.bump(Counter::local(r));
                    let inner = p.inner(self.batch.ring.payload(i));
                    if let Err(e) = self.tun.write_packet(inner) {
                        self.batch.local.bump(Counter::LocalDeliveryErrors);
                        warn_once(
                            &mut self.warned_delivery,
                            "local delivery to the TUN device",
                            &e,
                        );
                    }
                }
                (Verdict::Forward(hop), Some(_)) => {
                    let listen = *self.settings.listen.ip();
                    let Some(src) = meta.dst.or((!listen.is_unspecified()).then_some(listen))
                    else {
                        self.batch.local.bump(Counter::ForwardErrors);
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
                    match forward::build(self.batch.ring.frame_mut(i, meta.len), &outer) {
                        Ok(()) => self.batch.sends.push(SendItem {
                            slot: i,
                            start: 0,
                            len: OUTER_LEN + meta.len,
                            to: SocketAddrV4::new(hop, 0),
                        }),
                        Err(_) => self.batch.local.bump(Counter::ForwardErrors),
                    }
                }
                // A local or forward verdict always comes with a parse.
                (_, None) => self.batch.local.bump(Counter::ForwardErrors),
            }
        }
        self.batch.send_forwarded();
    }
}

/// Errors that only mean "nothing arrived in time".
pub(crate) fn is_idle(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Logs the first failure of a kind; later ones are only counted.
pub(crate) fn warn_once(flag: &mut bool, what: &str, e: &io::Error) {
    if !*flag {
        *flag = true;
        tracing::warn!("{what} failed: {e} (counted; further failures are only counted)");
    }
}
