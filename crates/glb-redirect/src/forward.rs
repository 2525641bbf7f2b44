//! Building the packet that goes to the next hop (SPEC §11 step 4): the
//! GUE payload as received, with `next_hop` incremented, behind a fresh
//! outer IPv4 and UDP header from this host to the hop.
//!
//! The UDP socket hands the daemon the payload only, so the outer headers
//! are rebuilt rather than patched: addresses per the spec, the
//! director's UDP source port (it carries the flow's entropy), the
//! received TOS and TTL, DF set as the director sends it, and both
//! checksums computed afresh.

use std::net::Ipv4Addr;

use glb_core::wire::{checksum, gue, ip_proto, ipv4, udp};

/// Bytes of outer header written in front of the GUE payload.
pub const OUTER_LEN: usize = ipv4::HEADER_LEN + udp::HEADER_LEN;

/// Offset of the `next_hop` byte in the GUE header.
const NEXT_HOP_AT: usize = 6;

/// The outer header fields of a forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer {
    /// This host (the address the packet was sent to).
    pub src: Ipv4Addr,
    /// The next hop.
    pub dst: Ipv4Addr,
    /// UDP source port, kept from the received packet.
    pub src_port: u16,
    /// UDP destination port (the GUE port).
    pub dst_port: u16,
    /// Type of service, kept from the received packet.
    pub tos: u8,
    /// Time to live, kept from the received packet.
    pub ttl: u8,
    /// Whether to compute the UDP checksum (otherwise 0 is sent).
    pub udp_checksum: bool,
}

/// Why a packet could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The buffer has no room for the outer headers and the GUE header.
    #[error("buffer too short for the outer and GUE headers")]
    TooShort,
    /// The result would exceed the 65,535-byte IPv4 limit.
    #[error("forwarded packet would exceed 65535 bytes")]
    TooLarge,
}

/// Turns `frame` — [`OUTER_LEN`] bytes of headroom followed by a GUE
/// payload that passed [`crate::decide::classify`] — into the IPv4 packet
/// for the next hop: increments `next_hop` and writes the outer headers
/// into the headroom.
pub fn build(frame: &mut [u8], outer: &Outer) -> Result<(), BuildError> {
    if frame.len() < OUTER_LEN + gue::GLB_HEADER_LEN {
        return Err(BuildError::TooShort);
    }
    let total = u16::try_from(frame.len()).map_err(|_| BuildError::TooLarge)?;
    let udp_len = total - ipv4::HEADER_LEN as u16;

    let (ip_bytes, rest) = frame.split_at_mut(ipv4::HEADER_LEN);
    rest[udp::HEADER_LEN + NEXT_HOP_AT] = rest[udp::HEADER_LEN + NEXT_HOP_AT].wrapping_add(1);

    let mut ip = ipv4::Packet::new_unchecked(ip_bytes);
    ipv4::Repr {
        src_addr: outer.src,
        dst_addr: outer.dst,
        protocol: ip_proto::UDP,
        payload_len: udp_len,
        ttl: outer.ttl,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut ip);
    if outer.tos != 0 {
        ip.set_tos(outer.tos);
        ip.fill_checksum();
    }

    {
        let mut u = udp::Packet::new_unchecked(&mut rest[..udp::HEADER_LEN]);
        u.set_src_port(outer.src_port);
        u.set_dst_port(outer.dst_port);
        u.set_len(udp_len);
        u.set_checksum(0);
    }
    if outer.udp_checksum {
        let sum = checksum::pseudo_header_v4(outer.src, outer.dst, ip_proto::UDP, udp_len);
        let mut c = !checksum::fold(checksum::add(sum, rest));
        // Zero means "no checksum" in UDP over IPv4.
        if c == 0 {
            c = 0xffff;
        }
        udp::Packet::new_unchecked(&mut rest[..udp::HEADER_LEN]).set_checksum(c);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outer(udp_checksum: bool) -> Outer {
        Outer {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            src_port: 0x8123,
            dst_port: 19523,
            tos: 0x10,
            ttl: 61,
            udp_checksum,
        }
    }

    /// GUE with one hop (10.0.0.2), next_hop 0, and a 4-byte stand-in
    /// for the inner packet.
    const GUE: [u8; 16] = [
        0x02, 0x04, 0, 0, 0, 0, 0, 1, 10, 0, 0, 2, 0xde, 0xad, 0xbe, 0xef,
    ];

    #[test]
    fn builds_the_outer_headers() {
        let mut frame = vec![0u8; OUTER_LEN];
        frame.extend_from_slice(&GUE);
        build(&mut frame, &outer(true)).unwrap();

        // Expected bytes written out by hand from the field values.
        let expect_ip: [u8; 20] = [
            0x45, 0x10, 0x00, 44, 0, 0, 0x40, 0, 61, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        assert_eq!(&frame[..10], &expect_ip[..10]);
        assert_eq!(&frame[12..20], &expect_ip[12..20]);
        let ip = ipv4::Packet::new_checked(&frame[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(&frame[20..26], &[0x81, 0x23, 0x4c, 0x43, 0, 24]);
        // next_hop went from 0 to 1, the rest of the payload is untouched.
        assert_eq!(frame[28 + 6], 1);
        assert_eq!(&frame[28 + 7..], &GUE[7..]);
        // A valid UDP checksum sums (with the pseudo-header) to all ones.
        let sum = checksum::pseudo_header_v4(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            17,
            24,
        );
        assert_eq!(checksum::fold(checksum::add(sum, &frame[20..])), 0xffff);
        assert_ne!(&frame[26..28], &[0, 0]);
    }

    #[test]
    fn checksum_can_be_left_out() {
        let mut frame = vec![0u8; OUTER_LEN];
        frame.extend_from_slice(&GUE);
        build(&mut frame, &outer(false)).unwrap();
        assert_eq!(&frame[26..28], &[0, 0]);
    }

    #[test]
    fn refuses_short_and_huge() {
        let mut short = [0u8; OUTER_LEN + 7];
        assert_eq!(build(&mut short, &outer(true)), Err(BuildError::TooShort));
        let mut huge = vec![0u8; 65536];
        assert_eq!(build(&mut huge, &outer(true)), Err(BuildError::TooLarge));
    }
}
