//! Step 2 of the packet path, classification (SPEC §6): which table a
//! packet belongs to. Bind matching lives here and only here.
//!
//! Tables are tried in file order and binds in table order; the first
//! bind that matches decides. [`Classifier`] gives the same answer as
//! trying every bind in that order ([`LinearClassifier`], kept as the
//! reference and as the benchmark's baseline) without scanning.
//!
//! Every bind gets a priority, its position in that order. Per address
//! family, one hash map is keyed by (protocol, prefix length, masked
//! address) for every prefix length in use. The entry for a key lists, in
//! priority order, the binds of that key *and every bind with a shorter
//! prefix that contains it*. A lookup probes the prefix lengths from the
//! longest down and stops at the first key present: binds longer than
//! that length cannot contain the address (their keys were absent), and
//! every shorter bind that contains it is already merged into the list.
//! The answer is the first listed bind whose port range (and, for ICMP
//! errors, outer destination) fits. With the usual single-address binds
//! that is one probe and a list of one or two entries.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;
use std::ops::BitAnd;

use crate::inspect::Lookup;
use crate::model::{Bind, Proto};

/// A fast, non-cryptographic hasher for integer keys (the multiply-rotate
/// scheme rustc uses). Keys are bind addresses chosen by the operator, not
/// by senders, so hash flooding is not a concern.
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
    #[inline(always)]
    fn write_u16(&mut self, v: u16) {
        self.mix(u64::from(v));
    }
    #[inline(always)]
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }
    #[inline(always)]
    fn write_u128(&mut self, v: u128) {
        self.mix(v as u64);
        self.mix((v >> 64) as u64);
    }
    #[inline(always)]
    fn finish(&self) -> u64 {
        // The product's low bits depend only on the key's low bits, and
        // bind addresses often differ only in their upper bytes; the hash
        // table indexes buckets by the low bits, so bring well-mixed high
        // bits down.
        self.0.rotate_left(26)
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// An address family's integer form.
trait Bits: Copy + Eq + std::fmt::Debug + BitAnd<Output = Self> {
    /// Hash-map key for (protocol, prefix length, masked address).
    type Key: Copy + Eq + Hash + std::fmt::Debug;
    fn key(self, proto: u8, len: u8) -> Self::Key;
    const WIDTH: u8;
    /// Every bit set.
    const ONES: Self;
    /// `self << n`, or zero once every bit is shifted out.
    fn shl_or_zero(self, n: u32) -> Self;

    /// The address with all but its first `len` bits cleared.
    #[inline(always)]
    fn mask(self, len: u8) -> Self {
        let host_bits = Self::WIDTH - len.min(Self::WIDTH);
        self & Self::ONES.shl_or_zero(u32::from(host_bits))
    }
}

impl Bits for u32 {
    type Key = u64;
    #[inline(always)]
    fn key(self, proto: u8, len: u8) -> u64 {
        (u64::from(proto) << 40) | (u64::from(len) << 32) | u64::from(self.mask(len))
    }
    const WIDTH: u8 = 32;
    const ONES: u32 = u32::MAX;
    #[inline(always)]
    fn shl_or_zero(self, n: u32) -> u32 {
        self.checked_shl(n).unwrap_or(0)
    }
}

impl Bits for u128 {
    type Key = (u128, u16);
    #[inline(always)]
    fn key(self, proto: u8, len: u8) -> (u128, u16) {
        (self.mask(len), (u16::from(proto) << 8) | u16::from(len))
    }
    const WIDTH: u8 = 128;
    const ONES: u128 = u128::MAX;
    #[inline(always)]
    fn shl_or_zero(self, n: u32) -> u128 {
        self.checked_shl(n).unwrap_or(0)
    }
}

/// Key protocol for the protocol-blind index used by ICMP lookups.
const ANY_PROTO: u8 = 0;

#[derive(Debug, Clone, Copy)]
struct Entry<A> {
    prio: u32,
    table: u32,
    /// The bind's position in its table.
    bind: u16,
    port_start: u16,
    port_end: u16,
    /// The bind's own prefix (masked), for containment checks.
    net: A,
    len: u8,
}

impl<A: Bits> Entry<A> {
    /// The entry of bind `bind` (at `addr`) of `table`, matched in `prio` order.
    fn new(prio: u32, table: u32, bind: u16, b: &Bind, addr: A) -> Self {
        let len = b.prefix_len.min(A::WIDTH);
        Entry {
            prio,
            table,
            bind,
            port_start: b.port_start,
            port_end: b.port_end,
            net: addr.mask(len),
            len,
        }
    }

    #[inline(always)]
    fn contains(&self, addr: A) -> bool {
        addr.mask(self.len) == self.net
    }

    #[inline(always)]
    fn has_port(&self, port: u16) -> bool {
        self.port_start <= port && port <= self.port_end
    }
}

#[derive(Debug, Clone)]
struct Index<A: Bits> {
    /// Prefix lengths in use, longest first.
    lens: Vec<u8>,
    /// Key → range of `entries`.
    map: FxMap<A::Key, (u32, u32)>,
    entries: Vec<Entry<A>>,
}

impl<A: Bits> Index<A> {
    /// Builds the index of `binds` (already in priority order) under the
    /// key protocol each one maps to.
    fn build(binds: &[(u8, Entry<A>)]) -> Self {
        let mut lens: Vec<u8> = binds.iter().map(|(_, e)| e.len).collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        lens.dedup();
        // Binds grouped by their own key, in priority order.
        let mut by_key: FxMap<A::Key, Vec<Entry<A>>> = FxMap::default();
        let mut keys = Vec::new();
        for (proto, e) in binds {
            let k = e.net.key(*proto, e.len);
            let list = by_key.entry(k).or_default();
            if list.is_empty() {
                keys.push((*proto, e.net, e.len, k));
            }
            list.push(*e);
        }
        // Each key's list also gets the binds of every shorter prefix
        // that contains its block.
        let mut lists: Vec<(A::Key, Vec<Entry<A>>)> = Vec::with_capacity(keys.len());
        for (proto, net, len, k) in keys {
            let mut list = by_key[&k].clone();
            for &l in lens.iter().filter(|l| **l < len) {
                if let Some(shorter) = by_key.get(&net.key(proto, l)) {
                    list.extend_from_slice(shorter);
                }
            }
            list.sort_by_key(|x| x.prio);
            lists.push((k, list));
        }
        let mut map = FxMap::default();
        let mut entries = Vec::new();
        for (k, list) in lists {
            let start = entries.len() as u32;
            entries.extend(list);
            map.insert(k, (start, entries.len() as u32));
        }
        Index { lens, map, entries }
    }

    /// The first candidate for `addr` under `proto` that satisfies
    /// `accept`: its table and its bind's position in the table.
    #[inline(always)]
    fn find(&self, proto: u8, addr: A, accept: impl Fn(&Entry<A>) -> bool) -> Option<(u32, u16)> {
        for &len in &self.lens {
            if let Some(&(s, e)) = self.map.get(&addr.key(proto, len)) {
                let list = self.entries.get(s as usize..e as usize)?;
                return list.iter().find(|x| accept(x)).map(|x| (x.table, x.bind));
            }
        }
        None
    }
}

#[derive(Debug, Clone)]
struct Family<A: Bits> {
    /// Keyed by protocol.
    by_proto: Index<A>,
    /// Every bind regardless of protocol, for ICMP.
    any_proto: Index<A>,
}

impl<A: Bits> Family<A> {
    fn build(binds: &[(u8, Entry<A>)]) -> Self {
        let any: Vec<(u8, Entry<A>)> = binds.iter().map(|(_, e)| (ANY_PROTO, *e)).collect();
        Family {
            by_proto: Index::build(binds),
            any_proto: Index::build(&any),
        }
    }

    #[inline(always)]
    fn transport(&self, proto: u8, dst: A, port: u16) -> Option<(u32, u16)> {
        self.by_proto.find(proto, dst, |e| e.has_port(port))
    }

    #[inline(always)]
    fn icmp_error(&self, outer_dst: A, quoted_src: A, quoted_port: u16) -> Option<(u32, u16)> {
        self.any_proto.find(ANY_PROTO, quoted_src, |e| {
            e.has_port(quoted_port) && e.contains(outer_dst)
        })
    }

    #[inline(always)]
    fn echo(&self, dst: A) -> Option<(u32, u16)> {
        self.any_proto.find(ANY_PROTO, dst, |_| true)
    }
}

/// What a classifier is built from: each table's binds, tables in file
/// order and binds in table order. A table's number is its position.
pub trait Tables<'a>: IntoIterator<Item: IntoIterator<Item = &'a Bind>> {}

impl<'a, T: IntoIterator<Item: IntoIterator<Item = &'a Bind>>> Tables<'a> for T {}

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
    pub fn new<'a>(tables: impl Tables<'a>, echo: bool) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut prio = 0u32;
        for (table, binds) in tables.into_iter().enumerate() {
            for (bind, b) in binds.into_iter().enumerate() {
                let bind = bind as u16;
                let proto = b.proto.number();
                let table = table as u32;
                match b.addr {
                    IpAddr::V4(a) => {
                        v4.push((proto, Entry::new(prio, table, bind, b, u32::from(a))))
                    }
                    IpAddr::V6(a) => {
                        v6.push((proto, Entry::new(prio, table, bind, b, u128::from(a))))
                    }
                }
                prio += 1;
            }
        }
        Classifier {
            v4: Family::build(&v4),
            v6: Family::build(&v6),
            echo,
        }
    }

    /// [`Classifier::classify`] of a [`Lookup::Transport`] to an IPv4
    /// destination.
    #[inline]
    pub fn classify_v4_transport(&self, proto: u8, dst: [u8; 4], dst_port: u16) -> Option<usize> {
        self.v4
            .transport(proto, u32::from_be_bytes(dst), dst_port)
            .map(|(t, _)| t as usize)
    }

    /// The table a packet belongs to, or `None` when no bind matches.
    #[inline]
    pub fn classify(&self, lookup: &Lookup) -> Option<usize> {
        self.hit(lookup).map(|(t, _)| t as usize)
    }

    /// The table and the bind (its position in the table) a packet
    /// matches, or `None` when no bind matches.
    #[inline]
    pub fn classify_bind(&self, lookup: &Lookup) -> Option<(usize, usize)> {
        self.hit(lookup).map(|(t, b)| (t as usize, usize::from(b)))
    }

    #[inline(always)]
    fn hit(&self, lookup: &Lookup) -> Option<(u32, u16)> {
        match *lookup {
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
        }
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
    pub fn new<'a>(tables: impl Tables<'a>, echo: bool) -> Self {
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

/// Whether `addr` lies inside `prefix/len` (families must agree).
pub fn prefix_contains(prefix: &IpAddr, len: u8, addr: &IpAddr) -> bool {
    match (prefix, addr) {
        (IpAddr::V4(p), IpAddr::V4(a)) => u32::from(*p).mask(len) == u32::from(*a).mask(len),
        (IpAddr::V6(p), IpAddr::V6(a)) => u128::from(*p).mask(len) == u128::from(*a).mask(len),
        _ => false,
    }
}

impl Bind {
    /// Whether a packet to `dst`:`dst_port` over `proto` belongs to this bind.
    pub fn matches(&self, dst: &IpAddr, proto: Proto, dst_port: u16) -> bool {
        self.proto == proto
            && (self.port_start..=self.port_end).contains(&dst_port)
            && prefix_contains(&self.addr, self.prefix_len, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use glb_testkit::frames::ip;

    #[test]
    fn prefixes() {
        assert!(prefix_contains(&ip("10.20.0.0"), 24, &ip("10.20.0.255")));
        assert!(!prefix_contains(&ip("10.20.0.0"), 24, &ip("10.20.1.0")));
        assert!(prefix_contains(&ip("10.20.0.7"), 0, &ip("192.0.2.1")));
        assert!(prefix_contains(&ip("10.20.0.7"), 32, &ip("10.20.0.7")));
        assert!(!prefix_contains(&ip("10.20.0.7"), 32, &ip("10.20.0.6")));
        assert!(prefix_contains(&ip("fd00::"), 8, &ip("fdff::1")));
        assert!(!prefix_contains(&ip("fd00::"), 8, &ip("fe00::1")));
        assert!(!prefix_contains(&ip("::"), 0, &ip("1.2.3.4")));
    }

    fn bind(addr: &str, len: u8, proto: Proto, ports: (u16, u16)) -> Bind {
        Bind {
            addr: ip(addr),
            prefix_len: len,
            proto,
            port_start: ports.0,
            port_end: ports.1,
        }
    }

    fn tcp(dst: &str, port: u16) -> Lookup {
        Lookup::Transport {
            proto: 6,
            dst: ip(dst),
            dst_port: port,
        }
    }

    #[test]
    fn first_bind_in_file_order_wins_and_names_its_table_and_position() {
        let t0 = vec![
            bind("10.0.0.0", 8, Proto::Tcp, (1000, 2000)),
            bind("10.1.1.1", 32, Proto::Udp, (53, 53)),
        ];
        let t1 = vec![
            bind("10.1.1.1", 32, Proto::Tcp, (80, 80)),
            bind("fd00::", 16, Proto::Tcp, (443, 443)),
        ];
        let tables = [t0, t1];
        let c = Classifier::new(&tables, false);
        let linear = LinearClassifier::new(&tables, false);
        for (lookup, want) in [
            (tcp("10.1.1.1", 80), Some((1, 0))),
            (tcp("10.1.1.1", 1500), Some((0, 0))),
            (tcp("10.200.0.1", 2000), Some((0, 0))),
            (tcp("10.1.1.1", 81), None),
            (tcp("fd00:1::7", 443), Some((1, 1))),
            (
                Lookup::Transport {
                    proto: 17,
                    dst: ip("10.1.1.1"),
                    dst_port: 53,
                },
                Some((0, 1)),
            ),
            (
                Lookup::Echo {
                    dst: ip("10.1.1.1"),
                },
                None,
            ),
        ] {
            assert_eq!(c.classify_bind(&lookup), want, "{lookup:?}");
            assert_eq!(linear.classify(&lookup), want.map(|w| w.0), "{lookup:?}");
        }
        let echo = Classifier::new(&tables, true);
        assert_eq!(
            echo.classify(&Lookup::Echo {
                dst: ip("10.1.1.1")
            }),
            Some(0)
        );
    }

    #[test]
    fn icmp_errors_need_the_outer_destination_in_the_bind_too() {
        let tables = [vec![bind("10.1.1.0", 24, Proto::Tcp, (80, 80))]];
        let c = Classifier::new(&tables, false);
        let err = |outer: &str, quoted: &str, port| Lookup::IcmpError {
            outer_dst: ip(outer),
            quoted_src: ip(quoted),
            quoted_src_port: port,
        };
        assert_eq!(c.classify(&err("10.1.1.9", "10.1.1.1", 80)), Some(0));
        assert_eq!(c.classify(&err("10.2.0.1", "10.1.1.1", 80)), None);
        assert_eq!(c.classify(&err("10.1.1.9", "10.1.1.1", 81)), None);
    }
}
