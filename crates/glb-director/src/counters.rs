//! Per-core packet counters: each core adds to its own once per batch
//! (a plain store, no locked instruction), and any thread reads them for
//! metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use glb_core::path::{Outcomes, Tally};

/// Counters of one core, written by that core once per batch and readable
/// from any thread (e.g. the statsd reporter). Only the owning core may
/// add to them (see [`count_on_own_core`]).
#[derive(Debug, Default)]
pub struct CoreCounters {
    /// Frames the packet path saw.
    pub total: AtomicU64,
    /// Frames that matched a bind.
    pub matched: AtomicU64,
    /// Frames that matched no bind.
    pub unmatched: AtomicU64,
    /// Matched frames with no route (cut-off packet, non-IPv4 backend).
    pub route_failed: AtomicU64,
    /// Frames encapsulated.
    pub encap_success: AtomicU64,
    /// Routed frames that could not be encapsulated.
    pub encap_failure: AtomicU64,
    /// Receive errors seen by the engine.
    pub rx_errors: AtomicU64,
    /// Frames the engine handed to the exception path.
    pub kni: AtomicU64,
    /// Frames the engine transmitted on the NIC.
    pub eth_tx_sent: AtomicU64,
    /// Frames the engine transmitted from the exception interface.
    pub kni_tx_sent: AtomicU64,
}

/// A plain copy of [`CoreCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// See [`CoreCounters::total`].
    pub total: u64,
    /// See [`CoreCounters::matched`].
    pub matched: u64,
    /// See [`CoreCounters::unmatched`].
    pub unmatched: u64,
    /// See [`CoreCounters::route_failed`].
    pub route_failed: u64,
    /// See [`CoreCounters::encap_success`].
    pub encap_success: u64,
    /// See [`CoreCounters::encap_failure`].
    pub encap_failure: u64,
    /// See [`CoreCounters::rx_errors`].
    pub rx_errors: u64,
    /// See [`CoreCounters::kni`].
    pub kni: u64,
    /// See [`CoreCounters::eth_tx_sent`].
    pub eth_tx_sent: u64,
    /// See [`CoreCounters::kni_tx_sent`].
    pub kni_tx_sent: u64,
}

impl CounterSnapshot {
    /// What was counted between `earlier` and this snapshot (counters
    /// wrap, so the difference of each is taken modulo 2^64).
    pub fn since(&self, earlier: &CounterSnapshot) -> CounterSnapshot {
        CounterSnapshot {
            total: self.total.wrapping_sub(earlier.total),
            matched: self.matched.wrapping_sub(earlier.matched),
            unmatched: self.unmatched.wrapping_sub(earlier.unmatched),
            route_failed: self.route_failed.wrapping_sub(earlier.route_failed),
            encap_success: self.encap_success.wrapping_sub(earlier.encap_success),
            encap_failure: self.encap_failure.wrapping_sub(earlier.encap_failure),
            rx_errors: self.rx_errors.wrapping_sub(earlier.rx_errors),
            kni: self.kni.wrapping_sub(earlier.kni),
            eth_tx_sent: self.eth_tx_sent.wrapping_sub(earlier.eth_tx_sent),
            kni_tx_sent: self.kni_tx_sent.wrapping_sub(earlier.kni_tx_sent),
        }
    }
}

impl CoreCounters {
    /// Reads every counter.
    pub fn snapshot(&self) -> CounterSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterSnapshot {
            total: g(&self.total),
            matched: g(&self.matched),
            unmatched: g(&self.unmatched),
            route_failed: g(&self.route_failed),
            encap_success: g(&self.encap_success),
            encap_failure: g(&self.encap_failure),
            rx_errors: g(&self.rx_errors),
            kni: g(&self.kni),
            eth_tx_sent: g(&self.eth_tx_sent),
            kni_tx_sent: g(&self.kni_tx_sent),
        }
    }

    /// Adds a batch of `frames` frames whose outcomes other than
    /// forwarding are counted in `b`.
    pub fn absorb(&self, frames: usize, b: &Outcomes) {
        let total = frames as u64;
        let matched = total - b.unmatched;
        let encap_success = matched - b.route_failed - b.encap_failure;
        let add = count_on_own_core;
        add(&self.total, total);
        add(&self.matched, matched);
        add(&self.unmatched, b.unmatched);
        add(&self.route_failed, b.route_failed);
        add(&self.encap_success, encap_success);
        add(&self.encap_failure, b.encap_failure);
    }
}

/// Adds `n` to a counter that only the calling core writes (others only
/// read it): a plain load and store, which costs a fraction of the locked
/// read-modify-write of `fetch_add`, done several times per burst.
#[inline]
pub fn count_on_own_core(a: &AtomicU64, n: u64) {
    if n != 0 {
        a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

impl Tally for CoreCounters {
    #[inline]
    fn add_batch(&self, frames: usize, outcomes: &Outcomes) {
        self.absorb(frames, outcomes);
    }
}
