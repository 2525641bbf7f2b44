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

/// A compiled file of two tables whose binds catch nearly everything
/// (IPv4 TCP to one /24 and all UDP; all TCP; all IPv6), so random and
/// mutated frames get deep into the packet path. With the alternate hash
/// fields `src_addr,src_port` its routes have four hops.
pub fn catch_all() -> Vec<u8> {
    const KEY: &str = "000102030405060708090a0b0c0d0e0f";
    compile(&tables_json(&[
        (
            KEY,
            r#"{"ip": "10.1.1.0/24", "proto": "tcp", "port": 80},
               {"ip": "0.0.0.0/0", "proto": "udp", "port_start": 0, "port_end": 65535}"#,
            &["192.0.2.1", "192.0.2.2", "192.0.2.3"],
        ),
        (
            KEY,
            r#"{"ip": "0.0.0.0/0", "proto": "tcp", "port_start": 0, "port_end": 65535},
               {"ip": "::/0", "proto": "tcp", "port_start": 0, "port_end": 65535},
               {"ip": "::/0", "proto": "udp", "port_start": 0, "port_end": 65535}"#,
            &["192.0.2.4", "192.0.2.5"],
        ),
    ]))
}
