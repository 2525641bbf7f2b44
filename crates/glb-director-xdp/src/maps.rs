//! The values the XDP program reads and writes, mirroring
//! `bpf/glb_xdp.h` field for field (their sizes are checked against the
//! C compiler's at build time), and the names of the maps that hold
//! them.

use std::mem::size_of;

/// The two generations every map holds; the program follows the low bit
/// of [`State::seq`].
pub const GENS: u32 = 2;
/// A bind id that matches nothing.
pub const NO_BIND: u16 = 0xffff;
/// Intervals one generation may use (`glb_intervals` holds both).
pub const INTERVALS_CAP: u32 = 65_536;
/// Tables the maps hold per generation unless the loader asks for more.
pub const DEFAULT_TABLES_CAP: u32 = 16;

/// `glb_settings[generation].flags`: compute outer UDP checksums.
pub const F_UDP_CHECKSUM: u8 = 0x01;
/// `glb_settings[generation].flags`: forward ICMP echo requests to binds.
pub const F_FORWARD_ECHO: u8 = 0x02;

/// Map names, as in the object.
pub mod name {
    /// [`super::State`], one entry.
    pub const STATE: &str = "glb_state";
    /// [`super::Settings`] per generation.
    pub const SETTINGS: &str = "glb_settings";
    /// [`super::Table`] by `table * 2 + generation`.
    pub const TABLES: &str = "glb_tables";
    /// [`super::Rows`] by `table * 2 + generation`.
    pub const ROWS: &str = "glb_rows";
    /// IPv4 bind trie.
    pub const BINDS_V4: &str = "glb_binds_v4";
    /// IPv6 bind trie.
    pub const BINDS_V6: &str = "glb_binds_v6";
    /// [`super::Interval`] by `index * 2 + generation`.
    pub const INTERVALS: &str = "glb_intervals";
    /// [`super::Counters`], per CPU.
    pub const COUNTERS: &str = "glb_counters";
    /// [`super::Traffic`] by `bind * 2 + generation`, per CPU.
    pub const BIND_TRAFFIC: &str = "glb_bind_traffic";
    /// [`super::Traffic`] by `(table * 256 + backend) * 2 + generation`, per CPU.
    pub const BACKEND_TRAFFIC: &str = "glb_backend_traffic";
    /// [`super::Mac`] by interface index.
    pub const PORT_MACS: &str = "glb_port_macs";
    /// xdpcap's hook, a program array of 5.
    pub const XDPCAP_HOOK: &str = "xdpcap_hook";
    /// The root shim's program array of 3.
    pub const ROOT_ARRAY: &str = "root_array";
}

/// Program names, as in the objects.
pub mod program {
    /// The director, in `glb_encap.o`.
    pub const DIRECTOR: &str = "glb_encap";
    /// The root shim, in `tailcall.o`.
    pub const ROOT: &str = "xdp_root";
    /// The passer, in `passer.o`.
    pub const PASSER: &str = "xdp_pass";
    /// `XDP_TX` for every frame, in `reflector.o`.
    pub const REFLECTOR: &str = "xdp_reflect";
}

/// `struct glb_state`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct State {
    /// Tables installed so far; packets use generation `seq & 1`.
    pub seq: u32,
}

/// `struct glb_settings`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Settings {
    /// `outbound_gateway_mac`.
    pub gateway_mac: [u8; 6],
    /// `F_*` bits.
    pub flags: u8,
    /// Main hash fields (bits 1 src_addr, 2 dst_addr, 4 src_port, 8
    /// dst_port); 0 in a generation never written.
    pub hash_fields: u8,
    /// Alternate hash fields, 0 for none.
    pub alt_hash_fields: u8,
    /// Zero.
    pub pad: [u8; 3],
    /// `outbound_src_ip`, network order.
    pub src_ip: [u8; 4],
}

/// `struct glb_backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Backend {
    /// IPv4 address, network order.
    pub ip: [u8; 4],
    /// 1 for an IPv4 backend, 0 for IPv6 and empty slots.
    pub usable: u32,
}

/// `struct glb_table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Table {
    /// SipHash key bytes 0..8, little-endian.
    pub k0: u64,
    /// SipHash key bytes 8..16, little-endian.
    pub k1: u64,
    /// By backend index.
    pub backends: [Backend; 256],
}

/// `struct glb_rows`: primary and secondary backend index per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Rows {
    /// Indexed by `hash & 0xffff`.
    pub row: [[u8; 2]; 65_536],
}

/// `struct glb_class`: a trie entry's binds as port intervals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Class {
    /// First interval in `glb_intervals` (before interleaving).
    pub first: u32,
    /// Number of intervals.
    pub count: u16,
    /// The first bind regardless of port ([`NO_BIND`] if none).
    pub any_port_bind: u16,
    /// Its table.
    pub any_port_table: u32,
    /// Zero.
    pub pad: u32,
}

/// `struct glb_interval`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Interval {
    /// First port of the interval.
    pub port_start: u16,
    /// The bind of its ports, or [`NO_BIND`].
    pub bind: u16,
    /// The bind's table, in file order.
    pub table: u32,
}

/// `struct glb_mac`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Mac {
    /// The address.
    pub addr: [u8; 6],
}

/// `struct glb_traffic`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Traffic {
    /// Frames.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The outcome counters (`enum glb_counter`), in the program's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Every frame the program saw.
    Processed,
    /// Nothing a bind can match: passed to the kernel.
    UnknownFormat,
    /// Could match a bind but none did: passed to the kernel.
    NoMatchingBind,
    /// Matched a bind.
    Matched,
    /// Encapsulated and transmitted.
    Encapsulated,
    /// Bytes of the encapsulated frames.
    EncapsulatedBytes,
    /// Matched, but cut off or routed to a non-IPv4 backend: dropped.
    RouteFailed,
    /// A bind's table is missing from the maps.
    ErrorTable,
    /// A table's flow hash key is missing (never counted: the key is
    /// stored with its table, so a missing one is [`Counter::ErrorTable`]).
    ErrorSecret,
    /// No settings for the active generation.
    ErrorHashConfig,
    /// A table's rows are missing.
    ErrorMissingRow,
    /// No room for the outer headers (or the checksum could not be read).
    ErrorCreatingSpace,
    /// The settings have no gateway MAC.
    ErrorMissingGatewayMac,
    /// The settings have no source address.
    ErrorMissingSourceAddress,
    /// Verdict `XDP_TX`.
    XdpTx,
    /// Verdict `XDP_PASS`.
    XdpPass,
    /// Verdict `XDP_DROP`.
    XdpDrop,
}

/// Number of [`Counter`]s.
pub const COUNTER_COUNT: usize = Counter::XdpDrop as usize + 1;

/// `struct glb_memo`: a CPU's last IPv4 TCP/UDP classification (the
/// program's own; the loader only reads past it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Memo {
    /// The table sequence it was made under, plus one.
    pub seq_plus1: u32,
    /// Destination, network order.
    pub dst: u32,
    /// Destination port.
    pub port: u16,
    /// IP protocol.
    pub proto: u8,
    /// Zero.
    pub pad: u8,
    /// The bind, or [`NO_BIND`].
    pub bind: u16,
    /// Zero.
    pub pad2: u16,
    /// The bind's table.
    pub table: u32,
    /// The last receiving interface, plus one.
    pub port_plus1: u32,
    /// Its address, when known.
    pub mac: [u8; 6],
    /// Whether `mac` is known.
    pub mac_known: u8,
    /// Zero.
    pub pad3: u8,
}

/// `struct glb_counters`: per CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Counters {
    /// The CPU's classification memo.
    pub memo: Memo,
    /// By [`Counter`].
    pub c: [u64; COUNTER_COUNT],
}

impl Counters {
    /// One counter.
    pub fn get(&self, c: Counter) -> u64 {
        self.c[c as usize]
    }

    /// Adds another CPU's counters.
    pub fn add(&mut self, other: &Counters) {
        for (a, b) in self.c.iter_mut().zip(other.c) {
            *a = a.wrapping_add(b);
        }
    }
}

/// The bytes of an IPv4 trie key after its prefix length: generation,
/// protocol (0 for the protocol-blind index), address, padding.
pub type KeyV4 = [u8; 8];
/// As [`KeyV4`], for IPv6.
pub type KeyV6 = [u8; 20];

/// Bits the trie keys spend before the address (generation, protocol).
pub const KEY_PREFIX_BITS: u32 = 16;

// SAFETY: each type is `repr(C)`, `Copy`, made only of integers and
// arrays of them with no padding (the sizes below match the C compiler's
// for the same fields), so any bit pattern is a valid value and the
// kernel may copy them byte for byte.
unsafe impl aya::Pod for State {}
// SAFETY: as above.
unsafe impl aya::Pod for Settings {}
// SAFETY: as above.
unsafe impl aya::Pod for Table {}
// SAFETY: as above.
unsafe impl aya::Pod for Rows {}
// SAFETY: as above.
unsafe impl aya::Pod for Class {}
// SAFETY: as above.
unsafe impl aya::Pod for Interval {}
// SAFETY: as above.
unsafe impl aya::Pod for Backend {}
// SAFETY: as above.
unsafe impl aya::Pod for Memo {}
// SAFETY: as above.
unsafe impl aya::Pod for Mac {}
// SAFETY: as above.
unsafe impl aya::Pod for Traffic {}
// SAFETY: as above.
unsafe impl aya::Pod for Counters {}

/// The sizes `bpf/layout.c` printed for the C structs.
mod c {
    include!(concat!(env!("OUT_DIR"), "/layout.rs"));
}

const _: () = {
    assert!(size_of::<State>() == c::STATE);
    assert!(size_of::<Settings>() == c::SETTINGS);
    assert!(std::mem::offset_of!(Settings, src_ip) == c::SETTINGS_SRC_IP);
    assert!(size_of::<Table>() == c::TABLE);
    assert!(std::mem::offset_of!(Table, backends) == c::TABLE_BACKENDS);
    assert!(size_of::<Backend>() == c::BACKEND);
    assert!(size_of::<Rows>() == c::ROWS);
    assert!(4 + size_of::<KeyV4>() == c::KEY_V4);
    assert!(4 + size_of::<KeyV6>() == c::KEY_V6);
    assert!(size_of::<Class>() == c::CLASS);
    assert!(size_of::<Interval>() == c::INTERVAL);
    assert!(size_of::<Memo>() == c::MEMO);
    assert!(std::mem::offset_of!(Counters, c) == c::COUNTERS_C);
    assert!(size_of::<Mac>() == c::MAC);
    assert!(size_of::<Traffic>() == c::TRAFFIC);
    assert!(size_of::<Counters>() == c::COUNTERS);
    assert!(COUNTER_COUNT == c::COUNTER_COUNT);
};
