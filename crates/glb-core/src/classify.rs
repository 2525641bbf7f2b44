//! Classification (SPEC §6): which table a packet belongs to.
//!
//! Tables are tried in file order and binds in table order; the first
//! bind that matches decides. [`Classifier`] gives the same answer as
//! trying every bind in that order ([`LinearClassifier`], kept as the
//! reference and as the benchmark's baseline) without scanning: every
//! bind gets a priority (its position in that order), binds are grouped
//! by prefix length, and each group is a hash map from (protocol, masked
//! address) to the binds with that key, in priority order. A lookup
//! probes one map per prefix length in use, visiting groups by their best
//! priority and stopping as soon as no later group can beat the best
//! match so far. With the usual single-address binds that is one probe.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;

use crate::flow::prefix_contains;
use crate::model::Bind;
use crate::packet::Lookup;

/// A fast, non-cryptographic hasher for small integer keys (the
/// multiply-rotate scheme rustc uses). Keys are bind addresses chosen by
/// the operator, not by senders, so hash flooding is not a concern.
#[derive(Debug, Default, Clone, Copy)]
struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline(always)]
    fn mix(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.mix(u64::from(*b));
        }
    }
    fn write_u8(&mut self, v: u8) {
        self.mix(u64::from(v));
    }
    fn write_u32(&mut self, v: u32) {
        self.mix(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }
    fn write_u128(&mut self, v: u128) {
        self.mix(v as u64);
        self.mix((v >> 64) as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// An address family's integer form.
trait Bits: Copy + Eq + Hash {
    const WIDTH: u8;
    fn mask(self, len: u8) -> Self;
}

impl Bits for u32 {
    const WIDTH: u8 = 32;
    #[inline(always)]
    fn mask(self, len: u8) -> u32 {
        self & u32::MAX
            .checked_shl(32 - u32::from(len.min(32)))
            .unwrap_or(0)
    }
}

impl Bits for u128 {
    const WIDTH: u8 = 128;
    #[inline(always)]
    fn mask(self, len: u8) -> u128 {
        self & u128::MAX
            .checked_shl(128 - u32::from(len.min(128)))
            .unwrap_or(0)
    }
}

/// Key protocol for the protocol-blind index used by ICMP lookups.
const ANY_PROTO: u8 = 0;

#[derive(Debug, Clone, Copy)]
struct Entry<A> {
    prio: u32,
    table: u32,
    port_start: u16,
    port_end: u16,
    /// The bind's own prefix (masked), for the ICMP-error outer check.
    net: A,
    len: u8,
}

#[derive(Debug, Clone)]
struct Group<A> {
    len: u8,
    min_prio: u32,
    map: FxMap<(u8, A), Vec<Entry<A>>>,
}

#[derive(Debug, Clone)]
struct Index<A> {
    groups: Vec<Group<A>>,
}

impl<A: Bits> Index<A> {
    fn new() -> Self {
        Index { groups: Vec::new() }
    }

    fn insert(&mut self, proto: u8, addr: A, e: Entry<A>) {
        let g = match self.groups.iter_mut().position(|g| g.len == e.len) {
            Some(i) => &mut self.groups[i],
            None => {
                self.groups.push(Group {
                    len: e.len,
                    min_prio: e.prio,
                    map: FxMap::default(),
                });
                self.groups.last_mut().expect("just pushed")
            }
        };
        g.min_prio = g.min_prio.min(e.prio);
        // Binds are inserted in priority order, so each list stays sorted.
        g.map.entry((proto, addr.mask(e.len))).or_default().push(e);
    }

    fn finish(&mut self) {
        self.groups.sort_by_key(|g| g.min_prio);
    }

    /// The best-priority entry keyed by (`proto`, `addr`) that satisfies
    /// `accept`.
    #[inline]
    fn best(&self, proto: u8, addr: A, accept: impl Fn(&Entry<A>) -> bool) -> Option<&Entry<A>> {
        let mut best: Option<&Entry<A>> = None;
        for g in &self.groups {
            if best.is_some_and(|b| b.prio < g.min_prio) {
                break;
            }
            let Some(list) = g.map.get(&(proto, addr.mask(g.len))) else {
                continue;
            };
            for e in list {
                if best.is_some_and(|b| b.prio < e.prio) {
                    break;
                }
                if accept(e) {
                    best = Some(e);
                    break;
                }
            }
        }
        best
    }
}

#[derive(Debug, Clone)]
struct Family<A> {
    /// Keyed by (protocol, masked destination).
    by_proto: Index<A>,
    /// Keyed by (0, masked destination), every bind regardless of protocol.
    any_proto: Index<A>,
}

impl<A: Bits> Family<A> {
    fn new() -> Self {
        Family {
            by_proto: Index::new(),
            any_proto: Index::new(),
        }
    }

    fn insert(&mut self, proto: u8, addr: A, e: Entry<A>) {
        self.by_proto.insert(proto, addr, e);
        self.any_proto.insert(ANY_PROTO, addr, e);
    }

    fn finish(&mut self) {
        self.by_proto.finish();
        self.any_proto.finish();
    }

    #[inline]
    fn transport(&self, proto: u8, dst: A, port: u16) -> Option<u32> {
        self.by_proto
            .best(proto, dst, |e| (e.port_start..=e.port_end).contains(&port))
            .map(|e| e.table)
    }

    fn icmp_error(&self, outer_dst: A, quoted_src: A, quoted_port: u16) -> Option<u32> {
        self.any_proto
            .best(ANY_PROTO, quoted_src, |e| {
                (e.port_start..=e.port_end).contains(&quoted_port) && outer_dst.mask(e.len) == e.net
            })
            .map(|e| e.table)
    }

    fn echo(&self, dst: A) -> Option<u32> {
        self.any_proto
            .best(ANY_PROTO, dst, |_| true)
            .map(|e| e.table)
    }
}

/// Maps packets to tables without scanning binds.
#[derive(Debug, Clone)]
pub struct Classifier {
    v4: Family<u32>,
    v6: Family<u128>,
    echo: bool,
}

impl Classifier {
    /// Builds the index. `tables` yields each table's binds, tables in file
    /// order and binds in table order; the table number reported by
    /// [`Classifier::classify`] is the position in `tables`. `echo`
    /// enables matching ICMP echo requests (`forward_icmp_ping_responses`).
    pub fn new<'a, T, B>(tables: T, echo: bool) -> Self
    where
        T: IntoIterator<Item = B>,
        B: IntoIterator<Item = &'a Bind>,
    {
        let mut c = Classifier {
            v4: Family::new(),
            v6: Family::new(),
            echo,
        };
        let mut prio = 0u32;
        for (table, binds) in tables.into_iter().enumerate() {
            for b in binds {
                let proto = b.proto.number();
                match b.addr {
                    IpAddr::V4(a) => {
                        let len = b.prefix_len.min(u32::WIDTH);
                        let addr = u32::from(a);
                        let e = Entry {
                            prio,
                            table: table as u32,
                            port_start: b.port_start,
                            port_end: b.port_end,
                            net: addr.mask(len),
                            len,
                        };
                        c.v4.insert(proto, addr, e);
                    }
                    IpAddr::V6(a) => {
                        let len = b.prefix_len.min(u128::WIDTH);
                        let addr = u128::from(a);
                        let e = Entry {
                            prio,
                            table: table as u32,
                            port_start: b.port_start,
                            port_end: b.port_end,
                            net: addr.mask(len),
                            len,
                        };
                        c.v6.insert(proto, addr, e);
                    }
                }
                prio += 1;
            }
        }
        c.v4.finish();
        c.v6.finish();
        c
    }

    /// The table a packet belongs to, or `None` when no bind matches.
    #[inline]
    pub fn classify(&self, lookup: &Lookup) -> Option<usize> {
        let t = match *lookup {
            Lookup::Transport {
                proto,
                dst,
                dst_port,
            } => match dst {
                IpAddr::V4(d) => self.v4.transport(proto, u32::from(d), dst_port),
                IpAddr::V6(d) => self.v6.transport(proto, u128::from(d), dst_port),
            },
            Lookup::IcmpError {
                outer_dst,
                quoted_src,
                quoted_src_port,
            } => match (outer_dst, quoted_src) {
                (IpAddr::V4(o), IpAddr::V4(q)) => {
                    self.v4
                        .icmp_error(u32::from(o), u32::from(q), quoted_src_port)
                }
                (IpAddr::V6(o), IpAddr::V6(q)) => {
                    self.v6
                        .icmp_error(u128::from(o), u128::from(q), quoted_src_port)
                }
                _ => None,
            },
            Lookup::Echo { dst } if self.echo => match dst {
                IpAddr::V4(d) => self.v4.echo(u32::from(d)),
                IpAddr::V6(d) => self.v6.echo(u128::from(d)),
            },
            Lookup::Echo { .. } | Lookup::None => None,
        };
        t.map(|t| t as usize)
    }
}

/// The literal rule: try every bind in order. Kept as the reference the
/// indexed [`Classifier`] is tested against and as the benchmark baseline.
#[derive(Debug, Clone)]
pub struct LinearClassifier {
    binds: Vec<(usize, Bind)>,
    echo: bool,
}

impl LinearClassifier {
    /// Same arguments as [`Classifier::new`].
    pub fn new<'a, T, B>(tables: T, echo: bool) -> Self
    where
        T: IntoIterator<Item = B>,
        B: IntoIterator<Item = &'a Bind>,
    {
        let binds = tables
            .into_iter()
            .enumerate()
            .flat_map(|(t, bs)| bs.into_iter().map(move |b| (t, *b)))
            .collect();
        LinearClassifier { binds, echo }
    }

    /// Same answer as [`Classifier::classify`], found by scanning.
    pub fn classify(&self, lookup: &Lookup) -> Option<usize> {
        self.binds
            .iter()
            .find(|(_, b)| match *lookup {
                Lookup::Transport {
                    proto,
                    dst,
                    dst_port,
                } => b.proto.number() == proto && b.matches(&dst, b.proto, dst_port),
                Lookup::IcmpError {
                    outer_dst,
                    quoted_src,
                    quoted_src_port,
                } => {
                    prefix_contains(&b.addr, b.prefix_len, &outer_dst)
                        && prefix_contains(&b.addr, b.prefix_len, &quoted_src)
                        && (b.port_start..=b.port_end).contains(&quoted_src_port)
                }
                Lookup::Echo { dst } => self.echo && prefix_contains(&b.addr, b.prefix_len, &dst),
                Lookup::None => false,
            })
            .map(|(t, _)| *t)
    }
}
