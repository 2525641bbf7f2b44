//! The offline engine: replays a capture (classic libpcap format,
//! Ethernet link type) through the packet path and writes one
//! encapsulated frame per forwarded input frame, in input order and with
//! the input frame's timestamp, plus optionally one verdict line per
//! input frame.
//!
//! Outputs replace their destinations atomically (`glb_io::atomic_file`)
//! only when the whole capture has been processed, so a bad capture never
//! leaves a half-written output behind.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use glb_core::encap::Encapsulator;
use glb_core::path::{HEADROOM, OwnedFrame, Verdict, process_batch_each};
use glb_core::route::Forwarder;
use glb_director::counters::{CoreCounters, CounterSnapshot};
use glb_io::atomic_file::AtomicFile;

/// Link type of Ethernet captures.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Snapshot length written in output headers.
pub const OUTPUT_SNAPLEN: u32 = 65535;
/// Largest record the reader accepts.
pub const MAX_RECORD: u32 = 262_144;

const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const MAGIC_PCAPNG: u32 = 0x0a0d_0d0a;

/// Frames per batch handed to the packet path.
const BATCH: usize = 32;

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Not a classic pcap file.
    #[error("not a pcap file (magic {magic:08x}){}", if *magic == MAGIC_PCAPNG { "; pcapng is not supported, convert it with `editcap -F pcap`" } else { "" })]
    BadMagic {
        /// The first four bytes, big-endian.
        magic: u32,
    },
    /// Not Ethernet.
    #[error("link type {0} is not Ethernet (1)")]
    LinkType(u32),
    /// The file is empty.
    #[error("the file is empty (a pcap file starts with a 24-byte header)")]
    Empty,
    /// The file ends inside its 24-byte header.
    #[error("the file ends inside the 24-byte pcap header ({0} bytes)")]
    ShortHeader(usize),
    /// The file ends inside a record.
    #[error("record {0}: file ends inside the record")]
    Truncated(u64),
    /// A record claims an absurd length.
    #[error("record {record}: captured length {len} is larger than {MAX_RECORD}")]
    Oversized {
        /// 1-based record number.
        record: u64,
        /// Its captured length.
        len: u32,
    },
}

/// The capture-wide settings of a pcap file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// Whether timestamps carry nanoseconds (otherwise microseconds).
    pub nanos: bool,
    /// Whether the file's integers are big-endian.
    pub big_endian: bool,
    /// Snapshot length.
    pub snaplen: u32,
    /// Link type.
    pub linktype: u32,
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Seconds of the timestamp.
    pub ts_sec: u32,
    /// Micro- or nanoseconds of the timestamp, per [`FileHeader::nanos`].
    pub ts_frac: u32,
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// Streams records from a classic pcap file.
#[derive(Debug)]
pub struct Reader<R: Read> {
    inner: R,
    header: FileHeader,
    count: u64,
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> Reader<R> {
    /// Reads and checks the file header; only Ethernet captures are
    /// accepted.
    pub fn new(mut inner: R) -> Result<Self, PcapError> {
        let mut h = [0u8; 24];
        match read_full(&mut inner, &mut h)? {
            0 => return Err(PcapError::Empty),
            n if n < 24 => return Err(PcapError::ShortHeader(n)),
            _ => {}
        }
        let le = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let be = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let (nanos, big_endian) = match (le, be) {
            (MAGIC_MICROS, _) => (false, false),
            (MAGIC_NANOS, _) => (true, false),
            (_, MAGIC_MICROS) => (false, true),
            (_, MAGIC_NANOS) => (true, true),
            _ => return Err(PcapError::BadMagic { magic: be }),
        };
        let word = |i: usize| {
            let b = [h[i], h[i + 1], h[i + 2], h[i + 3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let header = FileHeader {
            nanos,
            big_endian,
            snaplen: word(16),
            linktype: word(20) & 0x0fff_ffff,
        };
        if header.linktype != LINKTYPE_ETHERNET {
            return Err(PcapError::LinkType(header.linktype));
        }
        Ok(Reader {
            inner,
            header,
            count: 0,
        })
    }

    /// The file header.
    pub fn header(&self) -> FileHeader {
        self.header
    }

    /// Reads the next record into `rec`; `Ok(false)` at the end of the file.
    pub fn next_into(&mut self, rec: &mut Record) -> Result<bool, PcapError> {
        let mut h = [0u8; 16];
        let n = read_full(&mut self.inner, &mut h)?;
        if n == 0 {
            return Ok(false);
        }
        self.count += 1;
        if n < 16 {
            return Err(PcapError::Truncated(self.count));
        }
        let word = |i: usize| {
            let b = [h[i], h[i + 1], h[i + 2], h[i + 3]];
            if self.header.big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let caplen = word(8);
        if caplen > MAX_RECORD {
            return Err(PcapError::Oversized {
                record: self.count,
                len: caplen,
            });
        }
        rec.ts_sec = word(0);
        rec.ts_frac = word(4);
        rec.orig_len = word(12);
        rec.data.resize(caplen as usize, 0);
        if read_full(&mut self.inner, &mut rec.data)? < caplen as usize {
            return Err(PcapError::Truncated(self.count));
        }
        Ok(true)
    }
}

/// Writes a classic little-endian pcap file.
#[derive(Debug)]
pub struct Writer<W: Write> {
    inner: W,
}

impl<W: Write> Writer<W> {
    /// Writes the file header: version 2.4, snapshot length 65535,
    /// Ethernet, micro- or nanosecond timestamps.
    pub fn new(mut inner: W, nanos: bool) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&(if nanos { MAGIC_NANOS } else { MAGIC_MICROS }).to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&OUTPUT_SNAPLEN.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        inner.write_all(&h)?;
        Ok(Writer { inner })
    }

    /// Appends one frame, captured in full.
    pub fn write(&mut self, ts_sec: u32, ts_frac: u32, frame: &[u8]) -> io::Result<()> {
        let len = u32::try_from(frame.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&ts_sec.to_le_bytes());
        h[4..8].copy_from_slice(&ts_frac.to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        self.inner.write_all(&h)?;
        self.inner.write_all(frame)
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// Formats one verdict line (without newline) in the conformance format:
/// `N encap out=K table=T hash=H via=A alt=B[,C,D] sport=P`,
/// `N drop unclassified`, `N drop route-failed table=T`, or
/// `N drop encap-failed table=T`.
pub fn verdict_line(index: u64, out_index: Option<u64>, v: &Verdict) -> String {
    let mut s = String::with_capacity(96);
    match v {
        Verdict::Forward(r) => {
            let hops = r.hops();
            let _ = write!(
                s,
                "{index} encap out={} table={} hash={:016x} via={} alt=",
                out_index.unwrap_or(0),
                r.table,
                r.hash,
                hops.first()
                    .copied()
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            );
            for (i, h) in hops.iter().skip(1).enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, "{h}");
            }
            let _ = write!(s, " sport={}", r.udp_src_port());
        }
        Verdict::Unclassified => {
            let _ = write!(s, "{index} drop unclassified");
        }
        Verdict::RouteFailed { table } => {
            let _ = write!(s, "{index} drop route-failed table={table}");
        }
        Verdict::EncapFailed { table, .. } => {
            let _ = write!(s, "{index} drop encap-failed table={table}");
        }
    }
    s
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Frames read.
    pub frames: u64,
    /// Frames written.
    pub written: u64,
    /// The packet path's counters.
    pub counters: CounterSnapshot,
}

/// Where a replay reads and writes.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    /// Input capture.
    pub input: &'a Path,
    /// Output capture.
    pub output: &'a Path,
    /// Verdict file, if wanted.
    pub verdicts: Option<&'a Path>,
    /// The other files the run read (`("configuration", path)`, ...),
    /// which no output may be.
    pub reads: &'a [(&'a str, &'a Path)],
}

/// Errors of a replay, naming the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading the input failed.
    #[error("{}: {error}", path.display())]
    Input {
        /// The input file.
        path: PathBuf,
        /// Why (part of the message, not a separate cause, so it is
        /// printed once).
        error: PcapError,
    },
    /// Writing an output failed.
    #[error("{}: {error}", path.display())]
    Output {
        /// The output file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// An output is one of the files read.
    #[error("{} is also the {what} ({}); refusing to write over it", output.display(), input.display())]
    SameFile {
        /// The output.
        output: PathBuf,
        /// Which input it is.
        what: String,
        /// That input's path as given.
        input: PathBuf,
    },
}

/// Replays `job.input` through the packet path.
pub fn run(fwd: &Forwarder, enc: &Encapsulator, job: &Job<'_>) -> Result<Summary, RunError> {
    let in_err = |error: PcapError| RunError::Input {
        path: job.input.to_path_buf(),
        error,
    };
    let out_err = |path: &Path| {
        let path = path.to_path_buf();
        move |error: io::Error| RunError::Output {
            path: path.clone(),
            error,
        }
    };
    let mut read: Vec<(&str, &Path)> = vec![("input capture", job.input)];
    read.extend(job.reads.iter().copied());
    let mut outputs = vec![job.output];
    outputs.extend(job.verdicts);
    for (i, out) in outputs.iter().enumerate() {
        let mut others = read.clone();
        if i == 1 {
            others.push(("output capture", job.output));
        }
        if let Some((what, input)) = glb_io::file_id::clashes(out, &others[..]) {
            return Err(RunError::SameFile {
                output: out.to_path_buf(),
                what: what.to_owned(),
                input: input.to_path_buf(),
            });
        }
    }

    let file = File::open(job.input).map_err(|e| in_err(e.into()))?;
    let mut reader = Reader::new(BufReader::new(file)).map_err(in_err)?;
    let nanos = reader.header().nanos;

    let out_sink = AtomicFile::create(job.output).map_err(out_err(job.output))?;
    let mut writer = Writer::new(BufWriter::new(out_sink), nanos).map_err(out_err(job.output))?;
    let mut vtmp = match job.verdicts {
        Some(p) => Some(BufWriter::new(AtomicFile::create(p).map_err(out_err(p))?)),
        None => None,
    };

    let counters = CoreCounters::default();
    let mut records: Vec<Record> = (0..BATCH).map(|_| Record::default()).collect();
    let mut frames: Vec<OwnedFrame> = (0..BATCH).map(|_| OwnedFrame::new(&[], HEADROOM)).collect();
    let mut verdicts = Vec::with_capacity(BATCH);
    let mut scratch = Box::default();
    let (mut index, mut written) = (0u64, 0u64);
    let mut line = String::new();
    loop {
        let mut n = 0;
        while n < BATCH && reader.next_into(&mut records[n]).map_err(in_err)? {
            frames[n].reset(&records[n].data, HEADROOM);
            n += 1;
        }
        if n == 0 {
            break;
        }
        verdicts.clear();
        process_batch_each(
            fwd,
            enc,
            &mut frames[..n],
            &counters,
            &mut scratch,
            |_, v| verdicts.push(*v),
        );
        for ((rec, frame), v) in records.iter().zip(&frames).zip(&verdicts) {
            index += 1;
            let out = if let Verdict::Forward(_) = v {
                writer
                    .write(rec.ts_sec, rec.ts_frac, frame.frame())
                    .map_err(out_err(job.output))?;
                written += 1;
                Some(written)
            } else {
                None
            };
            if let (Some(w), Some(p)) = (vtmp.as_mut(), job.verdicts) {
                line.clear();
                line.push_str(&verdict_line(index, out, v));
                line.push('\n');
                w.write_all(line.as_bytes()).map_err(out_err(p))?;
            }
        }
        if n < BATCH {
            break;
        }
    }

    let out_sink = writer
        .into_inner()
        .into_inner()
        .map_err(|e| out_err(job.output)(e.into_error()))?;
    if let (Some(w), Some(p)) = (vtmp, job.verdicts) {
        let sink = w.into_inner().map_err(|e| out_err(p)(e.into_error()))?;
        sink.commit().map_err(out_err(p))?;
    }
    out_sink.commit().map_err(out_err(job.output))?;
    Ok(Summary {
        frames: index,
        written,
        counters: counters.snapshot(),
    })
}
