//! The Internet checksum (RFC 1071): the ones' complement of the ones'
//! complement sum of 16-bit big-endian words.
//!
//! Sums are kept unfolded in a `u64` while data is added, so long buffers
//! are summed eight bytes at a time and folded once at the end.

use std::net::Ipv4Addr;

/// Adds `data` to a running unfolded sum. `data` is treated as starting on
/// an even offset; an odd trailing byte is padded with a zero.
#[inline]
pub fn add(sum: u64, data: &[u8]) -> u64 {
    // Eight bytes at a time in the machine's byte order, each carry out
    // of the top added straight back in (2^64 ≡ 1 modulo 0xffff, which
    // is all a ones' complement sum keeps): an add and an add-with-carry
    // per word.
    let mut acc: u64 = 0;
    let mut add_words = |mut words: &[u8]| {
        while let Some((w, r)) = words.split_first_chunk::<8>() {
            acc = add_carry(acc, u64::from_ne_bytes(*w));
            words = r;
        }
    };
    let mut rest = data;
    while let Some((block, r)) = rest.split_first_chunk::<32>() {
        add_words(block);
        rest = r;
    }
    // Below 32 bytes, halving steps: straight-line code for the short
    // packets the director sees, whatever their length.
    if let Some((block, r)) = rest.split_first_chunk::<16>() {
        add_words(block);
        rest = r;
    }
    if let Some((block, r)) = rest.split_first_chunk::<8>() {
        add_words(block);
        rest = r;
    }
    // The last 0 to 7 bytes, as 4-, 2- and 1-byte pieces, each at an even
    // offset so its bytes keep their places in the 16-bit words.
    let mut tail: u64 = 0;
    if let Some((w, r)) = rest.split_first_chunk::<4>() {
        tail += u64::from(u32::from_ne_bytes(*w));
        rest = r;
    }
    if let Some((w, r)) = rest.split_first_chunk::<2>() {
        tail += u64::from(u16::from_ne_bytes(*w));
        rest = r;
    }
    if let [last] = rest {
        tail += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    let acc = add_carry(acc, tail);
    // Modulo 0xffff a 64-bit word is the sum of its 16-bit lanes, and
    // swapping a lane's two bytes multiplies it by 2^8: so the
    // byte-swapped word's halves add up to the big-endian sum (RFC 1071
    // §2(B)), left for the caller's one final fold.
    let swapped = acc.swap_bytes();
    sum + (swapped & 0xffff_ffff) + (swapped >> 32)
}

/// `a + b` with the carry out of the top added back in.
#[inline(always)]
fn add_carry(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    // Cannot overflow: with a carry, `s` is at most 2^64 - 2.
    s + u64::from(carry)
}

/// Folds an unfolded sum into 16 bits (without complementing it).
#[inline]
pub fn fold(sum: u64) -> u16 {
    // Halves added with their carry added back, 64 to 32 to 16 bits: the
    // value stays the same modulo 0xffff, and is 0 only if `sum` is.
    let (s, carry) = (sum as u32).overflowing_add((sum >> 32) as u32);
    let s = s + u32::from(carry);
    let (s, carry) = (s as u16).overflowing_add((s >> 16) as u16);
    s + u16::from(carry)
}

/// The checksum of `data`: the complement of its folded sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(add(0, data))
}

/// The unfolded sum of the IPv4 pseudo-header used by UDP and TCP.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u64 {
    let s = u32::from(src);
    let d = u32::from(dst);
    u64::from(s >> 16)
        + u64::from(s & 0xffff)
        + u64::from(d >> 16)
        + u64::from(d & 0xffff)
        + u64::from(protocol)
        + u64::from(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of RFC 1071 §3: the words 0001 f203 f4f5 f6f7
    /// sum to 0xddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(add(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(fold(add(0, &[0xab])), 0xab00);
        assert_eq!(fold(add(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
        // Long buffers with every remainder length agree with a plain
        // word-by-word sum.
        let data: Vec<u8> = (0..77u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..data.len() {
            let mut plain: u64 = 0;
            for (i, b) in data[..n].iter().enumerate() {
                plain += if i % 2 == 0 {
                    u64::from(*b) << 8
                } else {
                    u64::from(*b)
                };
            }
            assert_eq!(fold(add(0, &data[..n])), fold(plain), "length {n}");
        }
    }

    /// The straight-line fold gives what folding 16 bits at a time until
    /// nothing is left over gives, for any sum.
    #[test]
    fn fold_matches_repeated_folding() {
        fn slow(mut s: u64) -> u16 {
            while s >> 16 != 0 {
                s = (s & 0xffff) + (s >> 16);
            }
            s as u16
        }
        let edges = [
            0,
            1,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0xffff_ffff,
            0x1_0000_0000,
            0xffff_fffe_ffff_0001,
            u64::MAX,
            u64::MAX - 1,
        ];
        for s in edges {
            assert_eq!(fold(s), slow(s), "{s:#x}");
        }
        proptest::proptest!(|(s: u64)| proptest::prop_assert_eq!(fold(s), slow(s)));
    }

    /// Against a plain sum of big-endian 16-bit words, for buffers of
    /// random bytes and lengths, including all-0xff ones that carry out of
    /// every word.
    #[test]
    fn add_matches_word_sum() {
        fn plain(start: u64, data: &[u8]) -> u16 {
            let mut s = start;
            for c in data.chunks(2) {
                s += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
            while s >> 16 != 0 {
                s = (s & 0xffff) + (s >> 16);
            }
            s as u16
        }
        for n in 0..300 {
            let ones = vec![0xffu8; n];
            assert_eq!(fold(add(0, &ones)), plain(0, &ones), "length {n}");
        }
        let bytes = proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200);
        proptest::proptest!(|(data in bytes, start in 0u64..1 << 40)| {
            proptest::prop_assert_eq!(fold(add(start, &data)), plain(start, &data));
        });
    }

    /// A captured IPv4 header (from the conformance capture) whose stored
    /// checksum 0xf37f makes the whole header sum to 0xffff.
    #[test]
    fn known_ipv4_header() {
        let hdr = [
            0x45, 0x00, 0x00, 0x50, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xf3, 0x7f, 0xcb, 0x00,
            0x71, 0xfe, 0x0a, 0x14, 0x00, 0x0b,
        ];
        assert_eq!(fold(add(0, &hdr)), 0xffff);
        let mut zeroed = hdr;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(checksum(&zeroed), 0xf37f);
    }
}
