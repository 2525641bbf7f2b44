//! Step 4 of the packet path: from a classified, hashed frame to its
//! route, the row's hops (SPEC §7), over a loaded binary forwarding table.
//!
//! A [`Forwarder`] is built once per table load and is then read-only, so
//! any number of cores can share it and a reload simply builds a new one.
//! It routes one frame at a time here; [`crate::batch`] routes a burst
//! with the same tables.

use std::alloc::Layout;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use zerocopy::FromZeros;

use crate::classify::Classifier;
use crate::flowhash::{HashFields, V4Hasher, row_of};
use crate::hash::{Key16, LaneEngine, SipKey};
use crate::inspect::{Inspection, Lookup, inspect};
use crate::model::MAX_BACKENDS;
use crate::table::{TABLE_ENTRIES, TableFile, backend_addr};
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
pub(crate) struct RouteTable {
    pub(crate) hash_key: SipKey,
    /// Per row, the primary and secondary backend indexes (always below
    /// 256, which the table reader guarantees). Fixed in size, so a row
    /// number taken from a hash needs no bounds check.
    pub(crate) rows: Box<[[u8; 2]; TABLE_ENTRIES]>,
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
/// [`crate::batch::BatchRouter::v4_route`]). The inner packet is IPv4
/// and starts right after the frame's Ethernet header.
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

/// Classifier plus routing tables.
#[derive(Debug, Clone)]
pub struct Forwarder {
    pub(crate) tables: Vec<RouteTable>,
    pub(crate) classifier: Classifier,
    options: RouteOptions,
    /// The IPv4 messages of the main and alternate hash fields.
    pub(crate) hashers: (V4Hasher, Option<V4Hasher>),
    /// The instructions a batch's flow hashes are computed with.
    pub(crate) engine: LaneEngine,
    /// Tells this forwarder (and its clones) from any other, so a
    /// classification remembered from one is never used with another.
    pub(crate) id: u64,
}

/// Source of [`Forwarder`] ids.
static NEXT_FORWARDER: AtomicU64 = AtomicU64::new(1);

impl Forwarder {
    /// Builds a forwarder from a table file. A [`TableFile`] is valid by
    /// construction (every row index, family and bind was checked when it
    /// was parsed), so this cannot fail.
    pub fn new(file: &TableFile<'_>, options: RouteOptions) -> Self {
        let mut tables = Vec::with_capacity(file.tables().len());
        let mut binds = Vec::with_capacity(file.tables().len());
        for t in file.tables() {
            let mut backends = Box::new([None; MAX_BACKENDS]);
            for (slot, b) in backends.iter_mut().zip(t.backends()) {
                *slot = match backend_addr(b) {
                    Some(IpAddr::V4(a)) => Some(a),
                    _ => None,
                };
            }
            let mut rows = <[[u8; 2]; TABLE_ENTRIES]>::new_box_zeroed().unwrap_or_else(|_| {
                std::alloc::handle_alloc_error(Layout::new::<[[u8; 2]; TABLE_ENTRIES]>())
            });
            for (r, rec) in rows.iter_mut().zip(t.rows.iter()) {
                // Below the backend count (at most 256): checked by the parse.
                *r = [rec.primary.get() as u8, rec.secondary.get() as u8];
            }
            binds.push(t.bind_entries().collect::<Vec<_>>());
            tables.push(RouteTable {
                hash_key: SipKey::new(&Key16::new(t.hash_key)),
                rows,
                backends,
            });
        }
        let classifier = Classifier::new(binds.iter(), options.forward_icmp_echo);
        Forwarder {
            tables,
            classifier,
            options,
            hashers: (
                options.hash_fields.v4(),
                options.alt_hash_fields.map(|f| f.v4()),
            ),
            engine: LaneEngine::detect(),
            id: NEXT_FORWARDER.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The instructions batches are hashed with.
    pub fn lane_engine(&self) -> LaneEngine {
        self.engine
    }

    /// The same forwarder hashing batches with `engine` instead of the
    /// best this CPU has (for operators comparing engines, benchmarks
    /// and tests); every engine gives the same hashes.
    pub fn with_lane_engine(mut self, engine: LaneEngine) -> Self {
        self.engine = engine;
        self
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

    /// Routes an inspected frame.
    #[inline]
    pub fn route(&self, ins: &Inspection) -> Decision {
        self.finish(&self.start(ins))
    }

    #[inline(never)]
    pub(crate) fn start_general(&self, frame: &[u8], out: &mut Pending) {
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
    pub(crate) fn finish_hashed(&self, t: &RouteTable, h: &Hashed) -> Decision {
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

/// A frame classified and hashed, its route not yet read from the table
/// (see [`Forwarder::start`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending(pub(crate) Stage);

impl Pending {
    /// A frame that matched nothing (e.g. one an engine could not read).
    pub const UNCLASSIFIED: Pending = Pending(Stage::Unclassified);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Unclassified,
    Failed { table: usize },
    Hashed(Hashed),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hashed {
    pub(crate) table: usize,
    pub(crate) hash: u64,
    /// With alternate hash fields, their hash; otherwise unused.
    pub(crate) alt_hash: u64,
    pub(crate) flow_hint: u16,
    pub(crate) gue_proto: u8,
    pub(crate) ip_offset: usize,
    pub(crate) ip_len: usize,
}

impl RouteTable {
    #[inline(always)]
    pub(crate) fn hops(&self, hash: u64) -> Option<[Ipv4Addr; 2]> {
        let [p, s] = self.rows[row_of(hash)];
        Some([
            self.backends[usize::from(p)]?,
            self.backends[usize::from(s)]?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TableFile;
    use glb_testkit::frames::*;
    use glb_testkit::siphash::{hex16, siphash};
    use glb_testkit::table::{bin_backend_v4, bin_row, compile, tables_json};

    const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

    #[test]
    fn the_row_of_the_source_address_hash_gives_the_hops() {
        let bin = compile(&tables_json(&[(
            KEY,
            r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}"#,
            &["192.0.2.1", "192.0.2.2", "192.0.2.3"],
        )]));
        let file = TableFile::parse(&bin).unwrap();
        let f = Forwarder::new(&file, RouteOptions::default());
        assert_eq!(f.num_tables(), 1);
        let frame = tcp4("172.16.1.2", 40000, "10.1.1.1", 80);
        let Decision::Forward(r) = f.route(&inspect(&frame)) else {
            panic!("not forwarded");
        };
        // Expected values from the independent SipHash and a by-offset
        // read of the table.
        let hash = siphash(&hex16(KEY), &[172, 16, 1, 2]);
        let (p, s) = bin_row(&bin, 0, (hash & 0xffff) as usize);
        assert_eq!(r.hash, hash);
        assert_eq!(
            r.hops(),
            [
                bin_backend_v4(&bin, 0, p as usize),
                bin_backend_v4(&bin, 0, s as usize)
            ]
        );
        assert_eq!((r.table, r.flow_hint, r.ip_offset), (0, 40000, 14));
        assert_eq!(r.udp_src_port(), 0x8000 | ((hash as u16 ^ 40000) & 0x7fff));
        assert_eq!(
            f.route(&inspect(&tcp4("172.16.1.2", 40000, "10.9.9.9", 80))),
            Decision::Unclassified
        );
    }

    #[test]
    fn alternate_fields_add_two_hops_and_ipv6_backends_fail_the_route() {
        let bin = compile(&tables_json(&[(
            KEY,
            r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}"#,
            &["192.0.2.1", "192.0.2.2"],
        )]));
        let file = TableFile::parse(&bin).unwrap();
        let f = Forwarder::new(
            &file,
            RouteOptions {
                alt_hash_fields: Some(HashFields::parse_list("src_port").unwrap()),
                ..RouteOptions::default()
            },
        );
        let frame = tcp4("172.16.1.2", 40000, "10.1.1.1", 80);
        let Decision::Forward(r) = f.route(&inspect(&frame)) else {
            panic!("not forwarded");
        };
        assert_eq!(r.hop_count, 4);
        let bin6 = compile(&tables_json(&[(
            KEY,
            r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}"#,
            &["2001:db8::1"],
        )]));
        let f6 = Forwarder::new(&TableFile::parse(&bin6).unwrap(), RouteOptions::default());
        assert_eq!(
            f6.route(&inspect(&frame)),
            Decision::RouteFailed { table: 0 }
        );
    }
}
