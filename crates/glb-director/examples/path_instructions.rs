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

use glb_core::batch::BatchScratch;
use glb_core::hash::LaneEngine;
use glb_director::counters::CoreCounters;
use glb_testkit::bench::{
    FLOWS, buffers, forward_all, one_vip_encapsulator, one_vip_forwarder, one_vip_frames, restore,
};

const ROUNDS: usize = 20;

fn main() {
    let engine = std::env::var("GLB_LANE_ENGINE").unwrap_or_else(|_| "auto".into());
    let engine = LaneEngine::named(&engine).unwrap_or_else(|e| panic!("GLB_LANE_ENGINE: {e}"));
    let fwd = one_vip_forwarder(engine);
    let originals = one_vip_frames();
    let mut frames = buffers(&originals);
    let enc = one_vip_encapsulator();
    let counters = CoreCounters::default();
    let mut scratch = BatchScratch::default();
    let mut forwarded = 0;
    for _ in 0..ROUNDS {
        restore(&mut frames, &originals);
        forwarded += forward_all(&fwd, &enc, &mut frames, &counters, &mut scratch);
        black_box(&frames);
    }
    assert_eq!(forwarded, ROUNDS * FLOWS, "every packet must be forwarded");
    println!("packets={} lane_engine={engine}", ROUNDS * FLOWS);
}
