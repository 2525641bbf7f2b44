//! The packet path over script/bench-director's traffic (10,000 flows of
//! 64-byte IPv4 TCP frames to one VIP, hashed on source address and port,
//! UDP checksums on), a fixed number of times, for counting instructions
//! per packet with callgrind — a figure a shared, noisy machine does not
//! blur:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/examples/path_instructions
//! callgrind_annotate --inclusive=yes cg.out | grep forward_all
//! ```
//!
//! Instructions per packet = forward_all's inclusive count / (ROUNDS ×
//! FLOWS), printed by this program as the packet count.
//!
//! Valgrind has no AVX-512, so under callgrind the best engine is AVX2;
//! `GLB_LANE_ENGINE=portable` (or `avx2`, `avx512`) names one, as for the
//! director.

use std::hint::black_box;
use std::net::Ipv4Addr;

use glb_core::batch::{BATCH, BatchScratch};
use glb_core::encap::{EncapParams, Encapsulator};
use glb_core::flowhash::HashFields;
use glb_core::hash::LaneEngine;
use glb_core::model::ForwardingTables;
use glb_core::path::{FrameBuf, HEADROOM, OwnedFrame, Verdict, process_batch_each};
use glb_core::route::{Forwarder, RouteOptions};
use glb_core::table::{TableFile, compile};
use glb_core::wire::ethernet::Address;
use glb_director::counters::CoreCounters;

const FLOWS: usize = 10_000;
const ROUNDS: usize = 20;

/// A 64-byte Ethernet/IPv4/TCP SYN frame (checksums are not looked at).
fn frame(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&50u16.to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&src.octets());
    f[30..34].copy_from_slice(&dst.octets());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[46] = 0x50;
    f[47] = 0x02;
    f
}

#[inline(never)]
fn forward_all(
    fwd: &Forwarder,
    enc: &Encapsulator,
    frames: &mut [OwnedFrame],
    counters: &CoreCounters,
    scratch: &mut BatchScratch,
) -> usize {
    let mut forwarded = 0;
    for chunk in frames.chunks_mut(BATCH) {
        process_batch_each(fwd, enc, chunk, counters, scratch, |_, v| {
            forwarded += usize::from(matches!(v, Verdict::Forward(_)));
        });
    }
    forwarded
}

fn main() {
    let json = r#"{"tables": [{"hash_key": "0123456789abcdef0123456789abcdef",
        "seed": "fedcba9876543210fedcba9876543210",
        "binds": [{"ip": "10.10.10.10", "proto": "tcp", "port": 80}],
        "backends": [
            {"ip": "192.168.50.10", "state": "active", "healthy": true},
            {"ip": "192.168.50.11", "state": "active", "healthy": true},
            {"ip": "192.168.50.12", "state": "active", "healthy": true},
            {"ip": "192.168.50.13", "state": "active", "healthy": true}]}]}"#;
    let model = ForwardingTables::from_json("one-vip", json).expect("valid");
    let bin = compile(&model);
    let options = RouteOptions {
        hash_fields: HashFields::parse_list("src_addr,src_port").expect("valid fields"),
        ..RouteOptions::default()
    };
    let engine = std::env::var("GLB_LANE_ENGINE").unwrap_or_else(|_| "auto".into());
    let engine = LaneEngine::named(&engine).unwrap_or_else(|e| panic!("GLB_LANE_ENGINE: {e}"));
    let fwd = Forwarder::new(&TableFile::parse(&bin).expect("valid table"), options)
        .with_lane_engine(engine);
    let originals: Vec<Vec<u8>> = (0..FLOWS)
        .map(|i| {
            let src = Ipv4Addr::new(10, 1, (i / 256) as u8, (i % 256) as u8);
            frame(src, 1024 + i as u16, Ipv4Addr::new(10, 10, 10, 10), 80)
        })
        .collect();
    let mut frames: Vec<OwnedFrame> = originals
        .iter()
        .map(|f| OwnedFrame::new(f, HEADROOM))
        .collect();
    let enc = Encapsulator::new(EncapParams {
        dst_mac: Address([0x3a, 0x89, 0x7c, 0x7b, 0x5d, 0x1f]),
        src_mac: Address([0x02, 0, 0, 0, 0, 9]),
        src_ip: Ipv4Addr::new(65, 65, 65, 65),
        udp_checksum: true,
    });
    let counters = CoreCounters::default();
    let mut scratch = BatchScratch::default();
    let mut forwarded = 0;
    for _ in 0..ROUNDS {
        for (f, o) in frames.iter_mut().zip(&originals) {
            let (buf, _, _) = f.parts();
            buf[HEADROOM..HEADROOM + 14].copy_from_slice(&o[..14]);
            f.set_bounds(HEADROOM, o.len());
        }
        forwarded += forward_all(&fwd, &enc, &mut frames, &counters, &mut scratch);
        black_box(&frames);
    }
    assert_eq!(forwarded, ROUNDS * FLOWS, "every packet must be forwarded");
    println!("packets={} lane_engine={engine}", ROUNDS * FLOWS);
}
