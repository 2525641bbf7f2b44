//! Fuzz-style properties of the packet path: random and mutated frames
//! never panic, and a forwarded frame is exactly the outer headers plus
//! the untouched inner packet — never longer than the input plus headers.

use glb_core::classify::{Classifier, LinearClassifier};
use glb_core::encap::{EncapParams, Encapsulator, MAX_EXTRA_HEADROOM, header_len};
use glb_core::flowhash::HashFields;
use glb_core::inspect::{Lookup, inspect, inspect_v4_transport};
use glb_core::model::{Bind, Proto};
use glb_core::path::{HEADROOM, OwnedFrame, Totals, Verdict, process_batch_with, process_one};
use glb_core::route::{Forwarder, RouteOptions};
use glb_core::table::TableFile;
use glb_core::wire::ethernet::Address;
use glb_testkit::checksum::csum;
use glb_testkit::frames::*;
use glb_testkit::table::*;
use proptest::prelude::*;

const KEY: &str = "000102030405060708090a0b0c0d0e0f";

/// [`catch_all`] with alternate fields, so routes have four hops.
fn catch_all_forwarder() -> Forwarder {
    Forwarder::new(
        &TableFile::parse(&catch_all()).unwrap(),
        RouteOptions {
            alt_hash_fields: Some(HashFields::parse_list("src_addr,src_port").unwrap()),
            ..RouteOptions::default()
        },
    )
}

fn params() -> EncapParams {
    EncapParams {
        dst_mac: Address(GW_MAC),
        src_mac: Address::ZERO,
        src_ip: v4("203.0.113.254"),
        udp_checksum: true,
    }
}

/// All four hash fields and no alternate set: the other shape of route.
fn all_fields() -> &'static Forwarder {
    use std::sync::OnceLock;
    static F: OnceLock<Forwarder> = OnceLock::new();
    F.get_or_init(|| {
        let json = tables_json(&[(
            KEY,
            r#"{"ip": "0.0.0.0/0", "proto": "tcp", "port_start": 0, "port_end": 65535},
               {"ip": "0.0.0.0/1", "proto": "udp", "port_start": 0, "port_end": 65535}"#,
            &["192.0.2.1", "192.0.2.2", "192.0.2.3"],
        )]);
        let bin = compile(&json);
        Forwarder::new(
            &TableFile::parse(&bin).unwrap(),
            RouteOptions {
                hash_fields: HashFields::parse_list("src_addr,dst_addr,src_port,dst_port").unwrap(),
                ..RouteOptions::default()
            },
        )
    })
}

/// The IPv4 TCP/UDP shortcut decides exactly as the general path, and
/// takes every such packet without IP options.
fn check_shortcut(fwd: &Forwarder, input: &[u8]) {
    for f in [fwd, all_fields()] {
        assert_eq!(f.route_frame(input), f.route(&inspect(input)));
    }
    let ins = inspect(input);
    match inspect_v4_transport(input) {
        Some(p) => {
            assert_eq!(
                ins.lookup,
                Lookup::Transport {
                    proto: p.proto,
                    dst: p.dst.into(),
                    dst_port: p.dst_port
                }
            );
            assert_eq!(ins.flow.src, std::net::IpAddr::from(p.src));
            assert_eq!(ins.flow.src_port, p.src_port);
            assert_eq!((ins.ip_offset, ins.ip_len), (14, usize::from(p.ip_len)));
            assert_eq!(ins.routable(), p.complete);
        }
        // The shortcut leaves headers with options to the general path.
        None => assert!(
            !matches!(
                ins.lookup,
                Lookup::Transport {
                    dst: std::net::IpAddr::V4(_),
                    ..
                }
            ) || input.get(14).is_some_and(|v| v & 0x0f != 5),
            "shortcut missed {:?}",
            ins.lookup
        ),
    }
}

/// Runs one frame through the path and checks the output's shape.
fn check(fwd: &Forwarder, input: &[u8]) {
    check_shortcut(fwd, input);
    let mut f = OwnedFrame::new(input, HEADROOM);
    let v = process_one(fwd, &Encapsulator::new(params()), &mut f);
    if let Verdict::Forward(r) = v {
        let out = f.frame();
        let hdr = header_len(r.hop_count);
        assert!(
            out.len() <= input.len() + MAX_EXTRA_HEADROOM,
            "output longer than input + headers"
        );
        assert_eq!(out.len(), hdr + r.ip_len);
        assert_eq!(
            &out[hdr..],
            &input[14..14 + r.ip_len],
            "inner packet changed"
        );
        assert_eq!(&out[..6], &GW_MAC);
        // The outer IPv4 header checksum is valid.
        assert_eq!(csum(&out[14..34]), 0);
    }
}

fn templates() -> Vec<Vec<u8>> {
    let mut ext = vec![6u8, 0, 0, 0, 0, 0, 0, 0];
    ext.extend_from_slice(&tcp(1000, 80, &[]));
    vec![
        tcp4("1.2.3.4", 1000, "10.1.1.1", 80),
        udp4("1.2.3.4", 1000, "10.1.1.1", 53),
        tcp6("2001:db8::1", 1000, "fd00::1", 443),
        frag_needed4("172.16.0.1", "10.1.1.7", 80, "1.2.3.4", 5555),
        too_big6("2001:db8::1", "fd42::443", 443, "2001:db8:1::20", 50022),
        echo4("1.2.3.4", "10.1.1.1", 0xbeef),
        echo6("2001:db8::1", "fd00::1", 0x12345),
        eth(0x86dd, &ipv6(v6("2001:db8::1"), v6("fd00::1"), 0, 0, &ext)),
    ]
}

#[test]
fn every_truncation_of_every_template() {
    let fwd = catch_all_forwarder();
    for t in templates() {
        for n in 0..=t.len() {
            check(&fwd, &t[..n]);
        }
    }
}

#[test]
fn icmp_errors_quoting_truncated_packets() {
    let fwd = catch_all_forwarder();
    for t in [
        frag_needed4("172.16.0.1", "10.1.1.7", 80, "1.2.3.4", 5555),
        too_big6("2001:db8::1", "fd42::443", 443, "2001:db8:1::20", 50022),
    ] {
        let v6 = t[12] == 0x86;
        for keep in 14..t.len() {
            // Shorten the quote but keep the outer length fields honest.
            let mut b = t[..keep].to_vec();
            if v6 && keep >= 54 {
                b[18..20].copy_from_slice(&((keep - 54) as u16).to_be_bytes());
            } else if !v6 && keep >= 34 {
                b[16..18].copy_from_slice(&((keep - 14) as u16).to_be_bytes());
            }
            check(&fwd, &b);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        check(catch_all_cached(), &bytes);
    }

    #[test]
    fn random_ethertypes_and_ip_versions(
        t in 0usize..8, ethertype in any::<u16>(), ver_ihl in any::<u8>()
    ) {
        let mut b = templates()[t].clone();
        b[12..14].copy_from_slice(&ethertype.to_be_bytes());
        check(catch_all_cached(), &b);
        let mut b = templates()[t].clone();
        b[14] = ver_ihl;
        check(catch_all_cached(), &b);
    }

    #[test]
    fn bad_lengths(t in 0usize..8, total in any::<u16>(), extra in 0usize..40) {
        let mut b = templates()[t].clone();
        // IPv4 total length or IPv6 payload length, beyond or short of the buffer.
        let at = if b[12] == 0x86 { 18 } else { 16 };
        b[at..at + 2].copy_from_slice(&total.to_be_bytes());
        b.extend(std::iter::repeat_n(0xa5, extra));
        check(catch_all_cached(), &b);
    }

    #[test]
    fn mutated_templates(
        t in 0usize..8,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut b = templates()[t].clone();
        for (at, v) in edits {
            let i = at % b.len();
            b[i] = v;
        }
        let n = cut % (b.len() + 1);
        check(catch_all_cached(), &b[..n]);
    }
}

/// A frame of a batch: IPv4 TCP or UDP to one of a few destinations and
/// ports (so consecutive frames often, but not always, classify alike),
/// or now and then a template or a cut-off frame.
fn batch_frame() -> impl Strategy<Value = Vec<u8>> {
    let dst = prop_oneof![
        Just("10.1.1.1"),
        Just("10.1.1.2"),
        Just("10.1.2.1"),
        Just("192.0.2.9")
    ];
    let port = prop_oneof![Just(80u16), Just(53), Just(8080)];
    prop_oneof![
        6 => (any::<bool>(), dst, port, any::<u16>()).prop_map(|(tcp, dst, dport, sport)| {
            if tcp {
                tcp4("1.2.3.4", sport, dst, dport)
            } else {
                udp4("1.2.3.4", sport, dst, dport)
            }
        }),
        1 => (0usize..8).prop_map(|t| templates()[t].clone()),
        1 => (0usize..8, 0usize..70).prop_map(|(t, n)| {
            let t = templates()[t].clone();
            t[..n.min(t.len())].to_vec()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// A batch gives each frame the verdict and bytes it gets on its own:
    /// whatever a batch carries over from frame to frame (the last
    /// classification) never leaks into the next frame's answer.
    #[test]
    fn batches_agree_with_single_frames(
        frames in proptest::collection::vec(batch_frame(), 1..80),
    ) {
        for fwd in [catch_all_cached(), all_fields(), two_keys()] {
            let enc = Encapsulator::new(params());
            let mut batch: Vec<OwnedFrame> =
                frames.iter().map(|f| OwnedFrame::new(f, HEADROOM)).collect();
            let mut verdicts = Vec::new();
            let counters = Totals::default();
            process_batch_with(fwd, &enc, &mut batch, &mut verdicts, &counters);
            prop_assert_eq!(verdicts.len(), frames.len());
            for ((input, out), v) in frames.iter().zip(&batch).zip(&verdicts) {
                let mut alone = OwnedFrame::new(input, HEADROOM);
                prop_assert_eq!(&process_one(fwd, &enc, &mut alone), v);
                prop_assert_eq!(alone.frame(), out.frame());
            }
        }
    }
}

/// Two tables under different hash keys, sharing the fuzzed traffic
/// between them: a batch hashes frames of both side by side, each under
/// its own table's key.
fn two_keys() -> &'static Forwarder {
    use std::sync::OnceLock;
    static F: OnceLock<Forwarder> = OnceLock::new();
    F.get_or_init(|| {
        let json = tables_json(&[
            (
                KEY,
                r#"{"ip": "10.1.1.0/24", "proto": "tcp", "port": 80},
                   {"ip": "10.1.1.2", "proto": "udp", "port_start": 0, "port_end": 65535}"#,
                &["192.0.2.1", "192.0.2.2", "192.0.2.3"],
            ),
            (
                "f0e0d0c0b0a090807060504030201000",
                r#"{"ip": "0.0.0.0/0", "proto": "tcp", "port_start": 0, "port_end": 65535},
                   {"ip": "0.0.0.0/0", "proto": "udp", "port_start": 0, "port_end": 65535}"#,
                &["192.0.2.4", "192.0.2.5", "192.0.2.6", "192.0.2.7"],
            ),
        ]);
        let bin = compile(&json);
        Forwarder::new(&TableFile::parse(&bin).unwrap(), RouteOptions::default())
    })
}

fn catch_all_cached() -> &'static Forwarder {
    use std::sync::OnceLock;
    static F: OnceLock<Forwarder> = OnceLock::new();
    F.get_or_init(catch_all_forwarder)
}

// ---- indexed classifier == literal first-match scan ----------------------

fn arb_bind() -> impl Strategy<Value = Bind> {
    // A small address pool so binds overlap and shadow each other.
    let v4 = (
        0u8..4,
        0u8..4,
        prop_oneof![Just(32u8), Just(24), Just(16), Just(30), Just(0)],
    )
        .prop_map(|(a, b, len)| (std::net::IpAddr::from([10, 0, a, b]), len));
    let v6 = (
        0u16..3,
        0u16..3,
        prop_oneof![Just(128u8), Just(64), Just(112), Just(0)],
    )
        .prop_map(|(a, b, len)| (std::net::IpAddr::from([0xfd00, 0, 0, 0, 0, 0, a, b]), len));
    (prop_oneof![v4, v6], any::<bool>(), 0u16..6, 0u16..4).prop_map(
        |((addr, prefix_len), tcp, start, span)| Bind {
            addr,
            prefix_len,
            proto: if tcp { Proto::Tcp } else { Proto::Udp },
            port_start: start,
            port_end: start + span,
        },
    )
}

fn arb_addr() -> impl Strategy<Value = std::net::IpAddr> {
    prop_oneof![
        (0u8..5, 0u8..5).prop_map(|(a, b)| std::net::IpAddr::from([10, 0, a, b])),
        (0u16..4, 0u16..4).prop_map(|(a, b)| std::net::IpAddr::from([0xfd00, 0, 0, 0, 0, 0, a, b])),
    ]
}

fn arb_lookup() -> impl Strategy<Value = Lookup> {
    prop_oneof![
        (prop_oneof![Just(6u8), Just(17)], arb_addr(), 0u16..10).prop_map(
            |(proto, dst, dst_port)| Lookup::Transport {
                proto,
                dst,
                dst_port
            }
        ),
        (arb_addr(), arb_addr(), 0u16..10).prop_map(|(outer_dst, quoted_src, quoted_src_port)| {
            Lookup::IcmpError {
                outer_dst,
                quoted_src,
                quoted_src_port,
            }
        }),
        arb_addr().prop_map(|dst| Lookup::Echo { dst }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn classifier_equals_first_match_scan(
        tables in proptest::collection::vec(proptest::collection::vec(arb_bind(), 0..8), 1..5),
        lookups in proptest::collection::vec(arb_lookup(), 1..40),
        echo in any::<bool>(),
    ) {
        let fast = Classifier::new(tables.iter(), echo);
        let slow = LinearClassifier::new(tables.iter(), echo);
        for l in &lookups {
            prop_assert_eq!(fast.classify(l), slow.classify(l), "{:?}", l);
        }
    }
}

/// Inspection agrees with hand-built frames on what to classify on.
#[test]
fn inspection_of_templates() {
    let t = templates();
    assert_eq!(
        inspect(&t[0]).lookup,
        Lookup::Transport {
            proto: 6,
            dst: ip("10.1.1.1"),
            dst_port: 80
        }
    );
    assert_eq!(
        inspect(&t[3]).lookup,
        Lookup::IcmpError {
            outer_dst: ip("10.1.1.7"),
            quoted_src: ip("10.1.1.7"),
            quoted_src_port: 80
        }
    );
    assert_eq!(
        inspect(&t[5]).lookup,
        Lookup::Echo {
            dst: ip("10.1.1.1")
        }
    );
    assert_eq!(inspect(&t[7]).lookup, Lookup::None);
}
