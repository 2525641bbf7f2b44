//! Helpers shared by the XDP director's tests.
#![allow(dead_code)]

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use glb_core::encap::EncapParams;
use glb_core::forward::RouteOptions;
use glb_core::table::TableFile;
use glb_core::wire::ethernet;
use glb_director::DirectorConfig;
use glb_director::engine::pcap::{Reader, Record};
use glb_director_xdp::image::Image;
use glb_director_xdp::objects;
use glb_director_xdp::program::Director;

/// The conformance directory (GLB_CONFORMANCE_DIR or ../shared/conformance
/// beside the repository).
pub fn conformance_dir() -> PathBuf {
    match std::env::var_os("GLB_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    }
}

/// Every frame of a classic pcap file.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let f = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r =
        Reader::new(BufReader::new(f)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut rec = Record::default();
    while r
        .next_into(&mut rec)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    {
        out.push(rec.data.clone());
    }
    out
}

/// The routing and encapsulation settings of a director.conf.
pub fn settings(config: &Path) -> (RouteOptions, EncapParams) {
    let loaded = DirectorConfig::load(config).unwrap_or_else(|e| panic!("{e}"));
    (
        loaded.config.route_options(),
        loaded.config.encap_params(ethernet::Address::ZERO),
    )
}

/// The director program loaded with `table` (the bytes of a binary table).
pub fn director_with(table: &[u8], options: &RouteOptions, encap: &EncapParams) -> Director {
    let file = TableFile::parse(table).unwrap_or_else(|e| panic!("table: {e}"));
    let mut d = Director::load_file(&objects::built("glb_encap.o"), 0)
        .unwrap_or_else(|e| panic!("loading glb_encap.o: {}", error_chain(&e)));
    let image =
        Image::build(&file, options, encap, d.tables_cap()).unwrap_or_else(|e| panic!("{e}"));
    d.install(&image)
        .unwrap_or_else(|e| panic!("installing: {}", error_chain(&e)));
    d
}

/// An error with its causes, one per line (the verifier's log included).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!("\n  caused by: {c}"));
        cur = c.source();
    }
    s
}
