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

use crate::hash::{
    Key16, LANE_BLOCK, LaneEngine, ShortMsg, SipKey, SipTail, TailBlock, finish_lanes, set_tail,
};
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

/// The usable backends of one address family, eight to a block of
/// vector lanes: what of each one's score message follows the row seed
/// (`W` words: 1 for the 4 bytes of IPv4, 3 for the 16 of IPv6) and its
/// index in JSON order. The last block's spare lanes are hashed too and
/// ignored.
struct Family<const W: usize> {
    tails: Vec<TailBlock<W>>,
    index: Vec<usize>,
}

impl<const W: usize> Family<W> {
    fn new<'a>(members: impl Iterator<Item = (usize, &'a [u8])>) -> Family<W> {
        let mut f = Family {
            tails: Vec::new(),
            index: Vec::new(),
        };
        for (index, addr) in members {
            let lane = f.index.len() % LANE_BLOCK;
            if lane == 0 {
                f.tails.push([[0; LANE_BLOCK]; W]);
            }
            let tail = SipTail::<W>::new(addr).expect("an address of the family's length");
            let block = f.tails.last_mut().expect("pushed above");
            set_tail(block, lane, tail);
            f.index.push(index);
        }
        f
    }
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
    // The usable backends' indexes and score keys, split by family below.
    let usable: Vec<(usize, ([u8; 16], usize))> = backends
        .iter()
        .enumerate()
        .filter(|(_, b)| b.state != BackendState::Inactive)
        .map(|(i, b)| (i, addr_key(&b.addr)))
        .collect();
    let members = |len: usize| {
        usable
            .iter()
            .filter(move |(_, (_, l))| *l == len)
            .map(move |(i, (key, _))| (*i, &key[..len]))
    };
    let v4 = Family::<1>::new(members(4));
    let v6 = Family::<3>::new(members(16));
    if v4.index.is_empty() && v6.index.is_empty() {
        return;
    }
    let scorer = Scorer {
        key: SipKey::new(seed),
        engine: LaneEngine::detect(),
        v4,
        v6,
    };
    // Rows are independent, so split them across cores; for small tables the
    // thread start-up is still far below a millisecond.
    let threads = std::thread::available_parallelism()
        .map(NonZeroUsize::get)
        .unwrap_or(1)
        .clamp(1, 16);
    let chunk = ROWS.div_ceil(threads);
    std::thread::scope(|scope| {
        for (n, part) in rows.chunks_mut(chunk).enumerate() {
            let (scorer, make) = (&scorer, &make);
            scope.spawn(move || {
                let first = n * chunk;
                let mut out4 = vec![[0u64; LANE_BLOCK]; scorer.v4.tails.len()];
                let mut out6 = vec![[0u64; LANE_BLOCK]; scorer.v6.tails.len()];
                for (offset, row) in part.iter_mut().enumerate() {
                    let (p, s) = scorer.best_two((first + offset) as u32, &mut out4, &mut out6);
                    let (p, s) = apply_swap_rule(backends, p, s);
                    *row = make(p as u32, s as u32);
                }
            });
        }
    });
}

/// Everything a row's ranking needs, shared by the threads.
struct Scorer {
    key: SipKey,
    engine: LaneEngine,
    v4: Family<1>,
    v6: Family<3>,
}

impl Scorer {
    /// The indexes of the row's two lowest scores (ties keep JSON order);
    /// the same index twice when there is one candidate. `out4` and `out6`
    /// are scratch space, a block per block of each family.
    fn best_two(
        &self,
        row: u32,
        out4: &mut [[u64; LANE_BLOCK]],
        out6: &mut [[u64; LANE_BLOCK]],
    ) -> (usize, usize) {
        // Every score message starts with the 8-byte row seed, exactly one
        // SipHash word: absorb it once, then finish all backends' messages
        // side by side in vector lanes.
        let row_seed = self
            .key
            .hash_short(ShortMsg::from_bytes(&row.to_be_bytes()));
        let prefix = self.key.prefix(row_seed);
        finish_lanes(self.engine, &prefix, &self.v4.tails, out4);
        finish_lanes(self.engine, &prefix, &self.v6.tails, out6);

        let mut best = (u64::MAX, usize::MAX);
        let mut second = (u64::MAX, usize::MAX);
        let scored = self
            .v4
            .index
            .iter()
            .zip(out4.as_flattened())
            .chain(self.v6.index.iter().zip(out6.as_flattened()));
        for (&index, &hash) in scored {
            // Scores compare as the hash's bytes read big-endian.
            let s = (hash.swap_bytes(), index);
            if s < best {
                second = best;
                best = s;
            } else if s < second {
                second = s;
            }
        }
        let secondary = if second.1 == usize::MAX {
            best.1
        } else {
            second.1
        };
        (best.1, secondary)
    }
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
