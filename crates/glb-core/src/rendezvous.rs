//! Rendezvous (highest-random-weight) table generation, byte-compatible with
//! the original compiler.
//!
//! Each of the 65,536 rows ranks every usable backend by a SipHash score
//! keyed with the table's seed; the two lowest scores become the row's
//! primary and secondary. Because every director computes the same ranking
//! from the same JSON, a flow lands on the same proxy whichever director it
//! crosses, and adding or removing one backend moves only the rows it wins
//! or loses.

use std::hash::Hasher;
use std::net::IpAddr;
use std::num::NonZeroUsize;

use crate::hash::Key16;
use crate::model::{Backend, BackendState};

/// Rows in a table: one per value of the 16 hash bits that pick a row.
pub const ROWS: usize = 0x1_0000;

/// The per-row seed: SipHash(seed, row index as big-endian u32), as the 8
/// output bytes of the reference implementation.
pub fn row_seed(seed: &Key16, row: u32) -> [u8; 8] {
    seed.siphash(&row.to_be_bytes()).to_le_bytes()
}

/// Address bytes hashed for a backend: 4 for IPv4, 16 for IPv6.
pub fn addr_key(addr: &IpAddr) -> ([u8; 16], usize) {
    let mut out = [0u8; 16];
    match addr {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            (out, 4)
        }
        IpAddr::V6(a) => (a.octets(), 16),
    }
}

/// A backend's score for a row, ordered like the reference implementation
/// compares the 8 hash bytes (lexicographically, i.e. big-endian).
pub fn score(seed: &Key16, row_seed: &[u8; 8], addr: &IpAddr) -> u64 {
    let (bytes, len) = addr_key(addr);
    let mut h = seed.hasher();
    h.write(row_seed);
    h.write(&bytes[..len]);
    h.finish().swap_bytes()
}

/// Applies the original's demotion rule to a row's two best backends: a
/// draining or unhealthy primary trades places with an `active`
/// secondary. Only the secondary's *state* is consulted, as in the
/// original, so that mixed fleets build identical tables.
pub fn apply_swap_rule(backends: &[Backend], primary: usize, secondary: usize) -> (usize, usize) {
    let p = &backends[primary];
    let s = &backends[secondary];
    let demote = p.state == BackendState::Draining || !p.is_healthy();
    if demote && s.state == BackendState::Active {
        (secondary, primary)
    } else {
        (primary, secondary)
    }
}

struct Candidate {
    index: usize,
    key: [u8; 16],
    len: usize,
}

/// Fills all [`ROWS`] rows for `backends` (in JSON order, inactive
/// included) with `seed`, each made by `make(primary, secondary)` from the
/// two backend indexes (the caller's storage format). The caller
/// guarantees at least one backend is not inactive; with exactly one, it
/// is both primary and secondary.
pub fn fill_rows<R: Send>(
    seed: &Key16,
    backends: &[Backend],
    rows: &mut [R; ROWS],
    make: impl Fn(u32, u32) -> R + Sync,
) {
    let candidates: Vec<Candidate> = backends
        .iter()
        .enumerate()
        .filter(|(_, b)| b.state != BackendState::Inactive)
        .map(|(index, b)| {
            let (key, len) = addr_key(&b.addr);
            Candidate { index, key, len }
        })
        .collect();
    if candidates.is_empty() {
        return;
    }
    // Rows are independent, so split them across cores; for small tables the
    // thread start-up is still far below a millisecond.
    let threads = std::thread::available_parallelism()
        .map(NonZeroUsize::get)
        .unwrap_or(1)
        .clamp(1, 16);
    let chunk = ROWS.div_ceil(threads);
    std::thread::scope(|scope| {
        for (n, part) in rows.chunks_mut(chunk).enumerate() {
            let (candidates, make) = (&candidates, &make);
            scope.spawn(move || {
                let first = n * chunk;
                for (offset, row) in part.iter_mut().enumerate() {
                    let (p, s) = compute_row(seed, backends, candidates, (first + offset) as u32);
                    *row = make(p as u32, s as u32);
                }
            });
        }
    });
}

fn compute_row(
    seed: &Key16,
    backends: &[Backend],
    candidates: &[Candidate],
    row: u32,
) -> (usize, usize) {
    // The 8-byte row seed is exactly one SipHash block: absorb it once and
    // clone the state for each backend instead of rehashing it.
    let mut base = seed.hasher();
    base.write(&row_seed(seed, row));

    // Only the two lowest scores matter; ties keep JSON order.
    let mut best = (u64::MAX, usize::MAX);
    let mut second = (u64::MAX, usize::MAX);
    for c in candidates {
        let mut h = base;
        h.write(&c.key[..c.len]);
        let s = (h.finish().swap_bytes(), c.index);
        if s < best {
            second = best;
            best = s;
        } else if s < second {
            second = s;
        }
    }
    let primary = best.1;
    let secondary = if second.1 == usize::MAX {
        primary
    } else {
        second.1
    };
    apply_swap_rule(backends, primary, secondary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hex: &str) -> Key16 {
        Key16::from_hex(hex).unwrap()
    }

    /// SPEC §4 published check values.
    #[test]
    fn published_row_seeds() {
        let seed = key("49a3d861d661ae5ab06ed9326871a2f5");
        assert_eq!(row_seed(&seed, 0x0000), 0x491c53a72df4c837u64.to_be_bytes());
        assert_eq!(row_seed(&seed, 0xffff), 0xf223c0cc65161620u64.to_be_bytes());
    }

    #[test]
    fn published_row_orders() {
        let seed = key("49a3d861d661ae5ab06ed9326871a2f5");
        let hosts: Vec<IpAddr> = (1..=4)
            .map(|i| format!("1.1.1.{i}").parse().unwrap())
            .collect();
        let order = |row: u32| -> Vec<u8> {
            let rs = row_seed(&seed, row);
            let mut v: Vec<(u64, u8)> = hosts
                .iter()
                .enumerate()
                .map(|(i, h)| (score(&seed, &rs, h), i as u8 + 1))
                .collect();
            v.sort();
            v.into_iter().map(|(_, last_octet)| last_octet).collect()
        };
        assert_eq!(order(0x0000), [4, 3, 2, 1]);
        assert_eq!(order(0xffff), [1, 2, 4, 3]);
        assert_eq!(order(0xbb44), [4, 1, 2, 3]);
    }

    fn backend(ip: &str, state: BackendState, healthy: bool) -> Backend {
        Backend {
            addr: ip.parse().unwrap(),
            state,
            healthy: Some(healthy),
            healthchecks: Default::default(),
        }
    }

    #[test]
    fn swap_rule() {
        use BackendState::*;
        let b = [
            backend("1.1.1.1", Active, true),
            backend("1.1.1.2", Draining, true),
            backend("1.1.1.3", Active, false),
            backend("1.1.1.4", Filling, true),
            backend("1.1.1.5", Active, false),
        ];
        assert_eq!(
            apply_swap_rule(&b, 1, 0),
            (0, 1),
            "draining primary demoted"
        );
        assert_eq!(
            apply_swap_rule(&b, 2, 0),
            (0, 2),
            "unhealthy primary demoted"
        );
        assert_eq!(
            apply_swap_rule(&b, 1, 3),
            (1, 3),
            "filling secondary not promoted"
        );
        // The secondary's health is not consulted, as in the original.
        assert_eq!(apply_swap_rule(&b, 1, 4), (4, 1));
        assert_eq!(apply_swap_rule(&b, 0, 1), (0, 1));
    }
}
