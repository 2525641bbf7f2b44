//! The Internet checksum (RFC 1071): the ones' complement of the ones'
//! complement sum of 16-bit big-endian words.
//!
//! Sums are kept unfolded in a `u64` while data is added, so long buffers
//! are summed four bytes at a time and folded once at the end.

use std::net::Ipv4Addr;

/// Adds `data` to a running unfolded sum. `data` is treated as starting on
/// an even offset; an odd trailing byte is padded with a zero.
#[inline]
pub fn add(sum: u64, data: &[u8]) -> u64 {
    // Sum in the machine's byte order and swap once at the end: the ones'
    // complement sum commutes with byte swapping (RFC 1071 §2(B)), and
    // this spares a swap per word.
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // The two 32-bit halves are added separately so the accumulator
        // cannot overflow for any buffer shorter than 2^31 bytes.
        acc += (w & 0xffff_ffff) + (w >> 32);
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_ne_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    // The folded native-order sum, as bytes in memory, is the big-endian sum.
    sum + u64::from(u16::from_be_bytes(fold(acc).to_ne_bytes()))
}

/// Folds an unfolded sum into 16 bits (without complementing it).
#[inline]
pub fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
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
