//! One generation of the program's maps, built from a binary forwarding
//! table and the director's settings before anything is written, so a
//! table that does not fit is refused while the running one keeps
//! serving.

use std::fmt;
use std::net::IpAddr;

use glb_core::encap::EncapParams;
use glb_core::flowhash::HashFields;
use glb_core::route::RouteOptions;
use glb_core::table::{TableFile, backend_addr, bind_from_record};

use crate::classes::{self, BindSpec, Class};
use crate::maps::{self, F_FORWARD_ECHO, F_UDP_CHECKSUM, INTERVALS_CAP, NO_BIND};

/// Why a table cannot be loaded into the program's maps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// More tables than the maps were created for.
    #[error(
        "the table file has {got} tables; the loaded program holds at most {cap} (restart the director to hold more)"
    )]
    TooManyTables {
        /// Tables in the file.
        got: usize,
        /// Capacity.
        cap: u32,
    },
    /// The binds split into more port intervals than the maps hold.
    #[error("the binds need {got} port intervals; the program holds at most {cap}")]
    TooManyIntervals {
        /// Intervals needed.
        got: usize,
        /// Capacity.
        cap: u32,
    },
    /// A record the table reader let through but the program cannot use.
    #[error("table {table}: {what}")]
    BadTable {
        /// Table index.
        table: usize,
        /// What is wrong.
        what: String,
    },
}

/// What a bind was, for per-bind metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindLabel {
    /// Its table, in file order.
    pub table: usize,
    /// `ADDR/LEN`.
    pub prefix: String,
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// `PORT` or `START-END`.
    pub ports: String,
}

/// One table's map values.
pub struct TableImage {
    /// `glb_tables` value.
    pub table: maps::Table,
    /// `glb_rows` value (boxed: 128 KiB).
    pub rows: Box<maps::Rows>,
    /// Backend addresses by index, for per-backend metrics.
    pub backends: Vec<IpAddr>,
}

impl fmt::Debug for TableImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The table's hash key is a secret.
        f.debug_struct("TableImage")
            .field("backends", &self.backends)
            .finish_non_exhaustive()
    }
}

/// Everything one generation holds.
#[derive(Debug)]
pub struct Image {
    /// `glb_settings` value.
    pub settings: maps::Settings,
    /// Per table, in file order.
    pub tables: Vec<TableImage>,
    /// Trie entries.
    pub classes: Vec<Class>,
    /// `glb_intervals` values in order, each class's contiguous.
    pub intervals: Vec<maps::Interval>,
    /// Per class (same order as `classes`), its first interval.
    pub class_first: Vec<u32>,
    /// Per bind id, its table.
    pub bind_tables: Vec<u32>,
    /// Per bind id, what it was.
    pub bind_labels: Vec<BindLabel>,
}

/// The `glb_settings` bits of a field set.
pub fn field_bits(f: &HashFields) -> u8 {
    u8::from(f.src_addr)
        | (u8::from(f.dst_addr) << 1)
        | (u8::from(f.src_port) << 2)
        | (u8::from(f.dst_port) << 3)
}

impl Image {
    /// Builds a generation from `file` for a program holding at most
    /// `tables_cap` tables.
    pub fn build(
        file: &TableFile<'_>,
        options: &RouteOptions,
        encap: &EncapParams,
        tables_cap: u32,
    ) -> Result<Image, ImageError> {
        if file.tables().len() > tables_cap as usize {
            return Err(ImageError::TooManyTables {
                got: file.tables().len(),
                cap: tables_cap,
            });
        }
        let mut flags = 0;
        if encap.udp_checksum {
            flags |= F_UDP_CHECKSUM;
        }
        if options.forward_icmp_echo {
            flags |= F_FORWARD_ECHO;
        }
        let settings = maps::Settings {
            gateway_mac: encap.dst_mac.0,
            flags,
            hash_fields: field_bits(&options.hash_fields),
            alt_hash_fields: options.alt_hash_fields.as_ref().map_or(0, field_bits),
            pad: [0; 3],
            src_ip: encap.src_ip.octets(),
        };

        let mut tables = Vec::with_capacity(file.tables().len());
        let mut specs = Vec::new();
        let mut bind_tables = Vec::new();
        let mut bind_labels = Vec::new();
        for (i, t) in file.tables().iter().enumerate() {
            let bad = |what: String| ImageError::BadTable { table: i, what };
            let mut table = maps::Table {
                k0: u64::from_le_bytes(t.hash_key[..8].try_into().expect("8 bytes")),
                k1: u64::from_le_bytes(t.hash_key[8..].try_into().expect("8 bytes")),
                backends: [maps::Backend::default(); 256],
            };
            let mut backends = Vec::new();
            for (slot, b) in t.backends().iter().enumerate() {
                let addr =
                    backend_addr(b).ok_or_else(|| bad(format!("backend {slot}: bad family")))?;
                if let IpAddr::V4(a) = addr {
                    table.backends[slot] = maps::Backend {
                        ip: a.octets(),
                        usable: 1,
                    };
                }
                backends.push(addr);
            }
            let mut rows = vec_rows();
            let n = t.backends().len();
            for (r, rec) in rows.row.iter_mut().zip(t.rows.iter()) {
                let (p, s) = (rec.primary.get() as usize, rec.secondary.get() as usize);
                if p >= n || s >= n {
                    return Err(bad(format!("a row points at backend {p}/{s} of {n}")));
                }
                *r = [p as u8, s as u8];
            }
            for (j, rec) in t.binds().iter().enumerate() {
                let b = bind_from_record(rec).map_err(|e| bad(format!("bind {j}: {e}")))?;
                specs.push(BindSpec {
                    proto: b.proto.number(),
                    addr: b.addr,
                    prefix_len: b.prefix_len,
                    port_start: b.port_start,
                    port_end: b.port_end,
                });
                bind_tables.push(i as u32);
                bind_labels.push(BindLabel {
                    table: i,
                    prefix: format!("{}/{}", b.addr, b.prefix_len),
                    proto: if b.proto.number() == 6 { "tcp" } else { "udp" },
                    ports: if b.port_start == b.port_end {
                        b.port_start.to_string()
                    } else {
                        format!("{}-{}", b.port_start, b.port_end)
                    },
                });
            }
            tables.push(TableImage {
                table,
                rows,
                backends,
            });
        }
        // At most 256 binds per table and `tables_cap` tables keep every
        // id below NO_BIND.
        debug_assert!(specs.len() < usize::from(NO_BIND));
        let classes = classes::build(&specs);
        let mut intervals = Vec::new();
        let mut class_first = Vec::with_capacity(classes.len());
        for c in &classes {
            class_first.push(intervals.len() as u32);
            intervals.extend(
                c.intervals
                    .iter()
                    .map(|&(port_start, bind)| maps::Interval {
                        port_start,
                        bind,
                        table: table_of(&bind_tables, bind),
                    }),
            );
        }
        if intervals.len() > INTERVALS_CAP as usize {
            return Err(ImageError::TooManyIntervals {
                got: intervals.len(),
                cap: INTERVALS_CAP,
            });
        }
        Ok(Image {
            settings,
            tables,
            classes,
            intervals,
            class_first,
            bind_tables,
            bind_labels,
        })
    }
}

/// The table of bind `bind` (0 for [`NO_BIND`], which has none).
pub fn table_of(bind_tables: &[u32], bind: u16) -> u32 {
    bind_tables.get(usize::from(bind)).copied().unwrap_or(0)
}

fn vec_rows() -> Box<maps::Rows> {
    // 128 KiB: built on the heap, not the stack.
    let v: Box<[[u8; 2]]> = vec![[0u8; 2]; 65_536].into_boxed_slice();
    let rows: Box<[[u8; 2]; 65_536]> = v.try_into().expect("65,536 rows");
    // `Rows` is a `repr(C)` wrapper of exactly this array.
    Box::new(maps::Rows { row: *rows })
}
