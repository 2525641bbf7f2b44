//! Outcome counters: one set per worker, written by that worker only,
//! summed when the stats file or statsd needs them.
//!
//! The first seven names are the ones the original kernel module prints
//! in `/proc/glb_redirect_stats` (SPEC §11 step 5), in the same
//! `name: value` form, so existing scrapers keep working; the rest count
//! what the module could not see (drops by reason, I/O errors).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::decide::{DropReason, LocalReason};

/// One counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Every datagram received on the GUE port.
    Total,
    /// Inner TCP SYN, handled locally.
    AcceptedSyn,
    /// No hop left: handled locally as a last resort.
    AcceptedLastResort,
    /// Matched a local established or in-progress TCP socket.
    AcceptedEstablished,
    /// A valid SYN-cookie ACK (never counted: user space cannot verify
    /// cookies; see docs/redirect.md).
    AcceptedSynCookie,
    /// The next hop was this host: handled locally.
    ForwardedToSelf,
    /// Sent on to the next hop.
    ForwardedToAlternate,
    /// Inner UDP, handled locally.
    AcceptedUdp,
    /// Inner ICMP (not a TCP fragmentation-needed / too-big error),
    /// handled locally.
    AcceptedIcmp,
    /// Dropped: cut short.
    DroppedTruncated,
    /// Dropped: not GUE data with GLB private data.
    DroppedBadGueHeader,
    /// Dropped: `hlen != hop_count + 1`.
    DroppedBadHopCount,
    /// Dropped: GUE protocol not 4 or 41.
    DroppedUnknownProtocol,
    /// Dropped: inner packet malformed.
    DroppedBadInner,
    /// Dropped: inner protocol not TCP/UDP/ICMP.
    DroppedUnsupportedInner,
    /// Dropped: inner non-initial fragment.
    DroppedInnerFragment,
    /// Dropped: outer source not on `--allow-source`.
    DroppedSourceNotAllowed,
    /// Dropped: next hop not on `--allow-hop`.
    DroppedHopNotAllowed,
    /// Packets that needed a socket-table lookup (a run of one flow's
    /// packets in a batch shares one).
    SocketLookups,
    /// Socket-table lookups that failed (treated as "no socket").
    SocketLookupErrors,
    /// Inner packets the TUN device refused.
    LocalDeliveryErrors,
    /// Forwarded packets the raw socket refused.
    ForwardErrors,
    /// Receive calls that failed.
    ReceiveErrors,
    /// Of `forwarded_to_alternate_packets`, those the fast path sent on
    /// in the kernel (`--fast-path`) without the daemon seeing them.
    FastPathForwarded,
}

/// Number of counters.
pub const COUNT: usize = Counter::FastPathForwarded as usize + 1;

/// Every counter, in order.
pub const ALL: [Counter; COUNT] = [
    Counter::Total,
    Counter::AcceptedSyn,
    Counter::AcceptedLastResort,
    Counter::AcceptedEstablished,
    Counter::AcceptedSynCookie,
    Counter::ForwardedToSelf,
    Counter::ForwardedToAlternate,
    Counter::AcceptedUdp,
    Counter::AcceptedIcmp,
    Counter::DroppedTruncated,
    Counter::DroppedBadGueHeader,
    Counter::DroppedBadHopCount,
    Counter::DroppedUnknownProtocol,
    Counter::DroppedBadInner,
    Counter::DroppedUnsupportedInner,
    Counter::DroppedInnerFragment,
    Counter::DroppedSourceNotAllowed,
    Counter::DroppedHopNotAllowed,
    Counter::SocketLookups,
    Counter::SocketLookupErrors,
    Counter::LocalDeliveryErrors,
    Counter::ForwardErrors,
    Counter::ReceiveErrors,
    Counter::FastPathForwarded,
];

/// Counter names, in [`Counter`] order.
pub const NAMES: [&str; COUNT] = [
    "total_packets",
    "accepted_syn_packets",
    "accepted_last_resort_packets",
    "accepted_established_packets",
    "accepted_syn_cookie_packets",
    "forwarded_to_self_packets",
    "forwarded_to_alternate_packets",
    "accepted_udp_packets",
    "accepted_icmp_packets",
    "dropped_truncated_packets",
    "dropped_bad_gue_header_packets",
    "dropped_bad_hop_count_packets",
    "dropped_unknown_protocol_packets",
    "dropped_bad_inner_packets",
    "dropped_unsupported_inner_packets",
    "dropped_inner_fragment_packets",
    "dropped_source_not_allowed_packets",
    "dropped_hop_not_allowed_packets",
    "socket_lookups",
    "socket_lookup_errors",
    "local_delivery_errors",
    "forward_errors",
    "receive_errors",
    "fast_path_forwarded_packets",
];

impl Counter {
    /// The counter for a local-delivery reason.
    pub fn local(r: LocalReason) -> Counter {
        match r {
            LocalReason::Syn => Counter::AcceptedSyn,
            LocalReason::Udp => Counter::AcceptedUdp,
            LocalReason::Icmp => Counter::AcceptedIcmp,
            LocalReason::Established => Counter::AcceptedEstablished,
            LocalReason::LastResort => Counter::AcceptedLastResort,
            LocalReason::ToSelf => Counter::ForwardedToSelf,
        }
    }

    /// The counter for a drop reason.
    pub fn dropped(r: DropReason) -> Counter {
        match r {
            DropReason::Truncated => Counter::DroppedTruncated,
            DropReason::BadGueHeader => Counter::DroppedBadGueHeader,
            DropReason::BadHopCount => Counter::DroppedBadHopCount,
            DropReason::UnknownProtocol => Counter::DroppedUnknownProtocol,
            DropReason::BadInner => Counter::DroppedBadInner,
            DropReason::UnsupportedInner => Counter::DroppedUnsupportedInner,
            DropReason::InnerFragment => Counter::DroppedInnerFragment,
            DropReason::SourceNotAllowed => Counter::DroppedSourceNotAllowed,
            DropReason::HopNotAllowed => Counter::DroppedHopNotAllowed,
        }
    }

    /// The counter's name in the stats file.
    pub fn name(self) -> &'static str {
        NAMES[self as usize]
    }
}

/// A worker's counters as the other threads see them. Aligned to a cache
/// line so workers never share one.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Shared {
    values: [AtomicU64; COUNT],
    /// Passes of the worker's loop (packets or not): the watchdog's
    /// evidence that the worker is alive.
    passes: AtomicU64,
}

impl Shared {
    /// Counts one pass of the worker's loop.
    #[inline]
    pub fn pass(&self) {
        self.passes.fetch_add(1, Ordering::Relaxed);
    }

    /// Passes of the worker's loop so far.
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }

    /// Adds a worker's batch of increments.
    pub fn add(&self, batch: &Local) {
        for (v, d) in self.values.iter().zip(batch.values.iter()) {
            if *d != 0 {
                v.fetch_add(*d, Ordering::Relaxed);
            }
        }
    }

    /// Current values.
    pub fn read(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for (o, v) in s.values.iter_mut().zip(self.values.iter()) {
            *o = v.load(Ordering::Relaxed);
        }
        s
    }
}

/// Increments gathered during one batch, before they are published.
#[derive(Debug, Default, Clone)]
pub struct Local {
    values: [u64; COUNT],
}

impl Local {
    /// Counts one.
    #[inline]
    pub fn bump(&mut self, c: Counter) {
        self.values[c as usize] += 1;
    }

    /// Counts `n`.
    #[inline]
    pub fn add(&mut self, c: Counter, n: u64) {
        self.values[c as usize] += n;
    }

    /// Zeroes every counter (after publishing).
    pub fn clear(&mut self) {
        self.values = [0; COUNT];
    }
}

/// A point-in-time reading of all counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    values: [u64; COUNT],
}

impl Snapshot {
    /// The sum over several workers.
    pub fn sum<'a>(shared: impl IntoIterator<Item = &'a Shared>) -> Snapshot {
        let mut s = Snapshot::default();
        for w in shared {
            let r = w.read();
            for (a, b) in s.values.iter_mut().zip(r.values.iter()) {
                *a += b;
            }
        }
        s
    }

    /// Adds `n` packets that went the kernel's fast path: each was
    /// received, looked up and forwarded.
    pub fn add_fast_path(&mut self, n: u64) {
        for c in [
            Counter::Total,
            Counter::SocketLookups,
            Counter::ForwardedToAlternate,
            Counter::FastPathForwarded,
        ] {
            self.values[c as usize] += n;
        }
    }

    /// One counter's value.
    pub fn get(&self, c: Counter) -> u64 {
        self.values[c as usize]
    }

    /// `name: value` lines, the format of the original's
    /// `/proc/glb_redirect_stats`.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(COUNT * 40);
        for (name, v) in NAMES.iter().zip(self.values.iter()) {
            let _ = writeln!(out, "{name}: {v}");
        }
        out
    }

    /// Parses [`Snapshot::render`] output (unknown lines are ignored), so
    /// tools and tests can read the stats file back.
    pub fn parse(text: &str) -> Snapshot {
        let mut s = Snapshot::default();
        for line in text.lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let Some(i) = NAMES.iter().position(|n| *n == name.trim()) else {
                continue;
            };
            if let Ok(v) = value.trim().parse() {
                s.values[i] = v;
            }
        }
        s
    }

    /// statsd counter lines for the increase since `prev`, one datagram
    /// payload per line, with names prefixed by `prefix` and a dot.
    /// Counters that did not move are left out.
    pub fn statsd_deltas(&self, prev: &Snapshot, prefix: &str) -> Vec<String> {
        NAMES
            .iter()
            .zip(self.values.iter().zip(prev.values.iter()))
            .filter_map(|(name, (now, before))| {
                let d = now.saturating_sub(*before);
                (d != 0).then(|| format!("{prefix}.{name}:{d}|c"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_variants() {
        assert_eq!(Counter::Total.name(), "total_packets");
        assert_eq!(
            Counter::ForwardedToAlternate.name(),
            "forwarded_to_alternate_packets"
        );
        assert_eq!(Counter::ReceiveErrors.name(), "receive_errors");
        let mut seen = std::collections::HashSet::new();
        assert!(NAMES.iter().all(|n| seen.insert(*n)));
        for (i, c) in ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }

    #[test]
    fn render_parse_round_trip_and_sum() {
        let a = Shared::default();
        let b = Shared::default();
        let mut l = Local::default();
        l.bump(Counter::Total);
        l.bump(Counter::Total);
        l.bump(Counter::AcceptedSyn);
        a.add(&l);
        l.clear();
        l.add(Counter::Total, 5);
        l.bump(Counter::local(LocalReason::LastResort));
        b.add(&l);
        let s = Snapshot::sum([&a, &b]);
        assert_eq!(s.get(Counter::Total), 7);
        assert_eq!(s.get(Counter::AcceptedSyn), 1);
        assert_eq!(s.get(Counter::AcceptedLastResort), 1);
        let text = s.render();
        assert!(text.starts_with("total_packets: 7\naccepted_syn_packets: 1\n"));
        assert_eq!(Snapshot::parse(&text), s);
        let lines = s.statsd_deltas(&Snapshot::default(), "glb_redirect");
        assert_eq!(
            lines,
            [
                "glb_redirect.total_packets:7|c",
                "glb_redirect.accepted_syn_packets:1|c",
                "glb_redirect.accepted_last_resort_packets:1|c",
            ]
        );
        assert!(s.statsd_deltas(&s, "x").is_empty());
    }
}
