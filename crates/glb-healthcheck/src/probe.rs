//! The bytes of a tunnel probe and the parsing of its reply, built with
//! glb-core's packet views so the checker speaks exactly the GUE the
//! director and the proxies speak.
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

use glb_core::wire::{gue, icmp, ip_proto, ipv4};

/// Which encapsulation the proxy expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    /// GUE with GLB private data and no hops (the `gue` check).
    Gue,
    /// GRE with a zero key inside UDP (the `fou` check).
    GreInUdp,
}

/// GRE header: flags with only K (key present) set, version 0, protocol
/// 0x0800 (IPv4), key 0. Proxies set up for the original's FOU checks
/// expect exactly this.
const GRE_WITH_ZERO_KEY: [u8; 8] = [0x20, 0x00, 0x08, 0x00, 0, 0, 0, 0];

/// The UDP payload of one probe.
pub fn echo_request(
    encap: Encap,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    let encap_len = match encap {
        Encap::Gue => gue::header_len(0),
        Encap::GreInUdp => GRE_WITH_ZERO_KEY.len(),
    };
    let icmp_len = icmp::HEADER_LEN + payload.len();
    let mut out = vec![0u8; encap_len + ipv4::HEADER_LEN + icmp_len];
    let (head, inner) = out.split_at_mut(encap_len);
    match encap {
        Encap::Gue => {
            let repr = gue::Repr {
                protocol: ip_proto::IPV4,
                next_hop: 0,
                hops: &[],
            };
            repr.emit(&mut gue::Packet::new_unchecked(head))
                .expect("the buffer was sized for a header without hops");
        }
        Encap::GreInUdp => head.copy_from_slice(&GRE_WITH_ZERO_KEY),
    }
    let ip = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: ip_proto::ICMP,
        payload_len: icmp_len as u16,
        ttl: 64,
        ident: 0,
        dont_frag: true,
    };
    ip.emit(&mut ipv4::Packet::new_unchecked(&mut *inner));
    icmp::Repr::EchoRequest {
        ident,
        seq_no: seq,
        data: payload,
    }
    .emit(&mut icmp::Packet::new_unchecked(
        &mut inner[ipv4::HEADER_LEN..],
    ))
    .expect("the buffer was sized for the message");
    out
}

/// The payload of an ICMP echo reply, given a whole IPv4 packet as a raw
/// socket returns it; `None` for anything else.
pub fn echo_reply_payload(packet: &[u8]) -> Option<&[u8]> {
    let ip = ipv4::Packet::new_checked(packet).ok()?;
    if ip.protocol() != ip_proto::ICMP {
        return None;
    }
    let msg = icmp::Packet::new_checked(ip.payload()).ok()?;
    if msg.msg_type() != icmp::V4_ECHO_REPLY || msg.msg_code() != 0 {
        return None;
    }
    let data = msg.data();
    // Same bytes as `data`, but borrowed from `packet` rather than the view.
    let start = ip.header_len() + icmp::HEADER_LEN;
    packet.get(start..start + data.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);

    /// Written out byte by byte from SPEC §8/§10 and RFC 792, checksums
    /// worked out by hand.
    #[test]
    fn gue_probe_bytes() {
        let p = echo_request(Encap::Gue, SRC, DST, 0x1234, 7, b"abcd");
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            // GUE: hlen 1, proto 4, flags 0; private type 0, next hop 0, 0 hops
            0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            // IPv4: 0x45, tos 0, len 32, id 0, DF, ttl 64, proto 1, checksum
            0x45, 0x00, 0x00, 0x20, 0x00, 0x00, 0x40, 0x00, 0x40, 0x01, 0xb6, 0x78,
            192, 0, 2, 1, 192, 0, 2, 99,
            // ICMP echo request, checksum, id 0x1234, seq 7, "abcd"
            0x08, 0x00, 0x20, 0xfe, 0x12, 0x34, 0x00, 0x07, b'a', b'b', b'c', b'd',
        ];
        assert_eq!(p, want);
    }

    #[test]
    fn gre_probe_differs_only_in_the_encapsulation() {
        let gue = echo_request(Encap::Gue, SRC, DST, 1, 2, b"token");
        let gre = echo_request(Encap::GreInUdp, SRC, DST, 1, 2, b"token");
        assert_eq!(&gre[..8], &[0x20, 0x00, 0x08, 0x00, 0, 0, 0, 0]);
        assert_eq!(gre[8..], gue[8..]);
    }

    #[test]
    fn reply_payload_is_found_and_everything_else_ignored() {
        // Turn the probe's inner packet into the reply a proxy would send.
        let probe = echo_request(Encap::Gue, SRC, DST, 9, 9, b"glbhc_token");
        let mut reply = probe[8..].to_vec();
        reply[20] = 0; // echo reply
        assert_eq!(echo_reply_payload(&reply), Some(&b"glbhc_token"[..]));

        let mut request = probe[8..].to_vec();
        request[20] = 8;
        assert_eq!(echo_reply_payload(&request), None);
        assert_eq!(echo_reply_payload(&reply[..25]), None);
        assert_eq!(echo_reply_payload(&[]), None);
        let mut udp = reply.clone();
        udp[9] = 17;
        assert_eq!(echo_reply_payload(&udp), None);
        for cut in 0..reply.len() {
            let _ = echo_reply_payload(&reply[..cut]);
        }
    }
}
