//! SipHash-2-4 written from the paper (Aumasson and Bernstein), for tests

//! that must not trust the suite's own hasher.

/// SipHash-2-4 written from the paper; the output's 8 bytes read as a
/// little-endian u64, like the reference implementation.
pub fn siphash(key: &[u8; 16], msg: &[u8]) -> u64 {
    let k0 = u64::from_le_bytes(key[..8].try_into().unwrap());
    let k1 = u64::from_le_bytes(key[8..].try_into().unwrap());
    let mut v = [
        k0 ^ 0x736f6d6570736575,
        k1 ^ 0x646f72616e646f6d,
        k0 ^ 0x6c7967656e657261,
        k1 ^ 0x7465646279746573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut padded = msg.to_vec();
    let tail = (msg.len() as u64 & 0xff) << 56;
    while padded.len() % 8 != 0 {
        padded.push(0);
    }
    let mut blocks: Vec<u64> = padded
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    if msg.len() % 8 == 0 {
        blocks.push(tail);
    } else {
        *blocks.last_mut().unwrap() |= tail;
    }
    for m in blocks {
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

pub fn hex16(s: &str) -> [u8; 16] {
    let mut k = [0u8; 16];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's test vector: key 00..0f, message 00..0e.
    #[test]
    fn paper_vector() {
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash(&key, &msg), 0xa129ca6149be45e5);
    }
}
