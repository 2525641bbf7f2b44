//! Frames built byte by byte, independently of the code under test (the
//! IPv4 header checksum comes from [`crate::checksum`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::checksum::csum;

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
