//! Step 3 of the packet path, the flow hash (SPEC §7), on already-parsed
//! addresses and ports.
//!
//! The packet path extracts a [`FlowKey`] from a frame; tools such as
//! `glb-director-cli route` build one from the command line. Both then hash
//! it the same way, so an operator's answer is the datapath's answer.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::hash::{Key16, ShortMsg, Sip24, SipKey};

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
        self.hash_with(&SipKey::new(key), flow)
    }

    /// [`HashFields::hash`] with the key's state prepared once.
    #[inline]
    pub fn hash_with(&self, key: &SipKey, flow: &FlowKey) -> u64 {
        match (flow.src, flow.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                self.hash_parts(key, &s.octets(), &d.octets(), flow.src_port, flow.dst_port)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                self.hash_parts(key, &s.octets(), &d.octets(), flow.src_port, flow.dst_port)
            }
            // Mixed families never come from a packet, but a FlowKey can
            // hold them.
            (s, d) => {
                let mut h = key.start();
                if self.src_addr {
                    write_addr(&mut h, &s);
                }
                if self.dst_addr {
                    write_addr(&mut h, &d);
                }
                self.finish_ports(h, flow.src_port, flow.dst_port)
            }
        }
    }

    /// The flow hash of addresses of one family (4 or 16 bytes, network
    /// order) and ports.
    #[inline(always)]
    pub fn hash_parts<const N: usize>(
        &self,
        key: &SipKey,
        src: &[u8; N],
        dst: &[u8; N],
        src_port: u16,
        dst_port: u16,
    ) -> u64 {
        let mut h = key.start();
        if self.src_addr {
            h.write(src);
        }
        if self.dst_addr {
            h.write(dst);
        }
        self.finish_ports(h, src_port, dst_port)
    }

    /// The IPv4 flow hash of these fields, its message shape chosen once.
    #[inline]
    pub fn v4(&self) -> V4Hasher {
        V4Hasher(
            u8::from(self.src_addr)
                | (u8::from(self.dst_addr) << 1)
                | (u8::from(self.src_port) << 2)
                | (u8::from(self.dst_port) << 3),
        )
    }

    #[inline(always)]
    fn finish_ports(&self, mut h: Sip24, src_port: u16, dst_port: u16) -> u64 {
        if self.src_port {
            h.write(&src_port.to_be_bytes());
        }
        if self.dst_port {
            h.write(&dst_port.to_be_bytes());
        }
        h.finish()
    }
}

/// The IPv4 flow hash for one field set ([`HashFields::v4`]). The flow
/// hash is the director's largest cost per packet; a message whose shape
/// is known at compile time (one variant per field set, picked by a
/// single jump) spares it the bookkeeping of absorbing fields of unknown
/// position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4Hasher(u8);

impl V4Hasher {
    /// [`HashFields::hash_parts`] of IPv4 addresses and ports.
    #[inline(always)]
    pub fn hash(
        &self,
        key: &SipKey,
        src: [u8; 4],
        dst: [u8; 4],
        src_port: u16,
        dst_port: u16,
    ) -> u64 {
        key.hash_short(self.message(src, dst, src_port, dst_port))
    }

    /// The message these fields hash (at most 12 bytes), for hashing
    /// many flows side by side ([`crate::hash::SipLanes`]).
    #[inline(always)]
    pub fn message(&self, src: [u8; 4], dst: [u8; 4], src_port: u16, dst_port: u16) -> ShortMsg {
        struct One([u8; 4], [u8; 4], u16, u16);
        impl V4Specialised for One {
            type Output = ShortMsg;
            #[inline(always)]
            fn run<M: V4Message>(self) -> ShortMsg {
                M::message(self.0, self.1, self.2, self.3)
            }
        }
        self.specialise(One(src, dst, src_port, dst_port))
    }

    /// Runs `code` with this field set's message layout as a type, so a
    /// loop over many flows picks the layout once rather than per flow.
    #[inline(always)]
    pub fn specialise<S: V4Specialised>(&self, code: S) -> S::Output {
        macro_rules! dispatch {
            ($($n:literal)*) => {
                match self.0 {
                    $($n => code.run::<V4Fields<$n>>(),)*
                    _ => code.run::<V4Fields<0>>(),
                }
            };
        }
        dispatch!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
    }

    /// The length in bytes of [`V4Hasher::message`].
    pub fn message_len(&self) -> u8 {
        let (addrs, ports) = (self.0 & 3, (self.0 >> 2) & 3);
        4 * addrs.count_ones() as u8 + 2 * ports.count_ones() as u8
    }
}

/// An IPv4 flow-hash message layout known at compile time (see
/// [`V4Hasher::specialise`]).
pub trait V4Message {
    /// The message of these addresses and ports.
    fn message(src: [u8; 4], dst: [u8; 4], src_port: u16, dst_port: u16) -> ShortMsg;
}

/// The layout of field set `F` (bit 0 source address, 1 destination
/// address, 2 source port, 3 destination port).
#[derive(Debug, Clone, Copy)]
pub struct V4Fields<const F: u8>;

impl<const F: u8> V4Message for V4Fields<F> {
    #[inline(always)]
    fn message(src: [u8; 4], dst: [u8; 4], src_port: u16, dst_port: u16) -> ShortMsg {
        message_v4::<F>(src, dst, src_port, dst_port)
    }
}

/// Code generic over a [`V4Message`] layout, run by
/// [`V4Hasher::specialise`] with the layout of its field set.
pub trait V4Specialised {
    /// What the code returns.
    type Output;
    /// Runs the code with layout `M`.
    fn run<M: V4Message>(self) -> Self::Output;
}

/// The IPv4 flow-hash message for the field set `F` (bit 0 source
/// address, 1 destination address, 2 source port, 3 destination port):
/// the selected fields in wire order, packed from byte 0.
#[inline(always)]
fn message_v4<const F: u8>(src: [u8; 4], dst: [u8; 4], src_port: u16, dst_port: u16) -> ShortMsg {
    let mut bytes = 0u128;
    let mut at = 0u32;
    let mut put = |on: bool, value: u32, width: u32| {
        if on {
            bytes |= u128::from(value) << at;
            at += width;
        }
    };
    // Little-endian reads of the wire bytes keep them in wire order.
    put(F & 1 != 0, u32::from_le_bytes(src), 32);
    put(F & 2 != 0, u32::from_le_bytes(dst), 32);
    put(
        F & 4 != 0,
        u32::from(u16::from_le_bytes(src_port.to_be_bytes())),
        16,
    );
    put(
        F & 8 != 0,
        u32::from(u16::from_le_bytes(dst_port.to_be_bytes())),
        16,
    );
    ShortMsg {
        bytes,
        len: (at / 8) as u8,
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

fn write_addr(h: &mut Sip24, addr: &IpAddr) {
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

#[cfg(test)]
mod tests {
    use super::*;

    use glb_testkit::frames::ip;

    fn flow(src: &str, dst: &str, src_port: u16, dst_port: u16) -> FlowKey {
        let (src, dst) = (ip(src), ip(dst));
        FlowKey {
            src,
            dst,
            src_port,
            dst_port,
        }
    }

    /// The field set of bits 0-3: source address, destination address,
    /// source port, destination port.
    fn fields_of(bits: u8) -> HashFields {
        HashFields {
            src_addr: bits & 1 != 0,
            dst_addr: bits & 2 != 0,
            src_port: bits & 4 != 0,
            dst_port: bits & 8 != 0,
        }
    }

    /// The hash of the conformance capture's first flow, as the reference
    /// director logged it (`conformance/pcap/1k_pkts`).
    #[test]
    fn reference_flow_hash() {
        let key = Key16::from_hex("12345678901234561234567890123456").unwrap();
        let flow = flow("10.11.12.13", "1.1.1.1", 45678, 80);
        assert_eq!(HashFields::SRC_ADDR.hash(&key, &flow), 0x008972f1657a5cbd);
    }

    /// Selected fields are concatenated in the fixed order, whatever order
    /// they were named in.
    #[test]
    fn field_order_is_fixed() {
        let key = Key16::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        let flow = flow("10.0.0.1", "10.0.0.2", 0x1234, 0x5678);
        let all = HashFields::parse_list("dst_port,src_port,dst_addr,src_addr").unwrap();
        let msg = [10, 0, 0, 1, 10, 0, 0, 2, 0x12, 0x34, 0x56, 0x78];
        assert_eq!(all.hash(&key, &flow), key.siphash(&msg));
        let ports = HashFields::parse_list("dst_port,src_port").unwrap();
        assert_eq!(ports.hash(&key, &flow), key.siphash(&msg[8..]));
        assert!(HashFields::parse_list("").is_err());
        assert!(HashFields::parse_list("src_ip").is_err());
    }

    /// Against the reference SipHash (siphasher) over the selected fields
    /// concatenated by hand, for every field set, both families and mixed
    /// ones.
    #[test]
    fn hash_matches_reference_concatenation() {
        use proptest::prelude::*;
        let addr = prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ];
        let flow = (addr.clone(), addr, any::<u16>(), any::<u16>()).prop_map(
            |(src, dst, src_port, dst_port)| FlowKey {
                src,
                dst,
                src_port,
                dst_port,
            },
        );
        proptest!(|(key in any::<[u8; 16]>(), flow in flow, bits in 1u8..16)| {
            let fields = fields_of(bits);
            let octets = |a: &IpAddr| match a {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            let mut msg = Vec::new();
            if fields.src_addr {
                msg.extend(octets(&flow.src));
            }
            if fields.dst_addr {
                msg.extend(octets(&flow.dst));
            }
            if fields.src_port {
                msg.extend(flow.src_port.to_be_bytes());
            }
            if fields.dst_port {
                msg.extend(flow.dst_port.to_be_bytes());
            }
            let mut reference = siphasher::sip::SipHasher24::new_with_key(&key);
            std::hash::Hasher::write(&mut reference, &msg);
            let key = Key16::new(key);
            prop_assert_eq!(fields.hash(&key, &flow), std::hash::Hasher::finish(&reference));
        });
    }

    /// The per-field-set IPv4 hash agrees with the general one for all
    /// sixteen field sets.
    #[test]
    fn v4_hasher_matches_general() {
        use proptest::prelude::*;
        proptest!(|(key in any::<[u8; 16]>(), src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
                    sp in any::<u16>(), dp in any::<u16>(), bits in 0u8..16)| {
            let fields = fields_of(bits);
            let key = SipKey::new(&Key16::new(key));
            prop_assert_eq!(
                fields.v4().hash(&key, src, dst, sp, dp),
                fields.hash_parts(&key, &src, &dst, sp, dp)
            );
        });
    }
}
