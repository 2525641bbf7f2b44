//! Flow hashing (SPEC §7) and bind matching (SPEC §6) on already-parsed
//! addresses and ports.
//!
//! The packet path extracts a [`FlowKey`] from a frame; tools such as
//! `glb-director-cli route` build one from the command line. Both then hash
//! it the same way, so an operator's answer is the datapath's answer.

use std::fmt;
use std::hash::Hasher;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::hash::Key16;
use crate::model::{Bind, Proto};

/// The header fields a director hashes, in this fixed order: source
/// address, destination address, source port, destination port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct HashFields {
    /// Hash the source address.
    pub src_addr: bool,
    /// Hash the destination address.
    pub dst_addr: bool,
    /// Hash the source port.
    pub src_port: bool,
    /// Hash the destination port.
    pub dst_port: bool,
}

impl HashFields {
    /// Source address only: the director's default.
    pub const SRC_ADDR: HashFields = HashFields {
        src_addr: true,
        dst_addr: false,
        src_port: false,
        dst_port: false,
    };

    /// All fields false; the starting point when a config names fields.
    pub const NONE: HashFields = HashFields {
        src_addr: false,
        dst_addr: false,
        src_port: false,
        dst_port: false,
    };

    /// Whether at least one field is selected.
    pub fn any(&self) -> bool {
        self.src_addr || self.dst_addr || self.src_port || self.dst_port
    }

    /// Parses a comma-separated list such as `src_addr,dst_port`.
    pub fn parse_list(text: &str) -> Result<Self, String> {
        let mut f = HashFields::NONE;
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "src_addr" => f.src_addr = true,
                "dst_addr" => f.dst_addr = true,
                "src_port" => f.src_port = true,
                "dst_port" => f.dst_port = true,
                other => {
                    return Err(format!(
                        "unknown hash field {other:?} (expected src_addr, dst_addr, src_port, dst_port)"
                    ));
                }
            }
        }
        if !f.any() {
            return Err("no hash field selected".into());
        }
        Ok(f)
    }

    /// The flow hash: SipHash-2-4 under `key` of the selected fields
    /// (addresses in network order, 4 or 16 bytes; ports big-endian), read
    /// as a little-endian u64.
    pub fn hash(&self, key: &Key16, flow: &FlowKey) -> u64 {
        let mut h = key.hasher();
        if self.src_addr {
            write_addr(&mut h, &flow.src);
        }
        if self.dst_addr {
            write_addr(&mut h, &flow.dst);
        }
        if self.src_port {
            h.write(&flow.src_port.to_be_bytes());
        }
        if self.dst_port {
            h.write(&flow.dst_port.to_be_bytes());
        }
        h.finish()
    }
}

impl Default for HashFields {
    fn default() -> Self {
        HashFields::SRC_ADDR
    }
}

impl fmt::Display for HashFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (self.src_addr, "src_addr"),
            (self.dst_addr, "dst_addr"),
            (self.src_port, "src_port"),
            (self.dst_port, "dst_port"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect();
        f.write_str(&names.join(","))
    }
}

fn write_addr(h: &mut impl Hasher, addr: &IpAddr) {
    match addr {
        IpAddr::V4(a) => h.write(&a.octets()),
        IpAddr::V6(a) => h.write(&a.octets()),
    }
}

/// The addresses and ports a flow is hashed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Client address (for ICMP errors: the quoted packet's destination).
    pub src: IpAddr,
    /// VIP address.
    pub dst: IpAddr,
    /// Client port, 0 for ICMP other than errors.
    pub src_port: u16,
    /// VIP port, 0 for ICMP other than errors.
    pub dst_port: u16,
}

/// The row of a 65,536-row table a hash selects.
pub const fn row_of(hash: u64) -> usize {
    (hash & 0xffff) as usize
}

/// Whether `addr` lies inside `prefix/len` (families must agree).
pub fn prefix_contains(prefix: &IpAddr, len: u8, addr: &IpAddr) -> bool {
    match (prefix, addr) {
        (IpAddr::V4(p), IpAddr::V4(a)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            (u32::from(*p) ^ u32::from(*a)) & mask == 0
        }
        (IpAddr::V6(p), IpAddr::V6(a)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            (u128::from(*p) ^ u128::from(*a)) & mask == 0
        }
        _ => false,
    }
}

impl Bind {
    /// Whether a packet to `dst`:`dst_port` over `proto` belongs to this bind.
    pub fn matches(&self, dst: &IpAddr, proto: Proto, dst_port: u16) -> bool {
        self.proto == proto
            && (self.port_start..=self.port_end).contains(&dst_port)
            && prefix_contains(&self.addr, self.prefix_len, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The hash of the conformance capture's first flow, as the reference
    /// director logged it (`conformance/pcap/1k_pkts`).
    #[test]
    fn reference_flow_hash() {
        let key = Key16::from_hex("12345678901234561234567890123456").unwrap();
        let flow = FlowKey {
            src: ip("10.11.12.13"),
            dst: ip("1.1.1.1"),
            src_port: 45678,
            dst_port: 80,
        };
        assert_eq!(HashFields::SRC_ADDR.hash(&key, &flow), 0x008972f1657a5cbd);
    }

    /// Selected fields are concatenated in the fixed order, whatever order
    /// they were named in.
    #[test]
    fn field_order_is_fixed() {
        let key = Key16::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        let flow = FlowKey {
            src: ip("10.0.0.1"),
            dst: ip("10.0.0.2"),
            src_port: 0x1234,
            dst_port: 0x5678,
        };
        let all = HashFields::parse_list("dst_port,src_port,dst_addr,src_addr").unwrap();
        let msg = [10, 0, 0, 1, 10, 0, 0, 2, 0x12, 0x34, 0x56, 0x78];
        assert_eq!(all.hash(&key, &flow), key.siphash(&msg));
        let ports = HashFields::parse_list("dst_port,src_port").unwrap();
        assert_eq!(ports.hash(&key, &flow), key.siphash(&msg[8..]));
        assert!(HashFields::parse_list("").is_err());
        assert!(HashFields::parse_list("src_ip").is_err());
    }

    #[test]
    fn prefixes() {
        assert!(prefix_contains(&ip("10.20.0.0"), 24, &ip("10.20.0.255")));
        assert!(!prefix_contains(&ip("10.20.0.0"), 24, &ip("10.20.1.0")));
        assert!(prefix_contains(&ip("10.20.0.7"), 0, &ip("192.0.2.1")));
        assert!(prefix_contains(&ip("10.20.0.7"), 32, &ip("10.20.0.7")));
        assert!(!prefix_contains(&ip("10.20.0.7"), 32, &ip("10.20.0.6")));
        assert!(prefix_contains(&ip("fd00::"), 8, &ip("fdff::1")));
        assert!(!prefix_contains(&ip("fd00::"), 8, &ip("fe00::1")));
        assert!(!prefix_contains(&ip("::"), 0, &ip("1.2.3.4")));
    }
}
