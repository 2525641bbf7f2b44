//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) messages, as far as GLB reads
//! them: type, code, the identifier word, and the packet quoted by error
//! messages.
//!
//! Both versions share the layout GLB needs: type, code, checksum, four
//! bytes that depend on the type (unused, next-hop MTU, or identifier and
//! sequence number), then data — for errors, as much of the offending
//! packet as fits.

use super::{Field, Result, check_len, checksum};

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

/// Offset of the checksum.
const CHECKSUM: usize = 2;

view! {
    /// A view of an ICMPv4 or ICMPv6 message.
    Packet {
        /// Message type.
        msg_type / set_msg_type: u8 = 0,
        /// Message code.
        msg_code / set_msg_code: u8 = 1,
        /// Checksum as stored.
        checksum: u16 = CHECKSUM,
        /// Echo identifier (bytes 4-5).
        echo_ident / set_echo_ident: u16 = 4,
        /// Echo sequence number (bytes 6-7).
        echo_seq_no / set_echo_seq_no: u16 = 6,
        /// The four type-specific bytes as one word (e.g. the MTU of an
        /// ICMPv6 packet-too-big, or the next-hop MTU in the low half for
        /// ICMPv4 fragmentation-needed).
        rest_of_header: u32 = 4,
    }
}

fixed_len_view!(
    Packet,
    HEADER_LEN,
    /// Everything after the header: for errors, the quoted packet.
    data / data_mut
);

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes and stores the ICMPv4 checksum over the whole message
    /// (ICMPv6 also covers a pseudo-header, which GLB never writes).
    pub fn fill_checksum_v4(&mut self) {
        0u16.write(self.buffer.as_mut(), CHECKSUM);
        let c = checksum::checksum(self.buffer.as_ref());
        c.write(self.buffer.as_mut(), CHECKSUM);
    }
}

/// An ICMPv4 message as GLB's health checker sends and reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// Echo request (type 8).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// The data echoed back.
        data: &'a [u8],
    },
    /// Echo reply (type 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// The data of the request.
        data: &'a [u8],
    },
    /// Any other type and code.
    Other {
        /// Type.
        msg_type: u8,
        /// Code.
        msg_code: u8,
    },
}

impl<'a> Repr<'a> {
    /// Reads an ICMPv4 message; the data is borrowed from the buffer.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Repr<'a> {
        let (ident, seq_no, data) = (packet.echo_ident(), packet.echo_seq_no(), packet.data());
        match (packet.msg_type(), packet.msg_code()) {
            (V4_ECHO_REQUEST, 0) => Repr::EchoRequest {
                ident,
                seq_no,
                data,
            },
            (V4_ECHO_REPLY, 0) => Repr::EchoReply {
                ident,
                seq_no,
                data,
            },
            (msg_type, msg_code) => Repr::Other { msg_type, msg_code },
        }
    }

    /// Bytes the message takes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
            Repr::Other { .. } => HEADER_LEN,
        }
    }

    /// Writes the message, checksum included, into the start of
    /// `packet`'s buffer, which must hold [`Repr::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        check_len(packet.buffer.as_ref(), self.buffer_len())?;
        let (ty, code) = match *self {
            Repr::EchoRequest { .. } => (V4_ECHO_REQUEST, 0),
            Repr::EchoReply { .. } => (V4_ECHO_REPLY, 0),
            Repr::Other { msg_type, msg_code } => (msg_type, msg_code),
        };
        packet.set_msg_type(ty);
        packet.set_msg_code(code);
        if let Repr::EchoRequest {
            ident,
            seq_no,
            data,
        }
        | Repr::EchoReply {
            ident,
            seq_no,
            data,
        } = *self
        {
            packet.set_echo_ident(ident);
            packet.set_echo_seq_no(seq_no);
            packet.data_mut()[..data.len()].copy_from_slice(data);
        }
        packet.fill_checksum_v4();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

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

    #[test]
    fn echo_round_trip() {
        let repr = Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 7,
            data: b"abcd",
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        // The health checker's probe message, as captured.
        assert_eq!(
            buf,
            [
                0x08, 0x00, 0x20, 0xfe, 0x12, 0x34, 0x00, 0x07, b'a', b'b', b'c', b'd'
            ]
        );
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p), repr);
        buf[0] = 0;
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(matches!(
            Repr::parse(&p),
            Repr::EchoReply { data: b"abcd", .. }
        ));
    }
}
