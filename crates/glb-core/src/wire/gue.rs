//! Generic UDP Encapsulation (GUE, draft-ietf-intarea-gue) as GLB uses it:
//! a variant-0 data header whose optional data is GLB's private "hop
//! list" (SPEC §8, §11).
//!
//! ```text
//!  0   2 3       8              16                              31
//! |ver|C|  hlen  |   protocol    |             flags              |  GUE header
//! |        private type = 0       |   next hop    |   hop count    |  GLB private data
//! |                    hop 1 (IPv4 address)                       |
//! |                    ...  hop `hop count`                       |
//! |        inner IPv4 (protocol 4) or IPv6 (protocol 41) packet    |
//! ```
//!
//! `hlen` counts the 32-bit words after the first four bytes: the private
//! data word plus one word per hop, so a valid GLB header has
//! `hlen == hop_count + 1`. The director sends the first hop as the outer
//! destination and lists the remaining hops here with `next_hop = 0`; a
//! proxy that cannot take the packet forwards it to `hops[next_hop]` and
//! increments `next_hop`.

use std::net::Ipv4Addr;

use super::{Field, Malformed, Result, check_len, ensure, ip_proto};

/// The UDP port GLB sends GUE to ("LB" + 1).
pub const PORT: u16 = 19523;

/// Length of the fixed GUE header.
pub const BASE_LEN: usize = 4;
/// Length of the fixed GUE header plus GLB's private data word.
pub const GLB_HEADER_LEN: usize = 8;
/// Most hops a GLB header can list (`hlen` is 5 bits, one word is the
/// private data).
pub const MAX_HOPS: usize = 30;

/// Offset of the version / C bit / `hlen` byte.
const VER_C_HLEN: usize = 0;
/// Offset of the first hop.
const HOPS: usize = 8;

/// Length of a GLB GUE header listing `hops` hops.
pub const fn header_len(hops: usize) -> usize {
    GLB_HEADER_LEN + 4 * hops
}

view! {
    /// A view of a GUE header and its payload.
    Packet {
        /// IP protocol number of the payload: 4 (IPv4) or 41 (IPv6) for GLB.
        protocol / set_protocol: u8 = 1,
        /// GUE flags (0 from GLB).
        flags / set_flags: u16 = 2,
        /// GLB private data type (0). Only meaningful when `hlen ≥ 1`.
        private_type / set_private_type: u16 = 4,
        /// Index into the hop list of the next hop to forward to. Only
        /// meaningful when `hlen ≥ 1`.
        next_hop / set_next_hop: u8 = 6,
        /// Number of hops listed. Only meaningful when `hlen ≥ 1`.
        hop_count / set_hop_count: u8 = 7,
    }
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer holding a GUE data message: version 0, C bit clear,
    /// and the whole header (`4 + 4 × hlen` bytes) inside the buffer.
    /// GLB's own rules are checked by [`Packet::check_glb`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        Self::checked(buffer, BASE_LEN, |p| {
            ensure(p.version() == 0, Malformed::GueVersion)?;
            ensure(!p.is_control(), Malformed::GueControl)?;
            Ok(p.header_len())
        })
    }

    /// Wraps a buffer and checks everything a GLB proxy relies on (SPEC
    /// §11): a checked GUE header with GLB private data (`hlen ≥ 1`),
    /// `hlen == hop_count + 1`, and an inner protocol of 4 or 41.
    pub fn new_checked_glb(buffer: T) -> Result<Self> {
        let p = Self::new_checked(buffer)?;
        p.check_glb()?;
        Ok(p)
    }

    /// Checks the GLB rules on an already checked view (see
    /// [`Packet::new_checked_glb`]).
    pub fn check_glb(&self) -> Result<()> {
        let hlen = usize::from(self.hlen());
        ensure(hlen >= 1, Malformed::GueNoPrivateData)?;
        // The hop count is in the private data word, present only now.
        let hops = usize::from(self.hop_count());
        ensure(hlen == hops + 1, Malformed::GueHopCount)?;
        let inner = matches!(self.protocol(), ip_proto::IPV4 | ip_proto::IPV6);
        ensure(inner, Malformed::GueProtocol)
    }

    /// GUE version (0 on a checked view).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[VER_C_HLEN] >> 6
    }

    /// Whether this is a control message (C bit).
    pub fn is_control(&self) -> bool {
        self.buffer.as_ref()[VER_C_HLEN] & 0x20 != 0
    }

    /// Length of the optional fields in 32-bit words.
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[VER_C_HLEN] & 0x1f
    }

    /// Whole header length in bytes (`4 + 4 × hlen`).
    pub fn header_len(&self) -> usize {
        BASE_LEN + 4 * usize::from(self.hlen())
    }

    /// Hop `i` (0-based), or `None` when it is not inside the header (or
    /// beyond the buffer on an unchecked view).
    pub fn hop(&self, i: usize) -> Option<Ipv4Addr> {
        let at = HOPS + 4 * i;
        let b = self.buffer.as_ref();
        if i >= self.hop_slots() || at + 4 > b.len() {
            return None;
        }
        Some(Ipv4Addr::read(b, at))
    }

    /// The hops the header has room for: `hlen − 1`, bounded by
    /// `hop_count`.
    fn hop_slots(&self) -> usize {
        let words = usize::from(self.hlen()).saturating_sub(1);
        words.min(usize::from(self.hop_count()))
    }

    /// The listed hops, in order.
    pub fn hops(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        (0..self.hop_slots()).filter_map(move |i| self.hop(i))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The encapsulated packet after the header.
    pub fn payload(&self) -> &'a [u8] {
        let b = T::as_ref(self.buffer);
        &b[self.header_len().min(b.len())..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 0, a clear C bit and `hlen` (in 32-bit words).
    pub fn set_hlen(&mut self, hlen: u8) {
        self.buffer.as_mut()[VER_C_HLEN] = hlen & 0x1f;
    }

    /// Writes hop `i`; the header must have room for it.
    pub fn set_hop(&mut self, i: usize, addr: Ipv4Addr) {
        addr.write(self.buffer.as_mut(), HOPS + 4 * i);
    }

    /// The encapsulated packet, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let b = self.buffer.as_mut();
        let start = start.min(b.len());
        &mut b[start..]
    }
}

/// The contents of a GLB GUE header, for building one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Inner protocol: [`ip_proto::IPV4`] or [`ip_proto::IPV6`].
    pub protocol: u8,
    /// Index of the next hop to use (0 from the director).
    pub next_hop: u8,
    /// The hop list (the director lists all hops but the first).
    pub hops: &'a [Ipv4Addr],
}

impl Repr<'_> {
    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        header_len(self.hops.len())
    }

    /// Writes the header into the start of `packet`'s buffer, which must
    /// hold [`Repr::header_len`] bytes. Fails when more than [`MAX_HOPS`]
    /// hops are listed or the buffer is too short.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        ensure(self.hops.len() <= MAX_HOPS, Malformed::GueTooManyHops)?;
        check_len(packet.buffer.as_ref(), self.header_len())?;
        let n = self.hops.len() as u8;
        packet.set_hlen(1 + n);
        packet.set_protocol(self.protocol);
        packet.set_flags(0);
        packet.set_private_type(0);
        packet.set_next_hop(self.next_hop);
        packet.set_hop_count(n);
        for (i, h) in self.hops.iter().enumerate() {
            packet.set_hop(i, *h);
        }
        Ok(())
    }

    /// Parses the header of a view that passed [`Packet::check_glb`].
    /// Returns the protocol, next hop and the hop list copied into `hops`
    /// (the number of hops written is `hop_count`, at most [`MAX_HOPS`]).
    pub fn parse_into<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        hops: &mut [Ipv4Addr; MAX_HOPS],
    ) -> (u8, u8, usize) {
        let mut n = 0;
        for (slot, h) in hops.iter_mut().zip(packet.hops()) {
            *slot = h;
            n += 1;
        }
        (packet.protocol(), packet.next_hop(), n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    /// The GUE header of the conformance capture's first output frame:
    /// hlen 2, IPv4 inner, private type 0, next hop 0, one hop 10.20.0.13.
    const HDR: [u8; 12] = [
        0x02, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0a, 0x14, 0x00, 0x0d,
    ];

    #[test]
    fn parse_reference_header() {
        let mut buf = HDR.to_vec();
        buf.extend_from_slice(&[0x45, 0, 0, 20]);
        let p = Packet::new_checked_glb(&buf[..]).unwrap();
        assert_eq!(p.version(), 0);
        assert!(!p.is_control());
        assert_eq!(p.hlen(), 2);
        assert_eq!(p.header_len(), 12);
        assert_eq!(p.protocol(), 4);
        assert_eq!(p.flags(), 0);
        assert_eq!(p.private_type(), 0);
        assert_eq!(p.next_hop(), 0);
        assert_eq!(p.hop_count(), 1);
        assert_eq!(p.hop(0), Some(Ipv4Addr::new(10, 20, 0, 13)));
        assert_eq!(p.hop(1), None);
        assert_eq!(p.hops().collect::<Vec<_>>(), [Ipv4Addr::new(10, 20, 0, 13)]);
        assert_eq!(p.payload(), &[0x45, 0, 0, 20]);
    }

    #[test]
    fn emit_reference_header() {
        let mut buf = [0xffu8; 12];
        let hops = [Ipv4Addr::new(10, 20, 0, 13)];
        let repr = Repr {
            protocol: 4,
            next_hop: 0,
            hops: &hops,
        };
        assert_eq!(repr.header_len(), 12);
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(buf, HDR);
        let mut short = [0u8; 11];
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut short[..])),
            Err(Error::Truncated)
        );
    }

    /// The health checker's probe header: hlen 1, IPv4, no hops.
    #[test]
    fn zero_hops() {
        let mut buf = [0u8; 8];
        Repr {
            protocol: 4,
            next_hop: 0,
            hops: &[],
        }
        .emit(&mut Packet::new_unchecked(&mut buf[..]))
        .unwrap();
        assert_eq!(buf, [0x01, 0x04, 0, 0, 0, 0, 0, 0]);
        let p = Packet::new_checked_glb(&buf[..]).unwrap();
        assert_eq!(p.hops().count(), 0);
        assert!(p.payload().is_empty());
    }

    #[test]
    fn rejects() {
        let check = |b: &[u8]| Packet::new_checked_glb(b).map(|_| ());
        assert_eq!(check(&HDR[..3]), Err(Error::Truncated));
        assert_eq!(check(&HDR[..11]), Err(Error::Truncated));
        let mut b = HDR;
        b[0] = 0x42; // version 1
        assert!(matches!(check(&b), Err(Error::Malformed(_))));
        b[0] = 0x22; // control
        assert!(matches!(check(&b), Err(Error::Malformed(_))));
        b = HDR;
        b[7] = 2; // hop count disagrees with hlen
        assert!(matches!(check(&b), Err(Error::Malformed(_))));
        b = HDR;
        b[1] = 17;
        assert!(matches!(check(&b), Err(Error::Malformed(_))));
        b = HDR;
        b[0] = 0; // no private data
        assert!(matches!(check(&b), Err(Error::Malformed(_))));
        // ... refused before the hop count, which is not there, is read.
        assert_eq!(
            check(&[0, 4, 0, 0]),
            Err(Error::Malformed(Malformed::GueNoPrivateData))
        );
        b = HDR;
        b[7] = 255; // hop_count 255 with room for one: never read past hlen
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.hops().count(), 1);
        assert!(p.check_glb().is_err());
    }
}
