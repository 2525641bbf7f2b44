//! The `glb-director` binary on real DPDK software devices. Each test
//! spawns the binary (the EAL initialises once per process): `net_pcap`
//! for the conformance cases and metrics, `net_af_packet` on a veth pair
//! in a network namespace the test creates for live traffic, reloads and
//! the `vglb_kniN` exception path.
//!
//! Memory is `--no-huge` (no setup needed). The namespace tests need
//! root and iproute2. Expected frames come from the conformance files or
//! are computed here from the binary table (read by offset) with the
//! test's own SipHash and checksum.

mod director_support;

use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use director_support::*;
use glb_testkit::checksum::csum;
use glb_testkit::conformance;
use glb_testkit::frames::tcp4;
use glb_testkit::netns::*;
use glb_testkit::pcap::*;
use glb_testkit::rawsock::RawSocket;
use glb_testkit::siphash::{hex16, siphash};
use glb_testkit::table::{bin_backend_v4, bin_row};

const GW_MAC: [u8; 6] = [0x02, 0x47, 0x4c, 0x42, 0x00, 0x01];
const SRC_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 60, 1);
const HASH_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const VIP: &str = "10.10.10.10";

fn pcap_cases() -> Vec<PathBuf> {
    conformance::case_dirs("pcap")
}

fn director_cmd(eal: &[String], config: &Path, table: &Path) -> Command {
    let mut c = Command::new(director_bin());
    c.args(eal)
        .arg("--")
        .arg("--config-file")
        .arg(config)
        .arg("--forwarding-table")
        .arg(table)
        .args(["--stats-interval", "0.1"]);
    c
}

#[test]
fn conformance_pcap_cases_over_net_pcap() {
    for case in pcap_cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out.pcap");
        let input = case.join("input.pcap");
        let config_text = std::fs::read_to_string(case.join("config.json")).unwrap();
        let config: serde_json::Value = serde_json::from_str(&config_text).unwrap();
        let expected = read_pcap(&case.join("expected.pcap"));
        let n_in = read_pcap(&input).len() as u64;

        let eal = eal_args(&config_lcores(&config), pcap_vdev(&input, &out));
        let mut d = Director::spawn(director_cmd(
            &eal,
            &case.join("config.json"),
            &case.join("table.bin"),
        ));
        // Done when every input frame went through the packet path and
        // as many frames left as the case expects.
        d.wait_stats(&format!("{name}: all frames processed"), |s| {
            s.get("port0.rx") == n_in
                && s.cores("total") == n_in
                && s.cores("eth_tx_sent") == expected.len() as u64
        });
        let (status, stderr) = d.stop();
        assert!(status.success(), "{name}: director exit {status}\n{stderr}");

        let got = read_pcap(&out);
        assert_eq!(
            got.len(),
            expected.len(),
            "{name}: frame count in the tx pcap"
        );
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g.len(), e.len(), "{name}: frame {} length", i + 1);
            // The port's MAC is the source; everything else is exact.
            assert_eq!(g[..6], e[..6], "{name}: frame {} destination MAC", i + 1);
            assert_eq!(g[12..], e[12..], "{name}: frame {} after the MACs", i + 1);
        }
    }
}

/// A forwarding table JSON: one bind on VIP:80/tcp, these backends with
/// their health.
fn table_text(backends: &[(&str, bool)]) -> String {
    let bs: Vec<String> = backends
        .iter()
        .map(|(ip, h)| format!(r#"{{"ip": "{ip}", "state": "active", "healthy": {h}}}"#))
        .collect();
    format!(
        r#"{{"tables": [{{"name": "test", "hash_key": "{HASH_KEY}",
            "seed": "00112233445566778899aabbccddeeff",
            "binds": [{{"ip": "{VIP}", "proto": "tcp", "port": 80}}],
            "backends": [{}]}}]}}"#,
        bs.join(",")
    )
}

/// A pcap device reading `input` and writing `output`.
fn pcap_vdev(input: &Path, output: &Path) -> String {
    format!(
        "--vdev=net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        output.display()
    )
}

/// The EAL arguments of a director on `lcores` with one virtual device.
fn eal_args(lcores: &[u32], vdev: impl Into<String>) -> Vec<String> {
    let mut eal = vec![lcores_arg(lcores)];
    eal.extend(eal_base());
    eal.push(vdev.into());
    eal
}

/// `table.bin` in `dir`, compiled by the CLI from `table.json` of
/// `backends`.
fn compiled_table(dir: &Path, backends: &[(&str, bool)]) -> PathBuf {
    let (json, bin) = (dir.join("table.json"), dir.join("table.bin"));
    std::fs::write(&json, table_text(backends)).unwrap();
    build_table(&json, &bin);
    bin
}

fn build_table(json_path: &Path, bin_path: &Path) {
    let out = Command::new(cli_bin())
        .arg("build-config")
        .arg(json_path)
        .arg(bin_path)
        .output()
        .expect("run glb-director-cli");
    assert!(
        out.status.success(),
        "glb-director-cli build-config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The hops the table file says a source address maps to (hash fields
/// are the default: source address only).
fn expected_hops(bin: &[u8], src: Ipv4Addr) -> [Ipv4Addr; 2] {
    let h = siphash(&hex16(HASH_KEY), &src.octets());
    let (p, s) = bin_row(bin, 0, (h & 0xffff) as usize);
    [
        bin_backend_v4(bin, 0, p as usize),
        bin_backend_v4(bin, 0, s as usize),
    ]
}

/// Checks an encapsulated frame field by field (SPEC §8) and returns its
/// hops and inner packet.
fn parse_encap(f: &[u8], port_mac: [u8; 6]) -> ([Ipv4Addr; 2], Vec<u8>) {
    assert!(f.len() >= 14 + 20 + 8 + 8 + 4, "frame too short: {f:02x?}");
    assert_eq!(f[..6], GW_MAC, "outer destination MAC");
    assert_eq!(f[6..12], port_mac, "outer source MAC is the port's");
    assert_eq!(f[12..14], [0x08, 0x00], "outer ethertype");
    let ip = &f[14..34];
    assert_eq!(ip[0], 0x45);
    assert_eq!(
        usize::from(u16::from_be_bytes([ip[2], ip[3]])),
        f.len() - 14,
        "IPv4 total length"
    );
    assert_eq!(ip[6] & 0x40, 0x40, "DF");
    assert_eq!((ip[8], ip[9]), (64, 17), "ttl, protocol");
    assert_eq!(csum(ip), 0, "IPv4 header checksum");
    assert_eq!(ip[12..16], SRC_IP.octets(), "outer source");
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let udp = &f[34..];
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 19523, "GUE port");
    assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&ip[12..20]);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(udp);
    assert_eq!(csum(&pseudo), 0, "UDP checksum");
    let gue = &udp[8..];
    assert_eq!((gue[0], gue[1], gue[2], gue[3]), (2, 4, 0, 0), "GUE header");
    assert_eq!(
        (gue[4], gue[5], gue[6], gue[7]),
        (0, 0, 0, 1),
        "GLB private data"
    );
    let hop = Ipv4Addr::new(gue[8], gue[9], gue[10], gue[11]);
    ([dst, hop], gue[12..].to_vec())
}

fn is_gue(f: &[u8]) -> bool {
    f.len() > 42 && f[12..14] == [0x08, 0x00] && f[23] == 17 && f[36..38] == 19523u16.to_be_bytes()
}

/// A director on `net_af_packet` over veth0 of a fresh namespace; the
/// test talks to it through veth1.
struct VethRig {
    ns: Netns,
    dir: tempfile::TempDir,
    table_json: PathBuf,
    table_bin: PathBuf,
    director: Director,
    peer: RawSocket,
    port_mac: [u8; 6],
}

impl VethRig {
    /// `dist`: a distributor (lcore 1) with one worker (lcore 2) instead
    /// of one run-to-completion core (lcore 1).
    fn start(tag: &str, dist: bool, kni: bool, backends: &[(&str, bool)]) -> VethRig {
        require_root("the af_packet/veth tests");
        let ns = Netns::new(tag);
        ns.veth("veth0", "veth1");
        let dir = tempfile::tempdir().unwrap();
        let table_json = dir.path().join("table.json");
        let table_bin = dir.path().join("table.bin");
        std::fs::write(&table_json, table_text(backends)).unwrap();
        build_table(&table_json, &table_bin);
        let config = dir.path().join("director.conf");
        let (lcores, ids) = if dist {
            (
                format!(
                    r#"{{"lcore-1": {{"rx": true, "tx": true, "dist": true, "num_dist_workers": 1,
                                      "kni": {kni}, "flow_paths": [0]}},
                        "lcore-2": {{"work": true, "work_source": 1}}}}"#
                ),
                vec![1, 2],
            )
        } else {
            (
                format!(
                    r#"{{"lcore-1": {{"rx": true, "tx": true, "work": true,
                                      "kni": {kni}, "flow_paths": [0]}}}}"#
                ),
                vec![1],
            )
        };
        std::fs::write(
            &config,
            format!(
                r#"{{"outbound_gateway_mac": "02:47:4c:42:00:01", "outbound_src_ip": "{SRC_IP}",
                    "flow_paths": [{{"rx_port": 0, "rx_queue": 0, "tx_port": 0, "tx_queue": 0}}],
                    "lcores": {lcores}}}"#
            ),
        )
        .unwrap();
        let eal = eal_args(&ids, "--vdev=net_af_packet0,iface=veth0");
        let mut cmd = ns.command(&director_bin());
        cmd.args(&eal)
            .arg("--")
            .arg("--config-file")
            .arg(&config)
            .arg("--forwarding-table")
            .arg(&table_bin)
            .args(["--stats-interval", "0.1"]);
        let mut director = Director::spawn(cmd);
        director.wait_stats("the director to start", |_| true);
        let peer = ns
            .enter(|| RawSocket::open("veth1"))
            .expect("raw socket on veth1");
        let port_mac = ns.mac("veth0");
        VethRig {
            ns,
            dir,
            table_json,
            table_bin,
            director,
            peer,
            port_mac,
        }
    }

    fn table(&self) -> Vec<u8> {
        std::fs::read(&self.table_bin).unwrap()
    }

    /// Sends `frame` from the peer until an encapsulated frame carrying
    /// `inner` comes back; returns its hops.
    fn round_trip(&self, frame: &[u8]) -> [Ipv4Addr; 2] {
        let inner = frame[14..].to_vec();
        let end = Instant::now() + PATIENCE;
        while Instant::now() < end {
            self.peer.send(frame);
            let got = self.peer.collect(1, Duration::from_millis(300), |f| {
                is_gue(f) && f.ends_with(&inner)
            });
            if let Some(f) = got.first() {
                let (hops, got_inner) = parse_encap(f, self.port_mac);
                assert_eq!(got_inner, inner, "inner packet");
                return hops;
            }
        }
        panic!(
            "no encapsulated frame came back for {frame:02x?}\n--- director stderr\n{}",
            self.director.stderr()
        );
    }
}

const BACKENDS: [(&str, bool); 4] = [
    ("192.168.60.11", true),
    ("192.168.60.12", true),
    ("192.168.60.13", true),
    ("192.168.60.14", true),
];

#[test]
fn af_packet_veth_frames_come_back_encapsulated() {
    let mut rig = VethRig::start("af", false, false, &BACKENDS);
    let bin = rig.table();
    for i in 1..=6u8 {
        let src = Ipv4Addr::new(172, 16, 1, i);
        let frame = tcp4(&src.to_string(), 40_000 + u16::from(i), VIP, 80);
        let hops = rig.round_trip(&frame);
        assert_eq!(hops, expected_hops(&bin, src), "hops of {src}");
    }
    // Unmatched traffic (port 81 is not bound) is dropped and counted.
    rig.peer.send(&tcp4("172.16.2.1", 40_100, VIP, 81));
    let s = rig
        .director
        .wait_stats("the unmatched frame to be counted", |s| {
            s.cores("unmatched") >= 1
        });
    assert!(s.cores("encap_success") >= 6);
    assert_eq!(s.cores("kni"), 0, "no exception path configured");
    let (status, stderr) = rig.director.stop();
    assert!(status.success(), "exit {status}\n{stderr}");
    drop(rig.dir);
}

/// With a distributor and a worker, so that unmatched packets make the
/// round trip worker → distributor → tap.
#[test]
fn kni_exception_path_both_ways_over_vglb_kni0() {
    let mut rig = VethRig::start("kni", true, true, &BACKENDS);
    assert!(
        rig.ns.has_link("vglb_kni0"),
        "vglb_kni0 was not created\n{}",
        rig.director.stderr()
    );
    let kni = rig
        .ns
        .enter(|| RawSocket::open("vglb_kni0"))
        .expect("raw socket on vglb_kni0");

    // Port 81 matches no bind: the frame must reach Linux unchanged.
    let unmatched = tcp4("172.16.3.1", 40_200, VIP, 81);
    let end = Instant::now() + PATIENCE;
    let mut seen = false;
    while !seen && Instant::now() < end {
        rig.peer.send(&unmatched);
        seen = !kni
            .collect(1, Duration::from_millis(300), |f| f == unmatched.as_slice())
            .is_empty();
    }
    assert!(
        seen,
        "the unmatched frame never appeared on vglb_kni0\n{}",
        rig.director.stderr()
    );
    // Matched traffic still goes to the proxies, not to Linux.
    let bin = rig.table();
    let src = Ipv4Addr::new(172, 16, 3, 2);
    assert_eq!(
        rig.round_trip(&tcp4(&src.to_string(), 40_201, VIP, 80)),
        expected_hops(&bin, src)
    );

    // What Linux sends on vglb_kni0 leaves through the port.
    let mut from_linux = vec![0xff; 6];
    from_linux.extend_from_slice(&rig.port_mac);
    from_linux.extend_from_slice(&[0x88, 0xb5]);
    from_linux.extend_from_slice(b"glb-director exception path, Linux to wire");
    let end = Instant::now() + PATIENCE;
    let mut seen = false;
    while !seen && Instant::now() < end {
        kni.send(&from_linux);
        seen = !rig
            .peer
            .collect(1, Duration::from_millis(300), |f| {
                f == from_linux.as_slice()
            })
            .is_empty();
    }
    assert!(
        seen,
        "the frame sent on vglb_kni0 never left through the port\n{}",
        rig.director.stderr()
    );
    let s = rig.director.wait_stats("exception counters", |s| {
        s.get("core1.kni") >= 1 && s.get("core1.kni_tx_sent") >= 1
    });
    assert!(s.get("core2.unmatched") >= 1, "the worker classified it");
    let (status, stderr) = rig.director.stop();
    assert!(status.success(), "exit {status}\n{stderr}");
    assert!(
        !rig.ns.has_link("vglb_kni0"),
        "vglb_kni0 must go away when the director stops"
    );
}

#[test]
fn reload_swaps_hops_and_a_corrupt_table_keeps_the_old_one() {
    let backends = [("192.168.60.21", true), ("192.168.60.22", true)];
    let mut rig = VethRig::start("rl", false, false, &backends);
    let src = Ipv4Addr::new(172, 16, 4, 1);
    let frame = tcp4(&src.to_string(), 40_300, VIP, 80);
    let before = rig.round_trip(&frame);
    assert_eq!(before, expected_hops(&rig.table(), src));

    // The flow's primary goes unhealthy: rebuild with the CLI, reload.
    let unhealthy: Vec<(&str, bool)> = backends
        .iter()
        .map(|&(ip, _)| (ip, ip != before[0].to_string()))
        .collect();
    std::fs::write(&rig.table_json, table_text(&unhealthy)).unwrap();
    build_table(&rig.table_json, &rig.table_bin);
    let after_expected = expected_hops(&rig.table(), src);
    assert_eq!(
        after_expected,
        [before[1], before[0]],
        "the rebuilt table swaps the flow's hops (test premise)"
    );
    rig.director.signal(libc::SIGUSR1);
    rig.director.wait_log("forwarding table reloaded", 1);
    let end = Instant::now() + PATIENCE;
    let mut now = rig.round_trip(&frame);
    while now != after_expected && Instant::now() < end {
        now = rig.round_trip(&frame);
    }
    assert_eq!(now, after_expected, "hops after the reload");
    rig.director
        .wait_stats("the core to count the reload", |s| s.cores("reloads") >= 1);

    // A corrupt table is refused and traffic keeps the last good one.
    std::fs::write(&rig.table_bin, b"this is not a forwarding table").unwrap();
    rig.director.signal(libc::SIGUSR1);
    rig.director.wait_log("reload failed", 1);
    assert!(
        rig.director
            .stderr()
            .contains("still serving the previous table"),
        "{}",
        rig.director.stderr()
    );
    for _ in 0..3 {
        assert_eq!(rig.round_trip(&frame), after_expected);
    }
    let s = rig.director.latest_stats().unwrap();
    assert_eq!(s.cores("reloads"), 1, "only the good table was swapped in");
    let (status, stderr) = rig.director.stop();
    assert!(status.success(), "exit {status}\n{stderr}");
}

/// A capture of `matched` frames to VIP:80 and `unmatched` to VIP:81.
fn traffic_pcap(path: &Path, matched: u8, unmatched: u8) {
    let mut frames = Vec::new();
    for i in 0..matched {
        frames.push(tcp4(&format!("172.16.5.{}", i + 1), 41_000, VIP, 80));
    }
    for i in 0..unmatched {
        frames.push(tcp4(&format!("172.16.6.{}", i + 1), 41_000, VIP, 81));
    }
    write_pcap(path, &frames);
}

/// A director.conf with a distributor (lcore 1) and its worker (lcore 2)
/// on port 0.
fn dist_config(statsd_port: u16) -> String {
    format!(
        r#"{{"outbound_gateway_mac": "02:47:4c:42:00:01", "outbound_src_ip": "{SRC_IP}",
            "statsd_port": {statsd_port},
            "flow_paths": [{{"rx_port": 0, "rx_queue": 0, "tx_port": 0, "tx_queue": 0}}],
            "lcores": {{"lcore-1": {{"rx": true, "tx": true, "dist": true, "num_dist_workers": 1,
                                     "flow_paths": [0]}},
                        "lcore-2": {{"work": true, "work_source": 1}}}}}}"#
    )
}

/// Metric lines `name:value|c|#tags` into (name, tags) → value.
fn parse_metrics(datagram: &str) -> Vec<(String, String, u64)> {
    datagram
        .lines()
        .map(|l| {
            let (name, rest) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let mut parts = rest.split('|');
            let value: u64 = parts.next().unwrap().parse().unwrap();
            assert_eq!(parts.next(), Some("c"), "a counter: {l:?}");
            let tags = parts
                .next()
                .and_then(|t| t.strip_prefix('#'))
                .unwrap_or_else(|| panic!("DogStatsD tags missing: {l:?}"));
            (name.to_owned(), tags.to_owned(), value)
        })
        .collect()
}

#[test]
fn statsd_metrics_arrive_with_plausible_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let config = tmp.path().join("director.conf");
    std::fs::write(&config, dist_config(port)).unwrap();
    let table = compiled_table(tmp.path(), &BACKENDS);
    let input = tmp.path().join("in.pcap");
    traffic_pcap(&input, 12, 5);
    let out = tmp.path().join("out.pcap");

    let eal = eal_args(&[1, 2], pcap_vdev(&input, &out));
    let started = Instant::now();
    let d = Director::spawn(director_cmd(&eal, &config, &table));

    // Two reports: the first carries everything (the capture is replayed
    // at once), the second only zeros (counters since the last send).
    let mut reports: Vec<Vec<(String, String, u64)>> = Vec::new();
    let mut current = Vec::new();
    let mut last_rx = Instant::now();
    let mut buf = [0u8; 65536];
    while reports.len() < 2 && started.elapsed() < Duration::from_secs(45) {
        match sock.recv(&mut buf) {
            Ok(n) => {
                current.extend(parse_metrics(std::str::from_utf8(&buf[..n]).unwrap()));
                last_rx = Instant::now();
            }
            Err(_) => {
                // A report is a burst of datagrams; a pause ends it.
                if !current.is_empty() && last_rx.elapsed() > Duration::from_secs(1) {
                    reports.push(std::mem::take(&mut current));
                }
            }
        }
    }
    assert_eq!(
        reports.len(),
        2,
        "expected two statsd reports within 45 s\n{}",
        d.stderr()
    );
    let (status, stderr) = d.stop();
    assert!(status.success(), "exit {status}\n{stderr}");

    let get = |r: &[(String, String, u64)], name: &str, tags: &str| -> u64 {
        let full = format!("glb_director_ng.{name}");
        let hits: Vec<u64> = r
            .iter()
            .filter(|(n, t, _)| *n == full && t == tags)
            .map(|(_, _, v)| *v)
            .collect();
        assert_eq!(hits.len(), 1, "{full} with tags {tags} once per report");
        hits[0]
    };
    let first = &reports[0];
    let port_metrics = [
        "port.packets.rx",
        "port.packets.tx",
        "port.packets.rx_missed",
        "port.packets.rx_errors",
        "port.packets.tx_errors",
        "port.packets.rx_nombuf",
        "port.bytes.rx",
        "port.bytes.tx",
    ];
    let queue_metrics = [
        "queue.packets.rx",
        "queue.packets.tx",
        "queue.packets.rx_errors",
        "queue.bytes.rx",
        "queue.bytes.tx",
    ];
    let core_metrics = [
        "core.packets.total",
        "core.packets.matched",
        "core.packets.unmatched",
        "core.packets.rx_errors",
        "core.packets.kni",
        "core.packets.encap.success",
        "core.packets.encap.failure",
        "core.packets.eth_tx_sent",
        "core.packets.kni_tx_sent",
        "core.config_reload_count",
    ];
    for r in &reports {
        for m in port_metrics {
            get(r, m, "port:0");
        }
        for m in queue_metrics {
            get(r, m, "port:0,queue:0");
        }
        for core in ["core:1", "core:2"] {
            for m in core_metrics {
                get(r, m, core);
            }
        }
    }
    // 17 frames in; 12 to the bind, 5 to an unbound port.
    assert_eq!(get(first, "port.packets.rx", "port:0"), 17);
    assert_eq!(get(first, "port.packets.tx", "port:0"), 12);
    assert_eq!(get(first, "queue.packets.rx", "port:0,queue:0"), 17);
    assert_eq!(get(first, "port.bytes.rx", "port:0"), 17 * 54);
    // The distributor transmits, the worker processes.
    assert_eq!(get(first, "core.packets.eth_tx_sent", "core:1"), 12);
    assert_eq!(get(first, "core.packets.total", "core:2"), 17);
    assert_eq!(get(first, "core.packets.matched", "core:2"), 12);
    assert_eq!(get(first, "core.packets.unmatched", "core:2"), 5);
    assert_eq!(get(first, "core.packets.encap.success", "core:2"), 12);
    assert_eq!(get(first, "core.packets.encap.failure", "core:2"), 0);
    assert_eq!(get(first, "core.config_reload_count", "core:2"), 0);
    // Each encapsulated frame is 54 - 14 + 14 + 20 + 8 + 8 + 4 bytes.
    assert_eq!(get(first, "port.bytes.tx", "port:0"), 12 * 94);
    for (n, t, v) in &reports[1] {
        assert_eq!(
            *v, 0,
            "second report, {n} {t}: nothing happened since the first"
        );
    }
    assert_eq!(read_pcap(&out).len(), 12);
}

#[test]
fn ready_notification_reaches_notify_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let (notify_path, notify) =
        glb_testkit::notify::listener(tmp.path(), Duration::from_millis(200));
    let config = tmp.path().join("director.conf");
    std::fs::write(&config, dist_config(9)).unwrap();
    let table = compiled_table(tmp.path(), &BACKENDS);
    let input = tmp.path().join("in.pcap");
    traffic_pcap(&input, 1, 0);

    let eal = eal_args(&[1, 2], pcap_vdev(&input, &tmp.path().join("out.pcap")));
    let mut cmd = director_cmd(&eal, &config, &table);
    cmd.env("NOTIFY_SOCKET", &notify_path);
    let d = Director::spawn(cmd);
    let recv = |want: &str| {
        let end = Instant::now() + PATIENCE;
        while Instant::now() < end {
            if let Some(msg) = glb_testkit::notify::next(&notify) {
                if msg.lines().any(|l| l == want) {
                    return msg;
                }
            }
        }
        panic!("no {want} on NOTIFY_SOCKET\n{}", d.stderr());
    };
    recv("READY=1");
    // Ready means the ports are up: the director logged that it runs
    // before it said so. The line is already in the pipe; give the
    // thread that collects stderr a moment to read it.
    let end = Instant::now() + Duration::from_secs(2);
    while !d.stderr().contains("director running") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        d.stderr().contains("director running"),
        "READY=1 before start-up finished\n{}",
        d.stderr()
    );
    d.signal(libc::SIGTERM);
    recv("STOPPING=1");
    let (status, stderr) = d.stop();
    assert!(status.success(), "exit {status}\n{stderr}");
}

#[test]
fn bad_start_up_input_fails_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("director.conf");
    std::fs::write(&config, dist_config(9)).unwrap();
    let table = compiled_table(tmp.path(), &BACKENDS);
    let run_it = |eal: Vec<String>, table: &Path| {
        let out = director_cmd(&eal, &config, table)
            .output()
            .expect("run glb-director");
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let eal = eal_args(&[1, 2], "--vdev=net_null0,no-rx=1");

    // A missing table: refused before DPDK starts, naming the file.
    let missing = tmp.path().join("missing.bin");
    let (st, err) = run_it(eal.clone(), &missing);
    assert!(!st.success());
    assert!(err.contains("missing.bin: cannot read"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // A configured lcore that is the EAL main lcore.
    let mut eal_main = vec!["--lcores=1@0,2@0".to_string()];
    eal_main.extend(eal_base());
    eal_main.push("--vdev=net_null0,no-rx=1".into());
    let (st, err) = run_it(eal_main, &table);
    assert!(!st.success());
    assert!(
        err.contains("lcores.\"lcore-1\"") && err.contains("main lcore"),
        "{err}"
    );

    // A flow path on a port the EAL does not have.
    let mut eal_noport = vec![lcores_arg(&[1, 2])];
    eal_noport.extend(eal_base());
    let (st, err) = run_it(eal_noport, &table);
    assert!(!st.success());
    assert!(err.contains("flow_paths use port 0"), "{err}");
}

/// `num_worker_queues: 2` and a run-to-completion core per queue: each
/// core's input (one `net_pcap` queue each) leaves, encapsulated, on its
/// own transmit queue.
#[test]
fn two_queues_on_two_run_to_completion_cores() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("director.conf");
    std::fs::write(
        &config,
        format!(
            r#"{{"outbound_gateway_mac": "02:47:4c:42:00:01", "outbound_src_ip": "{SRC_IP}",
                "num_worker_queues": 2,
                "flow_paths": [{{"rx_port": 0, "rx_queue": 0, "tx_port": 0, "tx_queue": 0}},
                               {{"rx_port": 0, "rx_queue": 1, "tx_port": 0, "tx_queue": 1}}],
                "lcores": {{"lcore-1": {{"rx": true, "tx": true, "work": true, "flow_paths": [0]}},
                            "lcore-2": {{"rx": true, "tx": true, "work": true, "flow_paths": [1]}}}}}}"#
        ),
    )
    .unwrap();
    let table = compiled_table(tmp.path(), &BACKENDS);
    let bin = std::fs::read(&table).unwrap();

    let sources: [Vec<Ipv4Addr>; 2] = [
        (1..=5).map(|i| Ipv4Addr::new(172, 16, 7, i)).collect(),
        (1..=7).map(|i| Ipv4Addr::new(172, 16, 8, i)).collect(),
    ];
    let mut vdev = "--vdev=net_pcap0".to_string();
    for (q, srcs) in sources.iter().enumerate() {
        let frames: Vec<Vec<u8>> = srcs
            .iter()
            .map(|s| tcp4(&s.to_string(), 42_000, VIP, 80))
            .collect();
        let input = tmp.path().join(format!("in{q}.pcap"));
        write_pcap(&input, &frames);
        vdev.push_str(&format!(",rx_pcap={}", input.display()));
    }
    for q in 0..2 {
        vdev.push_str(&format!(
            ",tx_pcap={}",
            tmp.path().join(format!("out{q}.pcap")).display()
        ));
    }
    let eal = eal_args(&[1, 2], vdev);
    let mut d = Director::spawn(director_cmd(&eal, &config, &table));
    let s = d.wait_stats("both queues processed", |s| {
        s.get("core1.eth_tx_sent") == 5 && s.get("core2.eth_tx_sent") == 7
    });
    assert_eq!(s.get("port0.rx"), 12);
    let (status, stderr) = d.stop();
    assert!(status.success(), "exit {status}\n{stderr}");

    for (q, srcs) in sources.iter().enumerate() {
        let out = read_pcap(&tmp.path().join(format!("out{q}.pcap")));
        assert_eq!(out.len(), srcs.len(), "frames on transmit queue {q}");
        for (f, src) in out.iter().zip(srcs) {
            // net_pcap's port MAC is its own; check everything else.
            let mac: [u8; 6] = f[6..12].try_into().unwrap();
            let (hops, inner) = parse_encap(f, mac);
            assert_eq!(hops, expected_hops(&bin, *src), "queue {q}, {src}");
            assert_eq!(inner[12..16], src.octets(), "queue {q}: inner source");
        }
    }
}
