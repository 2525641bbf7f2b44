//! Ethernet II frames.

use std::fmt;
use std::str::FromStr;

use super::Result;

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = 14;

/// EtherType values GLB cares about.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// `00:00:00:00:00:00`, the source of frames from the offline engine.
    pub const ZERO: Address = Address([0; 6]);
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Why a MAC address string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (expected six hex pairs like 3a:89:7c:7b:5d:1f)")]
pub struct ParseAddressError(pub String);

impl FromStr for Address {
    type Err = ParseAddressError;

    /// Accepts `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` and DPDK's
    /// `aabb:ccdd:eeff` form, hex digits in either case.
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        let err = || ParseAddressError(s.to_owned());
        let hex = |t: &str| -> Option<Vec<u8>> {
            if t.is_empty() || t.len() % 2 != 0 || !t.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            (0..t.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&t[i..i + 2], 16).ok())
                .collect()
        };
        let sep = if s.contains('-') { '-' } else { ':' };
        let parts: Vec<&str> = s.split(sep).collect();
        let bytes: Vec<u8> = match parts.len() {
            6 if parts.iter().all(|p| p.len() == 2) => {
                parts.iter().map(|p| hex(p)).collect::<Option<Vec<_>>>()
            }
            3 if sep == ':' && parts.iter().all(|p| p.len() == 4) => {
                parts.iter().map(|p| hex(p)).collect::<Option<Vec<_>>>()
            }
            _ => None,
        }
        .ok_or_else(err)?
        .concat();
        let arr: [u8; 6] = bytes.try_into().map_err(|_| err())?;
        Ok(Address(arr))
    }
}

view! {
    /// A view of an Ethernet II frame.
    Frame {
        /// Destination MAC.
        dst_addr / set_dst_addr: Address = 0,
        /// Source MAC.
        src_addr / set_src_addr: Address = 6,
        /// EtherType.
        ethertype / set_ethertype: u16 = 12,
    }
}

fixed_len_view!(
    Frame,
    HEADER_LEN,
    /// Everything after the header.
    payload / payload_mut
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    #[test]
    fn mac_parsing() {
        let want = Address([0x3a, 0x89, 0x7c, 0x7b, 0x5d, 0x1f]);
        assert_eq!("3a:89:7c:7b:5d:1f".parse::<Address>().unwrap(), want);
        assert_eq!("3A-89-7C-7B-5D-1F".parse::<Address>().unwrap(), want);
        assert_eq!("3a89:7c7b:5d1f".parse::<Address>().unwrap(), want);
        assert_eq!(want.to_string(), "3a:89:7c:7b:5d:1f");
        for bad in [
            "",
            "3a:89:7c:7b:5d",
            "3a:89:7c:7b:5d:1f:00",
            "3a:89:7c:7b:5d:1g",
            "3a:89:7c:7b:5d:1",
            "3a:89-7c:7b:5d:1f",
            "+a:89:7c:7b:5d:1f",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }

    #[test]
    fn frame_fields() {
        let mut buf = [0u8; 16];
        let mut f = Frame::new_checked(&mut buf[..]).unwrap();
        f.set_dst_addr(Address([1, 2, 3, 4, 5, 6]));
        f.set_src_addr(Address([7, 8, 9, 10, 11, 12]));
        f.set_ethertype(ethertype::IPV6);
        assert_eq!(
            buf[..14],
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x86, 0xdd]
        );
        let f = Frame::new_checked(&buf[..]).unwrap();
        assert_eq!(f.ethertype(), 0x86dd);
        assert_eq!(f.payload().len(), 2);
        assert_eq!(
            Frame::new_checked(&buf[..13]).unwrap_err(),
            Error::Truncated
        );
    }
}
