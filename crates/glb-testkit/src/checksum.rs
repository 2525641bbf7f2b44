//! The Internet checksum (RFC 1071) written from the RFC, word by word,

//! so tests never check the code under test against itself.

/// RFC 1071 checksum, word by word.
pub fn csum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for (i, b) in data.iter().enumerate() {
        sum += if i % 2 == 0 {
            u32::from(*b) << 8
        } else {
            u32::from(*b)
        };
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    !(sum as u16)
}

/// The checksum of a UDP or TCP segment over IPv4: the pseudo-header
/// (addresses, protocol, length) then the segment, checksum field zero.
pub fn transport_v4(
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    proto: u8,
    segment: &[u8],
) -> u16 {
    let mut data = Vec::with_capacity(12 + segment.len());
    data.extend_from_slice(&src.octets());
    data.extend_from_slice(&dst.octets());
    data.extend_from_slice(&[0, proto]);
    data.extend_from_slice(&(segment.len() as u16).to_be_bytes());
    data.extend_from_slice(segment);
    csum(&data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to 0xddf2.
    #[test]
    fn rfc1071_example() {
        assert_eq!(
            csum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }
}
