//! The XDP program against glb-core's packet path (`path::process_one`,
//! a frame in, a verdict and the output bytes out): 100,000 frames —
//! well-formed ones for every kind of bind, then the same cut off at
//! every offset, bit-flipped, with odd header lengths, IPv6 extension
//! headers, ICMP errors quoting cut-off packets — must get the same
//! verdict and, when forwarded, the same bytes from both.
//!
//! Frames shorter than an Ethernet header are left out: the kernel
//! neither delivers them to XDP nor accepts them in a test run.

mod support;

use std::net::{Ipv4Addr, Ipv6Addr};

use glb_core::ForwardingTables;
use glb_core::encap::{EncapParams, Encapsulator};
use glb_core::flowhash::HashFields;
use glb_core::path::{HEADROOM, OwnedFrame, Verdict, process_one};
use glb_core::route::{Forwarder, RouteOptions};
use glb_core::table::{TableFile, compile};
use glb_core::wire::ethernet;
use glb_director_xdp::test_run::{self, action, action_name};
use support::*;

/// Two tables: binds of every kind (single ports, ranges, prefixes, both
/// protocols and address families) and backends in every state, an IPv6
/// one among them.
const TABLES: &str = include_str!("data/differential-tables.json");

/// Seeded, so a failure replays.
struct Rng(fastrand::Rng);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.u64(..)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0.u64(..n)
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.0.usize(..xs.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.0.u8(..)).collect()
    }
}

const V4_DSTS: &[[u8; 4]] = &[
    [10, 10, 10, 10],
    [10, 10, 10, 77],
    [10, 20, 1, 2],
    [10, 20, 30, 40],
    [10, 30, 0, 1],
];
const V6_DSTS: &[&str] = &[
    "fd00::10",
    "fd00::99",
    "fd00:1::5",
    "fd00:2::1",
    "2001:db8::1",
];
/// Destinations, protocols and ports that some bind matches.
const V4_BOUND: &[([u8; 4], u8, u16)] = &[
    ([10, 10, 10, 10], 6, 80),
    ([10, 10, 10, 10], 6, 445),
    ([10, 20, 1, 2], 17, 5000),
    ([10, 20, 30, 40], 17, 5050),
    ([10, 10, 10, 77], 6, 9999),
];
const V6_BOUND: &[(&str, u8, u16)] = &[
    ("fd00::10", 6, 443),
    ("fd00:1::5", 17, 53),
    ("fd00:2::1", 6, 1000),
];
const PORTS: &[u16] = &[
    80, 81, 440, 445, 450, 451, 53, 5000, 5050, 5100, 5101, 1, 1000, 1001, 0, 65535,
];

fn ipv4(r: &mut Rng, proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
    let total = 20 + l4.len() as u16;
    let frag: u16 = if r.below(10) == 0 {
        r.pick(&[0x4000, 0x2000, 0x0001, 0x1fff])
    } else {
        0x4000
    };
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&(r.next() as u16).to_be_bytes());
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(l4);
    p
}

/// An IPv6 packet, from a random client unless `src` is given.
fn ipv6(r: &mut Rng, next: u8, src: Option<Ipv6Addr>, dst: Ipv6Addr, l4: &[u8]) -> Vec<u8> {
    let src = src.unwrap_or_else(|| v6_src(r));
    let mut p = (0x6000_0000u32 | (r.next() as u32 & 0xf_ffff))
        .to_be_bytes()
        .to_vec();
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(l4);
    p
}

fn ports(sport: u16, dport: u16, rest: &[u8]) -> Vec<u8> {
    let mut l4 = sport.to_be_bytes().to_vec();
    l4.extend_from_slice(&dport.to_be_bytes());
    l4.extend_from_slice(rest);
    l4
}

fn eth(r: &mut Rng, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, r.below(4) as u8];
    f.extend_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    // Ethernet padding now and then.
    if r.below(4) == 0 {
        let n = r.below(20) as usize;
        f.extend(std::iter::repeat_n(0, n));
    }
    f
}

fn v4_src(r: &mut Rng) -> [u8; 4] {
    [
        r.pick(&[1, 100, 172, 203]),
        r.next() as u8,
        r.next() as u8,
        r.next() as u8,
    ]
}

fn v6_src(r: &mut Rng) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, r.next() as u16, 0, 0, 0, 0, r.next() as u16)
}

/// A well-formed frame of one of the kinds the director sees.
fn base_frame(r: &mut Rng) -> Vec<u8> {
    let payload_len = r.pick(&[0usize, 0, 6, 20, 100, 600, 1400]);
    match r.below(12) {
        0..=3 => {
            let (dst, proto, dport) = if r.below(2) == 0 {
                r.pick(V4_BOUND)
            } else {
                (r.pick(V4_DSTS), r.pick(&[6u8, 17]), r.pick(PORTS))
            };
            let l4 = ports(r.next() as u16, dport, &r.bytes(16 + payload_len));
            let src = v4_src(r);
            let ip = ipv4(r, proto, src, dst, &l4);
            eth(r, 0x0800, &ip)
        }
        4 => {
            // IPv4 with options (IHL 6..15).
            let ihl = 6 + r.below(10) as usize;
            let l4 = ports(r.next() as u16, r.pick(PORTS), &r.bytes(12));
            let (src, dst) = (v4_src(r), r.pick(V4_DSTS));
            let mut ip = ipv4(r, 6, src, dst, &[]);
            ip[0] = 0x40 | ihl as u8;
            ip.extend(r.bytes((ihl - 5) * 4));
            ip.extend_from_slice(&l4);
            let total = ip.len() as u16;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            eth(r, 0x0800, &ip)
        }
        5..=6 => {
            let (dst, proto, dport) = if r.below(2) == 0 {
                r.pick(V6_BOUND)
            } else {
                (r.pick(V6_DSTS), r.pick(&[6u8, 17]), r.pick(PORTS))
            };
            let dst: Ipv6Addr = dst.parse().unwrap();
            let l4 = ports(r.next() as u16, dport, &r.bytes(16 + payload_len));
            let ip = if r.below(4) == 0 {
                // A hop-by-hop options header before the transport header.
                let mut ext = vec![proto, 0, 1, 4, 0, 0, 0, 0];
                ext.extend_from_slice(&l4);
                ipv6(r, 0, None, dst, &ext)
            } else {
                ipv6(r, proto, None, dst, &l4)
            };
            eth(r, 0x86dd, &ip)
        }
        7 => {
            // ICMP fragmentation needed, quoting a packet from a VIP.
            let quoted_l4 = ports(r.pick(PORTS), r.next() as u16, &r.bytes(4));
            let (vip, client) = (r.pick(V4_DSTS), v4_src(r));
            let quoted = ipv4(r, 6, vip, client, &quoted_l4);
            let keep = 20 + r.below(13) as usize;
            let mut icmp = vec![3, r.pick(&[4u8, 4, 1]), 0, 0, 0, 0, 5, 0xdc];
            icmp.extend_from_slice(&quoted[..keep.min(quoted.len())]);
            let outer_dst = if r.below(2) == 0 {
                vip
            } else {
                r.pick(V4_DSTS)
            };
            let src = v4_src(r);
            let ip = ipv4(r, 1, src, outer_dst, &icmp);
            eth(r, 0x0800, &ip)
        }
        8 => {
            // ICMPv6 packet too big.
            let vip: Ipv6Addr = r.pick(V6_DSTS).parse().unwrap();
            let quoted_l4 = ports(r.pick(PORTS), r.next() as u16, &r.bytes(4));
            let client = v6_src(r);
            let quoted = ipv6(r, 6, Some(vip), client, &quoted_l4);
            let keep = 40 + r.below(11) as usize;
            let mut icmp = vec![2, 0, 0, 0, 0, 0, 5, 0xdc];
            icmp.extend_from_slice(&quoted[..keep.min(quoted.len())]);
            let outer: Ipv6Addr = if r.below(2) == 0 {
                vip
            } else {
                r.pick(V6_DSTS).parse().unwrap()
            };
            let ip = ipv6(r, 58, None, outer, &icmp);
            eth(r, 0x86dd, &ip)
        }
        kind @ 9..=10 => {
            // Echo requests (and other ICMP), over IPv4 (9) or IPv6 (10).
            let v6 = kind == 10;
            let ty = r.pick(if v6 {
                &[128u8, 128, 129, 135]
            } else {
                &[8u8, 8, 0, 13]
            });
            let mut icmp = vec![ty, 0, 0, 0];
            icmp.extend(r.bytes(4 + payload_len.min(56)));
            if v6 {
                let dst: Ipv6Addr = r.pick(V6_DSTS).parse().unwrap();
                let ip = ipv6(r, 58, None, dst, &icmp);
                eth(r, 0x86dd, &ip)
            } else {
                let (src, dst) = (v4_src(r), r.pick(V4_DSTS));
                let ip = ipv4(r, 1, src, dst, &icmp);
                eth(r, 0x0800, &ip)
            }
        }
        _ => {
            // Not IP, or random bytes behind an IP ethertype.
            let ty = r.pick(&[0x0806u16, 0x8100, 0x0800, 0x86dd]);
            let n = r.below(80) as usize;
            let body = r.bytes(n);
            eth(r, ty, &body)
        }
    }
}

/// A damaged copy: cut off, bits flipped, lengths or header fields changed.
fn mutate(r: &mut Rng, f: &mut Vec<u8>) {
    match r.below(5) {
        0 => {
            let n = 14 + r.below((f.len() - 13) as u64) as usize;
            f.truncate(n);
        }
        1 => {
            for _ in 0..1 + r.below(4) {
                let i = r.below(f.len() as u64) as usize;
                f[i] ^= 1 << r.below(8);
            }
        }
        2 if f.len() > 18 => {
            // The stated length: IPv4 total length or IPv6 payload length.
            let at = if f[12] == 0x86 { 18 } else { 16 };
            let v = r
                .pick(&[0u16, 1, 19, 20, 21, 39, 40, 41, 0xffff])
                .wrapping_add(r.below(3) as u16);
            if f.len() >= at + 2 {
                f[at..at + 2].copy_from_slice(&v.to_be_bytes());
            }
        }
        3 if f.len() > 14 => {
            // Version and IHL.
            f[14] = r.pick(&[0x40u8, 0x41, 0x44, 0x46, 0x4f, 0x45, 0x65, 0x60, 0x55]);
        }
        _ => {
            let extra = r.below(40) as usize;
            let tail = r.bytes(extra);
            f.extend(tail);
        }
    }
}

/// Frames for one configuration: a base frame cut off at every offset now
/// and then, else the base frame and two mutated copies.
fn frames(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut r = Rng(fastrand::Rng::with_seed(seed));
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let base = base_frame(&mut r);
        // Every offset of short frames: the headers are all there is.
        if base.len() <= 160 && r.below(25) == 0 {
            for n in 14..=base.len() {
                out.push(base[..n].to_vec());
            }
        } else {
            out.push(base.clone());
            for _ in 0..2 {
                let mut m = base.clone();
                mutate(&mut r, &mut m);
                if m.len() >= 14 {
                    out.push(m);
                }
            }
        }
    }
    out.truncate(count);
    out
}

/// What glb-core's packet path does with a frame: its verdict as XDP
/// would give it, and the frame it leaves.
fn reference(fwd: &Forwarder, params: EncapParams, frame: &[u8]) -> (u32, Option<Vec<u8>>) {
    // The program's source MAC: the address the frame was sent to.
    let mut src = [0u8; 6];
    src.copy_from_slice(&frame[..6]);
    let enc = Encapsulator::new(EncapParams {
        src_mac: ethernet::Address(src),
        ..params
    });
    let mut buf = OwnedFrame::new(frame, HEADROOM);
    match process_one(fwd, &enc, &mut buf) {
        Verdict::Forward(_) => (action::TX, Some(buf.frame().to_vec())),
        Verdict::Unclassified => (action::PASS, Some(frame.to_vec())),
        Verdict::RouteFailed { .. } | Verdict::EncapFailed { .. } => (action::DROP, None),
    }
}

#[test]
fn program_and_glb_core_agree_on_100000_frames() {
    let model = ForwardingTables::from_json("differential", TABLES).unwrap();
    let table = compile(&model);
    let file = TableFile::parse(&table).unwrap();
    let all = HashFields {
        src_addr: true,
        dst_addr: true,
        src_port: true,
        dst_port: true,
    };
    let params = |udp_checksum| EncapParams {
        dst_mac: ethernet::Address([0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f]),
        src_mac: ethernet::Address::ZERO,
        src_ip: Ipv4Addr::new(198, 51, 100, 7),
        udp_checksum,
    };
    let configs = [
        (RouteOptions::default(), params(true), 40_000),
        (
            RouteOptions {
                hash_fields: all,
                alt_hash_fields: Some(HashFields::SRC_ADDR),
                forward_icmp_echo: true,
            },
            params(true),
            40_000,
        ),
        (
            RouteOptions {
                hash_fields: HashFields {
                    dst_port: true,
                    ..HashFields::NONE
                },
                alt_hash_fields: None,
                forward_icmp_echo: false,
            },
            params(false),
            20_000,
        ),
    ];
    let mut total = 0;
    let mut seen = [0usize; 5];
    for (n, (options, encap, count)) in configs.iter().enumerate() {
        let fwd = Forwarder::new(&file, *options);
        let director = director_with(&table, options, encap);
        let seed = 0x5eed_0000 + n as u64;
        for (i, frame) in frames(seed, *count).iter().enumerate() {
            let (want_action, want_frame) = reference(&fwd, *encap, frame);
            let got = test_run::run(director.program_fd(), frame, 1)
                .unwrap_or_else(|e| panic!("config {n} frame {i}: test run: {e}"));
            let what = || format!("config {n} (seed {seed:#x}) frame {i}: {:02x?}", frame);
            assert_eq!(
                action_name(got.action),
                action_name(want_action),
                "{}",
                what()
            );
            if let Some(want) = want_frame {
                assert_eq!(got.frame, want, "{}", what());
            }
            seen[want_action as usize] += 1;
            total += 1;
        }
    }
    assert_eq!(total, 100_000);
    eprintln!(
        "{total} frames: {} XDP_TX, {} XDP_PASS, {} XDP_DROP",
        seen[action::TX as usize],
        seen[action::PASS as usize],
        seen[action::DROP as usize]
    );
    // The generator must exercise every verdict substantially.
    for a in [action::TX, action::PASS, action::DROP] {
        assert!(
            seen[a as usize] > 1_000,
            "too few {}: {seen:?}",
            action_name(a)
        );
    }
}
