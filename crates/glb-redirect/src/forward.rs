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

use glb_core::wire::{gue, ip_proto, ipv4, udp};

/// Bytes of outer header written in front of the GUE payload.
pub const OUTER_LEN: usize = ipv4::HEADER_LEN + udp::HEADER_LEN;

/// Offset of the `next_hop` byte in the GUE header.
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
    next_hop_along(&mut rest[udp::HEADER_LEN..]);

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

    let mut u = udp::Packet::new_unchecked(rest);
    udp::Repr {
        src_port: outer.src_port,
        dst_port: outer.dst_port,
    }
    .emit(&mut u, udp_len - udp::HEADER_LEN as u16)
    .map_err(|_| BuildError::TooShort)?;
    if outer.udp_checksum {
        u.fill_checksum_v4(outer.src, outer.dst);
    }
    Ok(())
}

/// Rewrites, in place, a whole received GUE packet (outer IPv4 header
/// first) for the next hop — the NFQUEUE mode, where the kernel hands the
/// daemon the packet as it arrived: source ← old destination (this
/// host), destination ← `hop`, `next_hop` incremented, IPv4 header
/// checksum recomputed, and the UDP checksum recomputed unless the sender
/// left it out (0). TTL, TOS, identification and options are kept, as the
/// original kernel module kept them.
pub fn rewrite_in_place(packet: &mut [u8], hop: Ipv4Addr) -> Result<(), BuildError> {
    let mut ip = ipv4::Packet::new_checked(&mut *packet).map_err(|_| BuildError::TooShort)?;
    let (ihl, total) = (ip.header_len(), usize::from(ip.total_len()));
    let here = ip.dst_addr();
    ip.set_src_addr(here);
    ip.set_dst_addr(hop);
    ip.fill_checksum();
    let seg = &mut packet[ihl..total];
    let mut u = udp::Packet::new_checked(seg).map_err(|_| BuildError::TooShort)?;
    if usize::from(u.len()) < udp::HEADER_LEN + gue::GLB_HEADER_LEN {
        return Err(BuildError::TooShort);
    }
    let udp_len = usize::from(u.len());
    next_hop_along(&mut u.payload_mut()[..udp_len - udp::HEADER_LEN]);
    if u.checksum() != 0 {
        u.fill_checksum_v4(here, hop);
    }
    Ok(())
}

/// Moves the GLB header's next-hop index on by one (the packet goes to
/// the hop it named). `gue` holds at least the GLB header.
fn next_hop_along(gue: &mut [u8]) {
    let mut g = gue::Packet::new_unchecked(gue);
    g.set_next_hop(g.next_hop().wrapping_add(1));
}

#[cfg(test)]
mod tests {
    use super::*;
    use glb_testkit::checksum::transport_v4;

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
        // Checked with the test kit's checksum, not the code under test.
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(transport_v4(a, b, 17, &frame[20..]), 0);
        assert_ne!(&frame[26..28], &[0, 0]);
    }

    #[test]
    fn checksum_can_be_left_out() {
        let mut frame = vec![0u8; OUTER_LEN];
        frame.extend_from_slice(&GUE);
        build(&mut frame, &outer(false)).unwrap();
        assert_eq!(&frame[26..28], &[0, 0]);
    }

    /// A received packet: 10.0.0.9 -> 10.0.0.1, UDP 0x8123 -> 19523,
    /// the GUE above, checksum as given.
    fn received(udp_csum: [u8; 2]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0x00, 0x00, 44, 0x12, 0x34, 0x40, 0, 57, 17, 0, 0, 10, 0, 0, 9, 10, 0, 0, 1,
        ];
        p.extend_from_slice(&[0x81, 0x23, 0x4c, 0x43, 0, 24, udp_csum[0], udp_csum[1]]);
        p.extend_from_slice(&GUE);
        p
    }

    #[test]
    fn rewrites_a_received_packet_in_place() {
        let mut p = received([0x12, 0x34]);
        rewrite_in_place(&mut p, Ipv4Addr::new(10, 0, 0, 2)).unwrap();
        // Source is the old destination, destination the hop; TTL and
        // identification kept; header checksum valid.
        assert_eq!(&p[12..20], &[10, 0, 0, 1, 10, 0, 0, 2]);
        assert_eq!(p[8], 57);
        assert_eq!(&p[4..6], &[0x12, 0x34]);
        assert!(ipv4::Packet::new_checked(&p[..]).unwrap().verify_checksum());
        assert_eq!(p[28 + 6], 1);
        // Checked with the test kit's checksum, not the code under test.
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(transport_v4(a, b, 17, &p[20..]), 0);

        // A packet sent without a UDP checksum keeps none.
        let mut p = received([0, 0]);
        rewrite_in_place(&mut p, Ipv4Addr::new(10, 0, 0, 2)).unwrap();
        assert_eq!(&p[26..28], &[0, 0]);

        // Lengths that disagree with the buffer are refused.
        let mut p = received([0, 0]);
        p[25] = 200;
        assert!(rewrite_in_place(&mut p, Ipv4Addr::new(10, 0, 0, 2)).is_err());
        assert!(rewrite_in_place(&mut p[..30], Ipv4Addr::new(10, 0, 0, 2)).is_err());
    }

    #[test]
    fn refuses_short_and_huge() {
        let mut short = [0u8; OUTER_LEN + 7];
        assert_eq!(build(&mut short, &outer(true)), Err(BuildError::TooShort));
        let mut huge = vec![0u8; 65536];
        assert_eq!(build(&mut huge, &outer(true)), Err(BuildError::TooLarge));
    }
}
