//! TCP headers (RFC 9293), as far as GLB reads them: ports, sequence
//! numbers, flags and the payload. The proxy side decides on the flags
//! (a SYN is always taken locally, SPEC §11).
//!
//! ```text
//!  0              16              31
//! |  source port  |   dest port   |
//! |        sequence number        |
//! |     acknowledgment number     |
//! |off|rsv| flags |    window     |
//! |   checksum    | urgent pointer|
//! |   options (off > 5) ...       |
//! ```

use super::{Malformed, Result, ensure};

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// The flag bits of byte 13.
pub mod flags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers: a connection attempt.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// The acknowledgment number is valid.
    pub const ACK: u8 = 0x10;
}

/// Offset of the data-offset byte (its high nibble).
const DATA_OFF: usize = 12;

view! {
    /// A view of a TCP header and its payload.
    Packet {
        /// Source port.
        src_port: u16 = 0,
        /// Destination port.
        dst_port: u16 = 2,
        /// Sequence number.
        seq_number: u32 = 4,
        /// Acknowledgment number.
        ack_number: u32 = 8,
        /// The flag bits (see [`flags`]).
        flags: u8 = 13,
        /// Receive window.
        window: u16 = 14,
    }
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer holding a whole header, options included: at least
    /// 20 bytes and a data offset of at least 5 words that fits.
    pub fn new_checked(buffer: T) -> Result<Self> {
        Self::checked(buffer, HEADER_LEN, |p| {
            ensure(p.header_len() >= HEADER_LEN, Malformed::TcpHeaderLen)?;
            Ok(p.header_len())
        })
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[DATA_OFF] >> 4) * 4
    }

    /// Whether SYN is set.
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }

    /// Whether ACK is set.
    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }

    /// Whether RST is set.
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Everything after the header (options included in the header).
    pub fn payload(&self) -> &'a [u8] {
        let b = T::as_ref(self.buffer);
        &b[self.header_len().min(b.len())..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    /// A SYN from 49201 to 80, seq 1, data offset 5, window 0x2000.
    const SYN: [u8; 22] = [
        0xc0, 0x31, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0x00, 0, 0, 0, 0, 0xaa,
        0xbb,
    ];

    #[test]
    fn fields_flags_and_payload() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (49201, 80));
        assert_eq!((p.seq_number(), p.ack_number()), (1, 0));
        assert_eq!((p.header_len(), p.window()), (20, 0x2000));
        assert!(p.syn() && !p.ack() && !p.rst());
        assert_eq!(p.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn checks() {
        assert_eq!(
            Packet::new_checked(&SYN[..19]).unwrap_err(),
            Error::Truncated
        );
        let mut b = SYN;
        b[12] = 0x40;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::Malformed(Malformed::TcpHeaderLen)
        );
        b[12] = 0x60; // 24-byte header in a 22-byte buffer
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
    }
}
