//! A deliberately plain rendezvous implementation, written straight from
//! SPEC §4 without sharing code with the crate: score every usable backend,
//! sort them all, take the first two, apply the swap rule. Tests and the
//! table benchmark compare the crate's generator against it.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

/// What the reference needs to know about a backend.
#[derive(Debug, Clone)]
pub struct RefBackend {
    pub addr: IpAddr,
    /// "active", "filling", "draining" or "inactive".
    pub state: &'static str,
    pub healthy: bool,
}

fn sip(key: &[u8; 16], msg: &[u8]) -> [u8; 8] {
    let mut h = SipHasher24::new_with_key(key);
    h.write(msg);
    h.finish().to_le_bytes()
}

/// All 65,536 rows as (primary, secondary) indexes into `backends`.
pub fn reference_rows(seed: &[u8; 16], backends: &[RefBackend]) -> Vec<(u32, u32)> {
    let mut rows = Vec::with_capacity(65536);
    for row in 0u32..65536 {
        let row_seed = sip(seed, &row.to_be_bytes());
        let mut ranked: Vec<([u8; 8], usize)> = backends
            .iter()
            .enumerate()
            .filter(|(_, b)| b.state != "inactive")
            .map(|(i, b)| {
                let mut msg = row_seed.to_vec();
                match b.addr {
                    IpAddr::V4(a) => msg.extend_from_slice(&a.octets()),
                    IpAddr::V6(a) => msg.extend_from_slice(&a.octets()),
                }
                (sip(seed, &msg), i)
            })
            .collect();
        ranked.sort();
        let mut primary = ranked[0].1;
        let mut secondary = ranked.get(1).map_or(primary, |r| r.1);
        let p = &backends[primary];
        if (p.state == "draining" || !p.healthy) && backends[secondary].state == "active" {
            std::mem::swap(&mut primary, &mut secondary);
        }
        rows.push((primary as u32, secondary as u32));
    }
    rows
}
