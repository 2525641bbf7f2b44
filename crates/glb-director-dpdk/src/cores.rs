//! What runs on each lcore: run-to-completion cores, distributors and
//! their workers, and the exception path they serve.
//!
//! Every loop picks up the current forwarding table at a batch boundary
//! (one atomic load when nothing changed), backs off when idle, and
//! stops when [`Shared::running`] goes false. Packets move between cores
//! through SPSC rings; when a ring is full the sender keeps its batch and
//! stops receiving, so back-pressure ends at the NIC (counted there as
//! missed packets) instead of dropping packets already received.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, Cache};
use glb_core::encap::Encapsulator;
use glb_core::route::Forwarder;

use glb_director::idle::IdlePolicy;

use crate::rte::eal;
use crate::rte::ethdev::{RxQueue, TxQueue};
use crate::rte::mbuf::{BURST, Mbuf, MbufBatch};
use crate::rte::ring::{Consumer, Producer};
use glb_core::path::{Verdict, process_batch_each};
use glb_director::counters::{CoreCounters, count_on_own_core};

/// Transmit attempts for a batch before the rest is dropped.
const TX_ATTEMPTS: usize = 8;

/// State shared by all cores and the housekeeping thread.
#[derive(Debug)]
pub struct Shared {
    /// The forwarding table in use.
    pub forwarder: ArcSwap<Forwarder>,
    /// Bumped on every table swap, so cores can count reloads.
    pub generation: AtomicU64,
    /// Cleared to stop every core.
    pub running: AtomicBool,
    /// Per core, in plan order.
    pub cores: Vec<CoreStats>,
}

/// One core's counters.
#[derive(Debug, Default)]
pub struct CoreStats {
    /// The lcore id.
    pub lcore: u32,
    /// Packet path and engine counters.
    pub counters: CoreCounters,
    /// Table swaps this core has picked up.
    pub reloads: AtomicU64,
    /// Packets dropped because a port or ring kept refusing them.
    pub dropped: AtomicU64,
    /// Set when the core's loop has returned.
    pub exited: AtomicBool,
    /// Passes of the core's loop so far: the housekeeping thread tells
    /// systemd's watchdog the director is alive only while this moves.
    pub passes: AtomicU64,
}

/// Adds to one of the calling core's own counters.
#[inline]
fn add(a: &AtomicU64, n: usize) {
    count_on_own_core(a, n as u64);
}

/// The end of every pass of a core loop: publishes the pass (a plain
/// store to the core's own line) and backs off when there was no work.
struct Idle<'a> {
    policy: IdlePolicy,
    empty: u32,
    next_sleep: Duration,
    passes: u64,
    beat: &'a AtomicU64,
}

impl<'a> Idle<'a> {
    fn new(policy: IdlePolicy, stats: &'a CoreStats) -> Self {
        Idle {
            policy,
            empty: 0,
            next_sleep: policy.sleep,
            passes: 0,
            beat: &stats.passes,
        }
    }

    #[inline]
    fn after(&mut self, work: usize) {
        self.passes = self.passes.wrapping_add(1);
        self.beat.store(self.passes, Ordering::Relaxed);
        if work > 0 {
            self.empty = 0;
            self.next_sleep = self.policy.sleep;
            return;
        }
        self.empty = self.empty.saturating_add(1);
        if self.policy.sleep.is_zero() || self.empty < self.policy.spin_polls {
            eal::pause();
        } else {
            std::thread::sleep(self.next_sleep);
            self.next_sleep =
                (self.next_sleep * 2).min(self.policy.max_sleep.max(self.policy.sleep));
        }
    }
}

/// What every core loop starts from.
#[derive(Debug)]
pub struct CoreCtx {
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Index into [`Shared::cores`].
    pub slot: usize,
    /// Idle behaviour.
    pub idle: IdlePolicy,
}

impl CoreCtx {
    fn stats(&self) -> &CoreStats {
        &self.shared.cores[self.slot]
    }

    /// The core loop: runs `pass` until the director stops, counting the
    /// table swaps the core notices before each pass and idling after
    /// passes that did no work (`pass` returns how many packets it
    /// handled).
    #[inline]
    fn run_passes(&self, mut pass: impl FnMut(&CoreStats) -> usize) -> i32 {
        let shared = &*self.shared;
        let stats = self.stats();
        let mut watch = ReloadWatch::new(shared);
        let mut idle = Idle::new(self.idle, stats);
        while shared.running.load(Ordering::Relaxed) {
            watch.check(shared, stats);
            idle.after(pass(stats));
        }
        0
    }

    /// [`Self::run_passes`] for a core that processes packets: `pass` is
    /// also given the forwarding table in use.
    #[inline]
    fn run_forwarding(&self, mut pass: impl FnMut(&Forwarder, &CoreStats) -> usize) -> i32 {
        let mut table = Cache::new(&self.shared.forwarder);
        self.run_passes(|stats| pass(table.load(), stats))
    }
}

/// Counts table swaps as a core notices them.
struct ReloadWatch {
    seen: u64,
}

impl ReloadWatch {
    fn new(shared: &Shared) -> Self {
        ReloadWatch {
            seen: shared.generation.load(Ordering::Acquire),
        }
    }

    #[inline]
    fn check(&mut self, shared: &Shared, stats: &CoreStats) {
        let g = shared.generation.load(Ordering::Acquire);
        if g != self.seen {
            stats
                .reloads
                .fetch_add(g.wrapping_sub(self.seen), Ordering::Relaxed);
            self.seen = g;
        }
    }
}

/// Transmits the whole batch, retrying a few times; what the port still
/// refuses is freed and counted as dropped. Returns how many were sent.
#[inline]
fn send<'a>(tx: &mut TxQueue<'a>, batch: &mut MbufBatch<'a>, dropped: &AtomicU64) -> usize {
    let mut sent = 0;
    for _ in 0..TX_ATTEMPTS {
        if batch.is_empty() {
            break;
        }
        sent += tx.tx(batch);
    }
    if !batch.is_empty() {
        add(dropped, batch.len());
        batch.free_all();
    }
    sent
}

/// Where a processed packet goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Out {
    Forward,
    Exception,
    Drop,
}

#[inline]
fn out_of(v: &Verdict, exception: bool) -> Out {
    match v {
        Verdict::Forward(_) => Out::Forward,
        Verdict::Unclassified if exception => Out::Exception,
        _ => Out::Drop,
    }
}

/// Moves each buffer of `batch` to the batch its entry in `outs` names.
#[inline]
fn distribute<'a>(
    batch: &mut MbufBatch<'a>,
    outs: &[Out],
    fwd_out: &mut MbufBatch<'a>,
    kni_out: &mut MbufBatch<'a>,
    drops: &mut MbufBatch<'a>,
) {
    for (m, o) in batch.drain().zip(outs) {
        match o {
            Out::Forward => put(fwd_out, m),
            Out::Exception => put(kni_out, m),
            Out::Drop => put(drops, m),
        }
    }
}

/// Moves `m` into `batch`, freeing it if the batch is somehow full
/// (callers size batches so that cannot happen).
#[inline]
fn put<'a>(batch: &mut MbufBatch<'a>, m: Mbuf<'a>) {
    if let Err(m) = batch.push(m) {
        drop(m);
    }
}

/// A receive queue of a run-to-completion core.
#[derive(Debug)]
pub struct RtcPath<'a> {
    /// Where packets come from.
    pub rx: RxQueue<'a>,
    /// Index of the transmit queue they leave by.
    pub tx: usize,
    /// Outer headers for that transmit port.
    pub enc: Encapsulator,
    /// Index of the exception link for this port, if enabled.
    pub kni: Option<usize>,
}

/// An exception interface served by a core: what Linux sends on the tap
/// leaves through `port_tx`. (Its transmit queue, towards Linux, is kept
/// in a list of its own, in the same order, so it can be indexed like any
/// other transmit queue.)
#[derive(Debug)]
pub struct KniLink<'a> {
    /// The port this tap stands for.
    pub port: u16,
    /// Frames from Linux.
    pub tap_rx: RxQueue<'a>,
    /// Index of the core's transmit queue on `port`.
    pub port_tx: usize,
}

/// Serves the taps: Linux → port.
#[inline]
fn serve_kni_rx<'a>(
    links: &mut [KniLink<'a>],
    tx: &mut [TxQueue<'a>],
    batch: &mut MbufBatch<'a>,
    stats: &CoreStats,
) -> usize {
    let mut work = 0;
    for k in links.iter_mut() {
        let n = k.tap_rx.rx(batch);
        if n == 0 {
            continue;
        }
        work += n;
        let sent = send(&mut tx[k.port_tx], batch, &stats.dropped);
        add(&stats.counters.kni_tx_sent, sent);
    }
    work
}

/// A core that receives, processes and transmits on its own.
#[derive(Debug)]
pub struct RtcJob<'a> {
    /// Common state.
    pub ctx: CoreCtx,
    /// Its receive queues.
    pub paths: Vec<RtcPath<'a>>,
    /// Its transmit queues.
    pub tx: Vec<TxQueue<'a>>,
    /// Its exception links.
    pub kni: Vec<KniLink<'a>>,
    /// Transmit queues towards Linux, one per exception link.
    pub kni_tx: Vec<TxQueue<'a>>,
}

impl<'a> RtcJob<'a> {
    /// The core loop; returns when the director stops.
    pub fn run(mut self) -> i32 {
        let mut batch = MbufBatch::new();
        let mut fwd_out = MbufBatch::new();
        let mut kni_out = MbufBatch::new();
        let mut drops = MbufBatch::new();
        let mut outs = [Out::Drop; BURST];
        let mut scratch = Box::default();
        self.ctx.run_forwarding(|fwd, stats| {
            let mut work = 0;
            for p in self.paths.iter_mut() {
                if p.rx.rx(&mut batch) == 0 {
                    continue;
                }
                work += batch.len();
                let exception = p.kni.is_some();
                let mut forwarded = 0;
                process_batch_each(
                    fwd,
                    &p.enc,
                    batch.as_mut_slice(),
                    &stats.counters,
                    &mut scratch,
                    |i, v| {
                        let o = out_of(v, exception);
                        forwarded += usize::from(o == Out::Forward);
                        outs[i] = o;
                    },
                );
                // The usual case: the whole burst leaves as it came. (Every
                // batch is empty again after `send`.)
                let out = if forwarded == batch.len() {
                    &mut batch
                } else {
                    distribute(&mut batch, &outs, &mut fwd_out, &mut kni_out, &mut drops);
                    &mut fwd_out
                };
                let sent = send(&mut self.tx[p.tx], out, &stats.dropped);
                add(&stats.counters.eth_tx_sent, sent);
                if let Some(k) = p.kni {
                    let sent = send(&mut self.kni_tx[k], &mut kni_out, &stats.dropped);
                    add(&stats.counters.kni, sent);
                }
                drops.free_all();
            }
            work + serve_kni_rx(&mut self.kni, &mut self.tx, &mut batch, stats)
        })
    }
}

/// The distributor's end of the rings to one worker.
#[derive(Debug)]
pub struct WorkerLink<'a> {
    /// Packets to process.
    pub to: Producer<'a>,
    /// Processed packets to transmit.
    pub done: Consumer<'a>,
    /// Unmatched packets for the exception path.
    pub unmatched: Consumer<'a>,
}

/// Picks a worker for a packet so that a flow always lands on the same
/// one: the NIC's RSS hash when there is one, else a hash of the IP
/// addresses.
#[inline]
fn worker_for(m: &Mbuf<'_>, workers: usize) -> usize {
    let h = m.rss_hash().unwrap_or_else(|| address_hash(m.data()));
    ((u64::from(h) * workers as u64) >> 32) as usize
}

fn address_hash(frame: &[u8]) -> u32 {
    let range = match frame.get(12..14) {
        Some([0x08, 0x00]) => 26..34,
        Some([0x86, 0xdd]) => 22..54,
        _ => return 0,
    };
    let Some(bytes) = frame.get(range) else {
        return 0;
    };
    // FNV-1a, then a final mix so the high bits (used above) vary.
    let h = bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    h ^ (h >> 15).wrapping_mul(0x2c1b_3c6d)
}

/// A core that receives, hands packets to workers, and transmits what
/// they return.
#[derive(Debug)]
pub struct DistributorJob<'a> {
    /// Common state.
    pub ctx: CoreCtx,
    /// Its receive queues.
    pub rx: Vec<RxQueue<'a>>,
    /// Its transmit queues.
    pub tx: Vec<TxQueue<'a>>,
    /// By receive port id: index of the transmit queue.
    pub tx_for_port: Vec<Option<usize>>,
    /// Its exception links.
    pub kni: Vec<KniLink<'a>>,
    /// Transmit queues towards Linux, one per exception link.
    pub kni_tx: Vec<TxQueue<'a>>,
    /// By receive port id: index of the exception link.
    pub kni_for_port: Vec<Option<usize>>,
    /// Its workers.
    pub workers: Vec<WorkerLink<'a>>,
}

/// Sends packets to the queue their receive port maps to (per `map`);
/// packets from unmapped ports are freed and counted as dropped.
fn send_by_port<'a>(
    batch: &mut MbufBatch<'a>,
    map: &[Option<usize>],
    queues: &mut [TxQueue<'a>],
    outs: &mut [MbufBatch<'a>],
    dropped: &AtomicU64,
) -> usize {
    let target = |m: &Mbuf<'a>| map.get(usize::from(m.port())).copied().flatten();
    // The usual case: one queue, and every packet belongs on it.
    if queues.len() == 1 && batch.as_slice().iter().all(|m| target(m) == Some(0)) {
        return send(&mut queues[0], batch, dropped);
    }
    for m in batch.drain() {
        match target(&m) {
            Some(i) => put(&mut outs[i], m),
            None => {
                add(dropped, 1);
                drop(m);
            }
        }
    }
    let mut sent = 0;
    for (q, out) in queues.iter_mut().zip(outs.iter_mut()) {
        sent += send(q, out, dropped);
    }
    sent
}

impl<'a> DistributorJob<'a> {
    /// The core loop; returns when the director stops.
    pub fn run(mut self) -> i32 {
        let nw = self.workers.len();
        let mut batch = MbufBatch::new();
        let mut staging: Vec<MbufBatch<'a>> = (0..nw).map(|_| MbufBatch::new()).collect();
        let mut tx_outs: Vec<MbufBatch<'a>> = self.tx.iter().map(|_| MbufBatch::new()).collect();
        let mut kni_outs: Vec<MbufBatch<'a>> = self.kni.iter().map(|_| MbufBatch::new()).collect();
        self.ctx.run_passes(|stats| {
            let mut work = 0;

            // Hand over what is still waiting; receive only when every
            // worker has taken its share.
            let mut blocked = false;
            for (w, st) in staging.iter_mut().enumerate() {
                if !st.is_empty() {
                    self.workers[w].to.enqueue(st);
                    blocked |= !st.is_empty();
                }
            }
            if !blocked {
                for rx in self.rx.iter_mut() {
                    if rx.rx(&mut batch) == 0 {
                        continue;
                    }
                    work += batch.len();
                    if nw == 1 {
                        std::mem::swap(&mut batch, &mut staging[0]);
                    } else {
                        for m in batch.drain() {
                            put(&mut staging[worker_for(&m, nw)], m);
                        }
                    }
                    for (w, st) in staging.iter_mut().enumerate() {
                        self.workers[w].to.enqueue(st);
                        blocked |= !st.is_empty();
                    }
                    if blocked {
                        break;
                    }
                }
            }

            for link in self.workers.iter_mut() {
                // What a worker encapsulated leaves by the transmit queue
                // of its receive port; what matched nothing, by the
                // port's exception link.
                let ways_out = [
                    (
                        &mut link.done,
                        &self.tx_for_port,
                        &mut self.tx,
                        &mut tx_outs,
                        &stats.counters.eth_tx_sent,
                    ),
                    (
                        &mut link.unmatched,
                        &self.kni_for_port,
                        &mut self.kni_tx,
                        &mut kni_outs,
                        &stats.counters.kni,
                    ),
                ];
                for (ring, map, queues, outs, sent) in ways_out {
                    while ring.dequeue(&mut batch) > 0 {
                        work += batch.len();
                        add(
                            sent,
                            send_by_port(&mut batch, map, queues, outs, &stats.dropped),
                        );
                    }
                }
            }
            work + serve_kni_rx(&mut self.kni, &mut self.tx, &mut batch, stats)
        })
    }
}

/// A core that processes what its distributor hands it.
#[derive(Debug)]
pub struct WorkerJob<'a> {
    /// Common state.
    pub ctx: CoreCtx,
    /// Packets from the distributor.
    pub from: Consumer<'a>,
    /// Encapsulated packets back to it.
    pub done: Producer<'a>,
    /// Unmatched packets back to it, when it has the exception path.
    pub unmatched: Option<Producer<'a>>,
    /// By receive port id: the outer headers for the port it leaves by.
    pub enc_for_port: Vec<Option<Encapsulator>>,
}

impl<'a> WorkerJob<'a> {
    /// The core loop; returns when the director stops.
    pub fn run(mut self) -> i32 {
        let exception = self.unmatched.is_some();
        let mut batch = MbufBatch::new();
        let mut done_out = MbufBatch::new();
        let mut kni_out = MbufBatch::new();
        let mut drops = MbufBatch::new();
        let mut outs: Vec<Out> = Vec::with_capacity(BURST);
        let mut scratch = Box::default();
        self.ctx.run_forwarding(|fwd, stats| {
            let mut work = 0;

            // Returns first; take new work only when they are all out.
            if !done_out.is_empty() {
                self.done.enqueue(&mut done_out);
            }
            if let (Some(u), false) = (self.unmatched.as_mut(), kni_out.is_empty()) {
                u.enqueue(&mut kni_out);
            }
            if done_out.is_empty() && kni_out.is_empty() && self.from.dequeue(&mut batch) > 0 {
                work += batch.len();
                outs.clear();
                let frames = batch.as_mut_slice();
                let mut i = 0;
                while i < frames.len() {
                    let port = frames[i].port();
                    let j = frames[i..]
                        .iter()
                        .position(|m| m.port() != port)
                        .map_or(frames.len(), |k| i + k);
                    match self
                        .enc_for_port
                        .get(usize::from(port))
                        .and_then(Option::as_ref)
                    {
                        Some(enc) => {
                            process_batch_each(
                                fwd,
                                enc,
                                &mut frames[i..j],
                                &stats.counters,
                                &mut scratch,
                                |_, v| outs.push(out_of(v, exception)),
                            );
                        }
                        None => outs.extend(std::iter::repeat_n(Out::Drop, j - i)),
                    }
                    i = j;
                }
                distribute(&mut batch, &outs, &mut done_out, &mut kni_out, &mut drops);
                drops.free_all();
                self.done.enqueue(&mut done_out);
                if let Some(u) = self.unmatched.as_mut() {
                    u.enqueue(&mut kni_out);
                }
            }
            work
        })
    }
}
