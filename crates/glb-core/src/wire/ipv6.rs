//! IPv6 fixed headers (RFC 8200). Extension headers are not walked: GLB
//! classifies on the fixed header's next-header field.

use std::net::Ipv6Addr;

use super::{Error, Result, array, be16, be32};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// A view of an IPv6 fixed header and the packet behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic when it is
    /// shorter than the header.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer holding a complete packet: version 6 and the header
    /// plus the announced payload inside the buffer (trailing bytes are
    /// allowed).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_header_checked(buffer)?;
        if p.total_len() > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Wraps a buffer whose fixed header is complete, without requiring
    /// the payload (see [`super::ipv4::Packet::new_header_checked`]).
    pub fn new_header_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_TC_FLOW] >> 4 != 6 {
            return Err(Error::Malformed("IP version is not 6"));
        }
        Ok(Packet { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// IP version (6 on a checked view).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        ((be16(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4) & 0xff) as u8
    }

    /// The 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length as the header states.
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// Header plus payload length: the packet's total length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    /// Next header (the payload protocol when there are no extension
    /// headers).
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.buffer.as_ref(), field::SRC))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.buffer.as_ref(), field::DST))
    }

    /// The payload, cut short at the end of the buffer.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = self.total_len().min(b.len());
        &b[HEADER_LEN.min(end)..end]
    }

    /// Whether the whole packet is inside the buffer.
    pub fn is_complete(&self) -> bool {
        self.total_len() <= self.buffer.as_ref().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
