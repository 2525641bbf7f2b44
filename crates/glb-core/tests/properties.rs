//! Property tests for table generation and the binary format.

mod reference;

use std::net::IpAddr;

use glb_core::Key16;
use glb_core::model::{
    Backend, BackendState, Bind, ForwardingTables, HealthCheckSettings, Proto, Table,
};
use glb_core::table::{self, TableFile};
use proptest::prelude::*;
use reference::{RefBackend, reference_rows};

fn state_name(s: BackendState) -> &'static str {
    match s {
        BackendState::Active => "active",
        BackendState::Filling => "filling",
        BackendState::Draining => "draining",
        BackendState::Inactive => "inactive",
    }
}

fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        3 => any::<[u8; 4]>().prop_map(IpAddr::from),
        1 => any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

fn backend() -> impl Strategy<Value = Backend> {
    let state = prop_oneof![
        4 => Just(BackendState::Active),
        1 => Just(BackendState::Filling),
        1 => Just(BackendState::Draining),
        1 => Just(BackendState::Inactive),
    ];
    (addr(), state, prop::option::of(any::<bool>())).prop_map(|(addr, state, healthy)| Backend {
        addr,
        state,
        healthy,
        healthchecks: Default::default(),
    })
}

fn bind() -> impl Strategy<Value = Bind> {
    (
        addr(),
        any::<u8>(),
        any::<bool>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(addr, len, tcp, a, b)| Bind {
            addr,
            prefix_len: len % if addr.is_ipv4() { 33 } else { 129 },
            proto: if tcp { Proto::Tcp } else { Proto::Udp },
            port_start: a.min(b),
            port_end: a.max(b),
        })
}

fn table_strategy(max_backends: usize) -> impl Strategy<Value = Table> {
    (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        prop::collection::vec(bind(), 1..=8),
        prop::collection::vec(backend(), 1..=max_backends),
    )
        .prop_map(|(key, seed, binds, mut backends)| {
            // A valid table has at least one usable backend.
            if backends.iter().all(|b| b.state == BackendState::Inactive) {
                backends[0].state = BackendState::Active;
            }
            Table {
                name: None,
                hash_key: Key16::new(key),
                seed: Key16::new(seed),
                binds,
                backends,
            }
        })
}

fn one(t: Table) -> ForwardingTables {
    ForwardingTables {
        tables: vec![t],
        healthchecks: HealthCheckSettings::default(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn fast_generator_equals_full_sort_reference(t in table_strategy(256)) {
        let refs: Vec<RefBackend> = t
            .backends
            .iter()
            .map(|b| RefBackend { addr: b.addr, state: state_name(b.state), healthy: b.is_healthy() })
            .collect();
        let want = reference_rows(t.seed.expose(), &refs);
        let rec = table::compile_table(&t);
        for (i, (r, w)) in rec.rows.iter().zip(&want).enumerate() {
            prop_assert_eq!((r.primary.get(), r.secondary.get()), *w, "row {}", i);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn reader_round_trips_the_writer(t in table_strategy(24)) {
        let ft = one(t.clone());
        let bytes = table::compile(&ft);
        let f = TableFile::parse(&bytes).expect("writer output parses");
        prop_assert_eq!(f.tables().len(), 1);
        let rec = &f.tables()[0];
        prop_assert_eq!(&rec.hash_key, t.hash_key.expose());
        prop_assert_eq!(rec.backends().len(), t.backends.len());
        for (r, b) in rec.backends().iter().zip(&t.backends) {
            prop_assert_eq!(table::backend_addr(r), Some(b.addr));
            prop_assert_eq!(r.health.get() == 1, b.is_healthy());
        }
        prop_assert_eq!(rec.binds().len(), t.binds.len());
        for (r, b) in rec.binds().iter().zip(&t.binds) {
            prop_assert_eq!(table::bind_from_record(r), Ok(*b));
        }
    }

    #[test]
    fn reader_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = TableFile::parse(&bytes);
    }

    #[test]
    fn reader_never_panics_on_damaged_tables(
        t in table_strategy(8),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let bytes = table::compile(&one(t));
        let truncated = &bytes[..cut.index(bytes.len())];
        prop_assert!(TableFile::parse(truncated).is_err());
        let mut damaged = bytes.clone();
        for (at, value) in flips {
            let i = at.index(damaged.len());
            damaged[i] = value;
        }
        let _ = TableFile::parse(&damaged);
    }
}
