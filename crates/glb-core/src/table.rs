//! The binary forwarding table (`forwarding_table.bin`), byte-compatible
//! with the original director.
//!
//! All integers are little-endian and nothing is padded, so the records are
//! declared with zerocopy's unaligned little-endian integer types and the
//! director can use a file image in place. [`TableFile::parse`] checks
//! everything a datapath relies on (sizes, counts, families, row indexes)
//! once, so that lookups afterwards need no bounds checks beyond slicing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::model::{BackendState, Bind, ForwardingTables, MAX_BACKENDS, MAX_BINDS, Proto, Table};
use crate::rendezvous;

/// File magic.
pub const MAGIC: [u8; 4] = *b"GLBD";
/// The only file version this crate reads and writes.
pub const VERSION: u32 = 2;
/// Rows per table.
pub const TABLE_ENTRIES: usize = rendezvous::ROWS;

/// Address family code for IPv4.
pub const FAMILY_V4: u32 = 1;
/// Address family code for IPv6.
pub const FAMILY_V6: u32 = 2;

/// Backend state code: filling.
pub const STATE_FILLING: u16 = 0;
/// Backend state code: active.
pub const STATE_ACTIVE: u16 = 1;
/// Backend state code: draining (also written for inactive backends).
pub const STATE_DRAINING: u16 = 2;

/// The 24-byte file header.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct FileHeader {
    /// `"GLBD"`.
    pub magic: [u8; 4],
    /// Format version, 2.
    pub version: U32,
    /// Number of table records that follow.
    pub num_tables: U32,
    /// Rows per table, 65536.
    pub table_entries: U32,
    /// Backend slots per table, 256.
    pub max_num_backends: U32,
    /// Bind slots per table, 256.
    pub max_num_binds: U32,
}

/// One backend slot (24 bytes).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct BackendRecord {
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: U32,
    /// IPv4 in the first 4 bytes (network order) then zeros, or IPv6.
    pub addr: [u8; 16],
    /// `STATE_*` code.
    pub state: U16,
    /// 1 when healthy, 0 otherwise.
    pub health: U16,
}

/// One bind slot (28 bytes).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct BindRecord {
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: U32,
    /// The address as written (host bits kept).
    pub addr: [u8; 16],
    /// Prefix length.
    pub prefix_bits: U16,
    /// First port (inclusive).
    pub port_start: U16,
    /// Last port (inclusive).
    pub port_end: U16,
    /// IP protocol number, 6 or 17.
    pub proto: u8,
    /// Always 0.
    pub reserved: u8,
}

/// One row: indexes into the table's backend list.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct RowRecord {
    /// The backend packets of this row go to first.
    pub primary: U32,
    /// The backend named in the GUE header as the second chance.
    pub secondary: U32,
}

/// One whole table (537,624 bytes).
#[derive(Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct TableRecord {
    /// Backend slots in use.
    pub num_backends: U32,
    /// Backend slots; unused ones are zero.
    pub backends: [BackendRecord; MAX_BACKENDS],
    /// Bind slots in use.
    pub num_binds: U32,
    /// Bind slots; unused ones are zero.
    pub binds: [BindRecord; MAX_BINDS],
    /// Flow hash key.
    pub hash_key: [u8; 16],
    /// The rendezvous rows.
    pub rows: [RowRecord; TABLE_ENTRIES],
}

/// Size of the file header in bytes.
pub const HEADER_SIZE: usize = size_of::<FileHeader>();
/// Size of one table record in bytes.
pub const TABLE_SIZE: usize = size_of::<TableRecord>();

const _: () = assert!(HEADER_SIZE == 24);
const _: () = assert!(size_of::<BackendRecord>() == 24);
const _: () = assert!(size_of::<BindRecord>() == 28);
const _: () = assert!(TABLE_SIZE == 537_624);

fn addr_bytes(addr: IpAddr) -> (u32, [u8; 16]) {
    let mut out = [0u8; 16];
    match addr {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            (FAMILY_V4, out)
        }
        IpAddr::V6(a) => (FAMILY_V6, a.octets()),
    }
}

fn state_code(state: BackendState) -> u16 {
    match state {
        BackendState::Filling => STATE_FILLING,
        BackendState::Active => STATE_ACTIVE,
        BackendState::Draining | BackendState::Inactive => STATE_DRAINING,
    }
}

/// Compiles one validated table into its binary record, rows included.
pub fn compile_table(table: &Table) -> Box<TableRecord> {
    let mut rec = TableRecord::new_box_zeroed().expect("a table record fits in memory");
    rec.num_backends = U32::new(table.backends.len() as u32);
    for (slot, b) in rec.backends.iter_mut().zip(&table.backends) {
        let (family, addr) = addr_bytes(b.addr);
        *slot = BackendRecord {
            family: U32::new(family),
            addr,
            state: U16::new(state_code(b.state)),
            health: U16::new(u16::from(b.is_healthy())),
        };
    }
    rec.num_binds = U32::new(table.binds.len() as u32);
    for (slot, b) in rec.binds.iter_mut().zip(&table.binds) {
        let (family, addr) = addr_bytes(b.addr);
        *slot = BindRecord {
            family: U32::new(family),
            addr,
            prefix_bits: U16::new(b.prefix_len.into()),
            port_start: U16::new(b.port_start),
            port_end: U16::new(b.port_end),
            proto: b.proto.number(),
            reserved: 0,
        };
    }
    rec.hash_key = *table.hash_key.expose();
    rendezvous::fill_rows(&table.seed, &table.backends, &mut rec.rows, |p, s| {
        RowRecord {
            primary: U32::new(p),
            secondary: U32::new(s),
        }
    });
    rec
}

/// The largest binary table a file may be: [`MAX_TABLES`](crate::model::MAX_TABLES) tables.
pub const MAX_FILE_SIZE: usize = HEADER_SIZE + crate::model::MAX_TABLES * TABLE_SIZE;

fn file_header(num_tables: usize) -> FileHeader {
    FileHeader {
        magic: MAGIC,
        version: U32::new(VERSION),
        num_tables: U32::new(num_tables as u32),
        table_entries: U32::new(TABLE_ENTRIES as u32),
        max_num_backends: U32::new(MAX_BACKENDS as u32),
        max_num_binds: U32::new(MAX_BINDS as u32),
    }
}

/// Writes the binary file of validated tables to `out`, one table at a
/// time, so no more than one table's record is held in memory.
pub fn write_to(tables: &ForwardingTables, out: &mut impl std::io::Write) -> std::io::Result<()> {
    out.write_all(file_header(tables.tables.len()).as_bytes())?;
    for t in &tables.tables {
        out.write_all(compile_table(t).as_bytes())?;
    }
    Ok(())
}

/// Serialises validated tables into the complete binary file image.
pub fn compile(tables: &ForwardingTables) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_SIZE + TABLE_SIZE * tables.tables.len());
    write_to(tables, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// Why a binary table file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableFileError {
    /// Shorter than the 24-byte header.
    #[error("file is {0} bytes, shorter than the 24-byte header")]
    TooShort(usize),
    /// More tables than a file may hold.
    #[error("the header says {0} tables; a file holds at most {max}", max = crate::model::MAX_TABLES)]
    TooManyTables(u32),
    /// The first four bytes are not `GLBD`.
    #[error("bad magic {0:02x?} (expected \"GLBD\")")]
    BadMagic([u8; 4]),
    /// A version other than 2.
    #[error("unsupported version {0} (expected {VERSION})")]
    BadVersion(u32),
    /// Row count or slot counts in the header differ from the format's.
    #[error("header says {field} = {got}, expected {want}")]
    BadGeometry {
        /// Header field name.
        field: &'static str,
        /// Value found.
        got: u32,
        /// Value required.
        want: u32,
    },
    /// File length does not match the number of tables.
    #[error("file is {got} bytes but {num_tables} tables need {want}")]
    BadSize {
        /// Tables announced by the header.
        num_tables: u32,
        /// Actual length.
        got: usize,
        /// Length those tables need.
        want: usize,
    },
    /// A problem inside one table record.
    #[error("table {table}: {what}")]
    BadTable {
        /// Table index.
        table: usize,
        /// What is wrong.
        what: String,
    },
}

/// A validated, zero-copy view of a binary forwarding-table file. The
/// only way to make one is [`TableFile::parse`], so holding one means
/// every count, family, bind and row index in it was checked.
#[derive(Debug, Clone, Copy)]
pub struct TableFile<'a> {
    header: &'a FileHeader,
    tables: &'a [TableRecord],
}

impl<'a> TableFile<'a> {
    /// The file header.
    pub fn header(&self) -> &'a FileHeader {
        self.header
    }

    /// The table records, in file order.
    pub fn tables(&self) -> &'a [TableRecord] {
        self.tables
    }

    /// Checks `bytes` and returns a view over them. Never panics.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, TableFileError> {
        let (header, rest) = FileHeader::ref_from_prefix(bytes)
            .map_err(|_| TableFileError::TooShort(bytes.len()))?;
        if header.magic != MAGIC {
            return Err(TableFileError::BadMagic(header.magic));
        }
        if header.version.get() != VERSION {
            return Err(TableFileError::BadVersion(header.version.get()));
        }
        for (field, got, want) in [
            (
                "table_entries",
                header.table_entries.get(),
                TABLE_ENTRIES as u32,
            ),
            (
                "max_num_backends",
                header.max_num_backends.get(),
                MAX_BACKENDS as u32,
            ),
            (
                "max_num_binds",
                header.max_num_binds.get(),
                MAX_BINDS as u32,
            ),
        ] {
            if got != want {
                return Err(TableFileError::BadGeometry { field, got, want });
            }
        }
        let num_tables = header.num_tables.get();
        if num_tables as usize > crate::model::MAX_TABLES {
            return Err(TableFileError::TooManyTables(num_tables));
        }
        let want = (num_tables as usize)
            .checked_mul(TABLE_SIZE)
            .and_then(|n| n.checked_add(HEADER_SIZE));
        let bad_size = TableFileError::BadSize {
            num_tables,
            got: bytes.len(),
            want: want.unwrap_or(usize::MAX),
        };
        if want != Some(bytes.len()) {
            return Err(bad_size);
        }
        let tables = <[TableRecord]>::ref_from_bytes(rest).map_err(|_| bad_size)?;
        for (i, t) in tables.iter().enumerate() {
            validate_table(t).map_err(|what| TableFileError::BadTable { table: i, what })?;
        }
        Ok(TableFile { header, tables })
    }
}

fn validate_table(t: &TableRecord) -> Result<(), String> {
    let nb = t.num_backends.get() as usize;
    if nb == 0 || nb > MAX_BACKENDS {
        return Err(format!("num_backends {nb} is outside 1-{MAX_BACKENDS}"));
    }
    let nbind = t.num_binds.get() as usize;
    if nbind > MAX_BINDS {
        return Err(format!("num_binds {nbind} is above {MAX_BINDS}"));
    }
    for (i, b) in t.backends[..nb].iter().enumerate() {
        backend_addr(b).ok_or_else(|| format!("backend {i}: unknown family {}", b.family.get()))?;
        if b.state.get() > STATE_DRAINING {
            return Err(format!("backend {i}: unknown state {}", b.state.get()));
        }
        if b.health.get() > 1 {
            return Err(format!("backend {i}: unknown health {}", b.health.get()));
        }
    }
    for (i, b) in t.binds[..nbind].iter().enumerate() {
        bind_from_record(b).map_err(|e| format!("bind {i}: {e}"))?;
    }
    if let Some((i, r)) = t
        .rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.primary.get() as usize >= nb || r.secondary.get() as usize >= nb)
    {
        return Err(format!(
            "row {i} points at backend {}/{} but the table has {nb}",
            r.primary.get(),
            r.secondary.get()
        ));
    }
    Ok(())
}

/// The address of a backend slot, or `None` for an unknown family.
pub fn backend_addr(b: &BackendRecord) -> Option<IpAddr> {
    family_addr(b.family.get(), &b.addr)
}

fn family_addr(family: u32, addr: &[u8; 16]) -> Option<IpAddr> {
    match family {
        FAMILY_V4 => Some(IpAddr::V4(Ipv4Addr::new(
            addr[0], addr[1], addr[2], addr[3],
        ))),
        FAMILY_V6 => Some(IpAddr::V6(Ipv6Addr::from(*addr))),
        _ => None,
    }
}

/// Decodes a bind slot into the model's [`Bind`], checking every field.
pub fn bind_from_record(b: &BindRecord) -> Result<Bind, String> {
    let addr = family_addr(b.family.get(), &b.addr)
        .ok_or_else(|| format!("unknown family {}", b.family.get()))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = b.prefix_bits.get();
    if prefix > max {
        return Err(format!("prefix /{prefix} is longer than the address"));
    }
    let proto =
        Proto::from_number(b.proto).ok_or_else(|| format!("unknown protocol {}", b.proto))?;
    let (start, end) = (b.port_start.get(), b.port_end.get());
    if start > end {
        return Err(format!("port_start {start} is above port_end {end}"));
    }
    Ok(Bind {
        addr,
        prefix_len: prefix as u8,
        proto,
        port_start: start,
        port_end: end,
    })
}

impl TableRecord {
    /// The backend slots in use.
    pub fn backends(&self) -> &[BackendRecord] {
        let n = (self.num_backends.get() as usize).min(MAX_BACKENDS);
        &self.backends[..n]
    }

    /// The bind slots in use.
    pub fn binds(&self) -> &[BindRecord] {
        let n = (self.num_binds.get() as usize).min(MAX_BINDS);
        &self.binds[..n]
    }

    /// The binds, decoded. In a record of a [`TableFile`] every one
    /// decodes (the parse checked them); a slot that does not is left out.
    pub fn bind_entries(&self) -> impl Iterator<Item = Bind> + '_ {
        self.binds().iter().filter_map(|b| bind_from_record(b).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"{"tables": [{
        "hash_key": "12345678901234561234567890123456",
        "seed": "34567890123456783456789012345678",
        "binds": [{"ip": "10.0.0.0/8", "proto": "udp", "port_start": 1, "port_end": 9}],
        "backends": [
          {"ip": "1.2.3.4", "state": "active", "healthy": true},
          {"ip": "::1", "state": "inactive", "healthy": true}
        ]}]}"#;

    fn image() -> Vec<u8> {
        compile(&ForwardingTables::from_json("t", TEXT).unwrap())
    }

    #[test]
    fn layout_of_a_compiled_table() {
        let bytes = image();
        assert_eq!(bytes.len(), HEADER_SIZE + TABLE_SIZE);
        assert_eq!(&bytes[..4], b"GLBD");
        assert_eq!(bytes[4..8], 2u32.to_le_bytes());
        assert_eq!(bytes[8..12], 1u32.to_le_bytes());
        assert_eq!(bytes[12..16], 65536u32.to_le_bytes());
        let t = HEADER_SIZE;
        assert_eq!(bytes[t..t + 4], 2u32.to_le_bytes()); // backends
        assert_eq!(bytes[t + 4..t + 8], 1u32.to_le_bytes()); // family v4
        assert_eq!(bytes[t + 8..t + 12], [1, 2, 3, 4]);
        assert_eq!(bytes[t + 24..t + 26], 1u16.to_le_bytes()); // active
        assert_eq!(bytes[t + 26..t + 28], 1u16.to_le_bytes()); // healthy
        let b1 = t + 4 + 24;
        assert_eq!(bytes[b1..b1 + 4], 2u32.to_le_bytes()); // v6
        assert_eq!(bytes[b1 + 20..b1 + 22], 2u16.to_le_bytes()); // inactive → draining
        let binds = t + 4 + 256 * 24;
        assert_eq!(bytes[binds..binds + 4], 1u32.to_le_bytes());
        let bind0 = binds + 4;
        assert_eq!(bytes[bind0 + 4..bind0 + 8], [10, 0, 0, 0]);
        assert_eq!(bytes[bind0 + 20..bind0 + 22], 8u16.to_le_bytes());
        assert_eq!(bytes[bind0 + 22..bind0 + 24], 1u16.to_le_bytes());
        assert_eq!(bytes[bind0 + 24..bind0 + 26], 9u16.to_le_bytes());
        assert_eq!(bytes[bind0 + 26], 17);
        let key = binds + 4 + 256 * 28;
        assert_eq!(bytes[key..key + 2], [0x12, 0x34]);
        // The only usable backend is both primary and secondary everywhere.
        assert!(bytes[key + 16..].iter().all(|b| *b == 0));
    }

    #[test]
    fn reader_accepts_what_the_writer_wrote() {
        let bytes = image();
        let f = TableFile::parse(&bytes).unwrap();
        assert_eq!(f.tables().len(), 1);
        let t = &f.tables()[0];
        assert_eq!(t.backends().len(), 2);
        assert_eq!(backend_addr(&t.backends()[1]), Some("::1".parse().unwrap()));
        let bind = bind_from_record(&t.binds()[0]).unwrap();
        assert_eq!(
            (bind.port_start, bind.port_end, bind.proto),
            (1, 9, Proto::Udp)
        );
    }

    #[test]
    fn reader_rejects_damage() {
        let good = image();
        let damage = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            TableFile::parse(&b).unwrap_err()
        };
        assert!(matches!(
            damage(&|b| b[0] = b'X'),
            TableFileError::BadMagic(_)
        ));
        assert!(matches!(
            damage(&|b| b[4] = 3),
            TableFileError::BadVersion(3)
        ));
        assert!(matches!(
            damage(&|b| b[8] = 2),
            TableFileError::BadSize { .. }
        ));
        assert!(matches!(
            damage(&|b| b.truncate(100)),
            TableFileError::BadSize { .. }
        ));
        assert!(matches!(
            damage(&|b| b.truncate(3)),
            TableFileError::TooShort(3)
        ));
        assert!(matches!(
            damage(&|b| b[13] = 1),
            TableFileError::BadGeometry { .. }
        ));
        let t = HEADER_SIZE;
        let e = damage(&|b| b[t..t + 4].copy_from_slice(&257u32.to_le_bytes()));
        assert!(e.to_string().contains("num_backends 257"), "{e}");
        let e = damage(&|b| b[t + 4] = 7);
        assert!(e.to_string().contains("unknown family 7"), "{e}");
        let bind0 = t + 4 + 256 * 24 + 4;
        let e = damage(&|b| b[bind0 + 26] = 1);
        assert!(e.to_string().contains("unknown protocol 1"), "{e}");
        let e = damage(&|b| b[bind0 + 20] = 33);
        assert!(e.to_string().contains("prefix /33"), "{e}");
        let row = t + TABLE_SIZE - 8;
        let e = damage(&|b| b[row] = 2);
        assert!(e.to_string().contains("row 65535"), "{e}");
    }
}
