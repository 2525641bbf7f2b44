//! Classic pcap files, read and written here without the engine's own
//! reader and writer.

use std::path::Path;

/// Frames of a classic little-endian pcap file (either timestamp
/// precision).
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
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
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap()) as usize;
    let mut frames = Vec::new();
    let mut off = 24;
    while off < data.len() {
        assert!(
            off + 16 <= data.len(),
            "{}: cut record header",
            path.display()
        );
        let caplen = u32_at(off + 8);
        off += 16;
        assert!(off + caplen <= data.len(), "{}: cut record", path.display());
        frames.push(data[off..off + caplen].to_vec());
        off += caplen;
    }
    frames
}

/// Writes frames as a classic microsecond pcap file.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
}
