//! NFQUEUE mode, for hosts whose kernel has the `fou` module: the kernel
//! keeps decapsulating GUE itself (`ip fou add port 19523 gue`) and the
//! daemon only decides. An iptables rule queues every GUE packet to the
//! daemon before the fou socket sees it:
//!
//! ```text
//! iptables -A INPUT -p udp --dport 19523 -j NFQUEUE --queue-num 0 --queue-bypass
//! ```
//!
//! For each queued packet the daemon answers with a verdict: `ACCEPT`
//! for packets this host handles (the kernel then decapsulates them),
//! `DROP` for malformed ones, and for packets that go to the next hop it
//! rewrites the queued copy, sends it from a raw socket and drops the
//! original. Verdicts of a batch go down in one `send`.
//!
//! The netfilter-queue netlink protocol is small enough to speak directly
//! (`linux/netfilter/nfnetlink_queue.h`): one bind command, copy-mode
//! parameters, then packet messages in and verdict messages out.

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use glb_core::wire::{ip_proto, ipv4, udp};
use socket2::Socket;

use crate::counters::{Counter, Shared};
use crate::decide::{DropReason, Verdict};
use crate::forward;
use crate::sys::{self, SendItem};
use crate::worker::{Batch, Decider, Decision, LocalAddrs, warn_once};

const NETLINK_NETFILTER: libc::c_int = 12;
const NLMSG_HDR_LEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_PAYLOAD: u16 = 10;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_PACKET: u8 = 2;
/// When the queue is full the kernel accepts instead of dropping, so an
/// overloaded daemon degrades to "handle locally".
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NLA_TYPE_MASK: u16 = 0x3fff;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_NO_ENOBUFS: libc::c_int = 5;

/// `NF_DROP`.
pub const NF_DROP: u32 = 0;
/// `NF_ACCEPT`.
pub const NF_ACCEPT: u32 = 1;

/// Largest packet copied to the daemon.
const COPY_RANGE: u32 = 0xffff;
/// Room for the netlink headers and attributes around the packet.
const MSG_OVERHEAD: usize = 1024;
/// Packets the kernel holds for the daemon before failing open.
const QUEUE_MAXLEN: u32 = 8192;

fn nlmsg(out: &mut Vec<u8>, subtype: u16, flags: u16, seq: u32, queue: u16) -> usize {
    let at = out.len();
    out.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by `finish`
    out.extend_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | subtype).to_ne_bytes());
    out.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: family AF_UNSPEC, version 0, resource id = queue number
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&queue.to_be_bytes());
    at
}

fn attr(out: &mut Vec<u8>, ty: u16, data: &[u8]) {
    out.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(data);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn finish(out: &mut [u8], at: usize) {
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_ne_bytes());
}

/// The bind command for `queue`.
pub fn encode_bind(out: &mut Vec<u8>, seq: u32, queue: u16) {
    let at = nlmsg(out, NFQNL_MSG_CONFIG, NLM_F_ACK, seq, queue);
    // nfqnl_msg_config_cmd { u8 command; u8 pad; be16 pf }
    attr(out, NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0]);
    finish(out, at);
}

/// Copy whole packets (up to 64 KiB), a deeper queue, and fail-open.
pub fn encode_params(out: &mut Vec<u8>, seq: u32, queue: u16) {
    let at = nlmsg(out, NFQNL_MSG_CONFIG, NLM_F_ACK, seq, queue);
    // nfqnl_msg_config_params { be32 copy_range; u8 copy_mode } (packed)
    let mut p = COPY_RANGE.to_be_bytes().to_vec();
    p.push(NFQNL_COPY_PACKET);
    attr(out, NFQA_CFG_PARAMS, &p);
    attr(out, NFQA_CFG_QUEUE_MAXLEN, &QUEUE_MAXLEN.to_be_bytes());
    attr(out, NFQA_CFG_MASK, &NFQA_CFG_F_FAIL_OPEN.to_be_bytes());
    attr(out, NFQA_CFG_FLAGS, &NFQA_CFG_F_FAIL_OPEN.to_be_bytes());
    finish(out, at);
}

/// A verdict for packet `id`.
pub fn encode_verdict(out: &mut Vec<u8>, queue: u16, id: u32, verdict: u32) {
    let at = nlmsg(out, NFQNL_MSG_VERDICT, 0, 0, queue);
    let mut v = verdict.to_be_bytes().to_vec();
    v.extend_from_slice(&id.to_be_bytes());
    attr(out, NFQA_VERDICT_HDR, &v);
    finish(out, at);
}

/// A queued packet inside a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// The kernel's packet id, for the verdict.
    pub id: u32,
    /// Offset of the packet (outer IPv4 header) in the datagram.
    pub start: usize,
    /// Its length as copied.
    pub len: usize,
}

/// Every queued packet in one datagram (normally one), plus the status
/// of any acknowledgement in it (`Some(errno)`, 0 for success).
pub fn parse_datagram(b: &[u8], out: &mut Vec<Queued>) -> Option<i32> {
    let mut ack = None;
    let mut at = 0;
    while b.len().saturating_sub(at) >= NLMSG_HDR_LEN {
        let len = u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        if len < NLMSG_HDR_LEN || len > b.len() - at {
            break;
        }
        let ty = u16::from_ne_bytes([b[at + 4], b[at + 5]]);
        let msg = &b[at..at + len];
        if ty == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET {
            if let Some(q) = parse_packet(msg) {
                out.push(Queued {
                    start: at + q.start,
                    ..q
                });
            }
        } else if ty == NLMSG_ERROR && msg.len() >= NLMSG_HDR_LEN + 4 {
            let e = i32::from_ne_bytes(msg[16..20].try_into().unwrap_or([0; 4]));
            ack = Some(-e);
        }
        at += len.div_ceil(4) * 4;
    }
    ack
}

fn parse_packet(msg: &[u8]) -> Option<Queued> {
    let mut at = NLMSG_HDR_LEN + NFGENMSG_LEN;
    let (mut id, mut payload) = (None, None);
    while msg.len().saturating_sub(at) >= 4 {
        let len = usize::from(u16::from_ne_bytes([msg[at], msg[at + 1]]));
        let ty = u16::from_ne_bytes([msg[at + 2], msg[at + 3]]) & NLA_TYPE_MASK;
        if len < 4 || len > msg.len() - at {
            break;
        }
        let data = &msg[at + 4..at + len];
        match ty {
            // nfqnl_msg_packet_hdr { be32 packet_id; be16 hw_protocol; u8 hook }
            NFQA_PACKET_HDR if data.len() >= 4 => {
                id = Some(u32::from_be_bytes([data[0], data[1], data[2], data[3]]));
            }
            NFQA_PAYLOAD => payload = Some((at + 4, data.len())),
            _ => {}
        }
        at += len.div_ceil(4) * 4;
    }
    // A packet whose payload did not arrive whole still needs a verdict:
    // report it empty, which is dropped as truncated.
    let (start, len) = payload.unwrap_or((msg.len(), 0));
    Some(Queued {
        id: id?,
        start,
        len,
    })
}

/// The GUE payload of a queued packet, the address it was sent to and
/// the one it came from.
type Gue<'a> = (&'a [u8], Option<Ipv4Addr>, Option<Ipv4Addr>);
fn gue_of(packet: &[u8]) -> Result<Gue<'_>, DropReason> {
    let ip = ipv4::Packet::new_checked(packet).map_err(|_| DropReason::Truncated)?;
    if ip.protocol() != ip_proto::UDP || ip.frag_offset() != 0 {
        return Err(DropReason::BadGueHeader);
    }
    let udp = udp::Packet::new_checked(ip.payload()).map_err(|_| DropReason::Truncated)?;
    Ok((udp.payload(), Some(ip.dst_addr()), Some(ip.src_addr())))
}

/// A bound netfilter queue.
#[derive(Debug)]
pub struct NfQueue {
    sock: Socket,
    queue: u16,
}

impl NfQueue {
    /// Binds queue `queue` in the current network namespace.
    pub fn open(queue: u16) -> io::Result<NfQueue> {
        let sock = sys::netlink_socket(NETLINK_NETFILTER, "NETLINK_NETFILTER", 32 << 20)?;
        // Overruns are covered by fail-open; don't turn them into errors.
        let _ = sys::setsockopt_int(sock.as_fd(), SOL_NETLINK, NETLINK_NO_ENOBUFS, 1);
        sock.set_read_timeout(Some(Duration::from_secs(2)))?;
        let q = NfQueue { sock, queue };
        let mut m = Vec::new();
        encode_bind(&mut m, 1, queue);
        q.request(&m)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind NFQUEUE {queue}: {e}")))?;
        m.clear();
        encode_params(&mut m, 2, queue);
        q.request(&m).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot configure NFQUEUE {queue}: {e}"))
        })?;
        q.sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(q)
    }

    /// Sends one configuration message and waits for its acknowledgement.
    fn request(&self, m: &[u8]) -> io::Result<()> {
        self.sock.send(m)?;
        let mut buf = [0u8; 4096];
        loop {
            let n = (&self.sock).read(&mut buf)?;
            let mut ignored = Vec::new();
            match parse_datagram(&buf[..n], &mut ignored) {
                Some(0) => return Ok(()),
                Some(e) => return Err(io::Error::from_raw_os_error(e)),
                None => continue,
            }
        }
    }

    /// The queue number.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

/// A worker serving one queue.
pub struct NfqWorker {
    nfq: NfQueue,
    decider: Decider,
    batch: Batch,
    queued: Vec<(usize, Queued)>,
    scratch: Vec<Queued>,
    decisions: Vec<Decision>,
    send_ids: Vec<u32>,
    verdicts: Vec<u8>,
    /// Whether a failed send of `verdicts` has been logged.
    warned_verdicts: bool,
}

impl std::fmt::Debug for NfqWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NfqWorker")
            .field("queue", &self.nfq.queue)
            .finish()
    }
}

impl NfqWorker {
    /// A worker for an opened queue. Must run on the worker's own thread.
    pub fn new(
        nfq: NfQueue,
        batch: usize,
        extra_local: Vec<Ipv4Addr>,
        allow: crate::allow::Allow,
        shared: Arc<Shared>,
        addrs: Arc<LocalAddrs>,
    ) -> io::Result<NfqWorker> {
        let batch = batch.max(1);
        Ok(NfqWorker {
            nfq,
            batch: Batch::new(batch, COPY_RANGE as usize + MSG_OVERHEAD, 0, shared)?,
            decider: Decider::new(batch, addrs, extra_local, allow)?,
            queued: Vec::with_capacity(batch),
            scratch: Vec::new(),
            decisions: Vec::with_capacity(batch),
            send_ids: Vec::with_capacity(batch),
            verdicts: Vec::with_capacity(batch * 32),
            warned_verdicts: false,
        })
    }

    /// Runs until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let from = self.nfq.sock.as_fd();
            if let Some(n) = self.batch.receive(from, "receive from NFQUEUE") {
                self.process(n);
                self.batch.publish();
            }
        }
    }

    fn process(&mut self, n: usize) {
        self.queued.clear();
        for i in 0..n {
            self.scratch.clear();
            parse_datagram(self.batch.ring.payload(i), &mut self.scratch);
            self.queued.extend(self.scratch.iter().map(|q| (i, *q)));
        }
        let m = self.queued.len();
        self.batch.local.add(Counter::Total, m as u64);
        let (ring, queued) = (&self.batch.ring, &self.queued);
        self.decider.decide(
            m,
            |j| {
                let (slot, q) = queued[j];
                let b = ring.payload(slot);
                let pkt = b
                    .get(q.start..q.start + q.len)
                    .ok_or(DropReason::Truncated)?;
                gue_of(pkt)
            },
            &mut self.batch.local,
            &mut self.decisions,
        );

        self.verdicts.clear();
        self.batch.sends.clear();
        self.send_ids.clear();
        let queue = self.nfq.queue;
        for j in 0..m {
            let (slot, q) = self.queued[j];
            let verdict = match self.decisions[j].verdict {
                Verdict::Drop(d) => {
                    self.batch.local.bump(Counter::dropped(d));
                    NF_DROP
                }
                Verdict::Local(r) => {
                    self.batch.local.bump(Counter::local(r));
                    NF_ACCEPT
                }
                Verdict::Forward(hop) => {
                    // The ring has no headroom, so slot offsets are
                    // payload offsets.
                    let frame = self.batch.ring.frame_mut(slot, q.start + q.len);
                    match forward::rewrite_in_place(&mut frame[q.start..], hop) {
                        Ok(()) => {
                            let len = ipv4::Packet::new_unchecked(&frame[q.start..]).total_len();
                            self.batch.sends.push(SendItem {
                                slot,
                                start: q.start,
                                len: usize::from(len),
                                to: SocketAddrV4::new(hop, 0),
                            });
                            self.send_ids.push(q.id);
                        }
                        Err(_) => self.batch.local.bump(Counter::ForwardErrors),
                    }
                    // The rewritten copy leaves from the raw socket.
                    NF_DROP
                }
            };
            encode_verdict(&mut self.verdicts, queue, q.id, verdict);
        }
        self.batch.send_forwarded();
        if !self.verdicts.is_empty() {
            if let Err(e) = self.nfq.sock.send(&self.verdicts) {
                warn_once(&mut self.warned_verdicts, "sending NFQUEUE verdicts", &e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_messages() {
        let mut m = Vec::new();
        encode_bind(&mut m, 7, 3);
        assert_eq!(m.len(), 28);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 28);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x0302);
        assert_eq!(u16::from_ne_bytes([m[6], m[7]]), 5);
        assert_eq!(&m[16..20], &[0, 0, 0, 3]);
        assert_eq!(&m[20..28], &[8, 0, 1, 0, 1, 0, 0, 0]);

        let mut m = Vec::new();
        encode_params(&mut m, 8, 3);
        // params attribute: length 9, padded to 12
        assert_eq!(&m[20..24], &[9, 0, 2, 0]);
        assert_eq!(&m[24..29], &[0, 0, 0xff, 0xff, 2]);
        assert_eq!(m.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );

        let mut v = Vec::new();
        encode_verdict(&mut v, 3, 0x01020304, NF_ACCEPT);
        encode_verdict(&mut v, 3, 9, NF_DROP);
        assert_eq!(v.len(), 64);
        assert_eq!(u16::from_ne_bytes([v[4], v[5]]), 0x0301);
        assert_eq!(&v[20..32], &[12, 0, 2, 0, 0, 0, 0, 1, 1, 2, 3, 4]);
        assert_eq!(&v[52..64], &[12, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
    }

    fn packet_msg(id: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        let at = nlmsg(&mut m, NFQNL_MSG_PACKET, 0, 0, 0);
        let mut hdr = id.to_be_bytes().to_vec();
        hdr.extend_from_slice(&[0x08, 0x00, 1]);
        attr(&mut m, NFQA_PACKET_HDR, &hdr);
        attr(&mut m, 11, &[0, 0, 0, 2]); // an attribute we skip
        attr(&mut m, NFQA_PAYLOAD, payload);
        finish(&mut m, at);
        m
    }

    #[test]
    fn packet_messages_parse() {
        let mut d = packet_msg(42, b"hello");
        d.extend_from_slice(&packet_msg(43, b"second!"));
        let mut out = Vec::new();
        assert_eq!(parse_datagram(&d, &mut out), None);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].id, 42);
        assert_eq!(&d[out[0].start..out[0].start + out[0].len], b"hello");
        assert_eq!(out[1].id, 43);
        assert_eq!(&d[out[1].start..out[1].start + out[1].len], b"second!");

        // An acknowledgement.
        let mut ack = vec![0u8; 36];
        ack[0..4].copy_from_slice(&36u32.to_ne_bytes());
        ack[4..6].copy_from_slice(&2u16.to_ne_bytes());
        ack[16..20].copy_from_slice(&(-libc::EBUSY).to_ne_bytes());
        assert_eq!(parse_datagram(&ack, &mut out), Some(libc::EBUSY));

        // Garbage and truncations never panic.
        for cut in 0..d.len() {
            let mut o = Vec::new();
            let _ = parse_datagram(&d[..cut], &mut o);
            for q in o {
                assert!(q.start + q.len <= cut);
            }
        }
        let _ = parse_datagram(&[0xff; 64], &mut out);
    }
}
