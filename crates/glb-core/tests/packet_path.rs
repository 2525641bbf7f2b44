//! The packet path's rules, one test per rule: classification (SPEC §6),
//! flow hashing and hop choice (SPEC §7), and encapsulation (SPEC §8).
//! Expected values come from the SPEC, from hand-assembled bytes, or from
//! the independent SipHash and checksum in `common`.

use std::net::Ipv4Addr;

use glb_core::batch::BatchScratch;
use glb_core::encap::{EncapParams, Encapsulator};
use glb_core::flowhash::HashFields;
use glb_core::path::{
    HEADROOM, OwnedFrame, Totals, Verdict, process_batch, process_batch_each, process_one,
};
use glb_core::route::{Decision, Forwarder, RouteOptions};
use glb_core::table::TableFile;
use glb_core::wire::ethernet::Address;
use glb_testkit::checksum::csum;
use glb_testkit::frames::*;
use glb_testkit::siphash::{hex16, siphash};
use glb_testkit::table::*;

const KEY: &str = "000102030405060708090a0b0c0d0e0f";

fn forwarder(bin: &[u8], options: RouteOptions) -> Forwarder {
    Forwarder::new(&TableFile::parse(bin).unwrap(), options)
}

/// The compiled file of one table with [`KEY`], `binds` (as JSON) and
/// `backends`.
fn one_table(binds: &str, backends: &[&str]) -> Vec<u8> {
    compile(&tables_json(&[(KEY, binds, backends)]))
}

fn fwd_for(tables: &[(&str, &str, &[&str])]) -> Forwarder {
    forwarder(&compile(&tables_json(tables)), RouteOptions::default())
}

/// One table per entry of `binds` (a table's binds as JSON), all with
/// [`KEY`] and the backends [`B1`].
fn fwd_for_binds(binds: &[&str]) -> Forwarder {
    let tables: Vec<_> = binds.iter().map(|b| (KEY, *b, B1)).collect();
    fwd_for(&tables)
}

fn table_of(f: &Forwarder, frame: &[u8]) -> Option<usize> {
    match f.route_frame(frame) {
        Decision::Unclassified => None,
        Decision::RouteFailed { table } => Some(table),
        Decision::Forward(r) => Some(r.table),
    }
}

/// [`table_of`] a TCP packet from 1.2.3.4:1000 to `dst`:`port`.
fn tcp_table(f: &Forwarder, dst: &str, port: u16) -> Option<usize> {
    table_of(f, &tcp4("1.2.3.4", 1000, dst, port))
}

/// [`table_of`] a UDP packet from 1.2.3.4:1000 to `dst`:`port`.
fn udp_table(f: &Forwarder, dst: &str, port: u16) -> Option<usize> {
    table_of(f, &udp4("1.2.3.4", 1000, dst, port))
}

/// [`table_of`] a TCP packet from [2001:db8::1]:1000 to `dst`:`port`.
fn tcp6_table(f: &Forwarder, dst: &str, port: u16) -> Option<usize> {
    table_of(f, &tcp6("2001:db8::1", 1000, dst, port))
}

const B1: &[&str] = &["192.0.2.1", "192.0.2.2"];

// ---- classification -------------------------------------------------------

#[test]
fn tcp_matches_address_protocol_and_port() {
    let f = fwd_for_binds(&[r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}"#]);
    assert_eq!(tcp_table(&f, "10.1.1.1", 80), Some(0));
    assert_eq!(tcp_table(&f, "10.1.1.1", 81), None);
    assert_eq!(tcp_table(&f, "10.1.1.2", 80), None);
    // Same address and port over UDP is another service.
    assert_eq!(udp_table(&f, "10.1.1.1", 80), None);
}

#[test]
fn port_range_is_inclusive() {
    let f = fwd_for_binds(&[
        r#"{"ip": "10.1.1.1", "proto": "udp", "port_start": 5000, "port_end": 5010}"#,
    ]);
    for (port, want) in [
        (4999, None),
        (5000, Some(0)),
        (5005, Some(0)),
        (5010, Some(0)),
        (5011, None),
    ] {
        assert_eq!(udp_table(&f, "10.1.1.1", port), want, "port {port}");
    }
}

#[test]
fn prefix_contains_destination() {
    let f = fwd_for_binds(&[r#"{"ip": "198.18.20.16/28", "proto": "tcp", "port": 443}"#]);
    for (dst, want) in [
        ("198.18.20.15", None),
        ("198.18.20.16", Some(0)),
        ("198.18.20.31", Some(0)),
        ("198.18.20.32", None),
    ] {
        assert_eq!(
            table_of(&f, &tcp4("1.2.3.4", 1000, dst, 443)),
            want,
            "{dst}"
        );
    }
    // Host bits in the bind are ignored, as the table keeps them as written.
    let f = fwd_for_binds(&[r#"{"ip": "10.9.9.9/8", "proto": "tcp", "port": 1}"#]);
    assert_eq!(tcp_table(&f, "10.200.0.1", 1), Some(0));
    let f = fwd_for_binds(&[r#"{"ip": "0.0.0.0/0", "proto": "tcp", "port": 1}"#]);
    assert_eq!(tcp_table(&f, "203.0.113.7", 1), Some(0));
}

#[test]
fn ipv6_binds() {
    let f = fwd_for_binds(&[
        r#"{"ip": "fd42:42:42::443", "proto": "tcp", "port": 443}, {"ip": "fd00:1::/32", "proto": "tcp", "port": 80}"#,
    ]);
    assert_eq!(tcp6_table(&f, "fd42:42:42::443", 443), Some(0));
    assert_eq!(tcp6_table(&f, "fd42:42:42::444", 443), None);
    assert_eq!(tcp6_table(&f, "fd00:1:ffff::1", 80), Some(0));
    assert_eq!(tcp6_table(&f, "fd00:2::1", 80), None);
    // An IPv4 packet never matches an IPv6 bind.
    assert_eq!(tcp_table(&f, "0.0.4.67", 443), None);
}

#[test]
fn first_match_wins_in_file_order() {
    // A prefix in an earlier table beats an exact address in a later one.
    let f = fwd_for_binds(&[
        r#"{"ip": "10.0.0.0/8", "proto": "tcp", "port": 80}"#,
        r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}"#,
    ]);
    assert_eq!(tcp_table(&f, "10.1.1.1", 80), Some(0));
    // ... and an exact address in an earlier table beats a later prefix.
    let f = fwd_for_binds(&[
        r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}"#,
        r#"{"ip": "10.0.0.0/8", "proto": "tcp", "port": 80}"#,
    ]);
    assert_eq!(tcp_table(&f, "10.1.1.1", 80), Some(0));
    assert_eq!(tcp_table(&f, "10.1.1.2", 80), Some(1));
    // An earlier bind that does not match the port does not shadow a later one.
    let f = fwd_for_binds(&[
        r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 443}"#,
        r#"{"ip": "10.1.0.0/16", "proto": "tcp", "port_start": 1, "port_end": 100}"#,
        r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}, {"ip": "10.0.0.0/8", "proto": "tcp", "port": 200}"#,
    ]);
    assert_eq!(tcp_table(&f, "10.1.1.1", 443), Some(0));
    assert_eq!(tcp_table(&f, "10.1.1.1", 80), Some(1));
    assert_eq!(tcp_table(&f, "10.1.1.1", 200), Some(2));
    assert_eq!(tcp_table(&f, "10.1.1.1", 300), None);
    // Shorter and longer prefixes interleaved across tables.
    let f = fwd_for_binds(&[
        r#"{"ip": "10.1.2.0/24", "proto": "udp", "port": 53}"#,
        r#"{"ip": "10.1.0.0/16", "proto": "udp", "port": 53}"#,
        r#"{"ip": "10.1.2.3", "proto": "udp", "port": 53}"#,
    ]);
    assert_eq!(udp_table(&f, "10.1.2.3", 53), Some(0));
    assert_eq!(udp_table(&f, "10.1.3.3", 53), Some(1));
}

#[test]
fn icmp_frag_needed_matches_by_quoted_source() {
    let f = fwd_for_binds(&[
        r#"{"ip": "10.9.9.9", "proto": "udp", "port": 443}"#,
        r#"{"ip": "10.1.1.0/24", "proto": "tcp", "port_start": 440, "port_end": 450}"#,
    ]);
    // An error about a packet from 10.1.1.7:`port` to 1.2.3.4:5555.
    let quoting = |port| frag_needed4("172.16.0.1", "10.1.1.7", port, "1.2.3.4", 5555);
    assert_eq!(table_of(&f, &quoting(443)), Some(1));
    // The quoted source port must be in the bind's range.
    assert_eq!(table_of(&f, &quoting(80)), None);
    // The quoted source must be inside the bind ...
    let mut frame = quoting(443);
    let quoted_src = 14 + 20 + 8 + 12;
    frame[quoted_src..quoted_src + 4].copy_from_slice(&[10, 1, 2, 7]);
    assert_eq!(table_of(&f, &frame), None);
    // ... and so must the outer destination.
    let mut frame = quoting(443);
    frame[14 + 16..14 + 20].copy_from_slice(&[10, 1, 2, 7]);
    assert_eq!(table_of(&f, &frame), None);
    // Only code 4 (fragmentation needed); port unreachable is not ours.
    let mut frame = quoting(443);
    frame[14 + 21] = 3;
    assert_eq!(table_of(&f, &frame), None);
    // A quote cut inside the ports: the source port is enough to match, but
    // the route needs both, so the packet is a route failure; cut before
    // the source port ends, it matches nothing. (Total lengths kept honest.)
    let frame = quoting(443);
    let cut = |n: usize| {
        let mut b = frame[..frame.len() - n].to_vec();
        b[14 + 3] -= n as u8;
        b
    };
    assert_eq!(f.route_frame(&cut(5)), Decision::RouteFailed { table: 1 }); // 3 port bytes
    assert_eq!(f.route_frame(&cut(6)), Decision::RouteFailed { table: 1 }); // 2 port bytes
    assert_eq!(f.route_frame(&cut(7)), Decision::Unclassified);
    assert!(matches!(f.route_frame(&cut(4)), Decision::Forward(_)));
}

#[test]
fn icmpv6_packet_too_big_matches_by_quoted_source() {
    let f = fwd_for_binds(&[r#"{"ip": "fd42::/64", "proto": "tcp", "port": 443}"#]);
    let quoting = |port| too_big6("2001:db8::1", "fd42::443", port, "2001:db8:1::20", 50022);
    assert_eq!(table_of(&f, &quoting(443)), Some(0));
    assert_eq!(table_of(&f, &quoting(80)), None);
    // Quote cut after the source port: matched, but no route.
    let frame = quoting(443);
    let mut cut = frame[..frame.len() - 6].to_vec();
    cut[14 + 5] -= 6;
    assert_eq!(f.route_frame(&cut), Decision::RouteFailed { table: 0 });
}

#[test]
fn echo_requests_follow_forward_icmp_ping_responses() {
    let json = tables_json(&[
        (KEY, r#"{"ip": "10.1.1.1", "proto": "udp", "port": 53}"#, B1),
        (KEY, r#"{"ip": "fd42::1", "proto": "tcp", "port": 443}"#, B1),
    ]);
    let bin = compile(&json);
    let on = forwarder(&bin, RouteOptions::default());
    let off = forwarder(
        &bin,
        RouteOptions {
            forward_icmp_echo: false,
            ..RouteOptions::default()
        },
    );
    // Any bind's address answers pings, whatever its protocol or port.
    assert_eq!(table_of(&on, &echo4("1.2.3.4", "10.1.1.1", 7)), Some(0));
    assert_eq!(table_of(&on, &echo6("2001:db8::1", "fd42::1", 7)), Some(1));
    assert_eq!(table_of(&on, &echo4("1.2.3.4", "10.1.1.2", 7)), None);
    assert_eq!(table_of(&off, &echo4("1.2.3.4", "10.1.1.1", 7)), None);
    assert_eq!(table_of(&off, &echo6("2001:db8::1", "fd42::1", 7)), None);
    // An echo request whose ICMP header is cut short is matched, but has
    // no route.
    for (frame, ip_len_at) in [
        (echo4("1.2.3.4", "10.1.1.1", 7), 16),
        (echo6("2001:db8::1", "fd42::1", 7), 18),
    ] {
        let l4 = if ip_len_at == 16 { 34 } else { 54 };
        let mut b = frame[..l4 + 4].to_vec();
        let len = u16::from_be_bytes([b[ip_len_at], b[ip_len_at + 1]]);
        let cut = (frame.len() - b.len()) as u16;
        b[ip_len_at..ip_len_at + 2].copy_from_slice(&(len - cut).to_be_bytes());
        assert!(
            matches!(on.route_frame(&b), Decision::RouteFailed { .. }),
            "{b:02x?}"
        );
    }
    // Echo replies and other ICMP are not forwarded.
    let mut reply = echo4("1.2.3.4", "10.1.1.1", 7);
    reply[14 + 20] = 0;
    assert_eq!(table_of(&on, &reply), None);
}

#[test]
fn malformed_and_foreign_frames_are_unclassified() {
    let f = fwd_for_binds(&[
        r#"{"ip": "0.0.0.0/0", "proto": "tcp", "port_start": 0, "port_end": 65535}"#,
        r#"{"ip": "::/0", "proto": "tcp", "port_start": 0, "port_end": 65535}"#,
    ]);
    let good = tcp4("1.2.3.4", 1000, "10.1.1.1", 80);
    assert_eq!(table_of(&f, &good), Some(0));
    // ARP and other ethertypes.
    let mut arp = good.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(table_of(&f, &arp), None);
    // VLAN-tagged frames are not looked into.
    let mut vlan = good.clone();
    vlan[12..14].copy_from_slice(&[0x81, 0x00]);
    assert_eq!(table_of(&f, &vlan), None);
    // IHL below 5, wrong version.
    let mut b = good.clone();
    b[14] = 0x44;
    assert_eq!(table_of(&f, &b), None);
    let mut b = good.clone();
    b[14] = 0x65;
    assert_eq!(table_of(&f, &b), None);
    // Frames shorter than the headers.
    for n in 0..14 + 20 + 4 {
        assert_eq!(table_of(&f, &good[..n]), None, "cut at {n}");
    }
    // A total length that ends before the ports.
    let mut b = good.clone();
    b[16..18].copy_from_slice(&22u16.to_be_bytes());
    assert_eq!(table_of(&f, &b), None);
    // A later fragment has no ports to classify on.
    let mut b = good.clone();
    b[20..22].copy_from_slice(&0x0010u16.to_be_bytes());
    assert_eq!(table_of(&f, &b), None);
    // IPv6 with an extension header before TCP (hop-by-hop).
    let mut ext = vec![6u8, 0, 0, 0, 0, 0, 0, 0];
    ext.extend_from_slice(&tcp(1000, 80, &[]));
    let b = eth(0x86dd, &ipv6(v6("2001:db8::1"), v6("fd00::1"), 0, 0, &ext));
    assert_eq!(table_of(&f, &b), None);
    assert_eq!(tcp6_table(&f, "fd00::1", 80), Some(1));
}

#[test]
fn truncated_packet_is_a_route_failure() {
    let f = fwd_for_binds(&[r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}"#]);
    let good = tcp4("1.2.3.4", 1000, "10.1.1.1", 80);
    // Cut inside the TCP header: the ports are there, the packet is not.
    for n in 14 + 20 + 4..good.len() {
        assert_eq!(
            f.route_frame(&good[..n]),
            Decision::RouteFailed { table: 0 },
            "cut at {n}"
        );
    }
    // Total length beyond the frame.
    let mut b = good.clone();
    b[16..18].copy_from_slice(&1500u16.to_be_bytes());
    assert_eq!(f.route_frame(&b), Decision::RouteFailed { table: 0 });
}

#[test]
fn ipv6_backend_is_a_route_failure() {
    let f = fwd_for(&[(
        KEY,
        r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}"#,
        &["fd00::1"],
    )]);
    assert_eq!(
        f.route_frame(&tcp4("1.2.3.4", 1000, "10.1.1.1", 80)),
        Decision::RouteFailed { table: 0 }
    );
}

// ---- hashing and hops -----------------------------------------------------

fn route_of(f: &Forwarder, frame: &[u8]) -> glb_core::route::Route {
    match f.route_frame(frame) {
        Decision::Forward(r) => r,
        other => panic!("expected a route, got {other:?}"),
    }
}

/// The conformance capture's flow 10.11.12.13:45678 → 1.1.1.1:80 hashes to
/// 0x008972f1657a5cbd (from the reference director's log), with the
/// default fields (source address only).
#[test]
fn default_hash_is_the_source_address() {
    let bin = std::fs::read(glb_testkit::conformance::require("pcap/1k_pkts/table.bin"))
        .expect("conformance table 1k_pkts/table.bin must exist");
    let f = forwarder(&bin, RouteOptions::default());
    let r = route_of(&f, &tcp4("10.11.12.13", 45678, "1.1.1.1", 80));
    assert_eq!(r.hash, 0x008972f1657a5cbd);
    let key = hex16("12345678901234561234567890123456");
    assert_eq!(siphash(&key, &[10, 11, 12, 13]), 0x008972f1657a5cbd);
    assert_eq!(r.flow_hint, 45678);
    assert_eq!(r.udp_src_port(), 61139);
    assert_eq!(r.hops(), [v4("3.4.5.6"), v4("2.3.4.5")]);
}

#[test]
fn independent_siphash_matches_the_paper() {
    let mut key = [0u8; 16];
    for (i, b) in key.iter_mut().enumerate() {
        *b = i as u8;
    }
    let msg: Vec<u8> = (0u8..15).collect();
    assert_eq!(
        siphash(&key, &msg).to_le_bytes(),
        [0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1]
    );
}

fn all_field_sets() -> Vec<HashFields> {
    (1u8..16)
        .map(|m| HashFields {
            src_addr: m & 1 != 0,
            dst_addr: m & 2 != 0,
            src_port: m & 4 != 0,
            dst_port: m & 8 != 0,
        })
        .collect()
}

fn message(fields: &HashFields, src: &[u8], dst: &[u8], sport: u16, dport: u16) -> Vec<u8> {
    let mut m = Vec::new();
    if fields.src_addr {
        m.extend_from_slice(src);
    }
    if fields.dst_addr {
        m.extend_from_slice(dst);
    }
    if fields.src_port {
        m.extend_from_slice(&sport.to_be_bytes());
    }
    if fields.dst_port {
        m.extend_from_slice(&dport.to_be_bytes());
    }
    m
}

/// The independent flow hash of `src`:`sport` → `dst`:`dport` by `fields`.
fn flow_hash(key: &[u8; 16], fields: &HashFields, flow: (&str, &str, u16, u16)) -> u64 {
    let octets = |a: &str| match ip(a) {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    let (src, dst, sport, dport) = flow;
    siphash(
        key,
        &message(fields, &octets(src), &octets(dst), sport, dport),
    )
}

/// Routes `frame`, checking that its hash is the independent one of
/// `flow` (source, destination, source port, destination port) by
/// `fields`.
fn hashed(
    f: &Forwarder,
    frame: &[u8],
    fields: &HashFields,
    flow: (&str, &str, u16, u16),
) -> glb_core::route::Route {
    let r = route_of(f, frame);
    let want = flow_hash(&hex16(KEY), fields, flow);
    assert_eq!(r.hash, want, "{fields} {flow:?}");
    r
}

/// A forwarder of `bin` hashing `fields`.
fn hashing(bin: &[u8], fields: HashFields) -> Forwarder {
    forwarder(
        bin,
        RouteOptions {
            hash_fields: fields,
            ..RouteOptions::default()
        },
    )
}

#[test]
fn hash_fields_are_concatenated_in_fixed_order() {
    let bin = one_table(
        r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}, {"ip": "fd00::1", "proto": "udp", "port": 53}"#,
        &["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"],
    );
    for fields in all_field_sets() {
        let f = hashing(&bin, fields);
        let frame = tcp4("172.16.5.6", 0x1234, "10.1.1.1", 80);
        let r = hashed(&f, &frame, &fields, ("172.16.5.6", "10.1.1.1", 0x1234, 80));
        // The hops are the row's primary and secondary.
        let (p, s) = bin_row(&bin, 0, (r.hash & 0xffff) as usize);
        assert_eq!(
            r.hops(),
            [
                bin_backend_v4(&bin, 0, p as usize),
                bin_backend_v4(&bin, 0, s as usize)
            ]
        );

        let frame = eth(
            0x86dd,
            &ipv6(v6("2001:db8::9"), v6("fd00::1"), 17, 0, &udp(999, 53, b"q")),
        );
        let r = hashed(&f, &frame, &fields, ("2001:db8::9", "fd00::1", 999, 53));
        assert_eq!(r.flow_hint, 999);
        assert_eq!(r.gue_proto, 41);
    }
}

#[test]
fn icmp_errors_hash_the_reversed_quoted_flow() {
    let bin = one_table(
        r#"{"ip": "10.1.1.7", "proto": "tcp", "port": 443}, {"ip": "fd42::443", "proto": "tcp", "port": 443}"#,
        &["192.0.2.1", "192.0.2.2", "192.0.2.3"],
    );
    for fields in all_field_sets() {
        let f = hashing(&bin, fields);
        // The error quotes 10.1.1.7:443 → 1.2.3.4:5555; the flow it
        // belongs to is 1.2.3.4:5555 → 10.1.1.7:443.
        let frame = frag_needed4("172.16.0.1", "10.1.1.7", 443, "1.2.3.4", 5555);
        let r = hashed(&f, &frame, &fields, ("1.2.3.4", "10.1.1.7", 5555, 443));
        assert_eq!(r.flow_hint, 5555);
        let client = route_of(&f, &tcp4("1.2.3.4", 5555, "10.1.1.7", 443));
        assert_eq!((client.hash, client.hops()), (r.hash, r.hops()));

        let frame = too_big6("2001:db8::1", "fd42::443", 443, "2001:db8:1::20", 50022);
        let r = hashed(
            &f,
            &frame,
            &fields,
            ("2001:db8:1::20", "fd42::443", 50022, 443),
        );
        assert_eq!(r.flow_hint, 50022);
    }
}

#[test]
fn echo_requests_hash_outer_addresses_with_zero_ports() {
    let bin = one_table(
        r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}, {"ip": "fd42::1", "proto": "tcp", "port": 80}"#,
        B1,
    );
    let fields = HashFields::parse_list("src_addr,dst_addr,src_port,dst_port").unwrap();
    let f = hashing(&bin, fields);
    let frame = echo4("172.20.30.40", "10.1.1.1", 0xbeef);
    let r = hashed(&f, &frame, &fields, ("172.20.30.40", "10.1.1.1", 0, 0));
    assert_eq!(r.flow_hint, 0xbeef);
    assert_eq!(
        r.udp_src_port(),
        0x8000 | ((r.hash as u16 ^ 0xbeef) & 0x7fff)
    );
    let frame = echo6("2001:db8::5", "fd42::1", 0x5a5a5);
    let r = hashed(&f, &frame, &fields, ("2001:db8::5", "fd42::1", 0, 0));
    // The low 16 bits of the 20-bit flow label.
    assert_eq!(r.flow_hint, 0xa5a5);
}

#[test]
fn alt_hash_fields_add_hops_three_and_four() {
    let bin = one_table(
        r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}"#,
        &[
            "192.0.2.1",
            "192.0.2.2",
            "192.0.2.3",
            "192.0.2.4",
            "192.0.2.5",
        ],
    );
    let key = hex16(KEY);
    let alt = HashFields::parse_list("src_addr,src_port").unwrap();
    let f = forwarder(
        &bin,
        RouteOptions {
            alt_hash_fields: Some(alt),
            ..RouteOptions::default()
        },
    );
    for (i, sport) in (1000u16..1040).enumerate() {
        let src = format!("172.16.{}.{}", i / 7, i % 251);
        let r = route_of(&f, &tcp4(&src, sport, "10.1.1.1", 80));
        let s4 = v4(&src).octets();
        let main = siphash(&key, &s4);
        let mut m = s4.to_vec();
        m.extend_from_slice(&sport.to_be_bytes());
        let alt_hash = siphash(&key, &m);
        assert_eq!(r.hash, main);
        let (p, s) = bin_row(&bin, 0, (main & 0xffff) as usize);
        let (ap, as_) = bin_row(&bin, 0, (alt_hash & 0xffff) as usize);
        let want: Vec<Ipv4Addr> = [p, s, ap, as_]
            .iter()
            .map(|i| bin_backend_v4(&bin, 0, *i as usize))
            .collect();
        assert_eq!(r.hops(), want.as_slice());
        // The UDP source port comes from the main hash only.
        assert_eq!(r.udp_src_port(), 0x8000 | ((main as u16 ^ sport) & 0x7fff));
    }
}

// ---- encapsulation ----------------------------------------------------------

fn params(udp_checksum: bool) -> EncapParams {
    EncapParams {
        dst_mac: Address(GW_MAC),
        src_mac: Address([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]),
        src_ip: v4("203.0.113.254"),
        udp_checksum,
    }
}

/// The expected encapsulation of `inner` (an IP packet), assembled by hand
/// from SPEC §8.
fn expected_encap(
    hops: &[Ipv4Addr],
    sport: u16,
    gue_proto: u8,
    inner: &[u8],
    udp_checksum: bool,
) -> Vec<u8> {
    let p = params(udp_checksum);
    let extra = hops.len() - 1;
    let udp_len = 8 + 8 + 4 * extra + inner.len();
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&p.src_ip.octets());
    ip.extend_from_slice(&hops[0].octets());
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&19523u16.to_be_bytes());
    u.extend_from_slice(&(udp_len as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(&[1 + extra as u8, gue_proto, 0, 0, 0, 0, 0, extra as u8]);
    for h in &hops[1..] {
        u.extend_from_slice(&h.octets());
    }
    u.extend_from_slice(inner);
    if udp_checksum {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p.src_ip.octets());
        pseudo.extend_from_slice(&hops[0].octets());
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
        pseudo.extend_from_slice(&u);
        let mut c = csum(&pseudo);
        if c == 0 {
            c = 0xffff;
        }
        u[6..8].copy_from_slice(&c.to_be_bytes());
    }
    let mut out = Vec::new();
    out.extend_from_slice(&GW_MAC);
    out.extend_from_slice(&p.src_mac.0);
    out.extend_from_slice(&[0x08, 0x00]);
    out.extend_from_slice(&ip);
    out.extend_from_slice(&u);
    out
}

#[test]
fn encapsulation_layout_two_and_four_hops() {
    let bin = one_table(
        r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}, {"ip": "fd42::1", "proto": "tcp", "port": 80}"#,
        &["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"],
    );
    for alt in [
        None,
        Some(HashFields::parse_list("src_addr,src_port").unwrap()),
    ] {
        let f = forwarder(
            &bin,
            RouteOptions {
                alt_hash_fields: alt,
                ..RouteOptions::default()
            },
        );
        for csum_on in [true, false] {
            for frame in [
                tcp4("172.16.1.2", 40000, "10.1.1.1", 80),
                tcp6("2001:db8::77", 40001, "fd42::1", 80),
            ] {
                let mut of = OwnedFrame::new(&frame, HEADROOM);
                let v = process_one(&f, &Encapsulator::new(params(csum_on)), &mut of);
                let Verdict::Forward(r) = v else {
                    panic!("{v:?}")
                };
                assert_eq!(r.hop_count, if alt.is_some() { 4 } else { 2 });
                let want = expected_encap(
                    r.hops(),
                    r.udp_src_port(),
                    r.gue_proto,
                    &frame[14..],
                    csum_on,
                );
                assert_eq!(
                    of.frame(),
                    want.as_slice(),
                    "alt {alt:?} checksum {csum_on}"
                );
            }
        }
    }
}

#[test]
fn ethernet_padding_is_dropped() {
    let f = fwd_for_binds(&[r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}"#]);
    let frame = tcp4("172.16.1.2", 40000, "10.1.1.1", 80);
    let mut padded = frame.clone();
    padded.extend_from_slice(&[0xee; 6]);
    let mut a = OwnedFrame::new(&frame, HEADROOM);
    let mut b = OwnedFrame::new(&padded, HEADROOM);
    let p = params(true);
    assert!(matches!(
        process_one(&f, &Encapsulator::new(p), &mut a),
        Verdict::Forward(_)
    ));
    assert!(matches!(
        process_one(&f, &Encapsulator::new(p), &mut b),
        Verdict::Forward(_)
    ));
    assert_eq!(a.frame(), b.frame());
    assert_eq!(a.frame().len(), 50 + 4 + frame.len() - 14);
}

#[test]
fn computed_zero_udp_checksum_is_sent_as_ffff() {
    let f = fwd_for_binds(&[r#"{"ip": "10.1.1.1", "proto": "udp", "port": 53}"#]);
    // Choose two payload bytes so that the outer UDP checksum computes to 0.
    let build = |w: u16| udp4_payload("172.16.1.2", 40000, "10.1.1.1", 53, &w.to_be_bytes());
    let mut of = OwnedFrame::new(&build(0), HEADROOM);
    let Verdict::Forward(r) = process_one(&f, &Encapsulator::new(params(true)), &mut of) else {
        panic!()
    };
    let zero = expected_encap(r.hops(), r.udp_src_port(), 4, &build(0)[14..], false);
    // Sum with the word at 0: find the word that makes the total 0xffff.
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&params(true).src_ip.octets());
    pseudo.extend_from_slice(&r.hops[0].octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&zero[38..40]);
    pseudo.extend_from_slice(&zero[34..]);
    let folded = !csum(&pseudo);
    // Only that payload word changes between the two frames (the inner UDP
    // checksum is left 0), so it alone moves the outer sum.
    let w = 0xffff - folded;
    let frame = build(w);
    let mut of = OwnedFrame::new(&frame, HEADROOM);
    let Verdict::Forward(r2) = process_one(&f, &Encapsulator::new(params(true)), &mut of) else {
        panic!()
    };
    assert_eq!(r2.hops, r.hops);
    let out = of.frame();
    assert_eq!(&out[40..42], &[0xff, 0xff]);
    assert_eq!(
        out,
        expected_encap(r2.hops(), r2.udp_src_port(), 4, &frame[14..], true).as_slice()
    );
}

fn udp4_payload(src: &str, sport: u16, dst: &str, dport: u16, data: &[u8]) -> Vec<u8> {
    eth(
        0x0800,
        &ipv4(v4(src), v4(dst), 17, 1, &udp(sport, dport, data)),
    )
}

#[test]
fn batch_counts_every_outcome() {
    let f = fwd_for_binds(&[r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}"#]);
    let good = tcp4("172.16.1.2", 40000, "10.1.1.1", 80);
    let frames_in = [
        good.clone(),
        tcp4("172.16.1.2", 40000, "10.1.1.2", 80),
        good[..40].to_vec(),
        good.clone(),
    ];
    let mut frames: Vec<OwnedFrame> = frames_in
        .iter()
        .map(|b| OwnedFrame::new(b, HEADROOM))
        .collect();
    // The last one has no headroom at all.
    frames[3] = OwnedFrame::new(&good, 0);
    let counters = Totals::default();
    let mut verdicts = Vec::new();
    process_batch(&f, &params(true), &mut frames, &mut verdicts, &counters);
    assert!(matches!(verdicts[0], Verdict::Forward(_)));
    assert_eq!(verdicts[1], Verdict::Unclassified);
    assert_eq!(verdicts[2], Verdict::RouteFailed { table: 0 });
    assert!(matches!(verdicts[3], Verdict::EncapFailed { table: 0, .. }));
    // A failed encapsulation leaves the frame as it was.
    assert_eq!(frames[3].frame(), good.as_slice());
    process_batch(
        &f,
        &params(true),
        &mut frames[1..2],
        &mut verdicts,
        &counters,
    );
    let o = counters.outcomes();
    assert_eq!(
        (
            counters.frames(),
            o.unmatched,
            o.route_failed,
            counters.forwarded(),
            o.encap_failure
        ),
        (5, 2, 1, 1, 1)
    );
}

/// A core keeps its routing scratch across table reloads; the
/// classification it remembers from the last batch belongs to the old
/// table and must not route the first frame of the next batch under the
/// new one.
#[test]
fn remembered_classification_does_not_outlive_a_reload() {
    let bind = r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}"#;
    let other = r#"{"ip": "10.9.9.9", "proto": "tcp", "port": 80}"#;
    let old = fwd_for(&[(KEY, bind, B1)]);
    // The same bind is now the second table's, and the first table no
    // longer has it.
    let new = fwd_for(&[(KEY, other, B1), (KEY, bind, &["192.0.2.7", "192.0.2.8"])]);
    let frame = tcp4("172.16.1.2", 40000, "10.1.1.1", 80);
    let enc = Encapsulator::new(params(true));
    let counters = Totals::default();
    let mut scratch = BatchScratch::default();
    let route = |fwd: &Forwarder, scratch: &mut BatchScratch| {
        let mut frames = [OwnedFrame::new(&frame, HEADROOM)];
        let mut got = None;
        process_batch_each(fwd, &enc, &mut frames, &counters, scratch, |_, v| {
            got = Some(*v)
        });
        match got {
            Some(Verdict::Forward(r)) => (r.table, r.hops[0]),
            other => panic!("not forwarded: {other:?}"),
        }
    };
    assert_eq!(route(&old, &mut scratch).0, 0);
    let (table, hop) = route(&new, &mut scratch);
    assert_eq!(table, 1);
    assert!(["192.0.2.7", "192.0.2.8"].contains(&hop.to_string().as_str()));
    // And back: a clone of the old forwarder is still the old forwarder.
    assert_eq!(route(&old.clone(), &mut scratch).0, 0);
}
