//! Binds as the XDP program matches them (SPEC §6): CIDR prefixes in a
//! longest-prefix-match trie, port ranges as intervals.
//!
//! Every distinct bind prefix (per protocol, and once more regardless of
//! protocol for ICMP) becomes a trie entry whose *class* is every bind
//! that contains that prefix, in file order. The longest entry holding an
//! address therefore lists every bind that holds it, and the first of
//! them whose port range holds the port is the one the rule "first match
//! in file order" picks. Rather than scanning the list, the program
//! binary-searches the class's ports, split beforehand into intervals
//! that each map to that first bind.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::maps::NO_BIND;

/// A bind in the form classes are built from; its id is its position in
/// the list handed to [`build`] (file order across all tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindSpec {
    /// IP protocol number, 6 or 17.
    pub proto: u8,
    /// The address (host bits are ignored).
    pub addr: IpAddr,
    /// Prefix length, at most the address width.
    pub prefix_len: u8,
    /// First port (inclusive).
    pub port_start: u16,
    /// Last port (inclusive).
    pub port_end: u16,
}

/// A trie entry and what it leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// IP protocol of the index, or 0 for the protocol-blind one.
    pub proto: u8,
    /// The prefix, masked (IPv4 in the first 4 bytes).
    pub addr: [u8; 16],
    /// Whether the prefix is IPv6.
    pub v6: bool,
    /// Prefix length in address bits.
    pub len: u8,
    /// Ascending `(first port, bind)` pairs, the first at port 0; the
    /// bind is [`NO_BIND`] where no bind of the class has the port.
    pub intervals: Vec<(u16, u16)>,
    /// The first bind of the class regardless of port.
    pub any_port_bind: u16,
}

fn width(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn bits(addr: &IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(*a)) << 96,
        IpAddr::V6(a) => u128::from(*a),
    }
}

fn mask(v: u128, len: u8) -> u128 {
    match len {
        0 => 0,
        l => v & (u128::MAX << (128 - u32::from(l.min(128)))),
    }
}

/// Builds the classes of `binds` (at most [`NO_BIND`] of them), IPv4 and
/// IPv6, protocol-specific and protocol-blind.
pub fn build(binds: &[BindSpec]) -> Vec<Class> {
    debug_assert!(binds.len() < usize::from(NO_BIND));
    // Left-aligned bits, so IPv4 and IPv6 prefixes compare alike.
    let norm: Vec<(bool, u128, u8)> = binds
        .iter()
        .map(|b| {
            let len = b.prefix_len.min(width(&b.addr));
            (b.addr.is_ipv6(), mask(bits(&b.addr), len), len)
        })
        .collect();
    let mut keys = BTreeSet::new();
    for (b, &(v6, net, len)) in binds.iter().zip(&norm) {
        keys.insert((v6, b.proto, net, len));
        keys.insert((v6, 0, net, len));
    }
    keys.into_iter()
        .map(|(v6, proto, net, len)| {
            let members: Vec<u16> = (0..binds.len())
                .filter(|&i| {
                    let (bv6, bnet, blen) = norm[i];
                    bv6 == v6
                        && (proto == 0 || binds[i].proto == proto)
                        && blen <= len
                        && mask(net, blen) == bnet
                })
                .map(|i| i as u16)
                .collect();
            let intervals = intervals(binds, &members);
            let mut addr = [0u8; 16];
            let be = net.to_be_bytes();
            if v6 {
                addr = be;
            } else {
                addr[..4].copy_from_slice(&be[..4]);
            }
            Class {
                proto,
                addr,
                v6,
                len,
                intervals,
                any_port_bind: members.first().copied().unwrap_or(NO_BIND),
            }
        })
        .collect()
}

/// Splits the port space so that each interval has one first matching
/// bind among `members` (in priority order).
fn intervals(binds: &[BindSpec], members: &[u16]) -> Vec<(u16, u16)> {
    let mut starts = BTreeSet::from([0u32]);
    for &m in members {
        let b = &binds[usize::from(m)];
        starts.insert(u32::from(b.port_start));
        starts.insert(u32::from(b.port_end) + 1);
    }
    let mut out: Vec<(u16, u16)> = Vec::new();
    for s in starts.into_iter().filter(|&s| s <= 0xffff) {
        let port = s as u16;
        let bind = members
            .iter()
            .copied()
            .find(|&m| {
                let b = &binds[usize::from(m)];
                b.port_start <= port && port <= b.port_end
            })
            .unwrap_or(NO_BIND);
        if out.last().is_none_or(|&(_, prev)| prev != bind) {
            out.push((port, bind));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use glb_core::classify::LinearClassifier;
    use glb_core::inspect::Lookup;
    use glb_core::model::{Bind, Proto};

    /// The program's lookup, done on the classes in Rust: the longest
    /// entry no longer than `max_len` that holds `addr`, then its port.
    fn lookup(classes: &[Class], proto: u8, addr: IpAddr, max_len: u8, port: Option<u16>) -> u16 {
        let a = bits(&addr);
        let best = classes
            .iter()
            .filter(|c| {
                c.v6 == addr.is_ipv6() && c.proto == proto && c.len <= max_len && {
                    let net = if c.v6 {
                        u128::from_be_bytes(c.addr)
                    } else {
                        u128::from(u32::from_be_bytes([
                            c.addr[0], c.addr[1], c.addr[2], c.addr[3],
                        ])) << 96
                    };
                    mask(a, c.len) == net
                }
            })
            .max_by_key(|c| c.len);
        let Some(c) = best else { return NO_BIND };
        match port {
            None => c.any_port_bind,
            Some(p) => c
                .intervals
                .iter()
                .rev()
                .find(|(s, _)| *s <= p)
                .map_or(NO_BIND, |x| x.1),
        }
    }

    fn common(a: IpAddr, b: IpAddr) -> u8 {
        let x = bits(&a) ^ bits(&b);
        (x.leading_zeros() as u8).min(width(&a))
    }

    /// Seeded, so a failure replays.
    struct Rng(fastrand::Rng);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0.u64(..n)
        }
    }

    fn random_addr(r: &mut Rng, v6: bool) -> IpAddr {
        // Few distinct high bits, so prefixes overlap often.
        if v6 {
            let hi = [0xfd00u16, 0x2001][r.below(2) as usize];
            IpAddr::V6(std::net::Ipv6Addr::new(
                hi,
                0,
                0,
                0,
                0,
                0,
                r.below(4) as u16,
                r.below(8) as u16,
            ))
        } else {
            IpAddr::V4(std::net::Ipv4Addr::new(
                10,
                r.below(3) as u8,
                r.below(4) as u8,
                r.below(8) as u8,
            ))
        }
    }

    #[test]
    fn first_match_in_file_order_like_the_linear_rule() {
        let mut r = Rng(fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15));
        for round in 0..200 {
            let n = 1 + r.below(12) as usize;
            let specs: Vec<BindSpec> = (0..n)
                .map(|_| {
                    let v6 = r.below(3) == 0;
                    let addr = random_addr(&mut r, v6);
                    let w = width(&addr);
                    let prefix_len = [w, w, w - 1, w - 8, w - 16, 0][r.below(6) as usize];
                    let a = r.below(100) as u16;
                    let b = a + r.below(20) as u16;
                    BindSpec {
                        proto: [6, 17][r.below(2) as usize],
                        addr,
                        prefix_len,
                        port_start: a,
                        port_end: b,
                    }
                })
                .collect();
            let classes = build(&specs);
            // Tables of up to three binds each, in order.
            let model: Vec<Bind> = specs
                .iter()
                .map(|s| Bind {
                    addr: s.addr,
                    prefix_len: s.prefix_len,
                    proto: Proto::from_number(s.proto).unwrap(),
                    port_start: s.port_start,
                    port_end: s.port_end,
                })
                .collect();
            let tables: Vec<&[Bind]> = model.chunks(3).collect();
            let table_of = |bind: u16| (bind != NO_BIND).then(|| usize::from(bind) / 3);
            let linear = LinearClassifier::new(tables.iter().copied(), true);
            for _ in 0..200 {
                let v6 = r.below(3) == 0;
                let (dst, other) = (random_addr(&mut r, v6), random_addr(&mut r, v6));
                let port = r.below(130) as u16;
                let proto = [6, 17][r.below(2) as usize];
                let w = width(&dst);
                let t = Lookup::Transport {
                    proto,
                    dst,
                    dst_port: port,
                };
                assert_eq!(
                    table_of(lookup(&classes, proto, dst, w, Some(port))),
                    linear.classify(&t),
                    "round {round}: {t:?} with {specs:?}"
                );
                let e = Lookup::IcmpError {
                    outer_dst: other,
                    quoted_src: dst,
                    quoted_src_port: port,
                };
                assert_eq!(
                    table_of(lookup(&classes, 0, dst, common(dst, other), Some(port))),
                    linear.classify(&e),
                    "round {round}: {e:?} with {specs:?}"
                );
                let echo = Lookup::Echo { dst };
                assert_eq!(
                    table_of(lookup(&classes, 0, dst, w, None)),
                    linear.classify(&echo),
                    "round {round}: {echo:?} with {specs:?}"
                );
            }
        }
    }

    #[test]
    fn intervals_split_at_range_edges() {
        let b = |s, e| BindSpec {
            proto: 6,
            addr: "10.0.0.1".parse().unwrap(),
            prefix_len: 32,
            port_start: s,
            port_end: e,
        };
        let specs = [b(80, 80), b(0, 100), b(65535, 65535)];
        let c = build(&specs);
        let tcp = c.iter().find(|c| c.proto == 6).unwrap();
        assert_eq!(
            tcp.intervals,
            vec![(0, 1), (80, 0), (81, 1), (101, NO_BIND), (65535, 2)]
        );
        assert_eq!(tcp.any_port_bind, 0);
    }
}
