//! Encapsulation in place (SPEC §8): the outer Ethernet, IPv4, UDP and
//! GUE headers are written into the bytes just before the inner IP
//! packet — the old Ethernet header plus the buffer's headroom — so the
//! packet itself is never moved or copied.
//!
//! An [`Encapsulator`] is built once per port from its [`EncapParams`]: it
//! keeps the constant part of the headers as a template and the constant
//! part of both checksums as partial sums, so each packet costs one copy
//! of the template, a few field stores and a checksum pass over the inner
//! packet only.

use std::net::Ipv4Addr;

use crate::route::{Route, V4Route};
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
pub const MAX_EXTRA_HEADROOM: usize = header_len(crate::route::MAX_HOPS) - ethernet::HEADER_LEN;

/// Outer time to live.
pub const TTL: u8 = 64;

const IP_AT: usize = ethernet::HEADER_LEN;
const UDP_AT: usize = IP_AT + ipv4::HEADER_LEN;
const GUE_AT: usize = UDP_AT + udp::HEADER_LEN;

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
    /// The inner packet does not fit in the buffer where the route says,
    /// or the route has no hops.
    #[error("inner packet outside the buffer")]
    OutOfBounds,
    /// The encapsulated packet would exceed the 65,535-byte IPv4 limit.
    #[error("encapsulated packet too large")]
    TooLarge,
}

/// What encapsulating gives: the encapsulated frame's start and length
/// in the buffer, or why there is none (the buffer is then untouched).
pub type Encapsulated = Result<(usize, usize), EncapError>;

/// Writes outer headers for one port's settings.
#[derive(Debug, Clone)]
pub struct Encapsulator {
    params: EncapParams,
    template: [u8; FIXED_HEADER_LEN],
    /// Sum of the outer IPv4 header's constant words.
    ip_const: u64,
    /// Sum of the constant words the UDP checksum covers: pseudo-header
    /// source and protocol, destination port, GUE flags and private type.
    udp_const: u64,
}

fn halves(a: Ipv4Addr) -> u64 {
    let v = u32::from(a);
    u64::from(v >> 16) + u64::from(v & 0xffff)
}

impl Encapsulator {
    /// Prepares the template for `params`.
    pub fn new(params: EncapParams) -> Self {
        let mut t = [0u8; FIXED_HEADER_LEN];
        {
            let mut eth = ethernet::Frame::new_unchecked(&mut t[..]);
            eth.set_dst_addr(params.dst_mac);
            eth.set_src_addr(params.src_mac);
            eth.set_ethertype(ethernet::ethertype::IPV4);
        }
        {
            let mut ip = ipv4::Packet::new_unchecked(&mut t[IP_AT..UDP_AT]);
            ip.set_version_and_header_len(ipv4::HEADER_LEN);
            ip.set_tos(0);
            ip.set_ident(0);
            ip.set_flags_frag(ipv4::FLAG_DF);
            ip.set_ttl(TTL);
            ip.set_protocol(ip_proto::UDP);
            ip.set_src_addr(params.src_ip);
        }
        udp::Packet::new_unchecked(&mut t[UDP_AT..GUE_AT]).set_dst_port(gue::PORT);
        {
            let mut g = gue::Packet::new_unchecked(&mut t[GUE_AT..]);
            g.set_flags(0);
            g.set_private_type(0);
            g.set_next_hop(0);
        }
        let ip_const = 0x4500
            + u64::from(ipv4::FLAG_DF)
            + ((u64::from(TTL) << 8) | u64::from(ip_proto::UDP))
            + halves(params.src_ip);
        let udp_const = halves(params.src_ip) + u64::from(ip_proto::UDP) + u64::from(gue::PORT);
        Encapsulator {
            params,
            template: t,
            ip_const,
            udp_const,
        }
    }

    /// The settings this encapsulator writes.
    pub fn params(&self) -> &EncapParams {
        &self.params
    }

    /// Encapsulates the frame that starts at `frame_start` in `buf`, as
    /// routed by `route`. Everything after the inner IP packet (Ethernet
    /// padding) is left out.
    #[inline(always)]
    pub fn encapsulate(&self, buf: &mut [u8], frame_start: usize, route: &Route) -> Encapsulated {
        let inner = frame_start
            .checked_add(route.ip_offset)
            .ok_or(EncapError::OutOfBounds)?;
        let (len, proto, sport) = (route.ip_len, route.gue_proto, route.udp_src_port());
        match *route.hops() {
            [a] => self.encapsulate_ip(buf, inner, len, proto, sport, &[a]),
            [a, b] => self.encapsulate_ip(buf, inner, len, proto, sport, &[a, b]),
            [a, b, c] => self.encapsulate_ip(buf, inner, len, proto, sport, &[a, b, c]),
            [a, b, c, d] => self.encapsulate_ip(buf, inner, len, proto, sport, &[a, b, c, d]),
            _ => Err(EncapError::OutOfBounds),
        }
    }

    /// [`Encapsulator::encapsulate`] for the common route shape: the same
    /// bytes as for [`V4Route::to_route`], with the layout known at
    /// compile time.
    #[inline(always)]
    pub fn encapsulate_v4(
        &self,
        buf: &mut [u8],
        frame_start: usize,
        route: &V4Route,
    ) -> Encapsulated {
        let inner = frame_start
            .checked_add(ethernet::HEADER_LEN)
            .ok_or(EncapError::OutOfBounds)?;
        self.encapsulate_ip(
            buf,
            inner,
            usize::from(route.ip_len),
            ip_proto::IPV4,
            route.udp_src_port(),
            &route.hops,
        )
    }

    /// Encapsulates the IP packet of `ip_len` bytes at offset `inner` of
    /// `buf` (GUE protocol `gue_proto`) towards `hops[0]`, listing the
    /// other hops in GUE, with outer UDP source port `sport`. The number
    /// of hops is known at compile time, so the header layout is too.
    #[inline(always)]
    pub fn encapsulate_ip<const HOPS: usize>(
        &self,
        buf: &mut [u8],
        inner: usize,
        ip_len: usize,
        gue_proto: u8,
        sport: u16,
        hops: &[Ipv4Addr; HOPS],
    ) -> Encapsulated {
        let Some((&first, rest)) = hops.split_first() else {
            return Err(EncapError::OutOfBounds);
        };
        let hdr = const { header_len(HOPS) };
        let end = inner.checked_add(ip_len).ok_or(EncapError::OutOfBounds)?;
        if end > buf.len() {
            return Err(EncapError::OutOfBounds);
        }
        let start = inner.checked_sub(hdr).ok_or(EncapError::NoHeadroom)?;
        let ip_total =
            u16::try_from(end - start - ethernet::HEADER_LEN).map_err(|_| EncapError::TooLarge)?;
        let udp_len = ip_total - ipv4::HEADER_LEN as u16;
        let n = const { HOPS.saturating_sub(1) as u8 };

        let (head, inner_bytes) = buf[start..end].split_at_mut(hdr);
        // `hdr` is at least the fixed part; a fixed-size view of it lets
        // every field store below go unchecked.
        let Some((fixed, hop_area)) = head.split_first_chunk_mut::<FIXED_HEADER_LEN>() else {
            return Err(EncapError::OutOfBounds);
        };
        *fixed = self.template;

        // Checksums are summed from the values rather than read back from
        // the buffer: reading freshly written narrow stores as wide words
        // stalls the store-forwarding path.
        let dst_sum = halves(first);
        let ip_sum = self.ip_const + u64::from(ip_total) + dst_sum;
        {
            let mut ip = ipv4::Packet::new_unchecked(&mut fixed[IP_AT..UDP_AT]);
            ip.set_total_len(ip_total);
            ip.set_dst_addr(first);
            ip.set_checksum(!checksum::fold(ip_sum));
        }
        {
            let mut g = gue::Packet::new_unchecked(&mut fixed[GUE_AT..]);
            g.set_hlen(1 + n);
            g.set_protocol(gue_proto);
            g.set_hop_count(n);
        }
        let mut hop_sum = 0u64;
        for (slot, h) in hop_area.chunks_exact_mut(4).zip(rest) {
            slot.copy_from_slice(&h.octets());
            hop_sum += halves(*h);
        }
        let csum = if self.params.udp_checksum {
            let sum = self.udp_const
                + dst_sum
                + 2 * u64::from(udp_len)
                + u64::from(sport)
                + ((u64::from(1 + n) << 8) | u64::from(gue_proto))
                + u64::from(n)
                + hop_sum;
            match !checksum::fold(checksum::add(sum, inner_bytes)) {
                // A computed zero means "no checksum" in UDP over IPv4;
                // send the equivalent all-ones form instead.
                0 => 0xffff,
                c => c,
            }
        } else {
            0
        };
        {
            let mut u = udp::Packet::new_unchecked(&mut fixed[UDP_AT..GUE_AT]);
            u.set_src_port(sport);
            u.set_len(udp_len);
            u.set_checksum(csum);
        }
        Ok((start, end - start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glb_testkit::checksum::{csum, transport_v4};
    use glb_testkit::frames::*;

    fn params(udp_checksum: bool) -> EncapParams {
        EncapParams {
            dst_mac: ethernet::Address(GW_MAC),
            src_mac: ethernet::Address([2, 0, 0, 0, 0, 9]),
            src_ip: v4("65.65.65.65"),
            udp_checksum,
        }
    }

    /// SPEC §8, field by field, read back by offset.
    #[test]
    fn outer_headers_as_the_spec_lays_them_out() {
        let frame = tcp4("172.16.1.2", 40000, "10.1.1.1", 80);
        let inner = frame[14..].to_vec();
        let route = Route {
            table: 0,
            hash: 0x1234_5678_9abc_def0,
            flow_hint: 40000,
            hops: [v4("3.4.5.6"), v4("3.4.5.7"), v4("3.4.5.8"), v4("3.4.5.9")],
            hop_count: 4,
            gue_proto: 4,
            ip_offset: 14,
            ip_len: inner.len(),
        };
        let headroom = 64;
        let mut buf = vec![0u8; headroom];
        buf.extend_from_slice(&frame);
        buf.extend_from_slice(&[0; 6]); // Ethernet padding, left out
        let enc = Encapsulator::new(params(true));
        let (start, len) = enc.encapsulate(&mut buf, headroom, &route).unwrap();
        let out = &buf[start..start + len];
        assert_eq!(len, 14 + 20 + 8 + 8 + 12 + inner.len());
        assert_eq!(out[..6], GW_MAC);
        assert_eq!(out[12..14], [0x08, 0x00]);
        let ip = &out[14..34];
        assert_eq!(
            (ip[0], ip[1], ip[6] & 0x40, ip[8], ip[9]),
            (0x45, 0, 0x40, 64, 17)
        );
        assert_eq!(ip[4..6], [0, 0], "identification 0");
        assert_eq!(ip[12..16], [65, 65, 65, 65]);
        assert_eq!(ip[16..20], [3, 4, 5, 6]);
        assert_eq!(csum(ip), 0, "header checksum");
        let udp = &out[34..];
        let sport = u16::from_be_bytes([udp[0], udp[1]]);
        assert_eq!(sport, route.udp_src_port());
        assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 19523);
        assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
        assert_eq!(transport_v4(v4("65.65.65.65"), v4("3.4.5.6"), 17, udp), 0);
        let gue = &udp[8..];
        assert_eq!(gue[..8], [4, 4, 0, 0, 0, 0, 0, 3]);
        assert_eq!(gue[8..20], [3, 4, 5, 7, 3, 4, 5, 8, 3, 4, 5, 9]);
        assert_eq!(&gue[20..], inner.as_slice());
    }

    #[test]
    fn without_room_or_with_checksums_off() {
        let frame = tcp4("172.16.1.2", 40000, "10.1.1.1", 80);
        let route = V4Route {
            table: 0,
            hash: 7,
            flow_hint: 1,
            hops: [v4("3.4.5.6"), v4("3.4.5.7")],
            ip_len: (frame.len() - 14) as u16,
        };
        let enc = Encapsulator::new(params(false));
        let mut tight = frame.clone();
        assert_eq!(
            enc.encapsulate_v4(&mut tight, 0, &route),
            Err(EncapError::NoHeadroom)
        );
        assert_eq!(tight, frame, "untouched on error");
        let mut buf = vec![0u8; MAX_EXTRA_HEADROOM];
        buf.extend_from_slice(&frame);
        let (start, _) = enc
            .encapsulate_v4(&mut buf, MAX_EXTRA_HEADROOM, &route)
            .unwrap();
        assert_eq!(buf[start + 40..start + 42], [0, 0], "UDP checksum off");
        // The common-shape encapsulation writes what the general one does.
        let mut general = vec![0u8; MAX_EXTRA_HEADROOM];
        general.extend_from_slice(&frame);
        let g = enc
            .encapsulate(&mut general, MAX_EXTRA_HEADROOM, &route.to_route())
            .unwrap();
        assert_eq!(g.0, start);
        assert_eq!(general, buf);
    }
}
