//! From a frame to a route: classification, flow hashing and row lookup
//! (SPEC §6, §7) over a loaded binary forwarding table.
//!
//! A [`Forwarder`] is built once per table load and is then read-only, so
//! any number of cores can share it and a reload simply builds a new one.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::classify::Classifier;
use crate::flow::{HashFields, V4Hasher, V4Message, V4Specialised, row_of};
use crate::hash::{Key16, LANE_BLOCK, LaneEngine, SipKey, SipLanes};
use crate::model::MAX_BACKENDS;
use crate::packet::{Inspection, Lookup, V4Transport, inspect, inspect_v4_transport};
use crate::table::{TABLE_ENTRIES, TableFile, backend_addr, bind_from_record};
use crate::wire::{ethernet, ip_proto};

/// Most hops a route carries: two per hash-field set.
pub const MAX_HOPS: usize = 4;

/// The director settings that shape routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteOptions {
    /// Fields of the main flow hash (its row gives hops 1 and 2).
    pub hash_fields: HashFields,
    /// Fields of the alternate hash; its row gives hops 3 and 4.
    pub alt_hash_fields: Option<HashFields>,
    /// Whether ICMP echo requests to a bind are forwarded
    /// (`forward_icmp_ping_responses`).
    pub forward_icmp_echo: bool,
}

impl Default for RouteOptions {
    fn default() -> Self {
        RouteOptions {
            hash_fields: HashFields::SRC_ADDR,
            alt_hash_fields: None,
            forward_icmp_echo: true,
        }
    }
}

/// One table in lookup-friendly form.
#[derive(Debug, Clone)]
struct RouteTable {
    hash_key: SipKey,
    /// Per row, the primary and secondary backend indexes (always below
    /// 256, which the table reader guarantees). Fixed in size, so a row
    /// number taken from a hash needs no bounds check.
    rows: Box<[[u8; 2]; TABLE_ENTRIES]>,
    /// Per backend slot, its IPv4 address; `None` for IPv6 backends,
    /// which cannot be an outer IPv4 destination.
    backends: Box<[Option<Ipv4Addr>; MAX_BACKENDS]>,
}

/// Where a packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Table the packet was classified to (file order, from 0).
    pub table: usize,
    /// The main flow hash (the first hash-field set).
    pub hash: u64,
    /// Mixed into the outer UDP source port (see [`Route::udp_src_port`]).
    pub flow_hint: u16,
    /// Hops: primary, secondary, and with alternate fields their primary
    /// and secondary. `hops[0]` is the outer destination.
    pub hops: [Ipv4Addr; MAX_HOPS],
    /// How many of `hops` are used (2 or 4).
    pub hop_count: usize,
    /// GUE protocol of the inner packet (4 or 41).
    pub gue_proto: u8,
    /// Offset of the inner IP packet in the frame.
    pub ip_offset: usize,
    /// Length of the inner IP packet.
    pub ip_len: usize,
}

impl Route {
    /// The hops in use.
    pub fn hops(&self) -> &[Ipv4Addr] {
        &self.hops[..self.hop_count.min(MAX_HOPS)]
    }

    /// The outer UDP source port: `0x8000 | ((hash ^ flow_hint) & 0x7fff)`,
    /// so each flow keeps one port and proxies spread flows over their
    /// receive queues.
    pub fn udp_src_port(&self) -> u16 {
        0x8000 | ((self.hash as u16 ^ self.flow_hint) & 0x7fff)
    }
}

/// The route of an IPv4 TCP/UDP frame over two hops — the director's
/// common case — in just the values its encapsulation needs (see
/// [`BatchRouter::v4_route`]). The inner packet is IPv4 and starts right
/// after the frame's Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4Route {
    /// Table the packet was classified to.
    pub table: usize,
    /// The flow hash.
    pub hash: u64,
    /// Mixed into the outer UDP source port (the client's port).
    pub flow_hint: u16,
    /// Primary and secondary hop; the first is the outer destination.
    pub hops: [Ipv4Addr; 2],
    /// Length of the inner IP packet.
    pub ip_len: u16,
}

impl V4Route {
    /// The same route in its general form.
    #[inline(always)]
    pub fn to_route(&self) -> Route {
        let [a, b] = self.hops;
        Route {
            table: self.table,
            hash: self.hash,
            flow_hint: self.flow_hint,
            hops: [a, b, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED],
            hop_count: 2,
            gue_proto: ip_proto::IPV4,
            ip_offset: ethernet::HEADER_LEN,
            ip_len: usize::from(self.ip_len),
        }
    }

    /// See [`Route::udp_src_port`].
    #[inline(always)]
    pub fn udp_src_port(&self) -> u16 {
        0x8000 | ((self.hash as u16 ^ self.flow_hint) & 0x7fff)
    }
}

/// The outcome of routing one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Matched no bind (or was not IPv4/IPv6).
    Unclassified,
    /// Matched a bind of `table`, but no route could be computed: headers
    /// the flow hash needs or the IP packet itself are cut off, or a
    /// chosen backend is not IPv4.
    RouteFailed {
        /// The table the packet was classified to.
        table: usize,
    },
    /// Forward along this route.
    Forward(Route),
}

/// Why a table file could not be turned into a forwarder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table {table}: {what}")]
pub struct ForwarderError {
    /// Table index.
    pub table: usize,
    /// What is wrong.
    pub what: String,
}

/// Classifier plus routing tables.
#[derive(Debug, Clone)]
pub struct Forwarder {
    tables: Vec<RouteTable>,
    classifier: Classifier,
    options: RouteOptions,
    /// The IPv4 messages of the main and alternate hash fields.
    hashers: (V4Hasher, Option<V4Hasher>),
    /// The instructions a batch's flow hashes are computed with.
    engine: LaneEngine,
    /// Tells this forwarder (and its clones) from any other, so a
    /// classification remembered from one is never used with another.
    id: u64,
}

/// Source of [`Forwarder`] ids.
static NEXT_FORWARDER: AtomicU64 = AtomicU64::new(1);

impl Forwarder {
    /// Builds a forwarder from a validated table file.
    pub fn new(file: &TableFile<'_>, options: RouteOptions) -> Result<Self, ForwarderError> {
        let mut tables = Vec::with_capacity(file.tables.len());
        let mut binds = Vec::with_capacity(file.tables.len());
        for (i, t) in file.tables.iter().enumerate() {
            let err = |what: String| ForwarderError { table: i, what };
            let mut backends = Box::new([None; MAX_BACKENDS]);
            for (slot, b) in backends.iter_mut().zip(t.backends()) {
                *slot = match backend_addr(b) {
                    Some(IpAddr::V4(a)) => Some(a),
                    _ => None,
                };
            }
            let n = t.backends().len();
            let mut rows: Box<[[u8; 2]; TABLE_ENTRIES]> = vec![[0u8; 2]; TABLE_ENTRIES]
                .into_boxed_slice()
                .try_into()
                .map_err(|_| err("row table size".into()))?;
            for (r, rec) in rows.iter_mut().zip(t.rows.iter()) {
                let (p, s) = (rec.primary.get() as usize, rec.secondary.get() as usize);
                if p >= n || s >= n {
                    return Err(err(format!("a row points at backend {p}/{s} of {n}")));
                }
                *r = [p as u8, s as u8];
            }
            let tb = t
                .binds()
                .iter()
                .enumerate()
                .map(|(j, b)| bind_from_record(b).map_err(|e| err(format!("bind {j}: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            binds.push(tb);
            tables.push(RouteTable {
                hash_key: SipKey::new(&Key16::new(t.hash_key)),
                rows,
                backends,
            });
        }
        let classifier = Classifier::new(binds.iter(), options.forward_icmp_echo);
        Ok(Forwarder {
            tables,
            classifier,
            options,
            hashers: (
                options.hash_fields.v4(),
                options.alt_hash_fields.map(|f| f.v4()),
            ),
            engine: LaneEngine::detect(),
            id: NEXT_FORWARDER.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The instructions batches are hashed with.
    pub fn lane_engine(&self) -> LaneEngine {
        self.engine
    }

    /// The options this forwarder was built with.
    pub fn options(&self) -> &RouteOptions {
        &self.options
    }

    /// Number of tables.
    pub fn num_tables(&self) -> usize {
        self.tables.len()
    }

    /// The table a lookup classifies to.
    #[inline]
    pub fn classify(&self, lookup: &Lookup) -> Option<usize> {
        self.classifier.classify(lookup)
    }

    /// Routes an Ethernet frame: the same decision as
    /// [`Forwarder::route`] of its [`inspect`]ion, with a shortcut for
    /// IPv4 TCP and UDP.
    #[inline]
    pub fn route_frame(&self, frame: &[u8]) -> Decision {
        self.finish(&self.start_frame(frame))
    }

    /// Routes an inspected frame.
    #[inline]
    pub fn route(&self, ins: &Inspection) -> Decision {
        self.finish(&self.start(ins))
    }

    /// The first half of [`Forwarder::route_frame`]: classification and
    /// flow hashing, everything but reading the table rows. A batch goes
    /// faster through a [`BatchRouter`], which hashes its frames side by
    /// side.
    #[inline]
    pub fn start_frame(&self, frame: &[u8]) -> Pending {
        let Some(p) = inspect_v4_transport(frame) else {
            let mut out = Pending::UNCLASSIFIED;
            self.start_general(frame, &mut out);
            return out;
        };
        let table = self
            .classifier
            .classify_v4_transport(p.proto, p.dst, p.dst_port)
            .and_then(|i| Some((i, self.tables.get(i)?)));
        Self::start_v4_transport(p, table, self.hashers)
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

    #[inline(never)]
    fn start_general(&self, frame: &[u8], out: &mut Pending) {
        *out = self.start(&inspect(frame));
    }

    /// The first half of [`Forwarder::route`].
    #[inline]
    pub fn start(&self, ins: &Inspection) -> Pending {
        let Some(table) = self.classifier.classify(&ins.lookup) else {
            return Pending(Stage::Unclassified);
        };
        if !ins.routable() {
            return Pending(Stage::Failed { table });
        }
        let Some(t) = self.tables.get(table) else {
            return Pending(Stage::Failed { table });
        };
        let hash_of = |fields: HashFields| fields.hash_with(&t.hash_key, &ins.flow);
        Pending(Stage::Hashed(Hashed {
            table,
            hash: hash_of(self.options.hash_fields),
            alt_hash: match self.options.alt_hash_fields {
                Some(fields) => hash_of(fields),
                None => 0,
            },
            flow_hint: ins.flow_hint,
            gue_proto: ins.gue_proto,
            ip_offset: ins.ip_offset,
            ip_len: ins.ip_len,
        }))
    }

    /// Starts an IPv4 TCP/UDP frame classified to `table`.
    #[inline(always)]
    fn start_v4_transport(
        p: V4Transport,
        table: Option<(usize, &RouteTable)>,
        hashers: (V4Hasher, Option<V4Hasher>),
    ) -> Pending {
        let Some((table, t)) = table else {
            return Pending(Stage::Unclassified);
        };
        if !p.complete {
            return Pending(Stage::Failed { table });
        }
        let hash_of = |h: V4Hasher| h.hash(&t.hash_key, p.src, p.dst, p.src_port, p.dst_port);
        Pending(Stage::Hashed(Hashed {
            table,
            hash: hash_of(hashers.0),
            alt_hash: hashers.1.map_or(0, hash_of),
            flow_hint: p.src_port,
            gue_proto: ip_proto::IPV4,
            ip_offset: ethernet::HEADER_LEN,
            ip_len: usize::from(p.ip_len),
        }))
    }

    /// The second half of routing: reads the rows and gives the decision.
    #[inline]
    pub fn finish(&self, p: &Pending) -> Decision {
        match p.0 {
            Stage::Unclassified => Decision::Unclassified,
            Stage::Failed { table } => Decision::RouteFailed { table },
            Stage::Hashed(ref h) => match self.tables.get(h.table) {
                Some(t) => self.finish_hashed(t, h),
                None => Decision::RouteFailed { table: h.table },
            },
        }
    }

    #[inline(always)]
    fn finish_hashed(&self, t: &RouteTable, h: &Hashed) -> Decision {
        let failed = Decision::RouteFailed { table: h.table };
        let Some([a, b]) = t.hops(h.hash) else {
            return failed;
        };
        let mut hops = [a, b, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED];
        let mut hop_count = 2;
        if self.options.alt_hash_fields.is_some() {
            let Some([c, d]) = t.hops(h.alt_hash) else {
                return failed;
            };
            hops[2] = c;
            hops[3] = d;
            hop_count = 4;
        }
        Decision::Forward(Route {
            table: h.table,
            hash: h.hash,
            flow_hint: h.flow_hint,
            hops,
            hop_count,
            gue_proto: h.gue_proto,
            ip_offset: h.ip_offset,
            ip_len: h.ip_len,
        })
    }
}

/// Frames a [`BatchRouter`] routes at a time.
pub const BATCH: usize = 32;

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
    fwd: &'f Forwarder,
    s: &'f mut BatchScratch,
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

/// A frame classified and hashed, its route not yet read from the table
/// (see [`Forwarder::start_frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending(Stage);

impl Pending {
    /// A frame that matched nothing (e.g. one an engine could not read).
    pub const UNCLASSIFIED: Pending = Pending(Stage::Unclassified);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Unclassified,
    Failed { table: usize },
    Hashed(Hashed),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hashed {
    table: usize,
    hash: u64,
    /// With alternate hash fields, their hash; otherwise unused.
    alt_hash: u64,
    flow_hint: u16,
    gue_proto: u8,
    ip_offset: usize,
    ip_len: usize,
}

impl RouteTable {
    #[inline(always)]
    fn hops(&self, hash: u64) -> Option<[Ipv4Addr; 2]> {
        let [p, s] = self.rows[row_of(hash)];
        Some([
            self.backends[usize::from(p)]?,
            self.backends[usize::from(s)]?,
        ])
    }
}
