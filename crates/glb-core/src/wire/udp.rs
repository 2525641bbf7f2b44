//! UDP headers (RFC 768).

use std::net::Ipv4Addr;

use super::{Error, Malformed, Result, check_len, checksum, ensure, ip_proto};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

view! {
    /// A view of a UDP header and its payload.
    Packet {
        /// Source port.
        src_port / set_src_port: u16 = 0,
        /// Destination port.
        dst_port / set_dst_port: u16 = 2,
        /// Length of header plus payload, as the header states.
        len / set_len: u16 = 4,
        /// Checksum as stored (0 means none was computed, over IPv4).
        checksum / set_checksum: u16 = 6,
    }
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer holding a whole datagram: a length field of at least
    /// 8 that fits in the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        Self::checked(buffer, HEADER_LEN, |p| {
            let len = usize::from(p.len());
            ensure(len >= HEADER_LEN, Malformed::UdpLen)?;
            Ok(len)
        })
    }

    /// Whether the length field is 0 (never on a checked view).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload, bounded by the length field and the buffer.
    pub fn payload(&self) -> &'a [u8] {
        let b = T::as_ref(self.buffer);
        let end = usize::from(self.len()).clamp(HEADER_LEN.min(b.len()), b.len());
        &b[HEADER_LEN.min(end)..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// The payload, mutable, bounded by the length field and the buffer.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        let b = self.buffer.as_mut();
        let end = len.clamp(HEADER_LEN.min(b.len()), b.len());
        &mut b[HEADER_LEN.min(end)..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes the checksum over the IPv4 pseudo-header and the whole
    /// datagram (the length field says how much) and stores it; a
    /// computed zero is stored as 0xffff, zero meaning "none" over IPv4.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let b = self.buffer.as_ref();
        let end = usize::from(len).min(b.len());
        let sum = checksum::pseudo_header_v4(src, dst, ip_proto::UDP, len);
        let c = match !checksum::fold(checksum::add(sum, &b[..end])) {
            0 => 0xffff,
            c => c,
        };
        self.set_checksum(c);
    }
}

/// The fields of a UDP header, for reading and writing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl Repr {
    /// Reads the ports of a checked view.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Repr {
        Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        }
    }

    /// Writes the header for a payload of `payload_len` bytes, checksum
    /// 0 (fill it with [`Packet::fill_checksum_v4`] once the payload is
    /// in place). The buffer must hold the header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        payload_len: u16,
    ) -> Result<()> {
        let len = payload_len
            .checked_add(HEADER_LEN as u16)
            .ok_or(Error::Malformed(Malformed::UdpLen))?;
        check_len(packet.buffer.as_ref(), HEADER_LEN)?;
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        packet.set_checksum(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_checks() {
        let mut buf = [0u8; 12];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_src_port(61139);
        p.set_dst_port(19523);
        p.set_len(12);
        p.set_checksum(0xabcd);
        assert_eq!(buf[..8], [0xee, 0xd3, 0x4c, 0x43, 0, 12, 0xab, 0xcd]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (61139, 19523, 12));
        assert_eq!(p.payload().len(), 4);
        assert_eq!(
            Packet::new_checked(&buf[..11]).unwrap_err(),
            Error::Truncated
        );
        buf[5] = 7;
        assert!(matches!(
            Packet::new_checked(&buf[..]),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn repr_round_trip_and_checksum() {
        let mut buf = [0u8; 12];
        buf[8..].copy_from_slice(b"data");
        let repr = Repr {
            src_port: 61139,
            dst_port: 19523,
        };
        let mut p = Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p, 4).unwrap();
        let (src, dst) = (Ipv4Addr::new(65, 65, 65, 65), Ipv4Addr::new(3, 4, 5, 6));
        p.fill_checksum_v4(src, dst);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p), repr);
        assert_eq!(p.len(), 12);
        // Summed again with the stored checksum, everything folds to 0xffff.
        let sum = checksum::pseudo_header_v4(src, dst, ip_proto::UDP, 12);
        assert_eq!(checksum::fold(checksum::add(sum, &buf)), 0xffff);
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut [0u8; 4][..]), 0),
            Err(Error::Truncated)
        );
    }
}
