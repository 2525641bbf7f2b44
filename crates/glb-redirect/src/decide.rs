//! The second-chance decision of SPEC §11 for one GUE payload, without
//! any I/O: [`classify`] validates the GLB header and says whether the
//! packet is taken here outright, dropped, or depends on a socket lookup;
//! [`second_chance`] picks between the next hop and local delivery when
//! no local socket owns the flow.
//!
//! Everything here works on the UDP payload (the GUE header onwards) and
//! never panics, whatever the bytes.

use std::net::{IpAddr, Ipv4Addr};

use glb_core::wire::{self, Malformed, gue, icmp, ip, ip_proto, ipv4, ipv6, ports, tcp};

/// A TCP connection as the local stack names it: this host's side first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketKey {
    /// Local (VIP) address.
    pub local: IpAddr,
    /// Local (VIP) port.
    pub local_port: u16,
    /// Remote (client) address.
    pub remote: IpAddr,
    /// Remote (client) port.
    pub remote_port: u16,
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The datagram (GUE header, hop list, inner header or the inner
    /// packet's stated length) ends early, or did not fit the receive
    /// buffer.
    Truncated,
    /// Not a GUE data message carrying GLB private data: version not 0,
    /// the control bit set, or `hlen` 0.
    BadGueHeader,
    /// `hlen != hop_count + 1`.
    BadHopCount,
    /// GUE protocol neither 4 (IPv4) nor 41 (IPv6).
    UnknownProtocol,
    /// The inner packet is not a well-formed IP packet of the announced
    /// version.
    BadInner,
    /// Inner protocol other than TCP, UDP or ICMP (IPv6 extension headers
    /// included).
    UnsupportedInner,
    /// A non-initial IPv4 fragment: it carries no ports, so no decision
    /// can be made (directors never send them).
    InnerFragment,
    /// The outer source is not on `--allow-source`.
    SourceNotAllowed,
    /// The next hop is not on `--allow-hop`.
    HopNotAllowed,
}

/// Why a packet is handled by the local stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalReason {
    /// Inner TCP with SYN set.
    Syn,
    /// Inner UDP.
    Udp,
    /// ICMP other than fragmentation-needed / packet-too-big, or such an
    /// error quoting a non-TCP packet.
    Icmp,
    /// The flow matches a local established or in-progress TCP socket.
    Established,
    /// No hop left to try.
    LastResort,
    /// The next hop is this host.
    ToSelf,
}

/// What classification found out about a valid GLB packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Handle locally without asking the socket table.
    Local(LocalReason),
    /// Local only if a socket owns this flow; otherwise second chance.
    Lookup(SocketKey),
}

/// A valid GLB packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Offset of the inner IP packet in the GUE payload.
    pub inner_offset: usize,
    /// The inner packet's stated length (trailing bytes after it are not
    /// part of it).
    pub inner_len: usize,
    /// GUE protocol: 4 or 41.
    pub protocol: u8,
    /// Index of the next hop to try.
    pub next_hop: u8,
    /// Number of hops listed.
    pub hop_count: u8,
    /// What to do with it.
    pub class: Class,
}

impl Parsed {
    /// The inner IP packet inside `gue_payload` (the buffer [`classify`]
    /// was given).
    pub fn inner<'a>(&self, gue_payload: &'a [u8]) -> &'a [u8] {
        let end = self.inner_offset.saturating_add(self.inner_len);
        gue_payload.get(self.inner_offset..end).unwrap_or(&[])
    }
}

/// Where a packet goes once classification (and any lookup) is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver the inner packet to the local stack.
    Local(LocalReason),
    /// Send the GUE packet on to this hop, with `next_hop` incremented.
    Forward(Ipv4Addr),
    /// Drop it.
    Drop(DropReason),
}

/// Validates the GLB GUE header (SPEC §11 step 1) and classifies the
/// inner packet (steps 2 and the lookup half of 3).
pub fn classify(gue_payload: &[u8]) -> Result<Parsed, DropReason> {
    let g = gue::Packet::new_checked_glb(gue_payload).map_err(|e| match e {
        wire::Error::Truncated => DropReason::Truncated,
        wire::Error::Malformed(Malformed::GueHopCount) => DropReason::BadHopCount,
        wire::Error::Malformed(Malformed::GueProtocol) => DropReason::UnknownProtocol,
        wire::Error::Malformed(_) => DropReason::BadGueHeader,
    })?;
    let protocol = g.protocol();
    let inner = g.payload();
    let (inner_len, src, dst, walk) = if protocol == ip_proto::IPV4 {
        let ip = ipv4::Packet::new_checked(inner).map_err(wire_drop)?;
        let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
        (usize::from(ip.total_len()), src, dst, ip::walk_v4(&ip))
    } else {
        let ip = ipv6::Packet::new_checked(inner).map_err(wire_drop)?;
        let (src, dst) = (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()));
        (ip.total_len(), src, dst, ip::walk_v6(&ip))
    };
    Ok(Parsed {
        inner_offset: g.header_len(),
        inner_len,
        protocol,
        next_hop: g.next_hop(),
        hop_count: g.hop_count(),
        class: class_of(walk.map_err(wire_drop)?, src, dst)?,
    })
}

fn wire_drop(e: wire::Error) -> DropReason {
    match e {
        wire::Error::Truncated => DropReason::Truncated,
        wire::Error::Malformed(_) => DropReason::BadInner,
    }
}

/// Steps 2 and 3 of SPEC §11 on the walked inner packet.
fn class_of(t: ip::Transport<'_>, src: IpAddr, dst: IpAddr) -> Result<Class, DropReason> {
    match t {
        ip::Transport::Tcp(l4) => tcp(l4, src, dst),
        ip::Transport::Udp(_) => Ok(Class::Local(LocalReason::Udp)),
        ip::Transport::IcmpEcho(msg) | ip::Transport::IcmpOther(msg) => {
            if msg.len() < icmp::HEADER_LEN {
                return Err(DropReason::Truncated);
            }
            Ok(Class::Local(LocalReason::Icmp))
        }
        ip::Transport::IcmpError(q) => quoted_flow(q.protocol(), q.rest, q.src(), q.dst()),
        ip::Transport::Fragment => Err(DropReason::InnerFragment),
        ip::Transport::Other(_) => Err(DropReason::UnsupportedInner),
    }
}

fn tcp(l4: &[u8], src: IpAddr, dst: IpAddr) -> Result<Class, DropReason> {
    // The fixed header must be whole before its flags are trusted.
    if l4.len() < tcp::HEADER_LEN {
        return Err(DropReason::Truncated);
    }
    let seg = tcp::Packet::new_unchecked(l4);
    if seg.syn() {
        return Ok(Class::Local(LocalReason::Syn));
    }
    Ok(Class::Lookup(SocketKey {
        local: dst,
        local_port: seg.dst_port(),
        remote: src,
        remote_port: seg.src_port(),
    }))
}

/// The packet quoted by a fragmentation-needed / packet-too-big error was
/// sent by this side of the flow (VIP → client), so its source is the
/// local end. Errors about anything but TCP have no socket to find and
/// are handled like other ICMP.
fn quoted_flow(
    proto: u8,
    rest: &[u8],
    quoted_src: IpAddr,
    quoted_dst: IpAddr,
) -> Result<Class, DropReason> {
    if proto != ip_proto::TCP {
        return Ok(Class::Local(LocalReason::Icmp));
    }
    let p = ports::Ports::new_checked(rest).map_err(wire_drop)?;
    Ok(Class::Lookup(SocketKey {
        local: quoted_src,
        local_port: p.src_port(),
        remote: quoted_dst,
        remote_port: p.dst_port(),
    }))
}

/// SPEC §11 step 4 for a packet no local socket owns: the next listed hop
/// unless none is left or it is this host, in which case the packet is
/// handled here as a last resort.
pub fn second_chance(
    gue_payload: &[u8],
    parsed: &Parsed,
    is_self: impl Fn(Ipv4Addr) -> bool,
) -> Verdict {
    if parsed.next_hop >= parsed.hop_count {
        return Verdict::Local(LocalReason::LastResort);
    }
    let g = gue::Packet::new_unchecked(gue_payload);
    match g.hop(usize::from(parsed.next_hop)) {
        // A hop the header has no room for cannot happen once `classify`
        // checked hlen against hop_count; treat it as "no hop left".
        None => Verdict::Local(LocalReason::LastResort),
        Some(hop) if is_self(hop) => Verdict::Local(LocalReason::ToSelf),
        Some(hop) => Verdict::Forward(hop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
    const P2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const P3: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

    /// Header checksums are not looked at by the classifier, so test
    /// packets are written by hand, field by field, as on the wire.
    fn ipv4(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
        let total = 20 + payload.len() as u16;
        let mut v = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            proto,
            0,
            0,
        ];
        v.extend_from_slice(&src.octets());
        v.extend_from_slice(&dst.octets());
        v.extend_from_slice(payload);
        v
    }

    fn ipv6(next: u8, src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u16;
        let mut v = vec![0x60, 0, 0, 0, (len >> 8) as u8, len as u8, next, 64];
        v.extend_from_slice(&src.octets());
        v.extend_from_slice(&dst.octets());
        v.extend_from_slice(payload);
        v
    }

    fn tcp_hdr(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 0x50;
        t[13] = flags;
        t
    }

    fn gue(proto: u8, next_hop: u8, hops: &[Ipv4Addr], inner: &[u8]) -> Vec<u8> {
        let n = hops.len() as u8;
        let mut v = vec![1 + n, proto, 0, 0, 0, 0, next_hop, n];
        for h in hops {
            v.extend_from_slice(&h.octets());
        }
        v.extend_from_slice(inner);
        v
    }

    /// The client's ACK to VIP:80: a packet of a flow that may be
    /// established, so classified as needing a lookup.
    fn client_ack() -> Vec<u8> {
        ipv4(6, CLIENT, VIP, &tcp_hdr(40000, 80, 0x10))
    }

    /// A lookup of the socket `local`:`local_port` ↔ `remote`:`remote_port`.
    fn lookup(local: IpAddr, local_port: u16, remote: IpAddr, remote_port: u16) -> Class {
        Class::Lookup(SocketKey {
            local,
            local_port,
            remote,
            remote_port,
        })
    }

    /// A router's ICMP "fragmentation needed" (MTU 1500) to the VIP,
    /// quoting `quoted`.
    fn frag_needed(quoted: &[u8]) -> Vec<u8> {
        let mut icmp_msg = vec![3, 4, 0, 0, 0, 0, 0x05, 0xdc];
        icmp_msg.extend_from_slice(quoted);
        ipv4(1, Ipv4Addr::new(203, 0, 113, 1), VIP, &icmp_msg)
    }

    #[test]
    fn syn_is_local() {
        let inner = ipv4(6, CLIENT, VIP, &tcp_hdr(40000, 80, 0x02));
        let p = classify(&gue(4, 0, &[P2], &inner)).unwrap();
        assert_eq!(p.class, Class::Local(LocalReason::Syn));
        assert_eq!(p.inner_offset, 12);
        assert_eq!(p.inner_len, 40);
        assert_eq!((p.next_hop, p.hop_count), (0, 1));
    }

    #[test]
    fn ack_needs_lookup_of_the_local_side() {
        let p = classify(&gue(4, 0, &[P2], &client_ack())).unwrap();
        assert_eq!(
            p.class,
            lookup(IpAddr::V4(VIP), 80, IpAddr::V4(CLIENT), 40000)
        );
    }

    #[test]
    fn inner_len_excludes_trailing_bytes() {
        let mut inner = ipv4(17, CLIENT, VIP, &[0, 53, 0, 53, 0, 8, 0, 0]);
        let len = inner.len();
        inner.extend_from_slice(&[0xee; 6]);
        let buf = gue(4, 0, &[], &inner);
        let p = classify(&buf).unwrap();
        assert_eq!(p.class, Class::Local(LocalReason::Udp));
        assert_eq!(p.inner(&buf), &inner[..len]);
    }

    #[test]
    fn icmp_echo_is_local() {
        let inner = ipv4(1, CLIENT, VIP, &[8, 0, 0, 0, 0, 1, 0, 1]);
        let p = classify(&gue(4, 0, &[P2], &inner)).unwrap();
        assert_eq!(p.class, Class::Local(LocalReason::Icmp));
    }

    #[test]
    fn frag_needed_looks_up_the_reversed_quoted_flow() {
        // The quoted packet went VIP:80 -> CLIENT:40000.
        let quoted = ipv4(6, VIP, CLIENT, &tcp_hdr(80, 40000, 0x10)[..8]);
        let p = classify(&gue(4, 0, &[P2], &frag_needed(&quoted))).unwrap();
        assert_eq!(
            p.class,
            lookup(IpAddr::V4(VIP), 80, IpAddr::V4(CLIENT), 40000)
        );
        // Quoting UDP: nothing to look up.
        let quoted = ipv4(17, VIP, CLIENT, &[0, 53, 0x9c, 0x40, 0, 8, 0, 0]);
        let p = classify(&gue(4, 0, &[P2], &frag_needed(&quoted))).unwrap();
        assert_eq!(p.class, Class::Local(LocalReason::Icmp));
        // Quoted ports cut off.
        let quoted = ipv4(6, VIP, CLIENT, &[]);
        let inner = frag_needed(&quoted[..20]);
        assert_eq!(
            classify(&gue(4, 0, &[P2], &inner)),
            Err(DropReason::Truncated)
        );
    }

    #[test]
    fn ipv6_inner() {
        let c6: Ipv6Addr = "2001:db8::7".parse().unwrap();
        let v6: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
        let inner = ipv6(6, c6, v6, &tcp_hdr(5555, 443, 0x18));
        let p = classify(&gue(41, 0, &[P2], &inner)).unwrap();
        assert_eq!(p.class, lookup(IpAddr::V6(v6), 443, IpAddr::V6(c6), 5555));
        assert_eq!(p.inner_len, 60);
        let inner = ipv6(6, c6, v6, &tcp_hdr(5555, 443, 0x02));
        assert_eq!(
            classify(&gue(41, 0, &[], &inner)).unwrap().class,
            Class::Local(LocalReason::Syn)
        );
        // Packet too big quoting VIP:443 -> client:5555.
        let quoted = ipv6(6, v6, c6, &tcp_hdr(443, 5555, 0x10)[..8]);
        let mut msg = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
        msg.extend_from_slice(&quoted);
        let inner = ipv6(58, "2001:db8:ff::1".parse().unwrap(), v6, &msg);
        assert_eq!(
            classify(&gue(41, 0, &[P2], &inner)).unwrap().class,
            lookup(IpAddr::V6(v6), 443, IpAddr::V6(c6), 5555)
        );
        // Echo request.
        let inner = ipv6(58, c6, v6, &[128, 0, 0, 0, 0, 1, 0, 1]);
        assert_eq!(
            classify(&gue(41, 0, &[P2], &inner)).unwrap().class,
            Class::Local(LocalReason::Icmp)
        );
        // A hop-by-hop extension header is not supported.
        let inner = ipv6(0, c6, v6, &[6, 0, 1, 4, 0, 0, 0, 0]);
        assert_eq!(
            classify(&gue(41, 0, &[P2], &inner)),
            Err(DropReason::UnsupportedInner)
        );
    }

    #[test]
    fn malformed_gue_is_dropped_with_its_reason() {
        let inner = client_ack();
        let good = gue(4, 0, &[P2], &inner);

        let mut b = good.clone();
        b[7] = 2; // hop_count 2, hlen 2
        assert_eq!(classify(&b), Err(DropReason::BadHopCount));
        b[7] = 255;
        assert_eq!(classify(&b), Err(DropReason::BadHopCount));
        b[0] = 31; // hlen 31 with hop_count 255: still unequal, and beyond the data
        assert!(classify(&b).is_err());

        let mut b = good.clone();
        b[1] = 17;
        assert_eq!(classify(&b), Err(DropReason::UnknownProtocol));

        let mut b = good.clone();
        b[0] = 0; // no private data
        assert_eq!(classify(&b), Err(DropReason::BadGueHeader));
        b[0] = 0x42; // version 1
        assert_eq!(classify(&b), Err(DropReason::BadGueHeader));
        b[0] = 0x22; // control message
        assert_eq!(classify(&b), Err(DropReason::BadGueHeader));

        for cut in [0, 1, 3, 7, 11, 12, 19, 31, 39] {
            assert_eq!(
                classify(&good[..cut]),
                Err(DropReason::Truncated),
                "cut at {cut}"
            );
        }

        // Inner version disagrees with the GUE protocol.
        let mut b = good.clone();
        b[1] = 41;
        assert_eq!(classify(&b), Err(DropReason::BadInner));

        // Inner protocol GRE.
        let b = gue(4, 0, &[P2], &ipv4(47, CLIENT, VIP, &[0; 8]));
        assert_eq!(classify(&b), Err(DropReason::UnsupportedInner));

        // Later fragment.
        let mut frag = inner.clone();
        frag[6] = 0x00;
        frag[7] = 0x10;
        assert_eq!(
            classify(&gue(4, 0, &[P2], &frag)),
            Err(DropReason::InnerFragment)
        );
    }

    #[test]
    fn second_chance_walks_the_hop_list() {
        let last_resort = Verdict::Local(LocalReason::LastResort);
        // (next_hop, hops, verdict when no hop is this host)
        let cases: [(u8, &[Ipv4Addr], Verdict); 5] = [
            (0, &[P2, P3], Verdict::Forward(P2)),
            (1, &[P2, P3], Verdict::Forward(P3)),
            (2, &[P2, P3], last_resort),
            (7, &[P2, P3], last_resort),
            (0, &[], last_resort),
        ];
        for (next_hop, hops, want) in cases {
            let b = gue(4, next_hop, hops, &client_ack());
            let p = classify(&b).unwrap();
            assert_eq!(
                second_chance(&b, &p, |_| false),
                want,
                "next_hop {next_hop} of {hops:?}"
            );
        }

        let b = gue(4, 1, &[P2, P3], &client_ack());
        let p = classify(&b).unwrap();
        assert_eq!(
            second_chance(&b, &p, |h| h == P3),
            Verdict::Local(LocalReason::ToSelf)
        );
    }

    #[test]
    fn never_panics_on_any_prefix_or_byte_flip() {
        let good = gue(4, 0, &[P2, P3], &client_ack());
        for cut in 0..=good.len() {
            let _ = classify(&good[..cut]);
        }
        for i in 0..good.len() {
            for v in [0u8, 1, 0x0f, 0x40, 0x45, 0x7f, 0x80, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                if let Ok(p) = classify(&b) {
                    let _ = second_chance(&b, &p, |_| false);
                    let _ = p.inner(&b);
                }
            }
        }
    }
}
