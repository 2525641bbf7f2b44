//! Batching: routing a burst of up to [`BATCH`] frames at once, so that
//! their flow hashes are computed side by side and their table rows are
//! fetched together. Same decisions as [`crate::route::Forwarder`] frame
//! by frame.

use std::fmt;

use crate::flowhash::{V4Hasher, V4Message, V4Specialised, row_of};
use crate::hash::{LANE_BLOCK, SipLanes};
use crate::inspect::inspect_v4_transport;
use crate::route::{Decision, Forwarder, Hashed, Pending, Stage, V4Route};
use crate::wire::{ethernet, ip_proto};

/// Frames a [`BatchRouter`] routes at a time.
pub const BATCH: usize = 32;

impl Forwarder {
    /// Routes one Ethernet frame: the decision a batch holding it would
    /// give (there is one IPv4 fast path, the batch's). For tools and
    /// tests; engines route bursts through [`Forwarder::batch`].
    pub fn route_frame(&self, frame: &[u8]) -> Decision {
        let mut scratch = BatchScratch::default();
        let mut router = self.batch(&mut scratch);
        router.push_frames(std::iter::once(Some(frame)));
        router.hash();
        router.finish(0)
    }

    /// Starts routing a batch of frames (see [`BatchRouter`]) in
    /// `scratch`, which a core keeps from one batch to the next.
    #[inline]
    pub fn batch<'a>(&'a self, scratch: &'a mut BatchScratch) -> BatchRouter<'a> {
        // The classification remembered from the last batch, if it was
        // made by this forwarder.
        let (last_key, last_table) = match scratch.memo {
            Memo {
                forwarder,
                key,
                table,
            } if forwarder == self.id => (key, table),
            _ => (0, None),
        };
        BatchRouter {
            fwd: self,
            s: scratch,
            last_key,
            last_table,
            hashers: self.hashers,
            len: 0,
            lanes_used: 0,
            lane_table: None,
            mixed_tables: false,
        }
    }
}

/// Routes a batch of up to [`BATCH`] frames in three steps: each frame
/// is classified as it is added ([`BatchRouter::push_frames`]); then the
/// flow hashes of all IPv4 TCP/UDP frames are computed side by side with
/// vector instructions ([`BatchRouter::hash`]) — one after another,
/// SipHash would be the largest cost per packet — and the caller may
/// prefetch the table rows they select ([`BatchRouter::rows`]); then each
/// frame's route is read ([`BatchRouter::v4_route`] for the common case,
/// [`BatchRouter::finish`] for any). Other frames (IPv6, ICMP, IPv4 with
/// options) are hashed as they are added.
///
/// It also remembers the last IPv4 TCP/UDP classification: frames to the
/// same destination, protocol and port as the one before — most of a
/// burst, on a director with few VIPs — skip the bind lookup. The memory
/// is kept in the [`BatchScratch`] for the next batch, tagged with the
/// forwarder, so it never outlives a table reload. Start a new batch in
/// the same router with [`BatchRouter::clear`].
pub struct BatchRouter<'f> {
    pub(crate) fwd: &'f Forwarder,
    pub(crate) s: &'f mut BatchScratch,
    /// Protocol, destination port and address of the last lookup; 0 (no
    /// protocol) before the first.
    last_key: u64,
    /// The table of the last lookup (one that exists).
    last_table: Option<usize>,
    /// The IPv4 messages of the main and alternate fields.
    hashers: (V4Hasher, Option<V4Hasher>),
    /// Frames in the batch.
    len: usize,
    /// One past the last slot whose message is in the lanes.
    lanes_used: usize,
    /// The table IPv4 TCP/UDP frames of this batch were classified to,
    /// while that was always the same one (the usual case: their flow
    /// hashes then share one key).
    lane_table: Option<usize>,
    /// Whether they were classified to more than one table. Both are only
    /// updated when the classification changes, not for every frame.
    mixed_tables: bool,
}

/// The memory a [`BatchRouter`] works in: a few kilobytes, kept by a
/// core from one batch to the next rather than cleared for each.
#[derive(Clone, Default)]
pub struct BatchScratch {
    /// The frames of the batch, in order.
    slots: [Slot; BATCH],
    main: SipLanes<{ BATCH / LANE_BLOCK }>,
    alt: SipLanes<{ BATCH / LANE_BLOCK }>,
    /// The last classification of the previous batch, so a burst does
    /// not start with a bind lookup.
    memo: Memo,
}

/// A classification remembered from one batch to the next.
#[derive(Debug, Clone, Copy, Default)]
struct Memo {
    /// The [`Forwarder`] id it was made with (0: none).
    forwarder: u64,
    key: u64,
    table: Option<usize>,
}

impl fmt::Debug for BatchScratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BatchScratch")
    }
}

/// A frame of a batch.
#[derive(Clone, Copy)]
enum Slot {
    /// Finished classifying (and hashing, if routable) when added.
    Ready(Pending),
    /// An IPv4 TCP/UDP frame of `table`, whose hashes are in the lanes.
    Lane {
        table: usize,
        flow_hint: u16,
        ip_len: u16,
    },
}

impl Default for Slot {
    fn default() -> Self {
        Slot::Ready(Pending::UNCLASSIFIED)
    }
}

impl Drop for BatchRouter<'_> {
    fn drop(&mut self) {
        self.s.memo = Memo {
            forwarder: self.fwd.id,
            key: self.last_key,
            table: self.last_table,
        };
    }
}

impl fmt::Debug for BatchRouter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchRouter")
            .field("len", &self.len)
            .field("last_key", &self.last_key)
            .field("last_table", &self.last_table)
            .finish_non_exhaustive()
    }
}

impl<'f> BatchRouter<'f> {
    /// Empties the batch (the classification memory stays).
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
        self.lanes_used = 0;
        // Frames that hit the remembered classification get its table.
        self.lane_table = self.last_table;
        self.mixed_tables = false;
    }

    /// Adds a frame an engine could not read: it will be unclassified.
    #[inline]
    fn push_unclassified(&mut self) {
        self.put(Slot::Ready(Pending::UNCLASSIFIED));
    }

    #[inline(always)]
    fn put(&mut self, slot: Slot) {
        if let Some(s) = self.s.slots.get_mut(self.len) {
            *s = slot;
            self.len += 1;
        }
    }

    /// Classifies the next frames of the batch, in order; `None` stands
    /// for a frame the engine could not read, which is unclassified. A
    /// batch holds [`BATCH`] frames; more are ignored. The shape of the
    /// flow-hash message is chosen once for all of them.
    #[inline]
    pub fn push_frames<'a>(&mut self, frames: impl Iterator<Item = Option<&'a [u8]>>) {
        struct PushAll<'r, 'f, I>(&'r mut BatchRouter<'f>, I);
        impl<'a, I: Iterator<Item = Option<&'a [u8]>>> V4Specialised for PushAll<'_, '_, I> {
            type Output = ();
            #[inline(always)]
            fn run<M: V4Message>(self) {
                let PushAll(router, frames) = self;
                for frame in frames {
                    match frame {
                        Some(bytes) => router.push_with::<M>(bytes),
                        None => router.push_unclassified(),
                    }
                }
            }
        }
        let main = self.hashers.0;
        main.specialise(PushAll(self, frames));
    }

    /// Classifies one frame, with the main message layout `M`.
    #[inline(always)]
    fn push_with<M: V4Message>(&mut self, frame: &[u8]) {
        let slot = self.len;
        if slot >= BATCH {
            return;
        }
        let Some(p) = inspect_v4_transport(frame) else {
            let mut out = Pending::UNCLASSIFIED;
            self.fwd.start_general(frame, &mut out);
            self.put(Slot::Ready(out));
            return;
        };
        let key = (u64::from(p.proto) << 48)
            | (u64::from(p.dst_port) << 32)
            | u64::from(u32::from_ne_bytes(p.dst));
        if key != self.last_key {
            self.last_key = key;
            self.last_table = self
                .fwd
                .classifier
                .classify_v4_transport(p.proto, p.dst, p.dst_port)
                .filter(|&i| i < self.fwd.tables.len());
            if let Some(t) = self.last_table {
                match self.lane_table {
                    None => self.lane_table = Some(t),
                    Some(other) => self.mixed_tables |= other != t,
                }
            }
        }
        let Some(table) = self.last_table else {
            self.put(Slot::Ready(Pending::UNCLASSIFIED));
            return;
        };
        if !p.complete {
            self.put(Slot::Ready(Pending(Stage::Failed { table })));
            return;
        }
        let (src, dst, sp, dp) = (p.src, p.dst, p.src_port, p.dst_port);
        self.s.main.load_message(slot, M::message(src, dst, sp, dp));
        if let Some(h) = self.hashers.1 {
            self.s.alt.load_message(slot, h.message(src, dst, sp, dp));
        }
        self.lanes_used = slot + 1;
        self.put(Slot::Lane {
            table,
            flow_hint: p.src_port,
            ip_len: p.ip_len,
        });
    }

    /// Computes the flow hashes of the IPv4 TCP/UDP frames of the batch.
    /// Call it after the last [`BatchRouter::push_frames`].
    #[inline]
    pub fn hash(&mut self) {
        let Some(table) = self.lane_table else {
            return;
        };
        if self.lanes_used == 0 {
            return;
        }
        let lanes = 0..self.lanes_used;
        let s = &mut *self.s;
        let engine = self.fwd.engine;
        let (main_len, alt) = (
            self.hashers.0.message_len(),
            self.hashers.1.map(|h| h.message_len()),
        );
        if self.mixed_tables {
            for (i, slot) in s.slots[lanes.clone()].iter().enumerate() {
                if let Slot::Lane { table, .. } = *slot
                    && let Some(t) = self.fwd.tables.get(table)
                {
                    s.main.set_key(i, &t.hash_key);
                    if alt.is_some() {
                        s.alt.set_key(i, &t.hash_key);
                    }
                }
            }
            s.main.hash(engine, main_len, lanes.clone());
            if let Some(len) = alt {
                s.alt.hash(engine, len, lanes);
            }
        } else if let Some(t) = self.fwd.tables.get(table) {
            s.main
                .hash_under(engine, main_len, lanes.clone(), &t.hash_key);
            if let Some(len) = alt {
                s.alt.hash_under(engine, len, lanes, &t.hash_key);
            }
        }
    }

    /// The table rows the batch's IPv4 TCP/UDP frames will read, for
    /// prefetching; only valid after [`BatchRouter::hash`].
    #[inline(always)]
    pub fn rows(&self) -> impl Iterator<Item = &'f [u8; 2]> + '_ {
        let tables = &self.fwd.tables;
        self.s.slots[..self.lanes_used]
            .iter()
            .zip(self.s.main.hashes())
            .filter_map(move |(slot, &hash)| match *slot {
                Slot::Lane { table, .. } => Some(&tables.get(table)?.rows[row_of(hash)]),
                Slot::Ready(_) => None,
            })
    }

    /// The route of frame `slot` when it takes the common path: an IPv4
    /// TCP/UDP frame routed to two IPv4 hops, without alternate hash
    /// fields. `None` otherwise, and then [`BatchRouter::finish`] has
    /// the answer. Same validity as [`BatchRouter::finish`], whose
    /// decision for such a frame is this route ([`V4Route::to_route`]).
    #[inline(always)]
    pub fn v4_route(&self, slot: usize) -> Option<V4Route> {
        if slot >= self.len || self.hashers.1.is_some() {
            return None;
        }
        let &Slot::Lane {
            table,
            flow_hint,
            ip_len,
        } = self.s.slots.get(slot)?
        else {
            return None;
        };
        let hash = self.s.main.get(slot);
        let hops = self.fwd.tables.get(table)?.hops(hash)?;
        Some(V4Route {
            table,
            hash,
            flow_hint,
            hops,
            ip_len,
        })
    }

    /// The route of frame `slot` (in the order the frames were added);
    /// only valid once [`BatchRouter::hash`] has run after the frame was
    /// added. A slot past the batch is unclassified.
    #[inline(always)]
    pub fn finish(&self, slot: usize) -> Decision {
        if slot >= self.len {
            return Decision::Unclassified;
        }
        match self.s.slots.get(slot) {
            Some(Slot::Ready(p)) => self.fwd.finish(p),
            Some(&Slot::Lane {
                table,
                flow_hint,
                ip_len,
            }) => match self.fwd.tables.get(table) {
                Some(t) => self.fwd.finish_hashed(
                    t,
                    &Hashed {
                        table,
                        hash: self.s.main.get(slot),
                        alt_hash: self.s.alt.get(slot),
                        flow_hint,
                        gue_proto: ip_proto::IPV4,
                        ip_offset: ethernet::HEADER_LEN,
                        ip_len: usize::from(ip_len),
                    },
                ),
                None => Decision::RouteFailed { table },
            },
            None => Decision::Unclassified,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::inspect;
    use crate::route::RouteOptions;
    use crate::table::TableFile;
    use glb_testkit::frames::*;
    use glb_testkit::table::{compile, tables_json};

    #[test]
    fn a_batch_decides_as_frame_by_frame_routing_does() {
        let bin = compile(&tables_json(&[
            (
                "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                r#"{"ip": "10.1.1.0/24", "proto": "tcp", "port": 80}"#,
                &["192.0.2.1", "192.0.2.2"],
            ),
            (
                "00112233445566778899aabbccddeeff",
                r#"{"ip": "10.2.2.2", "proto": "udp", "port": 53}"#,
                &["192.0.2.3", "192.0.2.4"],
            ),
        ]));
        let f = Forwarder::new(&TableFile::parse(&bin).unwrap(), RouteOptions::default());
        let frames = [
            tcp4("172.16.1.2", 40000, "10.1.1.1", 80),
            udp4("172.16.1.3", 1234, "10.2.2.2", 53),
            tcp4("172.16.1.4", 40001, "10.1.1.7", 80),
            echo4("172.16.1.5", "10.1.1.1", 7),
            tcp6("2001:db8::1", 5, "fd00::1", 80),
            tcp4("172.16.1.2", 40000, "10.1.1.1", 81),
        ];
        let mut scratch = BatchScratch::default();
        let mut router = f.batch(&mut scratch);
        router.push_frames(frames.iter().map(|b| Some(b.as_slice())));
        router.push_frames(std::iter::once(None));
        router.hash();
        for (i, frame) in frames.iter().enumerate() {
            let want = f.route(&inspect(frame));
            assert_eq!(router.finish(i), want, "frame {i}");
            assert_eq!(f.route_frame(frame), want, "frame {i} alone");
            if let Some(v4) = router.v4_route(i) {
                assert_eq!(Decision::Forward(v4.to_route()), want, "frame {i}");
            }
        }
        assert_eq!(router.finish(frames.len()), Decision::Unclassified);
        assert!(router.v4_route(0).is_some());
        assert!(router.v4_route(3).is_none(), "ICMP takes the general path");
    }
}
