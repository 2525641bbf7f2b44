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

/// SipHash-2-4 under one key, for hashing many short messages (the
/// director's flow hash): the key-derived starting state is computed once,
/// and a message is absorbed from registers in pieces of known size
/// rather than through a byte buffer. The output is that of
/// [`Key16::siphash`] on the concatenated pieces.
///
/// Its `Debug` output is redacted: the state reveals the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SipKey {
    v: [u64; 4],
}

impl SipKey {
    /// Derives the starting state from `key`.
    pub fn new(key: &Key16) -> Self {
        let [a, b] = [0, 8].map(|i| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&key.0[i..i + 8]);
            u64::from_le_bytes(w)
        });
        // The initialisation constants of the SipHash paper.
        SipKey {
            v: [
                a ^ 0x736f_6d65_7073_6575,
                b ^ 0x646f_7261_6e64_6f6d,
                a ^ 0x6c79_6765_6e65_7261,
                b ^ 0x7465_6462_7974_6573,
            ],
        }
    }

    /// Starts hashing a message.
    #[inline(always)]
    pub fn start(&self) -> Sip24 {
        Sip24 {
            v: self.v,
            tail: 0,
            ntail: 0,
            len: 0,
        }
    }
}

impl fmt::Debug for SipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SipKey(<redacted>)")
    }
}

/// A SipHash-2-4 computation in progress (see [`SipKey`]).
#[derive(Clone, Copy)]
pub struct Sip24 {
    v: [u64; 4],
    /// Bytes not yet absorbed, little-endian, `ntail` of them.
    tail: u64,
    ntail: u32,
    /// Message length so far (only its low byte enters the hash).
    len: u64,
}

impl fmt::Debug for Sip24 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sip24(<redacted>)")
    }
}

impl Sip24 {
    #[inline(always)]
    fn round(&mut self) {
        let [mut v0, mut v1, mut v2, mut v3] = self.v;
        v0 = v0.wrapping_add(v1);
        v1 = v1.rotate_left(13) ^ v0;
        v0 = v0.rotate_left(32);
        v2 = v2.wrapping_add(v3);
        v3 = v3.rotate_left(16) ^ v2;
        v0 = v0.wrapping_add(v3);
        v3 = v3.rotate_left(21) ^ v0;
        v2 = v2.wrapping_add(v1);
        v1 = v1.rotate_left(17) ^ v2;
        v2 = v2.rotate_left(32);
        self.v = [v0, v1, v2, v3];
    }

    #[inline(always)]
    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        self.round();
        self.round();
        self.v[0] ^= m;
    }

    /// Absorbs `n` bytes (1 to 8) held little-endian in `word`, whose
    /// bytes above `n` are zero.
    #[inline(always)]
    fn absorb(&mut self, word: u64, n: u32) {
        self.len += u64::from(n);
        // `ntail` is below 8, so every shift here is below 64 bits.
        let joined = self.tail | (word << (8 * self.ntail));
        let filled = self.ntail + n;
        if filled >= 8 {
            self.compress(joined);
            self.tail = if self.ntail == 0 {
                0
            } else {
                word >> (64 - 8 * self.ntail)
            };
            self.ntail = filled - 8;
        } else {
            self.tail = joined;
            self.ntail = filled;
        }
    }

    /// Appends `bytes` to the message.
    #[inline(always)]
    pub fn write<const N: usize>(&mut self, bytes: &[u8; N]) {
        for piece in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..piece.len()].copy_from_slice(piece);
            self.absorb(u64::from_le_bytes(w), piece.len() as u32);
        }
    }

    /// The hash of the message, read little-endian.
    #[inline(always)]
    pub fn finish(mut self) -> u64 {
        let last = (self.len << 56) | self.tail;
        self.compress(last);
        self.v[2] ^= 0xff;
        for _ in 0..4 {
            self.round();
        }
        let [v0, v1, v2, v3] = self.v;
        v0 ^ v1 ^ v2 ^ v3
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

    /// The register-fed hasher agrees with the reference implementation
    /// (siphasher) for every message split into pieces of 1, 2, 4, 8 and
    /// 16 bytes, whatever the order of the piece sizes.
    #[test]
    fn sip_key_matches_siphasher() {
        use proptest::prelude::*;
        let piece = prop_oneof![
            prop::collection::vec(any::<u8>(), 1),
            prop::collection::vec(any::<u8>(), 2),
            prop::collection::vec(any::<u8>(), 4),
            prop::collection::vec(any::<u8>(), 8),
            prop::collection::vec(any::<u8>(), 16),
        ];
        let cases = (any::<[u8; 16]>(), prop::collection::vec(piece, 0..12));
        proptest!(|((key, pieces) in cases)| {
            let key = Key16::new(key);
            let mut h = SipKey::new(&key).start();
            for p in &pieces {
                match p.len() {
                    1 => h.write(&[p[0]]),
                    2 => h.write(&[p[0], p[1]]),
                    4 => h.write(&<[u8; 4]>::try_from(&p[..]).unwrap()),
                    8 => h.write(&<[u8; 8]>::try_from(&p[..]).unwrap()),
                    _ => h.write(&<[u8; 16]>::try_from(&p[..]).unwrap()),
                }
            }
            let mut reference = SipHasher24::new_with_key(key.expose());
            for p in &pieces {
                reference.write(p);
            }
            prop_assert_eq!(h.finish(), reference.finish());
        });
    }

    /// The paper's vectors for every message length 0..=63 (key 00..0f,
    /// message 00 01 02 ..), fed a byte at a time.
    #[test]
    fn sip_key_paper_lengths() {
        let key = Key16::new(core::array::from_fn(|i| i as u8));
        for n in 0..64u8 {
            let msg: Vec<u8> = (0..n).collect();
            let mut h = SipKey::new(&key).start();
            for b in &msg {
                h.write(&[*b]);
            }
            assert_eq!(h.finish(), key.siphash(&msg), "length {n}");
        }
        assert!(!format!("{:?}", SipKey::new(&key)).contains("0x"));
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
