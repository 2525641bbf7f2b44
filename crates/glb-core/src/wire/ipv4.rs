//! IPv4 headers (RFC 791).
//!
//! ```text
//!  0       4       8              16      19                      31
//! | ver=4 | ihl  |  DSCP/ECN     |         total length           |
//! |        identification        |flags|   fragment offset        |
//! |  TTL         |   protocol    |         header checksum        |
//! |                       source address                          |
//! |                     destination address                       |
//! |                  options (ihl > 5) ...                        |
//! ```

use std::net::Ipv4Addr;

use super::{Malformed, Result, check_len, checksum, ensure};

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// The "don't fragment" flag in the flags/fragment-offset word.
pub const FLAG_DF: u16 = 0x4000;
/// The "more fragments" flag in the flags/fragment-offset word.
pub const FLAG_MF: u16 = 0x2000;

/// Offset of the version/IHL byte.
const VER_IHL: usize = 0;

view! {
    /// A view of an IPv4 header and the packet behind it.
    Packet {
        /// The type-of-service byte (DSCP and ECN).
        tos / set_tos: u8 = 1,
        /// Total length of the packet, header included, as the header states.
        total_len / set_total_len: u16 = 2,
        /// Identification.
        ident / set_ident: u16 = 4,
        /// The flags and fragment offset word.
        flags_frag / set_flags_frag: u16 = 6,
        /// Time to live.
        ttl / set_ttl: u8 = 8,
        /// Protocol of the payload.
        protocol / set_protocol: u8 = 9,
        /// Header checksum as stored.
        checksum / set_checksum: u16 = 10,
        /// Source address.
        src_addr / set_src_addr: Ipv4Addr = 12,
        /// Destination address.
        dst_addr / set_dst_addr: Ipv4Addr = 16,
    }
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer holding a complete packet: version 4, an IHL of at
    /// least 5, the header (options included) inside the buffer, and a
    /// total length that covers the header and fits in the buffer. Bytes
    /// after the total length (e.g. Ethernet padding) are allowed.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_header_checked(buffer)?;
        let total = usize::from(p.total_len());
        ensure(total >= p.header_len(), Malformed::Ipv4TotalLen)?;
        check_len(p.buffer.as_ref(), total)?;
        Ok(p)
    }

    /// Wraps a buffer whose header is complete, without requiring the
    /// rest of the packet: for classifying a packet whose payload was cut
    /// off (a short capture, a quoted packet inside an ICMP error).
    /// Accessors never panic on such a view; [`Packet::payload`] returns
    /// what is present.
    pub fn new_header_checked(buffer: T) -> Result<Self> {
        Self::checked(buffer, HEADER_LEN, |p| {
            ensure(p.version() == 4, Malformed::IpVersion(4))?;
            ensure(p.header_len() >= HEADER_LEN, Malformed::Ipv4HeaderLen)?;
            Ok(p.header_len())
        })
    }

    /// The bytes of the wrapped buffer, from the start of the header.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// IP version (4 on a checked view).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[VER_IHL] & 0x0f) * 4
    }

    /// Whether the "don't fragment" flag is set.
    pub fn dont_frag(&self) -> bool {
        self.flags_frag() & FLAG_DF != 0
    }

    /// Whether the "more fragments" flag is set.
    pub fn more_frags(&self) -> bool {
        self.flags_frag() & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.flags_frag() & 0x1fff) << 3
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        let n = self.header_len().min(b.len());
        checksum::fold(checksum::add(0, &b[..n])) == 0xffff
    }

    /// Whether the whole packet (its total length) is inside the buffer.
    pub fn is_complete(&self) -> bool {
        let total = usize::from(self.total_len());
        total >= self.header_len() && total <= self.buffer.as_ref().len()
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload: from the end of the header to the total length, cut
    /// short at the end of the buffer. Empty when the total length is
    /// smaller than the header.
    pub fn payload(&self) -> &'a [u8] {
        let b = T::as_ref(self.buffer);
        let start = self.header_len().min(b.len());
        let end = usize::from(self.total_len()).clamp(start, b.len());
        &b[start..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let n = self.header_len().min(self.buffer.as_ref().len());
        let c = checksum::checksum(&self.buffer.as_ref()[..n]);
        self.set_checksum(c);
    }

    /// The payload, mutable; bounded like [`Packet::payload`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len().min(self.buffer.as_ref().len());
        let total = usize::from(self.total_len());
        let b = self.buffer.as_mut();
        let end = total.clamp(start, b.len());
        &mut b[start..end]
    }
}

/// The fields of an option-less IPv4 header, for building one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Payload length in bytes (the header is added to make the total length).
    pub payload_len: u16,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Whether to set "don't fragment".
    pub dont_frag: bool,
}

impl Repr {
    /// Reads a checked view (options, if any, are not part of a Repr).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Repr {
        Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet
                .total_len()
                .saturating_sub(packet.header_len() as u16),
            ttl: packet.ttl(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        }
    }

    /// Writes a 20-byte header with a valid checksum into the start of
    /// `packet`'s buffer, which must hold at least [`HEADER_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version_and_header_len(HEADER_LEN);
        packet.set_tos(0);
        packet.set_total_len(self.payload_len.saturating_add(HEADER_LEN as u16));
        packet.set_ident(self.ident);
        packet.set_flags_frag(if self.dont_frag { FLAG_DF } else { 0 });
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    /// An outer header taken from the conformance capture: 203.0.113.254 →
    /// 10.20.0.11, UDP, DF, TTL 64, total length 80, checksum 0xf37f.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x50, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xf3, 0x7f, 0xcb, 0x00, 0x71,
        0xfe, 0x0a, 0x14, 0x00, 0x0b,
    ];

    #[test]
    fn read_fields() {
        let mut buf = HDR.to_vec();
        buf.resize(80, 0);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 80);
        assert!(p.dont_frag() && !p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src_addr(), Ipv4Addr::new(203, 0, 113, 254));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 20, 0, 11));
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 60);
    }

    #[test]
    fn emit_matches_capture() {
        let mut buf = [0u8; 20];
        let repr = Repr {
            src_addr: Ipv4Addr::new(203, 0, 113, 254),
            dst_addr: Ipv4Addr::new(10, 20, 0, 11),
            protocol: 17,
            payload_len: 60,
            ttl: 64,
            ident: 0,
            dont_frag: true,
        };
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, HDR);
        assert_eq!(
            Repr::parse(&Packet::new_header_checked(&HDR[..]).unwrap()),
            repr
        );
    }

    #[test]
    fn checks() {
        assert_eq!(
            Packet::new_checked(&HDR[..10]).unwrap_err(),
            Error::Truncated
        );
        // Total length 80 but only the header is present.
        assert_eq!(Packet::new_checked(&HDR[..]).unwrap_err(), Error::Truncated);
        let p = Packet::new_header_checked(&HDR[..]).unwrap();
        assert!(p.payload().is_empty());
        assert!(!p.is_complete());
        let mut bad = HDR;
        bad[0] = 0x44;
        assert!(matches!(
            Packet::new_header_checked(&bad[..]),
            Err(Error::Malformed(_))
        ));
        bad[0] = 0x65;
        assert!(matches!(
            Packet::new_header_checked(&bad[..]),
            Err(Error::Malformed(_))
        ));
        bad[0] = 0x46; // options announced but absent
        assert_eq!(
            Packet::new_header_checked(&bad[..]).unwrap_err(),
            Error::Truncated
        );
        let mut short_total = HDR;
        short_total[3] = 10;
        assert!(matches!(
            Packet::new_checked(&short_total[..]),
            Err(Error::Malformed(_))
        ));
        assert!(
            Packet::new_header_checked(&short_total[..])
                .unwrap()
                .payload()
                .is_empty()
        );
    }
}
