//! Helpers shared by the director's tests. Everything here is written
//! independently of the code under test: frames are assembled byte by
//! byte, and SipHash-2-4 and the Internet checksum are re-implemented
//! from their specifications.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// The conformance directory (GLB_CONFORMANCE_DIR or ../shared/conformance
/// beside the repository).
pub fn conformance_dir() -> PathBuf {
    match std::env::var_os("GLB_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    }
}

pub const GW_MAC: [u8; 6] = [0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0xaa, 0xbb, 0x01];
pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0xcc, 0xdd, 0x02];

/// Ethernet header + payload.
pub fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet with a 20-byte header and a valid header checksum.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ident: u16, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&[0, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = csum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// An IPv6 packet with the given flow label and next header.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, flow: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = (0x6000_0000u32 | (flow & 0xf_ffff)).to_be_bytes().to_vec();
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// A 20-byte TCP header (SYN) followed by `data`; checksum left 0.
pub fn tcp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0, 0, 0, 0, 0]);
    t.extend_from_slice(data);
    t
}

/// A UDP header followed by `data`; checksum left 0.
pub fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    u
}

/// An ICMP message: type, code, checksum 0, four `rest` bytes, data.
pub fn icmp(ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(data);
    m
}

pub fn tcp4(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    eth(
        0x0800,
        &ipv4(v4(src), v4(dst), 6, 1, &tcp(sport, dport, &[])),
    )
}

pub fn udp4(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    eth(
        0x0800,
        &ipv4(v4(src), v4(dst), 17, 1, &udp(sport, dport, b"data")),
    )
}

pub fn tcp6(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    eth(
        0x86dd,
        &ipv6(v6(src), v6(dst), 6, 0, &tcp(sport, dport, &[])),
    )
}

/// ICMPv4 fragmentation-needed from `router` to `vip`, quoting a TCP
/// packet `vip:vport → client:cport`.
pub fn frag_needed4(router: &str, vip: &str, vport: u16, client: &str, cport: u16) -> Vec<u8> {
    let quoted = ipv4(v4(vip), v4(client), 6, 7, &tcp(vport, cport, &[]));
    let msg = icmp(3, 4, [0, 0, 0x05, 0xdc], &quoted[..28]);
    eth(0x0800, &ipv4(v4(router), v4(vip), 1, 9, &msg))
}

/// ICMPv6 packet-too-big quoting a TCP packet `vip:vport → client:cport`.
pub fn too_big6(router: &str, vip: &str, vport: u16, client: &str, cport: u16) -> Vec<u8> {
    let quoted = ipv6(v6(vip), v6(client), 6, 0, &tcp(vport, cport, &[]));
    let msg = icmp(2, 0, [0, 0, 0x05, 0x00], &quoted[..48]);
    eth(0x86dd, &ipv6(v6(router), v6(vip), 58, 0, &msg))
}

pub fn echo4(src: &str, dst: &str, ident: u16) -> Vec<u8> {
    let msg = icmp(8, 0, [0, 1, 0, 1], b"ping");
    eth(0x0800, &ipv4(v4(src), v4(dst), 1, ident, &msg))
}

pub fn echo6(src: &str, dst: &str, flow: u32) -> Vec<u8> {
    let msg = icmp(128, 0, [0, 1, 0, 1], b"ping");
    eth(0x86dd, &ipv6(v6(src), v6(dst), 58, flow, &msg))
}

pub fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// RFC 1071 checksum, word by word.
pub fn csum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for (i, b) in data.iter().enumerate() {
        sum += if i % 2 == 0 {
            u32::from(*b) << 8
        } else {
            u32::from(*b)
        };
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    !(sum as u16)
}

/// SipHash-2-4 written from the paper; the output's 8 bytes read as a
/// little-endian u64, like the reference implementation.
pub fn siphash(key: &[u8; 16], msg: &[u8]) -> u64 {
    let k0 = u64::from_le_bytes(key[..8].try_into().unwrap());
    let k1 = u64::from_le_bytes(key[8..].try_into().unwrap());
    let mut v = [
        k0 ^ 0x736f6d6570736575,
        k1 ^ 0x646f72616e646f6d,
        k0 ^ 0x6c7967656e657261,
        k1 ^ 0x7465646279746573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut padded = msg.to_vec();
    let tail = (msg.len() as u64 & 0xff) << 56;
    while padded.len() % 8 != 0 {
        padded.push(0);
    }
    let mut blocks: Vec<u64> = padded
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    if msg.len() % 8 == 0 {
        blocks.push(tail);
    } else {
        *blocks.last_mut().unwrap() |= tail;
    }
    for m in blocks {
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

pub fn hex16(s: &str) -> [u8; 16] {
    let mut k = [0u8; 16];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    k
}

/// Reads row `row` of table `t` of a binary table image directly by
/// offset (SPEC §3): (primary index, secondary index).
pub fn bin_row(bin: &[u8], t: usize, row: usize) -> (u32, u32) {
    let table = 24 + t * 537_624;
    let rows = table + 4 + 256 * 24 + 4 + 256 * 28 + 16;
    let at = rows + row * 8;
    let w = |o: usize| u32::from_le_bytes(bin[o..o + 4].try_into().unwrap());
    (w(at), w(at + 4))
}

/// Backend `i` of table `t` as IPv4 (the first four address bytes).
pub fn bin_backend_v4(bin: &[u8], t: usize, i: usize) -> Ipv4Addr {
    let at = 24 + t * 537_624 + 4 + i * 24 + 4;
    Ipv4Addr::new(bin[at], bin[at + 1], bin[at + 2], bin[at + 3])
}

/// Compiles forwarding-table JSON into a binary image.
pub fn compile(json: &str) -> Vec<u8> {
    let t = glb_core::ForwardingTables::from_json("test", json).expect("test table is valid");
    glb_core::table::compile(&t)
}

/// A table JSON with the given tables, each `(hash_key, binds JSON, backends)`.
pub fn tables_json(tables: &[(&str, &str, &[&str])]) -> String {
    let ts: Vec<String> = tables
        .iter()
        .map(|(key, binds, backends)| {
            let bs: Vec<String> = backends
                .iter()
                .map(|b| format!(r#"{{"ip": "{b}", "state": "active", "healthy": true}}"#))
                .collect();
            format!(
                r#"{{"hash_key": "{key}", "seed": "00112233445566778899aabbccddeeff", "binds": [{binds}], "backends": [{}]}}"#,
                bs.join(",")
            )
        })
        .collect();
    format!(r#"{{"tables": [{}]}}"#, ts.join(","))
}
