//! End to end in network namespaces this test creates (and removes):
//!
//! ```text
//!   client ──┐                 ┌── proxy1 (glb-redirect, VIP on lo, TCP server)
//!            ├── router ───────┤
//!  director ─┘                 └── proxy2 (glb-redirect, VIP on lo, TCP server)
//! ```
//!
//! The router sends the VIP to the director, which encapsulates with
//! glb-core's director code (table compiled from JSON, rendezvous rows,
//! GUE encapsulation) and sends GUE to the first hop. Proxies answer the
//! client directly through the router. Needs root and `ip` (iproute2).

mod support;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use glb_core::route::Decision;
use glb_redirect::counters::Counter;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use support::*;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 201, 1, 2);
const DIRECTOR: Ipv4Addr = Ipv4Addr::new(10, 201, 2, 2);
const PROXY1: Ipv4Addr = Ipv4Addr::new(10, 201, 3, 2);
const PROXY2: Ipv4Addr = Ipv4Addr::new(10, 201, 4, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 201, 100, 10);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x201, 1, 0, 0, 0, 0, 2);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x201, 0x100, 0, 0, 0, 0, 0x10);

struct Topology {
    cli: Netns,
    dir: Netns,
    px1: Netns,
    px2: Netns,
    // Dropped last: the router joins everything.
    _rtr: Netns,
    tmp: tempfile::TempDir,
}

fn topology(tag: &str) -> Topology {
    require_root_and_ip();
    let p = unique_prefix(tag);
    let rtr = Netns::create(format!("{p}-rtr"));
    let cli = Netns::create(format!("{p}-cli"));
    let dir = Netns::create(format!("{p}-dir"));
    let px1 = Netns::create(format!("{p}-px1"));
    let px2 = Netns::create(format!("{p}-px2"));
    // IPv6 alongside, without duplicate address detection delays.
    for ns in [&rtr, &cli, &dir, &px1, &px2] {
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0");
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0");
    }
    for (n, name, ns) in [
        (1, "cli", &cli),
        (2, "dir", &dir),
        (3, "px1", &px1),
        (4, "px2", &px2),
    ] {
        let rif = format!("to-{name}");
        link(
            &rtr,
            &rif,
            &format!("10.201.{n}.1/24"),
            ns,
            "eth0",
            &format!("10.201.{n}.2/24"),
        );
        rtr.ip(&[
            "-6",
            "addr",
            "add",
            &format!("fd00:201:{n}::1/64"),
            "dev",
            &rif,
            "nodad",
        ]);
        ns.ip(&[
            "-6",
            "addr",
            "add",
            &format!("fd00:201:{n}::2/64"),
            "dev",
            "eth0",
            "nodad",
        ]);
        ns.ip(&["route", "add", "default", "via", &format!("10.201.{n}.1")]);
        ns.ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &format!("fd00:201:{n}::1"),
        ]);
    }
    for px in [&px1, &px2] {
        px.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"]);
        px.ip(&["-6", "addr", "add", &format!("{VIP6}/128"), "dev", "lo"]);
    }
    rtr.sysctl("net.ipv4.ip_forward", "1");
    rtr.sysctl("net.ipv6.conf.all.forwarding", "1");
    // Replies come from the VIP on the proxies' links while the route to
    // the VIP points at the director: no reverse-path filtering here.
    for key in [
        "net.ipv4.conf.all.rp_filter",
        "net.ipv4.conf.default.rp_filter",
    ] {
        rtr.sysctl(key, "0");
    }
    for i in ["to-cli", "to-dir", "to-px1", "to-px2"] {
        rtr.sysctl(&format!("net.ipv4.conf.{i}.rp_filter"), "0");
    }
    rtr.ip(&["route", "add", &format!("{VIP}/32"), "via", "10.201.2.2"]);
    rtr.ip(&[
        "-6",
        "route",
        "add",
        &format!("{VIP6}/128"),
        "via",
        "fd00:201:2::2",
    ]);
    Topology {
        cli,
        dir,
        px1,
        px2,
        _rtr: rtr,
        tmp: tempfile::tempdir().unwrap(),
    }
}

const VIPS: [IpAddr; 2] = [IpAddr::V4(VIP), IpAddr::V6(VIP6)];

/// Table A: proxy2 draining, so every flow's hops are [proxy1, proxy2].
fn table_a() -> glb_core::route::Forwarder {
    forwarder(&table_json_binds(
        &VIPS, PROXY1, "active", PROXY2, "draining",
    ))
}

/// Table B: proxy1 draining, so every flow's hops are [proxy2, proxy1].
fn table_b() -> glb_core::route::Forwarder {
    forwarder(&table_json_binds(
        &VIPS, PROXY1, "draining", PROXY2, "active",
    ))
}

/// The hops the director will use for a client flow under `fw`.
fn hops_for(fw: &glb_core::route::Forwarder, sport: u16) -> Vec<Ipv4Addr> {
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    frame.extend_from_slice(&ipv4(
        CLIENT,
        VIP,
        6,
        &tcp(CLIENT, VIP, sport, 80, 1, 0, 0x02),
    ));
    match fw.route_frame(&frame) {
        Decision::Forward(r) => r.hops().to_vec(),
        other => panic!("director cannot route the client flow: {other:?}"),
    }
}

/// A scenario as two tests: on the daemon's socket path alone, and with
/// `--fast-path` (second chances sent on by the kernel; everything else
/// still reaching the daemon).
macro_rules! on_both_paths {
    ($scenario:ident: $socket:ident, $fast:ident) => {
        #[test]
        fn $socket() {
            $scenario(false);
        }

        #[test]
        fn $fast() {
            $scenario(true);
        }
    };
}

// The scenarios below that run on both paths.
on_both_paths!(
    table_change: second_chance_keeps_connections_alive_across_a_table_change,
    second_chance_keeps_connections_alive_across_a_table_change_with_the_fast_path
);
on_both_paths!(
    malformed: malformed_gue_is_dropped_counted_and_never_forwarded,
    malformed_gue_is_dropped_counted_and_never_forwarded_with_the_fast_path
);
on_both_paths!(
    ipv6_inner: ipv6_inner_packets_take_the_same_path,
    ipv6_inner_packets_take_the_same_path_with_the_fast_path
);
on_both_paths!(
    allowlists: unlisted_sources_and_hops_are_dropped_and_counted,
    unlisted_sources_and_hops_are_dropped_and_counted_with_the_fast_path
);

impl Topology {
    /// glb-redirect on proxy `n` (1 or 2) with `extra`, plus the kernel
    /// fast path on the proxy's one interface when `fast`.
    fn redirect(&self, n: u8, fast: bool, extra: &[&str]) -> Daemon {
        let ns = if n == 1 { &self.px1 } else { &self.px2 };
        let mut args = extra.to_vec();
        if fast {
            args.extend(["--fast-path", "eth0"]);
        }
        Daemon::start(&format!("proxy{n}"), ns, self.tmp.path(), &args)
    }
}

/// Every second chance `d` gave went through the kernel fast path.
fn all_forwarded_in_the_kernel(d: &Daemon) {
    let s = d.stats();
    assert_eq!(
        s.get(Counter::FastPathForwarded),
        s.get(Counter::ForwardedToAlternate),
        "{}: forwarded {}, of which by the fast path {}",
        d.name,
        s.get(Counter::ForwardedToAlternate),
        s.get(Counter::FastPathForwarded)
    );
}

/// A connection survives a table change through proxy2's second chances.
/// With the fast path those are sent on by the kernel, and everything that
/// is not a second chance still reaches the daemons (SYNs, established
/// packets, the last resort).
fn table_change(fast: bool) {
    let t = topology("e2e");
    // Sanity of the test's own premise: the tables give the hop orders
    // the scenarios are about.
    assert_eq!(hops_for(&table_a(), 40000), [PROXY1, PROXY2]);
    assert_eq!(hops_for(&table_b(), 40000), [PROXY2, PROXY1]);

    let mut p1 = t.redirect(1, fast, &["--tun", "glbr0"]);
    let mut p2 = t.redirect(2, fast, &["--tun", "glbr0"]);
    let _s1 = start_server(&t.px1, "proxy1", VIP, 80);
    let _s2 = start_server(&t.px2, "proxy2", VIP, 80);
    let director = Director::start_dual(&t.dir, "gdir0", VIP, Some(VIP6), DIRECTOR, table_a());

    // 1. Hops [proxy1, proxy2]: the SYN is taken by proxy1, which serves
    //    the connection and answers the client directly.
    let mut c1 = connect(&t.cli, VIP, 80);
    assert_eq!(ask(&mut c1, "one"), "proxy1:one");
    let s = p1.wait_stats("SYN and established packets on proxy1", |s| {
        s.get(Counter::AcceptedSyn) >= 1 && s.get(Counter::AcceptedEstablished) >= 1
    });
    assert_eq!(s.get(Counter::ForwardedToAlternate), 0);
    assert_eq!(
        p2.get(Counter::Total),
        0,
        "proxy2 saw traffic under table A"
    );
    assert!(director.routed.load(Ordering::Relaxed) >= 3);

    // 2. The director's table changes (proxy1 drains): the same flow now
    //    arrives at proxy2 first, which forwards it to proxy1; the
    //    connection carries on without a reset.
    director.set_table(table_b());
    assert_eq!(ask(&mut c1, "two"), "proxy1:two");
    assert_eq!(ask(&mut c1, "three"), "proxy1:three");
    let s2 = p2.wait_stats("proxy2 forwarding proxy1's connection", |s| {
        s.get(Counter::ForwardedToAlternate) >= 2
    });
    assert_eq!(s2.get(Counter::AcceptedSyn), 0);
    assert_eq!(s2.get(Counter::AcceptedEstablished), 0);
    assert_eq!(s2.get(Counter::ForwardErrors), 0);
    if fast {
        all_forwarded_in_the_kernel(&p2);
    }

    //    A new connection from the same client lands on proxy2.
    let mut c2 = connect(&t.cli, VIP, 80);
    assert_eq!(ask(&mut c2, "four"), "proxy2:four");
    p2.wait_stats("proxy2 taking the new SYN", |s| {
        s.get(Counter::AcceptedSyn) >= 1 && s.get(Counter::AcceptedEstablished) >= 1
    });
    //    And the old one still lives on proxy1.
    assert_eq!(ask(&mut c1, "five"), "proxy1:five");
    assert_eq!(ask(&mut c2, "six"), "proxy2:six");

    // 3. An ACK for a flow nobody knows: proxy2 forwards it, proxy1 has no
    //    hop left and takes it as a last resort; its stack answers the
    //    client with a RST.
    let last_resort_before = p1.get(Counter::AcceptedLastResort);
    let raw = t.cli.enter(|| {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s
    });
    let (sport, seq, ack) = (41999u16, 0x1000_0000u32, 0x2222_2222u32);
    let segment = tcp(CLIENT, VIP, sport, 80, seq, ack, 0x10);
    let to = SockAddr::from(SocketAddrV4::new(VIP, 0));
    raw.send_to(&segment, &to).unwrap();
    let start = Instant::now();
    let rst = loop {
        assert!(start.elapsed() < PATIENCE, "no RST for the unknown flow");
        let mut buf = [0u8; 1500];
        let Ok(n) = (&raw).read(&mut buf) else {
            // Resend in case the first ACK was lost while links settled.
            raw.send_to(&segment, &to).unwrap();
            continue;
        };
        let pkt = &buf[..n];
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        let (src, th) = (&pkt[12..16], &pkt[ihl..]);
        let (sp, dp) = (
            u16::from_be_bytes([th[0], th[1]]),
            u16::from_be_bytes([th[2], th[3]]),
        );
        if src == VIP.octets() && sp == 80 && dp == sport {
            break th.to_vec();
        }
    };
    assert_ne!(
        rst[13] & 0x04,
        0,
        "the answer is a RST (flags {:#04x})",
        rst[13]
    );
    // A RST answering a bare ACK carries the ACK's acknowledgment number.
    assert_eq!(u32::from_be_bytes([rst[4], rst[5], rst[6], rst[7]]), ack);
    p1.wait_stats("proxy1 last-resort delivery", |s| {
        s.get(Counter::AcceptedLastResort) > last_resort_before
    });

    // Replies went straight to the client: none came back through the
    // director, and proxy1 — the last hop — never forwarded anything.
    assert_eq!(director.from_vip.load(Ordering::Relaxed), 0);
    assert_eq!(p1.get(Counter::ForwardedToAlternate), 0);
    if fast {
        all_forwarded_in_the_kernel(&p2);
        assert!(p2.get(Counter::FastPathForwarded) >= 3);
        assert!(
            p1.log_text().contains("fast path attached to eth0"),
            "{}",
            p1.log_text()
        );
    } else {
        assert_eq!(p2.get(Counter::FastPathForwarded), 0);
    }
    p1.assert_delivered_cleanly();
    p2.assert_delivered_cleanly();
}

/// Malformed GUE is dropped and counted, never forwarded. The fast path
/// passes every malformed datagram to the daemon; only the valid one is
/// forwarded, in the kernel.
fn malformed(fast: bool) {
    let t = topology("bad");
    let mut p1 = t.redirect(1, fast, &["--tun", "glbr0"]);

    // Anything proxy1 forwarded would go to the hop listed in the header:
    // the director's address, where this socket listens.
    let (tx, sink) = t.dir.enter(|| {
        let tx = UdpSocket::bind((DIRECTOR, 0)).unwrap();
        let sink = UdpSocket::bind((DIRECTOR, 19523)).unwrap();
        sink.set_nonblocking(true).unwrap();
        (tx, sink)
    });
    let hop = [DIRECTOR];
    let ack = ipv4(CLIENT, VIP, 6, &tcp(CLIENT, VIP, 42000, 80, 1, 1, 0x10));
    let long_hops = vec![DIRECTOR; 30];
    let bad: Vec<(&str, Vec<u8>, Counter)> = vec![
        (
            "hlen 2 with hop_count 0",
            gue_raw(2, 4, 0, 0, &hop, &ack),
            Counter::DroppedBadHopCount,
        ),
        (
            "hlen 1 with hop_count 1",
            gue_raw(1, 4, 0, 1, &[], &ack),
            Counter::DroppedBadHopCount,
        ),
        (
            "hop_count 255 (hlen 1)",
            gue_raw(1, 4, 0, 255, &[], &ack),
            Counter::DroppedBadHopCount,
        ),
        (
            "hop_count 255 (hlen 31)",
            gue_raw(31, 4, 0, 255, &long_hops, &ack),
            Counter::DroppedBadHopCount,
        ),
        (
            "protocol 17",
            gue(17, 0, &hop, &ack),
            Counter::DroppedUnknownProtocol,
        ),
        (
            "protocol 0",
            gue(0, 0, &hop, &ack),
            Counter::DroppedUnknownProtocol,
        ),
        ("3 bytes", vec![0x01, 0x04, 0x00], Counter::DroppedTruncated),
        (
            "hop list cut",
            gue(4, 0, &[DIRECTOR, DIRECTOR], &[])[..12].to_vec(),
            Counter::DroppedTruncated,
        ),
        (
            "inner header cut",
            gue(4, 0, &hop, &ack[..16]),
            Counter::DroppedTruncated,
        ),
        (
            "inner total length beyond the datagram",
            gue(4, 0, &hop, &ack[..ack.len() - 4]),
            Counter::DroppedTruncated,
        ),
        (
            "no private data (hlen 0)",
            vec![0x00, 0x04, 0, 0, 0x45, 0, 0, 20],
            Counter::DroppedBadGueHeader,
        ),
        (
            "GUE version 1",
            gue_raw(0x42, 4, 0, 1, &hop, &ack),
            Counter::DroppedBadGueHeader,
        ),
        (
            "control message",
            gue_raw(0x22, 4, 0, 1, &hop, &ack),
            Counter::DroppedBadGueHeader,
        ),
        ("empty datagram", vec![], Counter::DroppedTruncated),
    ];
    let before = p1.stats();
    for (_, payload, _) in &bad {
        tx.send_to(payload, (PROXY1, 19523)).unwrap();
    }
    let n = bad.len() as u64;
    let s = p1.wait_stats("every malformed datagram counted", |s| {
        s.get(Counter::Total) >= before.get(Counter::Total) + n
    });
    for c in [
        Counter::DroppedBadHopCount,
        Counter::DroppedUnknownProtocol,
        Counter::DroppedTruncated,
        Counter::DroppedBadGueHeader,
    ] {
        let want = bad.iter().filter(|b| b.2 == c).count() as u64;
        assert_eq!(
            s.get(c) - before.get(c),
            want,
            "{}: cases {:?}",
            c.name(),
            bad.iter()
                .filter(|b| b.2 == c)
                .map(|b| b.0)
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(s.get(Counter::Total), before.get(Counter::Total) + n);
    assert_eq!(s.get(Counter::ForwardedToAlternate), 0);
    assert_eq!(s.get(Counter::ForwardErrors), 0);
    assert_eq!(
        s.get(Counter::SocketLookups),
        0,
        "nothing malformed reached a lookup"
    );

    // Still alive and still deciding: a valid ACK for an unknown flow
    // listing the same hop is forwarded there, and it is the only thing
    // that ever arrives at the hop.
    tx.send_to(&gue(4, 0, &hop, &ack), (PROXY1, 19523)).unwrap();
    let s = p1.wait_stats("the valid packet forwarded", |s| {
        s.get(Counter::ForwardedToAlternate) == 1
    });
    assert_eq!(s.get(Counter::FastPathForwarded), u64::from(fast));
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while start.elapsed() < PATIENCE {
        match sink.recv_from(&mut buf) {
            Ok((n, from)) => {
                got.push(buf[..n].to_vec());
                assert_eq!(from.ip(), std::net::IpAddr::V4(PROXY1));
                // Nothing else is in flight: look once more, then stop.
                std::thread::sleep(Duration::from_millis(300));
                if sink.recv_from(&mut buf).is_ok() {
                    panic!("more than one packet reached the hop");
                }
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    assert_eq!(got.len(), 1, "the forwarded packet did not arrive");
    // next_hop was incremented, the rest is as sent.
    let sent = gue(4, 0, &hop, &ack);
    assert_eq!(got[0][6], 1);
    assert_eq!(&got[0][..6], &sent[..6]);
    assert_eq!(&got[0][7..], &sent[7..]);

    // A health-check probe as glb-healthcheck sends it (ICMP echo inside
    // GUE with no hops) is decapsulated and answered directly, not
    // tunnelled back.
    let icmp_sock = t.dir.enter(|| {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s
    });
    let mut echo = vec![8, 0, 0, 0, 0x47, 0x4c, 0, 1];
    echo.extend_from_slice(b"glb-redirect probe");
    let c = glb_testkit::checksum::csum(&echo);
    echo[2..4].copy_from_slice(&c.to_be_bytes());
    let probe = gue(4, 0, &[], &ipv4(DIRECTOR, PROXY1, 1, &echo));
    tx.send_to(&probe, (PROXY1, 19523)).unwrap();
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < PATIENCE, "no echo reply to the GUE probe");
        let mut buf = [0u8; 1500];
        let Ok(n) = (&icmp_sock).read(&mut buf) else {
            tx.send_to(&probe, (PROXY1, 19523)).unwrap();
            continue;
        };
        let pkt = &buf[..n];
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        if pkt[12..16] == PROXY1.octets() && pkt[9] == 1 && pkt[ihl] == 0 {
            assert_eq!(&pkt[ihl + 4..ihl + 6], &[0x47, 0x4c], "our echo identifier");
            assert_eq!(&pkt[ihl + 8..], b"glb-redirect probe");
            break;
        }
    }
    p1.wait_stats("the probe counted as ICMP taken locally", |s| {
        s.get(Counter::AcceptedIcmp) >= 1
    });
    p1.assert_running_and_accounted();
}

/// The same story with IPv6 inside the GUE (protocol 41): SYN taken
/// locally, the established flow forwarded by proxy2 and found by
/// proxy1's IPv6 socket lookup after the table change, new connections on
/// proxy2.
fn ipv6_inner(fast: bool) {
    let t = topology("v6");
    // Two workers here: two SO_REUSEPORT sockets and two TUN queues.
    let mut p1 = t.redirect(1, fast, &["--tun", "glbr0", "--workers", "2"]);
    let mut p2 = t.redirect(2, fast, &["--tun", "glbr0"]);
    let _s1 = start_server(&t.px1, "proxy1", VIP6, 80);
    let _s2 = start_server(&t.px2, "proxy2", VIP6, 80);
    let director = Director::start_dual(&t.dir, "gdir0", VIP, Some(VIP6), DIRECTOR, table_a());

    let mut c1 = connect(&t.cli, VIP6, 80);
    assert_eq!(
        c1.local_addr().unwrap().ip(),
        IpAddr::V6(CLIENT6),
        "the client speaks IPv6"
    );
    assert_eq!(ask(&mut c1, "one"), "proxy1:one");
    p1.wait_stats("IPv6 SYN and established packets on proxy1", |s| {
        s.get(Counter::AcceptedSyn) >= 1 && s.get(Counter::AcceptedEstablished) >= 1
    });
    assert_eq!(p2.get(Counter::Total), 0);

    director.set_table(table_b());
    assert_eq!(ask(&mut c1, "two"), "proxy1:two");
    p2.wait_stats("proxy2 forwarding the IPv6 flow", |s| {
        s.get(Counter::ForwardedToAlternate) >= 1
    });
    let mut c2 = connect(&t.cli, VIP6, 80);
    assert_eq!(ask(&mut c2, "three"), "proxy2:three");
    assert_eq!(ask(&mut c1, "four"), "proxy1:four");
    assert_eq!(p1.get(Counter::DroppedUnsupportedInner), 0);
    if fast {
        all_forwarded_in_the_kernel(&p2);
    }
    p1.assert_delivered_cleanly();
    p2.assert_delivered_cleanly();
}

/// Start-up and shutdown as systemd sees them: READY=1 once serving,
/// STOPPING=1 and exit status 0 on SIGTERM, the TUN device gone after;
/// and a clear error with a non-zero status when start-up cannot succeed.
#[test]
fn systemd_readiness_clean_stop_and_startup_errors() {
    require_root_and_ip();
    let ns = Netns::create(unique_prefix("life"));
    let tmp = tempfile::tempdir().unwrap();
    let (notify_path, notify) = glb_testkit::notify::listener(tmp.path(), PATIENCE);
    let statsd = ns.enter(|| UdpSocket::bind("127.0.0.1:0").unwrap());
    statsd.set_read_timeout(Some(PATIENCE)).unwrap();
    let statsd_addr = statsd.local_addr().unwrap().to_string();
    let mut d = Daemon::start_env(
        "life",
        &ns,
        tmp.path(),
        &["--tun", "glbr0", "--statsd", &statsd_addr],
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
    );
    let next = || glb_testkit::notify::next(&notify);
    assert_eq!(
        next().as_deref(),
        Some("READY=1"),
        "READY=1 from the daemon"
    );
    ns.ip(&["link", "show", "glbr0"]);

    // One runt datagram, so there is a counter to report.
    let tx = ns.enter(|| UdpSocket::bind("127.0.0.1:0").unwrap());
    tx.send_to(&[1, 4, 0], "127.0.0.1:19523").unwrap();
    d.wait_stats("the runt counted", |s| {
        s.get(Counter::DroppedTruncated) == 1
    });

    let pid = libc::pid_t::try_from(d.child.id()).unwrap();
    // SAFETY: kill only sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert_eq!(
        next().as_deref(),
        Some("STOPPING=1"),
        "STOPPING=1 from the daemon"
    );
    let status = d.child.wait().unwrap();
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}: {}",
        d.log_text()
    );
    // The final counters went to statsd on the way out.
    let mut sbuf = [0u8; 2048];
    let n = statsd.recv(&mut sbuf).expect("statsd counters");
    let text = String::from_utf8_lossy(&sbuf[..n]).into_owned();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "glb_redirect.dropped_truncated_packets:1|c",
            "glb_redirect.total_packets:1|c"
        ]
    );
    assert!(!ns.has_link("glbr0"), "the TUN device outlived the daemon");

    // The GUE port is taken by a socket that does not share it.
    let _taken = ns.enter(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 19523)).unwrap());
    let taken_stats = tmp.path().join("taken.stats");
    let err = start_refused(&ns, &["--tun", "glbr1"], &taken_stats);
    assert!(
        err.contains("cannot bind UDP 0.0.0.0:19523"),
        "stderr: {err}"
    );
    assert!(!taken_stats.exists());

    // A TUN name the kernel cannot take.
    let err = start_refused(
        &ns,
        &[
            "--tun",
            "a-name-far-too-long-for-linux",
            "--listen",
            "127.0.0.1:19600",
        ],
        &tmp.path().join("name.stats"),
    );
    assert!(err.contains("interface name"), "stderr: {err}");

    // A fast path on an interface that is not there.
    let stats = tmp.path().join("fast.stats");
    let err = start_refused(
        &ns,
        &[
            "--tun",
            "glbr2",
            "--listen",
            "127.0.0.1:19601",
            "--fast-path",
            "nosuch0",
        ],
        &stats,
    );
    assert!(
        err.contains("cannot attach the fast path to nosuch0's ingress"),
        "stderr: {err}"
    );
    assert!(!stats.exists(), "no stats file before the fast path is up");
}

/// Not an open relay: with `--allow-source` and `--allow-hop`, GUE from an
/// unlisted source is dropped and counted, so is a packet naming an
/// unlisted hop; a listed source naming a listed hop is still forwarded.
/// The client stands for an attacker who can reach UDP 19523. The fast
/// path obeys both lists: what they refuse reaches the daemon, which drops
/// and counts it.
fn allowlists(fast: bool) {
    let t = topology("allow");
    let allow_src = format!("{DIRECTOR},{PROXY2}");
    let allow_hop = format!("{PROXY2}/32");
    let mut p1 = t.redirect(
        1,
        fast,
        &[
            "--tun",
            "glbr0",
            "--allow-source",
            &allow_src,
            "--allow-hop",
            &allow_hop,
        ],
    );
    let log = p1.log_text();
    assert!(
        log.contains(&format!("GUE accepted only from {DIRECTOR}/32,{PROXY2}/32")),
        "{log}"
    );
    // Listens where forwarded packets would go: an unlisted hop (the
    // client's own address) and the listed proxy2.
    let (attacker, to_attacker) = t.cli.enter(|| {
        let s = UdpSocket::bind((CLIENT, 0)).unwrap();
        let sink = UdpSocket::bind((CLIENT, 19523)).unwrap();
        sink.set_nonblocking(true).unwrap();
        (s, sink)
    });
    let (director, to_proxy2) = (
        t.dir.enter(|| UdpSocket::bind((DIRECTOR, 0)).unwrap()),
        t.px2.enter(|| {
            let sink = UdpSocket::bind((PROXY2, 19523)).unwrap();
            sink.set_nonblocking(true).unwrap();
            sink
        }),
    );
    // An ACK of a flow nobody has: it would be given a second chance.
    let ack = ipv4(CLIENT, VIP, 6, &tcp(CLIENT, VIP, 42001, 80, 1, 1, 0x10));
    let before = p1.stats();
    // 1. From an unlisted source, naming a listed hop.
    for _ in 0..5 {
        attacker
            .send_to(&gue(4, 0, &[PROXY2], &ack), (PROXY1, 19523))
            .unwrap();
    }
    // 2. From a listed source, naming an unlisted hop (the attacker).
    for _ in 0..3 {
        director
            .send_to(&gue(4, 0, &[CLIENT], &ack), (PROXY1, 19523))
            .unwrap();
    }
    let s = p1.wait_stats("the relay attempts counted", |s| {
        s.get(Counter::Total) >= before.get(Counter::Total) + 8
    });
    assert_eq!(
        s.get(Counter::DroppedSourceNotAllowed) - before.get(Counter::DroppedSourceNotAllowed),
        5
    );
    assert_eq!(
        s.get(Counter::DroppedHopNotAllowed) - before.get(Counter::DroppedHopNotAllowed),
        3
    );
    assert_eq!(s.get(Counter::ForwardedToAlternate), 0, "nothing relayed");
    assert_eq!(
        s.get(Counter::SocketLookups) - before.get(Counter::SocketLookups),
        3,
        "unlisted sources never reach the parser's lookups"
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut buf = [0u8; 2048];
    assert!(
        to_attacker.recv_from(&mut buf).is_err(),
        "a packet reached the unlisted hop"
    );
    assert!(
        to_proxy2.recv_from(&mut buf).is_err(),
        "an unlisted source's packet was relayed"
    );
    // 3. Listed source, listed hop: forwarded as before.
    director
        .send_to(&gue(4, 0, &[PROXY2], &ack), (PROXY1, 19523))
        .unwrap();
    p1.wait_stats("the allowed packet forwarded", |s| {
        s.get(Counter::ForwardedToAlternate) == 1
    });
    let start = Instant::now();
    let (n, from) = loop {
        if let Ok(got) = to_proxy2.recv_from(&mut buf) {
            break got;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the allowed packet did not reach proxy2"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Received by a socket, so its UDP checksum held; sent from proxy1's
    // address and the director's port, the hop counted, the rest as sent.
    assert_eq!(&buf[..n], &gue(4, 1, &[PROXY2], &ack)[..]);
    let director_port = director.local_addr().unwrap().port();
    assert_eq!(from, std::net::SocketAddr::from((PROXY1, director_port)));
    assert_eq!(
        p1.get(Counter::FastPathForwarded),
        u64::from(fast),
        "forwarded by the fast path"
    );
    p1.assert_running_and_accounted();
}

/// A second daemon on the same port and TUN device refuses to start,
/// naming the running one; a stats path that is a directory is refused.
#[test]
fn a_second_instance_is_refused_naming_the_first() {
    let t = topology("twice");
    let mut first = Daemon::start("first", &t.px1, t.tmp.path(), &["--tun", "glbr0"]);
    let err = start_refused(
        &t.px1,
        &["--tun", "glbr0", "--no-sysctl"],
        &t.tmp.path().join("second.stats"),
    );
    assert!(
        err.contains(&format!(
            "another glb-redirect (pid {}) already serves UDP port 19523",
            first.child.id()
        )) || err.contains("another glb-redirect (pid "),
        "{err}"
    );
    assert_eq!(
        err.matches("another glb-redirect").count(),
        1,
        "printed once: {err}"
    );
    first.assert_running();

    let dir_stats = t.tmp.path().join("stats-dir");
    std::fs::create_dir(&dir_stats).unwrap();
    let err = start_refused(&t.px2, &["--tun", "glbr1", "--no-sysctl"], &dir_stats);
    assert!(err.contains("is a directory, not a file"), "{err}");
    assert_eq!(std::fs::read_dir(&dir_stats).unwrap().count(), 0);
    assert!(
        std::fs::read_dir(t.tmp.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp"))
    );
}
