//! The one walk from an IP header to what GLB decides on — the transport
//! header, or for an ICMP error the packet it quotes — shared by the
//! director's inspection (SPEC §6–7) and the proxy's second-chance
//! decision (SPEC §11), so both read packets the same way.
//!
//! The walk gives what follows the header; the packet's own addresses
//! are read from its view. The walk never panics. It fails only where an ICMP
//! fragmentation-needed / packet-too-big message is cut inside its own
//! header or quotes no readable IP header; everything else is described,
//! and each caller decides what a cut or foreign packet means to it.

use std::net::IpAddr;

use super::{Result, icmp, ip_proto, ipv4, ipv6};

/// What follows an IP header, as far as GLB looks. Slices are the bytes
/// present (bounded by the packet's stated length), which may be fewer
/// than the header they start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// A TCP segment.
    Tcp(&'a [u8]),
    /// A UDP datagram.
    Udp(&'a [u8]),
    /// An ICMPv4 fragmentation-needed or ICMPv6 packet-too-big error.
    IcmpError(Quoted<'a>),
    /// An ICMP echo request (the whole ICMP message).
    IcmpEcho(&'a [u8]),
    /// Any other ICMP message.
    IcmpOther(&'a [u8]),
    /// A later IPv4 fragment: what would be the ports is payload.
    Fragment,
    /// Another protocol (IPv6 extension headers included).
    Other(u8),
}

/// The packet an ICMP error quotes: one we (or a proxy) sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted<'a> {
    /// Its IP header.
    pub header: QuotedHeader<'a>,
    /// What follows its IP header (its ports, when they fit).
    pub rest: &'a [u8],
}

/// The IP header of a quoted packet (checked to be whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotedHeader<'a> {
    /// An IPv4 header.
    V4(ipv4::Packet<&'a [u8]>),
    /// An IPv6 fixed header.
    V6(ipv6::Packet<&'a [u8]>),
}

impl Quoted<'_> {
    /// The quoted packet's source address.
    #[inline]
    pub fn src(&self) -> IpAddr {
        match &self.header {
            QuotedHeader::V4(h) => IpAddr::V4(h.src_addr()),
            QuotedHeader::V6(h) => IpAddr::V6(h.src_addr()),
        }
    }

    /// The quoted packet's destination address.
    #[inline]
    pub fn dst(&self) -> IpAddr {
        match &self.header {
            QuotedHeader::V4(h) => IpAddr::V4(h.dst_addr()),
            QuotedHeader::V6(h) => IpAddr::V6(h.dst_addr()),
        }
    }

    /// The quoted packet's protocol.
    #[inline]
    pub fn protocol(&self) -> u8 {
        match &self.header {
            QuotedHeader::V4(h) => h.protocol(),
            QuotedHeader::V6(h) => h.next_header(),
        }
    }
}

/// Walks an IPv4 packet (see the module documentation).
#[inline(always)]
pub fn walk_v4<'a>(ip: &ipv4::Packet<&'a [u8]>) -> Result<Transport<'a>> {
    let l4 = ip.payload();
    let transport = if ip.frag_offset() != 0 {
        Transport::Fragment
    } else {
        match ip.protocol() {
            ip_proto::TCP => Transport::Tcp(l4),
            ip_proto::UDP => Transport::Udp(l4),
            ip_proto::ICMP => match (l4.first(), l4.get(1)) {
                (Some(&icmp::V4_DEST_UNREACHABLE), Some(&icmp::V4_CODE_FRAG_NEEDED)) => {
                    let msg = icmp::Packet::new_checked(l4)?;
                    let quoted = ipv4::Packet::new_header_checked(msg.data())?;
                    Transport::IcmpError(Quoted {
                        rest: msg.data().get(quoted.header_len()..).unwrap_or(&[]),
                        header: QuotedHeader::V4(quoted),
                    })
                }
                (Some(&icmp::V4_ECHO_REQUEST), _) => Transport::IcmpEcho(l4),
                _ => Transport::IcmpOther(l4),
            },
            other => Transport::Other(other),
        }
    };
    Ok(transport)
}

/// Walks an IPv6 packet (see the module documentation). Extension
/// headers are not followed.
#[inline(always)]
pub fn walk_v6<'a>(ip: &ipv6::Packet<&'a [u8]>) -> Result<Transport<'a>> {
    let l4 = ip.payload();
    let transport = match ip.next_header() {
        ip_proto::TCP => Transport::Tcp(l4),
        ip_proto::UDP => Transport::Udp(l4),
        ip_proto::ICMPV6 => match l4.first() {
            Some(&icmp::V6_PACKET_TOO_BIG) => {
                let msg = icmp::Packet::new_checked(l4)?;
                let quoted = ipv6::Packet::new_header_checked(msg.data())?;
                Transport::IcmpError(Quoted {
                    header: QuotedHeader::V6(quoted),
                    rest: msg.data().get(ipv6::HEADER_LEN..).unwrap_or(&[]),
                })
            }
            Some(&icmp::V6_ECHO_REQUEST) => Transport::IcmpEcho(l4),
            _ => Transport::IcmpOther(l4),
        },
        other => Transport::Other(other),
    };
    Ok(transport)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    /// IPv4, protocol `proto`, 10.0.0.1 → 10.0.0.2, then `payload`.
    fn v4(proto: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend_from_slice(payload);
        p
    }

    fn walk(b: &[u8]) -> Result<Transport<'_>> {
        walk_v4(&ipv4::Packet::new_header_checked(b).unwrap())
    }

    #[test]
    fn transports_fragments_and_foreign_protocols() {
        let b = v4(6, 0, &[0, 80, 0, 81]);
        assert_eq!(walk(&b).unwrap(), Transport::Tcp(&[0, 80, 0, 81]));
        let b = v4(17, 0, &[1, 2]);
        assert_eq!(walk(&b).unwrap(), Transport::Udp(&[1, 2]));
        let b = v4(6, 0x0001, &[0, 80, 0, 81]);
        assert_eq!(walk(&b).unwrap(), Transport::Fragment);
        let b = v4(47, 0, &[]);
        assert_eq!(walk(&b).unwrap(), Transport::Other(47));
        let b = v4(1, 0, &[8, 0, 0]);
        assert_eq!(walk(&b).unwrap(), Transport::IcmpEcho(&[8, 0, 0]));
    }

    #[test]
    fn an_icmp_error_leads_to_the_quoted_packet() {
        let quoted = v4(6, 0, &[0, 80, 0x9c, 0x40]);
        let mut msg = vec![3, 4, 0, 0, 0, 0, 5, 0xdc];
        msg.extend_from_slice(&quoted);
        let b = v4(1, 0, &msg);
        let Transport::IcmpError(q) = walk(&b).unwrap() else {
            panic!("not an ICMP error");
        };
        assert_eq!((q.protocol(), q.rest), (6, &[0, 80, 0x9c, 0x40][..]));
        assert_eq!(q.src(), IpAddr::from([10, 0, 0, 1]));
        // Cut inside the ICMP header, or quoting no IP header.
        assert_eq!(walk(&v4(1, 0, &msg[..6])).unwrap_err(), Error::Truncated);
        assert!(walk(&v4(1, 0, &msg[..20])).is_err());
    }
}
