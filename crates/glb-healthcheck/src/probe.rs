//! The bytes of a tunnel probe and the parsing of its reply.
//!
//! A probe is the UDP payload sent to the proxy's GUE (or FOU) port:
//!
//! ```text
//! GUE  ver 0, C 0, hlen 1, proto 4, flags 0 | GLB private data: type 0, next hop 0, 0 hops
//!  or GRE  key present, protocol 0x0800, key 0   (GRE-in-UDP, as the original sends it)
//! IPv4 ihl 5, DF, ttl 64, proto 1, src = our address towards the proxy, dst = the proxy
//! ICMP echo request, id, seq, payload = the check's unique token
//! ```

use std::net::Ipv4Addr;

/// Which encapsulation the proxy expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    /// GUE with GLB private data (the `gue` check).
    Gue,
    /// GRE with a zero key inside UDP (the `fou` check).
    GreInUdp,
}

const ENCAP_LEN: usize = 8;
const IPV4_LEN: usize = 20;
const ICMP_LEN: usize = 8;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const IP_PROTO_ICMP: u8 = 1;

/// The UDP payload of one probe.
pub fn echo_request(
    encap: Encap,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    let ip_len = IPV4_LEN + ICMP_LEN + payload.len();
    let mut out = Vec::with_capacity(ENCAP_LEN + ip_len);
    match encap {
        // hlen 1 (one 4-byte word of private data), inner protocol 4 (IPv4),
        // flags 0; private data: type 0, next hop 0, hop count 0.
        Encap::Gue => out.extend_from_slice(&[0x01, 0x04, 0, 0, 0, 0, 0, 0]),
        // Key present, protocol IPv4, key 0.
        Encap::GreInUdp => out.extend_from_slice(&[0x20, 0x00, 0x08, 0x00, 0, 0, 0, 0]),
    }
    let ip_start = out.len();
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&(ip_len as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0x40, 0, 64, IP_PROTO_ICMP, 0, 0]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    let sum = checksum(&out[ip_start..]);
    out[ip_start + 10..ip_start + 12].copy_from_slice(&sum.to_be_bytes());
    let icmp_start = out.len();
    out.extend_from_slice(&[ICMP_ECHO_REQUEST, 0, 0, 0]);
    out.extend_from_slice(&ident.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(payload);
    let sum = checksum(&out[icmp_start..]);
    out[icmp_start + 2..icmp_start + 4].copy_from_slice(&sum.to_be_bytes());
    out
}

/// The payload of an ICMP echo reply, given a whole IPv4 packet as a raw
/// socket returns it; `None` for anything else.
pub fn echo_reply_payload(packet: &[u8]) -> Option<&[u8]> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    if ihl < IPV4_LEN || total < ihl || *packet.get(9)? != IP_PROTO_ICMP {
        return None;
    }
    let icmp = packet.get(ihl..total.min(packet.len()))?;
    if icmp.len() < ICMP_LEN || icmp[0] != ICMP_ECHO_REPLY || icmp[1] != 0 {
        return None;
    }
    Some(&icmp[ICMP_LEN..])
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
