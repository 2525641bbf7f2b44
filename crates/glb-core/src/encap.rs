//! Encapsulation in place (SPEC §8): the outer Ethernet, IPv4, UDP and
//! GUE headers are written into the bytes just before the inner IP
//! packet — the old Ethernet header plus the buffer's headroom — so the
//! packet itself is never moved or copied.

use std::net::Ipv4Addr;

use crate::forward::Route;
use crate::wire::{checksum, ethernet, gue, ip_proto, ipv4, udp};

/// Outer headers before the GUE hop list: Ethernet, IPv4, UDP, GUE base
/// and GLB private data.
pub const FIXED_HEADER_LEN: usize =
    ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN + gue::GLB_HEADER_LEN;

/// Outer header length for a route with `hop_count` hops (the first hop
/// is the outer destination, the others are listed in GUE).
pub const fn header_len(hop_count: usize) -> usize {
    FIXED_HEADER_LEN + 4 * hop_count.saturating_sub(1)
}

/// Headroom a buffer needs in front of a received frame for the largest
/// encapsulation (four hops): the outer headers replace the frame's own
/// 14-byte Ethernet header.
pub const MAX_EXTRA_HEADROOM: usize = header_len(crate::forward::MAX_HOPS) - ethernet::HEADER_LEN;

/// Per-port settings of the outer headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncapParams {
    /// Outer Ethernet destination (`outbound_gateway_mac`).
    pub dst_mac: ethernet::Address,
    /// Outer Ethernet source (the port's MAC).
    pub src_mac: ethernet::Address,
    /// Outer IPv4 source (`outbound_src_ip`).
    pub src_ip: Ipv4Addr,
    /// Whether to compute the UDP checksum (otherwise it is sent as 0).
    pub udp_checksum: bool,
}

/// Why a packet could not be encapsulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncapError {
    /// Not enough room before the inner packet for the outer headers.
    #[error("not enough headroom for the outer headers")]
    NoHeadroom,
    /// The inner packet does not fit in the buffer where the route says.
    #[error("inner packet outside the buffer")]
    OutOfBounds,
    /// The encapsulated packet would exceed the 65,535-byte IPv4 limit.
    #[error("encapsulated packet too large")]
    TooLarge,
}

/// Encapsulates the frame that starts at `frame_start` in `buf`, as
/// routed by `route`. Returns the encapsulated frame's start and length in
/// `buf`; everything after the inner IP packet (Ethernet padding) is left
/// out. On error the buffer is untouched.
#[inline]
pub fn encapsulate(
    buf: &mut [u8],
    frame_start: usize,
    route: &Route,
    params: &EncapParams,
) -> Result<(usize, usize), EncapError> {
    let hops = route.hops();
    let Some((&first, rest)) = hops.split_first() else {
        return Err(EncapError::OutOfBounds);
    };
    if rest.len() > gue::MAX_HOPS {
        return Err(EncapError::TooLarge);
    }
    let hdr = header_len(hops.len());
    let inner = frame_start
        .checked_add(route.ip_offset)
        .ok_or(EncapError::OutOfBounds)?;
    let end = inner
        .checked_add(route.ip_len)
        .ok_or(EncapError::OutOfBounds)?;
    if end > buf.len() {
        return Err(EncapError::OutOfBounds);
    }
    let start = inner.checked_sub(hdr).ok_or(EncapError::NoHeadroom)?;
    let ip_total = end - start - ethernet::HEADER_LEN;
    let ip_total = u16::try_from(ip_total).map_err(|_| EncapError::TooLarge)?;
    let udp_len = ip_total - ipv4::HEADER_LEN as u16;

    let out = &mut buf[start..end];
    let (eth_bytes, rest_bytes) = out.split_at_mut(ethernet::HEADER_LEN);
    let mut eth = ethernet::Frame::new_unchecked(eth_bytes);
    eth.set_dst_addr(params.dst_mac);
    eth.set_src_addr(params.src_mac);
    eth.set_ethertype(ethernet::ethertype::IPV4);

    let (ip_bytes, udp_bytes) = rest_bytes.split_at_mut(ipv4::HEADER_LEN);
    ipv4::Repr {
        src_addr: params.src_ip,
        dst_addr: first,
        protocol: ip_proto::UDP,
        payload_len: udp_len,
        ttl: 64,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut ipv4::Packet::new_unchecked(ip_bytes));

    {
        let mut u = udp::Packet::new_unchecked(&mut udp_bytes[..udp::HEADER_LEN]);
        u.set_src_port(route.udp_src_port());
        u.set_dst_port(gue::PORT);
        u.set_len(udp_len);
        u.set_checksum(0);
    }
    gue::Repr {
        protocol: route.gue_proto,
        next_hop: 0,
        hops: rest,
    }
    .emit(&mut gue::Packet::new_unchecked(
        &mut udp_bytes[udp::HEADER_LEN..],
    ))
    .map_err(|_| EncapError::OutOfBounds)?;

    if params.udp_checksum {
        let sum = checksum::pseudo_header_v4(params.src_ip, first, ip_proto::UDP, udp_len);
        let mut c = !checksum::fold(checksum::add(sum, udp_bytes));
        // A computed zero means "no checksum" in UDP over IPv4; send the
        // equivalent all-ones form instead.
        if c == 0 {
            c = 0xffff;
        }
        udp::Packet::new_unchecked(&mut udp_bytes[..udp::HEADER_LEN]).set_checksum(c);
    }
    Ok((start, end - start))
}
