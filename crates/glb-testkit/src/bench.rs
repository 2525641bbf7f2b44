//! What the packet path's benchmarks share (glb-director's `packet_path`
//! bench and its `path_instructions` example): script/bench-director's
//! traffic — 10,000 flows of 64-byte IPv4 TCP frames to one VIP, hashed on
//! source address and port — and the loop that forwards it in bursts as
//! the DPDK engine does.

use std::net::Ipv4Addr;

use glb_core::batch::{BATCH, BatchScratch};
use glb_core::encap::{EncapParams, Encapsulator};
use glb_core::flowhash::HashFields;
use glb_core::hash::LaneEngine;
use glb_core::model::ForwardingTables;
use glb_core::path::{FrameBuf, HEADROOM, OwnedFrame, Tally, Verdict, process_batch_each};
use glb_core::route::{Forwarder, RouteOptions};
use glb_core::table::{TableFile, compile};
use glb_core::wire::ethernet::Address;

use crate::frames;

/// Flows in script/bench-director's capture.
pub const FLOWS: usize = 10_000;

/// One table binding 10.10.10.10:80 over four backends.
const ONE_VIP_TABLE: &str = r#"{"tables": [{"hash_key": "0123456789abcdef0123456789abcdef",
    "seed": "fedcba9876543210fedcba9876543210",
    "binds": [{"ip": "10.10.10.10", "proto": "tcp", "port": 80}],
    "backends": [
        {"ip": "192.168.50.10", "state": "active", "healthy": true},
        {"ip": "192.168.50.11", "state": "active", "healthy": true},
        {"ip": "192.168.50.12", "state": "active", "healthy": true},
        {"ip": "192.168.50.13", "state": "active", "healthy": true}]}]}"#;

/// A 64-byte Ethernet frame: IPv4 + TCP + 10 bytes of data.
pub fn tcp_frame(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let tcp = frames::tcp(sport, dport, b"0123456789");
    let f = frames::eth(0x0800, &frames::ipv4(src, dst, 6, 1, &tcp));
    assert_eq!(f.len(), 64);
    f
}

/// The one-VIP table, routed as script/bench-director's director.conf
/// says (hash on source address and port), its flows hashed on `engine`.
pub fn one_vip_forwarder(engine: LaneEngine) -> Forwarder {
    let model = ForwardingTables::from_json("one-vip", ONE_VIP_TABLE).expect("valid table");
    let bin = compile(&model);
    let options = RouteOptions {
        hash_fields: HashFields::parse_list("src_addr,src_port").expect("valid fields"),
        ..RouteOptions::default()
    };
    Forwarder::new(&TableFile::parse(&bin).expect("valid table"), options).with_lane_engine(engine)
}

/// The capture's frames: flow `i` from 10.1.(i / 256).(i % 256), port
/// 1024 + i, to 10.10.10.10:80.
pub fn one_vip_frames() -> Vec<Vec<u8>> {
    (0..FLOWS)
        .map(|i| {
            let src = Ipv4Addr::new(10, 1, (i / 256) as u8, (i % 256) as u8);
            tcp_frame(src, 1024 + i as u16, Ipv4Addr::new(10, 10, 10, 10), 80)
        })
        .collect()
}

/// The outer headers script/bench-director's director.conf asks for
/// (gateway 02:00:00:00:00:fe, source 192.168.50.1, UDP checksums on),
/// from port MAC 02:00:00:00:00:09.
pub fn one_vip_encapsulator() -> Encapsulator {
    Encapsulator::new(EncapParams {
        dst_mac: Address([0x02, 0, 0, 0, 0, 0xfe]),
        src_mac: Address([0x02, 0, 0, 0, 0, 9]),
        src_ip: Ipv4Addr::new(192, 168, 50, 1),
        udp_checksum: true,
    })
}

/// Each frame in a buffer of its own, with the headroom encapsulation
/// needs.
pub fn buffers(frames: &[Vec<u8>]) -> Vec<OwnedFrame> {
    frames
        .iter()
        .map(|f| OwnedFrame::new(f, HEADROOM))
        .collect()
}

/// Puts back what encapsulation changed in `frames` (the Ethernet header
/// and the frame bounds), as a fresh receive of `originals` would give.
pub fn restore(frames: &mut [OwnedFrame], originals: &[Vec<u8>]) {
    for (f, o) in frames.iter_mut().zip(originals) {
        let (buf, _, _) = f.parts();
        buf[HEADROOM..HEADROOM + 14].copy_from_slice(&o[..14]);
        f.set_bounds(HEADROOM, o.len());
    }
}

/// Processes `frames` in bursts as the DPDK engine does, counting the
/// forwarded ones. Not inlined, so a profiler can single it out.
#[inline(never)]
pub fn forward_all(
    fwd: &Forwarder,
    enc: &Encapsulator,
    frames: &mut [OwnedFrame],
    tally: &impl Tally,
    scratch: &mut BatchScratch,
) -> usize {
    let mut forwarded = 0;
    for chunk in frames.chunks_mut(BATCH) {
        process_batch_each(fwd, enc, chunk, tally, scratch, |_, v| {
            forwarded += usize::from(matches!(v, Verdict::Forward(_)));
        });
    }
    forwarded
}
