//! Keyed hashing: SipHash-2-4 as used for table generation and flow hashing.

use std::fmt;
use std::hash::Hasher;

use siphasher::sip::SipHasher24;

/// A 16-byte secret (`hash_key` or `seed`).
///
/// Its `Debug` output is redacted so that a stray `{:?}` in a log line can
/// never leak the key; use [`Key16::expose`] where the bytes are needed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key16([u8; 16]);

impl Key16 {
    /// Wraps raw key bytes.
    pub const fn new(bytes: [u8; 16]) -> Self {
        Key16(bytes)
    }

    /// The key bytes, for hashing or for writing into a binary table.
    pub const fn expose(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses exactly 32 hexadecimal digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, HexKeyError> {
        let digits = text.as_bytes();
        if digits.len() != 32 {
            return Err(HexKeyError::Length(digits.len()));
        }
        let mut out = [0u8; 16];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or(HexKeyError::NotHex(i * 2))?;
            let lo = hex_value(pair[1]).ok_or(HexKeyError::NotHex(i * 2 + 1))?;
            out[i] = (hi << 4) | lo;
        }
        Ok(Key16(out))
    }

    /// A SipHash-2-4 hasher keyed with this key, ready to absorb a message.
    pub fn hasher(&self) -> SipHasher24 {
        SipHasher24::new_with_key(&self.0)
    }

    /// SipHash-2-4 of `message` under this key, as the reference
    /// implementation's 8 output bytes read little-endian.
    pub fn siphash(&self, message: &[u8]) -> u64 {
        let mut h = self.hasher();
        h.write(message);
        h.finish()
    }
}

impl fmt::Debug for Key16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key16(<redacted>)")
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Why a 32-digit hex key was refused. The messages never echo the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexKeyError {
    /// The string is not 32 characters long.
    #[error("must be exactly 32 hex digits (16 bytes), got {0} characters")]
    Length(usize),
    /// A character at the given position is not a hex digit.
    #[error("character {} is not a hex digit", .0 + 1)]
    NotHex(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference SipHash-2-4 test vector from the SipHash paper
    /// (key 00..0f, message 00..0e) is a0 3b 4f d7 ... read little-endian.
    #[test]
    fn siphash_paper_vector() {
        let mut key = [0u8; 16];
        for (i, b) in key.iter_mut().enumerate() {
            *b = i as u8;
        }
        let msg: Vec<u8> = (0u8..15).collect();
        let out = Key16::new(key).siphash(&msg).to_le_bytes();
        assert_eq!(out, [0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1]);
    }

    #[test]
    fn hex_parsing() {
        let k = Key16::from_hex("000102030405060708090A0b0C0d0E0f").unwrap();
        assert_eq!(k.expose()[10], 10);
        assert_eq!(k.expose()[15], 15);
        assert_eq!(Key16::from_hex("00"), Err(HexKeyError::Length(2)));
        assert_eq!(
            Key16::from_hex("0001020304050607080900000000000g"),
            Err(HexKeyError::NotHex(31))
        );
    }

    #[test]
    fn debug_is_redacted() {
        let k = Key16::from_hex("12345678901234561234567890123456").unwrap();
        assert!(!format!("{k:?}").contains("1234"));
    }
}
