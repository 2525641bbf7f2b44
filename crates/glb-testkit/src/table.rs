//! Binary forwarding tables for tests: compiled from JSON the test writes,

//! and read back by byte offset (SPEC §3) rather than through the reader

//! under test.

use std::net::Ipv4Addr;

/// Reads row `row` of table `t` of a binary table image directly by
/// offset (SPEC §3): (primary index, secondary index).
pub fn bin_row(bin: &[u8], t: usize, row: usize) -> (u32, u32) {
    let table = 24 + t * 537_624;
    let rows = table + 4 + 256 * 24 + 4 + 256 * 28 + 16;
    let at = rows + row * 8;
    let w = |o: usize| u32::from_le_bytes(bin[o..o + 4].try_into().unwrap());
    (w(at), w(at + 4))
}

/// Backend `i` of table `t` as IPv4 (the first four address bytes).
pub fn bin_backend_v4(bin: &[u8], t: usize, i: usize) -> Ipv4Addr {
    let at = 24 + t * 537_624 + 4 + i * 24 + 4;
    Ipv4Addr::new(bin[at], bin[at + 1], bin[at + 2], bin[at + 3])
}

/// Compiles forwarding-table JSON into a binary image.
pub fn compile(json: &str) -> Vec<u8> {
    let t = glb_core::ForwardingTables::from_json("test", json).expect("test table is valid");
    glb_core::table::compile(&t)
}

/// A table JSON with the given tables, each `(hash_key, binds JSON, backends)`.
pub fn tables_json(tables: &[(&str, &str, &[&str])]) -> String {
    let ts: Vec<String> = tables
        .iter()
        .map(|(key, binds, backends)| {
            let bs: Vec<String> = backends
                .iter()
                .map(|b| format!(r#"{{"ip": "{b}", "state": "active", "healthy": true}}"#))
                .collect();
            format!(
                r#"{{"hash_key": "{key}", "seed": "00112233445566778899aabbccddeeff", "binds": [{binds}], "backends": [{}]}}"#,
                bs.join(",")
            )
        })
        .collect();
    format!(r#"{{"tables": [{}]}}"#, ts.join(","))
}
