//! Cost of the director's packet path per packet, single core.
//!
//! 10,000 flows of 64-byte IPv4 TCP frames to 3 tables with 100 binds
//! between them, processed in batches of 32 as an engine would: classify,
//! hash, look up the row, encapsulate in place — with the outer UDP
//! checksum on and off. Then classification alone, the indexed classifier
//! against a literal first-match scan of the same binds.
//!
//! The flow hash runs on the best vector instructions the CPU has, or on
//! those `GLB_LANE_ENGINE` names (`avx512`, `avx2`, `portable`), as in the
//! director; the last lines compare every engine this CPU can run, taking
//! turns, on the same traffic.
//!
//! Run with `cargo bench -p glb-director --bench packet_path`.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use glb_core::batch::BatchScratch;
use glb_core::classify::{Classifier, LinearClassifier};
use glb_core::encap::{EncapParams, Encapsulator};
use glb_core::hash::LaneEngine;
use glb_core::inspect::{Lookup, inspect};
use glb_core::model::{Bind, ForwardingTables};
use glb_core::path::{FrameBuf, HEADROOM, OwnedFrame, process_batch, process_batch_with};
use glb_core::route::{Forwarder, RouteOptions};
use glb_core::table::{TableFile, compile};
use glb_core::wire::ethernet::Address;
use glb_director::counters::CoreCounters;
use glb_testkit::bench::{
    FLOWS, buffers, forward_all, one_vip_encapsulator, one_vip_forwarder, one_vip_frames, restore,
    tcp_frame,
};

const BATCH: usize = 32;
const TABLES: usize = 3;
const BINDS: usize = 100;
const RUNS: usize = 7;

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Bind `i`: VIP 10.(i / 10).(i % 10).1, TCP port 80 + (i % 3); every
/// tenth bind is a /29 prefix with a port range instead.
fn bind_json(i: usize) -> String {
    let (a, b) = (i / 10, i % 10);
    if i % 10 == 9 {
        format!(
            r#"{{"ip": "10.{a}.{b}.8/29", "proto": "tcp", "port_start": 8000, "port_end": 8099}}"#
        )
    } else {
        format!(
            r#"{{"ip": "10.{a}.{b}.1", "proto": "tcp", "port": {}}}"#,
            80 + i % 3
        )
    }
}

fn tables_json() -> String {
    let mut tables = Vec::new();
    for t in 0..TABLES {
        let binds: Vec<String> = (0..BINDS)
            .filter(|i| i % TABLES == t)
            .map(bind_json)
            .collect();
        let backends: Vec<String> = (0..16)
            .map(|j| {
                format!(
                    r#"{{"ip": "192.168.{t}.{}", "state": "active", "healthy": true}}"#,
                    10 + j
                )
            })
            .collect();
        tables.push(format!(
            r#"{{"hash_key": "{t:02x}345678901234561234567890123456", "seed": "34567890123456783456789012345678", "binds": [{}], "backends": [{}]}}"#,
            binds.join(","),
            backends.join(",")
        ));
    }
    format!(r#"{{"tables": [{}]}}"#, tables.join(","))
}

fn flows(rng: &mut Rng) -> Vec<Vec<u8>> {
    (0..FLOWS)
        .map(|_| {
            let i = (rng.next() % BINDS as u64) as usize;
            let (a, b) = ((i / 10) as u8, (i % 10) as u8);
            let (dst, port) = if i % 10 == 9 {
                (
                    Ipv4Addr::new(10, a, b, 8 + (rng.next() % 8) as u8),
                    8000 + (rng.next() % 100) as u16,
                )
            } else {
                (Ipv4Addr::new(10, a, b, 1), 80 + (i % 3) as u16)
            };
            let src = Ipv4Addr::from(0x6400_0000 | (rng.next() as u32 & 0x00ff_ffff));
            tcp_frame(src, 1024 + (rng.next() % 60000) as u16, dst, port)
        })
        .collect()
}

fn best_of(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

fn ns_per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

/// The engine `GLB_LANE_ENGINE` names, or the best one.
fn lane_engine() -> LaneEngine {
    let name = std::env::var("GLB_LANE_ENGINE").unwrap_or_else(|_| "auto".into());
    LaneEngine::named(&name).unwrap_or_else(|e| {
        eprintln!("GLB_LANE_ENGINE: {e}");
        std::process::exit(2);
    })
}

/// 32 hot buffers, refilled for each burst from mbuf-spaced captures.
struct Hot {
    captured: Vec<u8>,
    bufs: Vec<OwnedFrame>,
}

/// The space between two captured frames: a DPDK mbuf (2,304 bytes, a
/// length read from the first line and the frame from the third).
const MBUF: usize = 2304;

impl Hot {
    fn new(frames: &[Vec<u8>]) -> Self {
        let mut captured = vec![0u8; frames.len() * MBUF];
        for (slot, f) in captured.chunks_exact_mut(MBUF).zip(frames) {
            slot[..8].copy_from_slice(&(f.len() as u64).to_ne_bytes());
            slot[256..256 + f.len()].copy_from_slice(f);
        }
        let bufs = buffers(&frames[..BATCH]);
        Hot { captured, bufs }
    }

    /// Copies the burst's frames into the hot buffers, as net_pcap does.
    fn refill(bufs: &mut [OwnedFrame], burst: &[u8]) {
        for (f, slot) in bufs.iter_mut().zip(burst.chunks_exact(MBUF)) {
            let len = u64::from_ne_bytes(slot[..8].try_into().unwrap()) as usize;
            let (buf, _, _) = f.parts();
            buf[HEADROOM..HEADROOM + len].copy_from_slice(&slot[256..256 + len]);
            f.set_bounds(HEADROOM, len);
        }
    }

    /// Time to copy every burst, without processing.
    fn copy_only(&mut self) -> Duration {
        let t = Instant::now();
        for burst in self.captured.chunks(BATCH * MBUF) {
            Self::refill(&mut self.bufs, burst);
            black_box(&self.bufs);
        }
        t.elapsed()
    }

    /// Time to copy and forward every burst.
    fn forward(
        &mut self,
        fwd: &Forwarder,
        enc: &Encapsulator,
        counters: &CoreCounters,
        scratch: &mut BatchScratch,
    ) -> Duration {
        let t = Instant::now();
        let mut forwarded = 0;
        for burst in self.captured.chunks(BATCH * MBUF) {
            Self::refill(&mut self.bufs, burst);
            let n = burst.len() / MBUF;
            forwarded += forward_all(fwd, enc, &mut self.bufs[..n], counters, scratch);
        }
        let d = t.elapsed();
        assert_eq!(forwarded, self.captured.len() / MBUF);
        d
    }
}

fn main() {
    let engine = lane_engine();
    println!("cpu: {}", glb_testkit::machine::describe());
    println!(
        "lane engine: {engine} ({})",
        match std::env::var("GLB_LANE_ENGINE") {
            Ok(v) => format!("GLB_LANE_ENGINE={v}"),
            Err(_) =>
                "the best this CPU has; GLB_LANE_ENGINE=avx2|portable|avx512 forces one".into(),
        }
    );
    let json = tables_json();
    let model = ForwardingTables::from_json("bench", &json).expect("bench tables are valid");
    assert_eq!(
        model.tables.iter().map(|t| t.binds.len()).sum::<usize>(),
        BINDS
    );
    let bin = compile(&model);
    let file = TableFile::parse(&bin).unwrap();
    let fwd = Forwarder::new(&file, RouteOptions::default()).with_lane_engine(engine);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let originals = flows(&mut rng);
    let mut frames = buffers(&originals);

    // Encapsulation overwrites the frame's Ethernet header; restoring it
    // (and the frame bounds) between rounds is what a fresh receive would
    // give us. Its cost is measured on its own and reported.
    let restore_originals = |frames: &mut [OwnedFrame]| restore(frames, &originals);
    let restore_cost = best_of(RUNS * 3, || {
        let t = Instant::now();
        restore_originals(&mut frames);
        black_box(&frames);
        t.elapsed()
    });

    let mut verdicts = Vec::with_capacity(BATCH);
    let counters = CoreCounters::default();
    // `prepared`: the engine keeps an Encapsulator per port
    // (process_batch_with); otherwise the template is built per batch
    // (process_batch).
    let mut run = |udp_checksum: bool, prepared: bool, frames: &mut Vec<OwnedFrame>| {
        let params = EncapParams {
            dst_mac: Address([0x3a, 0x89, 0x7c, 0x7b, 0x5d, 0x1f]),
            src_mac: Address([0x02, 0, 0, 0, 0, 9]),
            src_ip: Ipv4Addr::new(65, 65, 65, 65),
            udp_checksum,
        };
        let enc = Encapsulator::new(params);
        best_of(RUNS, || {
            restore_originals(frames);
            let t = Instant::now();
            for chunk in frames.chunks_mut(BATCH) {
                if prepared {
                    process_batch_with(&fwd, &enc, chunk, &mut verdicts, &counters);
                } else {
                    process_batch(&fwd, &params, chunk, &mut verdicts, &counters);
                }
                black_box(&verdicts);
            }
            t.elapsed()
        })
    };
    // Warm up caches and branch predictors once.
    run(true, true, &mut frames);
    let with_csum = run(true, true, &mut frames);
    let without_csum = run(false, true, &mut frames);
    let per_batch_template = run(true, false, &mut frames);
    let c = counters.snapshot();
    assert_eq!(
        c.unmatched + c.route_failed + c.encap_failure,
        0,
        "every bench packet must be forwarded"
    );

    // script/bench-director's traffic: one VIP, hash on source address
    // and port, verdicts consumed as the DPDK engine does.
    let one_vip = one_vip_forwarder(engine);
    let vip_frames = one_vip_frames();
    let mut vip_bufs = buffers(&vip_frames);
    let enc = one_vip_encapsulator();
    let mut scratch = BatchScratch::default();
    let one_vip_cost = best_of(RUNS, || {
        restore(&mut vip_bufs, &vip_frames);
        let t = Instant::now();
        let forwarded = forward_all(&one_vip, &enc, &mut vip_bufs, &counters, &mut scratch);
        let d = t.elapsed();
        assert_eq!(forwarded, FLOWS);
        d
    });

    // The same traffic as the DPDK engine sees it: each burst of 32 is
    // copied from the 10,000 captured frames into the same 32 buffers, as
    // net_pcap does into recycled mbufs, so the frames being processed
    // are in cache. The captured frames sit an mbuf apart, so reading
    // them streams through the caches as it does in the director, and
    // competes with the table rows for them. The copy is timed too; it is
    // measured on its own and reported.
    let mut hot = Hot::new(&vip_frames);
    let refill_cost = best_of(RUNS * 3, || hot.copy_only());
    let hot_cost = best_of(RUNS * 3, || {
        hot.forward(&one_vip, &enc, &counters, &mut scratch)
    });

    // Classification alone.
    let lookups: Vec<Lookup> = originals.iter().map(|f| inspect(f).lookup).collect();
    let binds: Vec<Vec<Bind>> = model.tables.iter().map(|t| t.binds.clone()).collect();
    let indexed = Classifier::new(binds.iter(), true);
    let linear = LinearClassifier::new(binds.iter(), true);
    for l in &lookups {
        assert_eq!(indexed.classify(l), linear.classify(l));
        assert!(indexed.classify(l).is_some());
    }
    fn time_classify(lookups: &[Lookup], f: impl Fn(&Lookup) -> Option<usize>) -> Duration {
        best_of(RUNS, || {
            let t = Instant::now();
            for l in lookups {
                black_box(f(black_box(l)));
            }
            t.elapsed()
        })
    }
    let t_indexed = time_classify(&lookups, |l| indexed.classify(l));
    let t_linear = time_classify(&lookups, |l| linear.classify(l));
    let t_inspect = best_of(RUNS, || {
        let t = Instant::now();
        for f in &originals {
            black_box(inspect(black_box(f)));
        }
        t.elapsed()
    });

    let on = ns_per(with_csum, FLOWS);
    let off = ns_per(without_csum, FLOWS);
    println!(
        "packet path: {FLOWS} flows, 64-byte IPv4 TCP, {TABLES} tables / {BINDS} binds, batches of {BATCH}, single core, best of {RUNS}"
    );
    println!("  classify + hash + encap, UDP checksum on : {on:7.1} ns/packet");
    println!("  classify + hash + encap, UDP checksum off: {off:7.1} ns/packet");
    println!(
        "  same, UDP checksum on, template built per batch: {:7.1} ns/packet",
        ns_per(per_batch_template, FLOWS)
    );
    println!(
        "  (restoring frames between rounds, not included: {:.1} ns/packet)",
        ns_per(restore_cost, FLOWS)
    );
    println!(
        "  target < 60 ns/packet with checksums: {}",
        if on < 60.0 { "met" } else { "NOT met" }
    );
    println!(
        "  one VIP, hash on src_addr,src_port, UDP checksum on (script/bench-director's traffic): {:7.1} ns/packet",
        ns_per(one_vip_cost, FLOWS)
    );
    println!(
        "  same, frames copied from mbuf-spaced captures into {BATCH} hot buffers per burst as net_pcap does: {:7.1} ns/packet (copy alone {:.1})",
        ns_per(hot_cost, FLOWS),
        ns_per(refill_cost, FLOWS)
    );
    println!("classification only ({BINDS} binds):");
    println!(
        "  frame inspection            : {:7.1} ns/packet",
        ns_per(t_inspect, FLOWS)
    );
    println!(
        "  indexed classifier          : {:7.1} ns/lookup",
        ns_per(t_indexed, FLOWS)
    );
    println!(
        "  linear first-match baseline : {:7.1} ns/lookup ({:.1}x the indexed cost)",
        ns_per(t_linear, FLOWS),
        t_linear.as_secs_f64() / t_indexed.as_secs_f64().max(1e-12)
    );

    // Every engine on the same traffic, taking turns, best of the rounds.
    let engines = LaneEngine::available();
    let enc_on = Encapsulator::new(EncapParams {
        dst_mac: Address([0x3a, 0x89, 0x7c, 0x7b, 0x5d, 0x1f]),
        src_mac: Address([0x02, 0, 0, 0, 0, 9]),
        src_ip: Ipv4Addr::new(65, 65, 65, 65),
        udp_checksum: true,
    });
    let mut best = vec![(Duration::MAX, Duration::MAX); engines.len()];
    for _ in 0..RUNS {
        for (e, b) in engines.iter().zip(&mut best) {
            let tables = fwd.clone().with_lane_engine(*e);
            restore_originals(&mut frames);
            let t = Instant::now();
            let n = forward_all(&tables, &enc_on, &mut frames, &counters, &mut scratch);
            b.0 = b.0.min(t.elapsed());
            assert_eq!(n, FLOWS);
            let vip = one_vip.clone().with_lane_engine(*e);
            b.1 = b.1.min(hot.forward(&vip, &enc, &counters, &mut scratch));
        }
    }
    println!("lane engines compared (best of {RUNS} rounds, taking turns):");
    for (e, (tables, vip)) in engines.iter().zip(&best) {
        println!(
            "  {:<8} {TABLES} tables / {BINDS} binds: {:6.1} ns/packet; one VIP, mbuf-spaced: {:6.1} ns/packet",
            e.name(),
            ns_per(*tables, FLOWS),
            ns_per(*vip, FLOWS)
        );
    }
}
