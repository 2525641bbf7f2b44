//! Table generation: the crate's generator against the full-sort reference,
//! measured in the same run on a 256-backend table.
//!
//! `cargo bench -p glb-core --bench table_build`

#[path = "../tests/reference/mod.rs"]
mod reference;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use glb_core::Key16;
use glb_core::model::{Backend, BackendState, Bind, Proto, Table};
use glb_core::table;
use reference::{RefBackend, reference_rows};

fn table_256() -> Table {
    let backends = (0..256u32)
        .map(|i| Backend {
            addr: IpAddr::V4(Ipv4Addr::from(0x0a64_0000 + i)),
            state: if i % 50 == 7 {
                BackendState::Draining
            } else {
                BackendState::Active
            },
            healthy: Some(i % 31 != 3),
            healthchecks: Default::default(),
        })
        .collect();
    Table {
        name: None,
        hash_key: Key16::new(*b"0123456789abcdef"),
        seed: Key16::new(*b"fedcba9876543210"),
        binds: vec![Bind {
            addr: IpAddr::V4(Ipv4Addr::new(10, 10, 10, 10)),
            prefix_len: 32,
            proto: Proto::Tcp,
            port_start: 80,
            port_end: 80,
        }],
        backends,
    }
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let out = black_box(f());
        best = best.min(start.elapsed());
        last = Some(out);
    }
    (best, last.expect("at least one run"))
}

fn main() {
    let t = table_256();
    let refs: Vec<RefBackend> = t
        .backends
        .iter()
        .map(|b| RefBackend {
            addr: b.addr,
            state: if b.state == BackendState::Draining {
                "draining"
            } else {
                "active"
            },
            healthy: b.is_healthy(),
        })
        .collect();

    let (fast, rec) = best_of(7, || table::compile_table(&t));
    let (slow, want) = best_of(2, || reference_rows(t.seed.expose(), &refs));
    let same = rec
        .rows
        .iter()
        .zip(&want)
        .all(|(r, w)| (r.primary.get(), r.secondary.get()) == *w);
    assert!(same, "generator and reference disagree");

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("table generation, 256 backends, 65536 rows ({threads} threads available)");
    println!(
        "  generator (best of 7):            {:>9.3} ms",
        fast.as_secs_f64() * 1e3
    );
    println!(
        "  full-sort reference (best of 2):  {:>9.3} ms",
        slow.as_secs_f64() * 1e3
    );
    println!(
        "generator_ms={:.3} reference_ms={:.3} speedup={:.1}",
        fast.as_secs_f64() * 1e3,
        slow.as_secs_f64() * 1e3,
        slow.as_secs_f64() / fast.as_secs_f64()
    );
}
