//! IPv6 fixed headers (RFC 8200). Extension headers are not walked: GLB
//! classifies on the fixed header's next-header field.

use std::net::Ipv6Addr;

use super::{Field, Malformed, Result, check_len, ensure};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// Offset of the word holding version, traffic class and flow label.
const VER_TC_FLOW: usize = 0;

view! {
    /// A view of an IPv6 fixed header and the packet behind it.
    Packet {
        /// Payload length as the header states.
        payload_len / set_payload_len: u16 = 4,
        /// Next header (the payload protocol when there are no extension
        /// headers).
        next_header / set_next_header: u8 = 6,
        /// Hop limit.
        hop_limit / set_hop_limit: u8 = 7,
        /// Source address.
        src_addr / set_src_addr: Ipv6Addr = 8,
        /// Destination address.
        dst_addr / set_dst_addr: Ipv6Addr = 24,
    }
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer holding a complete packet: version 6 and the header
    /// plus the announced payload inside the buffer (trailing bytes are
    /// allowed).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_header_checked(buffer)?;
        check_len(p.buffer.as_ref(), p.total_len())?;
        Ok(p)
    }

    /// Wraps a buffer whose fixed header is complete, without requiring
    /// the payload (see [`super::ipv4::Packet::new_header_checked`]).
    pub fn new_header_checked(buffer: T) -> Result<Self> {
        Self::checked(buffer, HEADER_LEN, |p| {
            ensure(p.version() == 6, Malformed::IpVersion(6))?;
            Ok(HEADER_LEN)
        })
    }

    /// The first word: version, traffic class and flow label.
    fn ver_tc_flow(&self) -> u32 {
        u32::read(self.buffer.as_ref(), VER_TC_FLOW)
    }

    /// IP version (6 on a checked view).
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// The 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Header plus payload length: the packet's total length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    /// Whether the whole packet is inside the buffer.
    pub fn is_complete(&self) -> bool {
        self.total_len() <= self.buffer.as_ref().len()
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload, cut short at the end of the buffer.
    pub fn payload(&self) -> &'a [u8] {
        let b = T::as_ref(self.buffer);
        let end = self.total_len().min(b.len());
        &b[HEADER_LEN.min(end)..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 6, traffic class 0 and the flow label.
    pub fn set_version_and_flow_label(&mut self, label: u32) {
        let w = 0x6000_0000 | (label & 0x000f_ffff);
        self.buffer.as_mut()[..4].copy_from_slice(&w.to_be_bytes());
    }
}

/// The fields of an IPv6 fixed header, for reading and writing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header (the payload protocol).
    pub next_header: u8,
    /// Payload length in bytes.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Repr {
    /// Reads a checked view.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Repr {
        Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len(),
            hop_limit: packet.hop_limit(),
            flow_label: packet.flow_label(),
        }
    }

    /// Writes the 40-byte header into the start of `packet`'s buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        check_len(packet.buffer.as_ref(), HEADER_LEN)?;
        packet.set_version_and_flow_label(self.flow_label);
        packet.set_payload_len(self.payload_len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    /// Packet 13 of the `mixed` conformance capture: flow label 0x5a5a5,
    /// TCP, 2001:db8:bbbb::20 → fd42:42:42::443.
    const PKT: &str = "6005a5a50014064020010db8bbbb00000000000000000020fd420042004200000000000000000443c36601bb000010920000000050022000ce900000";

    fn bytes() -> Vec<u8> {
        (0..PKT.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&PKT[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn read_fields() {
        let b = bytes();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0x5a5a5);
        assert_eq!(p.payload_len(), 20);
        assert_eq!(p.next_header(), 6);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(
            p.src_addr(),
            "2001:db8:bbbb::20".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(p.dst_addr(), "fd42:42:42::443".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload().len(), 20);
    }

    #[test]
    fn checks() {
        let b = bytes();
        assert_eq!(Packet::new_checked(&b[..39]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..50]).unwrap_err(), Error::Truncated);
        let p = Packet::new_header_checked(&b[..50]).unwrap();
        assert_eq!(p.payload().len(), 10);
        assert!(!p.is_complete());
        let mut v4 = b.clone();
        v4[0] = 0x45;
        assert!(matches!(
            Packet::new_header_checked(&v4[..]),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn repr_round_trip() {
        let b = bytes();
        let p = Packet::new_checked(&b[..]).unwrap();
        let repr = Repr::parse(&p);
        assert_eq!(
            (repr.next_header, repr.payload_len, repr.flow_label),
            (6, 20, 0x5a5a5)
        );
        let mut out = vec![0u8; HEADER_LEN];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, b[..HEADER_LEN]);
    }
}
