//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) messages, as far as GLB reads
//! them: type, code, the identifier word, and the packet quoted by error
//! messages.
//!
//! Both versions share the layout GLB needs: type, code, checksum, four
//! bytes that depend on the type (unused, next-hop MTU, or identifier and
//! sequence number), then data — for errors, as much of the offending
//! packet as fits.

use super::{Error, Result, be16, be32};

/// Length of the header before the data (type, code, checksum, and the
/// four type-specific bytes).
pub const HEADER_LEN: usize = 8;

/// ICMPv4 type: destination unreachable.
pub const V4_DEST_UNREACHABLE: u8 = 3;
/// ICMPv4 destination-unreachable code: fragmentation needed and DF set.
pub const V4_CODE_FRAG_NEEDED: u8 = 4;
/// ICMPv4 type: echo request.
pub const V4_ECHO_REQUEST: u8 = 8;
/// ICMPv4 type: echo reply.
pub const V4_ECHO_REPLY: u8 = 0;
/// ICMPv6 type: packet too big.
pub const V6_PACKET_TOO_BIG: u8 = 2;
/// ICMPv6 type: echo request.
pub const V6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 type: echo reply.
pub const V6_ECHO_REPLY: u8 = 129;

/// A view of an ICMPv4 or ICMPv6 message.
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

    /// Wraps a buffer holding at least the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Checksum as stored.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// Echo identifier (bytes 4-5).
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// Echo sequence number (bytes 6-7).
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// The four type-specific bytes as one word (e.g. the MTU of an
    /// ICMPv6 packet-too-big, or the next-hop MTU in the low half for
    /// ICMPv4 fragmentation-needed).
    pub fn rest_of_header(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    /// Everything after the header: for errors, the quoted packet.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frag_needed() {
        let b = [0x03, 0x04, 0x90, 0x0a, 0x00, 0x00, 0x05, 0x64, 0x45];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.msg_type(), p.msg_code()), (3, 4));
        assert_eq!(p.checksum(), 0x900a);
        assert_eq!(p.rest_of_header() & 0xffff, 1380);
        assert_eq!(p.data(), &[0x45]);
        assert_eq!(Packet::new_checked(&b[..7]).unwrap_err(), Error::Truncated);
    }
}
