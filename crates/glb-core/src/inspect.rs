//! Step 1 of the packet path: one pass over a received frame that
//! extracts everything classification (SPEC §6) and flow hashing (SPEC §7)
//! need.
//!
//! [`inspect`] never panics and never reads past the frame. The fields a
//! classification rule matches on must lie inside both the frame and the
//! IP packet's own stated length; a packet without them matches nothing.
//! A packet that has them but lacks something only the route needs — the
//! rest of a cut-off ICMP header or quoted port pair, or the tail of an IP
//! packet longer than the frame (a short capture) — is still classified,
//! and then reported as not routable, so the director counts a route
//! failure instead of sending a damaged packet.

use std::net::{IpAddr, Ipv4Addr};

use crate::flowhash::FlowKey;
use crate::wire::{ethernet, icmp, ip, ip_proto, ipv4, ipv6, ports};

/// What a packet offers for classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A TCP or UDP packet: match protocol, destination prefix and
    /// destination port.
    Transport {
        /// IP protocol number, 6 or 17.
        proto: u8,
        /// Destination address.
        dst: IpAddr,
        /// Destination port.
        dst_port: u16,
    },
    /// An ICMPv4 fragmentation-needed or ICMPv6 packet-too-big error that
    /// quotes a packet a proxy sent from a VIP: the outer destination and
    /// the quoted source must lie in the bind, the quoted source port in
    /// its range.
    IcmpError {
        /// The error's destination address.
        outer_dst: IpAddr,
        /// The quoted packet's source address.
        quoted_src: IpAddr,
        /// The quoted packet's source port.
        quoted_src_port: u16,
    },
    /// An ICMP echo request: the destination must lie in the bind.
    Echo {
        /// Destination address.
        dst: IpAddr,
    },
    /// Nothing a bind can match: not IP, malformed, a non-initial
    /// fragment, another protocol, or fields cut off.
    None,
}

/// The result of inspecting one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspection {
    /// What to classify on.
    pub lookup: Lookup,
    /// The fields the flow hash is computed over; valid whenever
    /// `lookup` is not [`Lookup::None`].
    pub flow: FlowKey,
    /// The 16 bits mixed into the outer UDP source port: the client's
    /// port, or for ICMP other than errors the IPv4 identification or the
    /// low 16 bits of the IPv6 flow label.
    pub flow_hint: u16,
    /// GUE protocol for the inner packet: 4 (IPv4) or 41 (IPv6).
    pub gue_proto: u8,
    /// Offset of the IP header in the frame.
    pub ip_offset: usize,
    /// The IP packet's stated total length (header included).
    pub ip_len: usize,
    /// Whether the whole IP packet is inside the frame.
    pub complete: bool,
    /// Whether every header field the flow hash needs was present (a
    /// packet can be classified on fewer).
    pub flow_complete: bool,
}

impl Inspection {
    /// Whether a route can be computed: the flow fields are all there and
    /// the whole IP packet is inside the frame.
    pub fn routable(&self) -> bool {
        self.complete && self.flow_complete
    }
}

const UNSPEC_FLOW: FlowKey = FlowKey {
    src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    src_port: 0,
    dst_port: 0,
};

impl Inspection {
    const NONE: Inspection = Inspection {
        lookup: Lookup::None,
        flow: UNSPEC_FLOW,
        flow_hint: 0,
        gue_proto: 0,
        ip_offset: 0,
        ip_len: 0,
        complete: false,
        flow_complete: false,
    };

    /// An IP packet right after the Ethernet header, before its walk.
    const fn ip(gue_proto: u8, ip_len: usize, complete: bool) -> Inspection {
        Inspection {
            gue_proto,
            ip_offset: ethernet::HEADER_LEN,
            ip_len,
            complete,
            flow_complete: true,
            ..Inspection::NONE
        }
    }
}

/// Inspects an Ethernet frame. Never panics.
pub fn inspect(frame: &[u8]) -> Inspection {
    let Ok(eth) = ethernet::Frame::new_checked(frame) else {
        return Inspection::NONE;
    };
    match eth.ethertype() {
        ethernet::ethertype::IPV4 => inspect_ipv4(eth.payload()),
        ethernet::ethertype::IPV6 => inspect_ipv6(eth.payload()),
        _ => Inspection::NONE,
    }
}

/// The common case of [`inspect`], read straight from the frame: an IPv4
/// TCP or UDP packet that is not a later fragment and whose ports are
/// present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4Transport {
    /// IP protocol number, 6 or 17.
    pub proto: u8,
    /// Source address, network order.
    pub src: [u8; 4],
    /// Destination address, network order.
    pub dst: [u8; 4],
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The IP packet's stated total length.
    pub ip_len: u16,
    /// Whether the whole IP packet is inside the frame.
    pub complete: bool,
}

/// Frame bytes up to the ports after an option-less IPv4 header.
const V4_PORTS_END: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + 4;

/// Returns `Some` exactly when [`inspect`] finds a TCP or UDP packet over
/// IPv4 ([`Lookup::Transport`] with IPv4 addresses) whose header has no
/// options, with the same fields; the flow hint is the source port and
/// the IP header starts right after the Ethernet header. Headers with
/// options get `None`, like everything else that is not this common
/// case: callers fall back to [`inspect`]. Cheaper than [`inspect`]: a
/// fixed layout, bounds-checked once, and no [`IpAddr`] built.
#[inline]
pub fn inspect_v4_transport(frame: &[u8]) -> Option<V4Transport> {
    let h: &[u8; V4_PORTS_END] = frame.first_chunk()?;
    let ip = &h[ethernet::HEADER_LEN..];
    let proto = ip[9];
    // Ethertype, version and header length in one comparison (of one
    // load, the type of service masked off).
    if u32::from_be_bytes([h[12], h[13], ip[0], ip[1]]) & 0xffff_ff00 != 0x0800_4500
        || u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0
        || !(proto == ip_proto::TCP || proto == ip_proto::UDP)
    {
        return None;
    }
    let total = u16::from_be_bytes([ip[2], ip[3]]);
    // The ports must lie inside the stated length too (the frame holds
    // them, or `first_chunk` would have failed).
    if usize::from(total) < ipv4::HEADER_LEN + 4 {
        return None;
    }
    let p = &ip[ipv4::HEADER_LEN..];
    Some(V4Transport {
        proto,
        src: [ip[12], ip[13], ip[14], ip[15]],
        dst: [ip[16], ip[17], ip[18], ip[19]],
        src_port: u16::from_be_bytes([p[0], p[1]]),
        dst_port: u16::from_be_bytes([p[2], p[3]]),
        ip_len: total,
        complete: usize::from(total) <= frame.len() - ethernet::HEADER_LEN,
    })
}

fn inspect_ipv4(bytes: &[u8]) -> Inspection {
    let Ok(ip) = ipv4::Packet::new_header_checked(bytes) else {
        return Inspection::NONE;
    };
    let mut out = Inspection::ip(
        ip_proto::IPV4,
        usize::from(ip.total_len()),
        ip.is_complete(),
    );
    if let Ok(t) = ip::walk_v4(&ip) {
        let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
        classify_walk(&mut out, t, src, dst, ip.ident());
    }
    out
}

fn inspect_ipv6(bytes: &[u8]) -> Inspection {
    let Ok(ip) = ipv6::Packet::new_header_checked(bytes) else {
        return Inspection::NONE;
    };
    let mut out = Inspection::ip(ip_proto::IPV6, ip.total_len(), ip.is_complete());
    if let Ok(t) = ip::walk_v6(&ip) {
        let (src, dst) = (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()));
        classify_walk(&mut out, t, src, dst, ip.flow_label() as u16);
    }
    out
}

/// Fills in what the walk found; `echo_hint` is the flow hint of an echo
/// request (IPv4 identification, low bits of the IPv6 flow label).
#[inline(always)]
fn classify_walk(
    out: &mut Inspection,
    t: ip::Transport<'_>,
    src: IpAddr,
    dst: IpAddr,
    echo_hint: u16,
) {
    match t {
        ip::Transport::Tcp(l4) => ports_of(out, ip_proto::TCP, src, dst, l4),
        ip::Transport::Udp(l4) => ports_of(out, ip_proto::UDP, src, dst, l4),
        ip::Transport::IcmpError(q) => icmp_error(out, dst, q.src(), q.dst(), q.rest),
        ip::Transport::IcmpEcho(msg) => {
            echo(out, src, dst, echo_hint);
            out.flow_complete = msg.len() >= icmp::HEADER_LEN;
        }
        ip::Transport::IcmpOther(_) | ip::Transport::Fragment | ip::Transport::Other(_) => {}
    }
}

/// A TCP or UDP packet, when its ports are there.
#[inline(always)]
fn ports_of(out: &mut Inspection, proto: u8, src: IpAddr, dst: IpAddr, l4: &[u8]) {
    if let Ok(p) = ports::Ports::new_checked(l4) {
        transport(out, proto, src, dst, p.src_port(), p.dst_port());
    }
}

fn transport(out: &mut Inspection, proto: u8, src: IpAddr, dst: IpAddr, sport: u16, dport: u16) {
    out.lookup = Lookup::Transport {
        proto,
        dst,
        dst_port: dport,
    };
    out.flow = FlowKey {
        src,
        dst,
        src_port: sport,
        dst_port: dport,
    };
    out.flow_hint = sport;
}

/// The quoted packet went from a VIP to the client, so the flow is its
/// reverse: that way the error reaches the proxy that owns the connection.
/// `ports` is what follows the quoted IP header: the source port is enough
/// to classify, the route needs both.
fn icmp_error(
    out: &mut Inspection,
    outer_dst: IpAddr,
    quoted_src: IpAddr,
    quoted_dst: IpAddr,
    ports: &[u8],
) {
    let (sport, dport) = match *ports {
        [a, b, c, d, ..] => (u16::from_be_bytes([a, b]), Some(u16::from_be_bytes([c, d]))),
        [a, b, ..] => (u16::from_be_bytes([a, b]), None),
        _ => return,
    };
    out.lookup = Lookup::IcmpError {
        outer_dst,
        quoted_src,
        quoted_src_port: sport,
    };
    out.flow_complete = dport.is_some();
    let dport = dport.unwrap_or(0);
    out.flow = FlowKey {
        src: quoted_dst,
        dst: quoted_src,
        src_port: dport,
        dst_port: sport,
    };
    out.flow_hint = dport;
}

fn echo(out: &mut Inspection, src: IpAddr, dst: IpAddr, hint: u16) {
    out.lookup = Lookup::Echo { dst };
    out.flow = FlowKey {
        src,
        dst,
        src_port: 0,
        dst_port: 0,
    };
    out.flow_hint = hint;
}

#[cfg(test)]
mod tests {
    use super::*;
    use glb_testkit::frames::*;

    #[test]
    fn tcp_over_ipv4_offers_destination_and_ports() {
        let f = tcp4("172.16.1.2", 40000, "10.1.1.1", 80);
        let ins = inspect(&f);
        assert_eq!(
            ins.lookup,
            Lookup::Transport {
                proto: 6,
                dst: ip("10.1.1.1"),
                dst_port: 80
            }
        );
        assert_eq!((ins.flow.src, ins.flow.src_port), (ip("172.16.1.2"), 40000));
        assert_eq!(ins.flow_hint, 40000);
        assert_eq!((ins.gue_proto, ins.ip_offset), (4, 14));
        assert!(ins.routable());
        // The fixed-layout reader agrees with the general one.
        let v = inspect_v4_transport(&f).unwrap();
        assert_eq!((v.dst, v.dst_port, v.src_port), ([10, 1, 1, 1], 80, 40000));
        assert!(v.complete);
    }

    #[test]
    fn icmp_errors_are_classified_on_the_quoted_packet_reversed() {
        let f = frag_needed4("192.0.2.1", "10.1.1.1", 80, "172.16.1.2", 40000);
        let ins = inspect(&f);
        assert_eq!(
            ins.lookup,
            Lookup::IcmpError {
                outer_dst: ip("10.1.1.1"),
                quoted_src: ip("10.1.1.1"),
                quoted_src_port: 80
            }
        );
        // The flow of the connection the error belongs to.
        assert_eq!(ins.flow.src, ip("172.16.1.2"));
        assert_eq!((ins.flow.src_port, ins.flow.dst_port), (40000, 80));
        assert!(inspect_v4_transport(&f).is_none());
        let f = too_big6("2001:db8::1", "fd00::10", 443, "2001:db8::99", 5555);
        assert!(matches!(inspect(&f).lookup, Lookup::IcmpError { .. }));
    }

    #[test]
    fn echo_uses_the_ident_or_flow_label_as_hint() {
        let ins = inspect(&echo4("172.16.1.2", "10.1.1.1", 0x1234));
        assert_eq!(
            ins.lookup,
            Lookup::Echo {
                dst: ip("10.1.1.1")
            }
        );
        assert_eq!(ins.flow_hint, 0x1234);
        let ins = inspect(&echo6("2001:db8::1", "fd00::10", 0x5_4321));
        assert_eq!(ins.flow_hint, 0x4321);
    }

    #[test]
    fn cut_and_foreign_frames_match_nothing() {
        let f = tcp4("172.16.1.2", 40000, "10.1.1.1", 80);
        for n in 0..34 {
            assert_eq!(inspect(&f[..n]).lookup, Lookup::None, "length {n}");
        }
        let arp = eth(0x0806, &[0u8; 28]);
        assert_eq!(inspect(&arp).lookup, Lookup::None);
        // Ports present but the payload cut: classified, not routable.
        let ins = inspect(&f[..f.len() - 10]);
        assert!(matches!(ins.lookup, Lookup::Transport { .. }));
        assert!(!ins.routable());
    }
}
