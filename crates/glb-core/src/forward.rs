//! From a frame to a route: classification, flow hashing and row lookup
//! (SPEC §6, §7) over a loaded binary forwarding table.
//!
//! A [`Forwarder`] is built once per table load and is then read-only, so
//! any number of cores can share it and a reload simply builds a new one.

use std::net::{IpAddr, Ipv4Addr};

use crate::classify::Classifier;
use crate::flow::{HashFields, row_of};
use crate::hash::Key16;
use crate::model::MAX_BACKENDS;
use crate::packet::{Inspection, Lookup, inspect};
use crate::table::{TABLE_ENTRIES, TableFile, backend_addr, bind_from_record};

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
    hash_key: Key16,
    /// Per row, the primary and secondary backend indexes (always below
    /// 256, which the table reader guarantees).
    rows: Box<[[u8; 2]]>,
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
}

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
            let mut rows = vec![[0u8; 2]; TABLE_ENTRIES].into_boxed_slice();
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
                hash_key: Key16::new(t.hash_key),
                rows,
                backends,
            });
        }
        let classifier = Classifier::new(binds.iter(), options.forward_icmp_echo);
        Ok(Forwarder {
            tables,
            classifier,
            options,
        })
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

    /// Routes an Ethernet frame.
    #[inline]
    pub fn route_frame(&self, frame: &[u8]) -> Decision {
        self.route(&inspect(frame))
    }

    /// Routes an inspected frame.
    #[inline]
    pub fn route(&self, ins: &Inspection) -> Decision {
        let Some(table) = self.classifier.classify(&ins.lookup) else {
            return Decision::Unclassified;
        };
        let failed = Decision::RouteFailed { table };
        if !ins.routable() {
            return failed;
        }
        let Some(t) = self.tables.get(table) else {
            return failed;
        };
        let hash = self.options.hash_fields.hash(&t.hash_key, &ins.flow);
        let mut hops = [Ipv4Addr::UNSPECIFIED; MAX_HOPS];
        let Some([p, s]) = t.hops(hash) else {
            return failed;
        };
        hops[0] = p;
        hops[1] = s;
        let mut hop_count = 2;
        if let Some(alt) = self.options.alt_hash_fields {
            let Some([p, s]) = t.hops(alt.hash(&t.hash_key, &ins.flow)) else {
                return failed;
            };
            hops[2] = p;
            hops[3] = s;
            hop_count = 4;
        }
        Decision::Forward(Route {
            table,
            hash,
            flow_hint: ins.flow_hint,
            hops,
            hop_count,
            gue_proto: ins.gue_proto,
            ip_offset: ins.ip_offset,
            ip_len: ins.ip_len,
        })
    }
}

impl RouteTable {
    #[inline(always)]
    fn hops(&self, hash: u64) -> Option<[Ipv4Addr; 2]> {
        let [p, s] = *self.rows.get(row_of(hash))?;
        Some([
            self.backends[usize::from(p)]?,
            self.backends[usize::from(s)]?,
        ])
    }
}
