//! Classic pcap files, read and written here without the engine's own
//! reader and writer.

use std::path::Path;

/// One captured frame and its timestamp, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Seconds.
    pub ts_sec: u32,
    /// Micro- or nanoseconds, per the file's magic.
    pub ts_frac: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// The records of a classic little-endian pcap file (either timestamp
/// precision).
pub fn read_records(path: &Path) -> Vec<Record> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        data.len() >= 24,
        "{}: shorter than a pcap header",
        path.display()
    );
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    assert!(
        magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d,
        "{}: not a little-endian pcap (magic {magic:#x})",
        path.display()
    );
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
    let mut records = Vec::new();
    let mut off = 24;
    while off < data.len() {
        assert!(
            off + 16 <= data.len(),
            "{}: cut record header",
            path.display()
        );
        let (ts_sec, ts_frac) = (u32_at(off), u32_at(off + 4));
        let caplen = u32_at(off + 8) as usize;
        off += 16;
        assert!(off + caplen <= data.len(), "{}: cut record", path.display());
        records.push(Record {
            ts_sec,
            ts_frac,
            data: data[off..off + caplen].to_vec(),
        });
        off += caplen;
    }
    records
}

/// Frames of a classic little-endian pcap file.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    read_records(path).into_iter().map(|r| r.data).collect()
}

/// How a pcap file is written: byte order, timestamp precision, snapshot
/// length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavour {
    /// Big-endian integers (otherwise little-endian).
    pub big_endian: bool,
    /// Nanosecond timestamps (otherwise microseconds).
    pub nanos: bool,
    /// Snapshot length in the header.
    pub snaplen: u32,
}

/// Writes records as a classic pcap file of `flavour`, Ethernet link type.
pub fn write_records(path: &Path, records: &[Record], flavour: Flavour) {
    let word = |v: u32| {
        if flavour.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let half = |v: u16| {
        if flavour.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(&word(if flavour.nanos {
        0xa1b2_3c4d
    } else {
        0xa1b2_c3d4
    }));
    out.extend_from_slice(&half(2));
    out.extend_from_slice(&half(4));
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&word(flavour.snaplen));
    out.extend_from_slice(&word(1));
    for r in records {
        let len = r.data.len() as u32;
        for v in [r.ts_sec, r.ts_frac, len, len] {
            out.extend_from_slice(&word(v));
        }
        out.extend_from_slice(&r.data);
    }
    std::fs::write(path, out).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Writes frames as a classic little-endian microsecond pcap file, frame
/// `i` stamped `i` seconds.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let records: Vec<Record> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| Record {
            ts_sec: i as u32,
            ts_frac: 0,
            data: f.clone(),
        })
        .collect();
    write_records(
        path,
        &records,
        Flavour {
            big_endian: false,
            nanos: false,
            snaplen: 65535,
        },
    );
}
