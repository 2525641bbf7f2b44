//! The XDP director on a veth pair between two network namespaces, native
//! XDP: `glb-director-xdp` runs in the director's namespace on `vd`; the
//! test plays router and client on the peer `vp` (which carries the passer,
//! so frames sent back with XDP_TX arrive).
//!
//! Frames from the peer come back encapsulated, byte for byte as glb-core
//! encapsulates them; an unmatched datagram reaches a socket in the
//! director's namespace; SIGUSR1 under a steady stream moves flows to the
//! new table without one frame routed by a mix of both; a corrupt table on
//! reload keeps traffic flowing; statsd lines arrive as SPEC §14 names
//! them; READY=1 arrives. The root-shim set-up is checked too.

mod support;

use std::collections::HashSet;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use glb_core::encap::{EncapParams, Encapsulator};
use glb_core::path::{HEADROOM, OwnedFrame, Verdict, process_one};
use glb_core::route::{Forwarder, RouteOptions};
use glb_core::table::TableFile;
use glb_core::wire::ethernet;
use glb_director_xdp::objects;
use glb_testkit::frames::{eth, ipv4, tcp, v4};
use glb_testkit::netns::{Netns, link, require_root};
use glb_testkit::notify;
use glb_testkit::rawsock::RawSocket;

const VIP: &str = "10.10.10.10";
const KEY: &str = "00112233445566778899aabbccddeeff";
const DIRECTOR_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const TABLE_A: [&str; 2] = ["192.0.2.100", "192.0.2.101"];
const TABLE_B: [&str; 2] = ["192.0.2.200", "192.0.2.201"];

fn table(backends: &[&str]) -> Vec<u8> {
    glb_testkit::table::compile(&glb_testkit::table::tables_json(&[(
        KEY,
        &format!(r#"{{"ip": "{VIP}", "proto": "tcp", "port": 80}}"#),
        backends,
    )]))
}

/// Replaces `path` the way an operator's tools do (write, then rename).
fn write_table(path: &Path, bytes: &[u8]) {
    glb_io::atomic_file::replace(path, bytes).unwrap();
}

/// Two namespaces joined by a veth pair, addresses on both ends, the
/// passer on the peer's end.
struct Rig {
    director_ns: Netns,
    peer_ns: Netns,
    vd_mac: [u8; 6],
    vp_mac: [u8; 6],
    _passer: aya::Ebpf,
    dir: tempfile::TempDir,
}

impl Rig {
    fn new(tag: &str) -> Rig {
        require_root("the XDP namespace tests");
        let director_ns = Netns::new(&format!("{tag}d"));
        let peer_ns = Netns::new(&format!("{tag}p"));
        link(
            &director_ns,
            "vd",
            "192.0.2.1/24",
            &peer_ns,
            "vp",
            "192.0.2.2/24",
        );
        let passer = peer_ns.enter(|| {
            let mut e = aya::Ebpf::load_file(objects::built("passer.o")).expect("passer.o");
            let p: &mut aya::programs::Xdp = e.program_mut("xdp_pass").unwrap().try_into().unwrap();
            p.load().expect("loading the passer");
            p.attach("vp", aya::programs::XdpFlags::DRV_MODE)
                .expect("native XDP on the peer veth");
            e
        });
        Rig {
            vd_mac: director_ns.mac("vd"),
            vp_mac: peer_ns.mac("vp"),
            director_ns,
            peer_ns,
            _passer: passer,
            dir: tempfile::Builder::new()
                .prefix("glb-xdp-netns.")
                .tempdir()
                .unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// director.conf for this rig: the peer is the gateway; statsd on
    /// `statsd_port`. No DPDK keys: the XDP director needs none.
    fn config(&self, statsd_port: u16) -> PathBuf {
        let m = self.vp_mac;
        let text = format!(
            r#"{{"outbound_gateway_mac": "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                "outbound_src_ip": "{DIRECTOR_IP}", "statsd_port": {statsd_port},
                "hash_fields": {{"src_addr": true, "src_port": true}}}}"#,
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
        let p = self.path("director.conf");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A TCP SYN from the client's `sport` to the VIP, addressed to the
    /// director's interface.
    fn syn(&self, sport: u16) -> Vec<u8> {
        let ip = ipv4(v4("198.51.100.7"), v4(VIP), 6, sport, &tcp(sport, 80, b""));
        let mut f = eth(0x0800, &ip);
        f[..6].copy_from_slice(&self.vd_mac);
        f[6..12].copy_from_slice(&self.vp_mac);
        f
    }

    fn peer_socket(&self) -> RawSocket {
        self.peer_ns
            .enter(|| RawSocket::open("vp").expect("raw socket on vp"))
    }
}

/// A daemon started in the director's namespace, stopped on drop.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `exe` with its notification socket and log in the rig's
    /// folder `name`, and waits until it is ready.
    fn start(rig: &Rig, exe: &str, args: &[&str], name: &str) -> Daemon {
        let home = rig.path(name);
        std::fs::create_dir(&home).unwrap();
        let (notify_path, notify) = notify::listener(&home, Duration::from_millis(200));
        let log = home.join("log");
        let child = rig
            .director_ns
            .command(Path::new(exe))
            .args(args)
            .env("NOTIFY_SOCKET", notify_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {exe}: {e}"));
        let mut daemon = Daemon { child, log };
        daemon.wait_ready(&notify, Duration::from_secs(30));
        daemon
    }

    fn wait_ready(&mut self, notify: &UnixDatagram, within: Duration) {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if notify::next(notify).is_some_and(|m| m.lines().any(|l| l == "READY=1")) {
                return;
            }
            if let Some(s) = self.child.try_wait().unwrap() {
                panic!("exited ({s}) before READY=1:\n{}", self.log());
            }
        }
        panic!("no READY=1 within {within:?}:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig}");
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn stop(mut self) -> String {
        self.signal("-TERM");
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                let log = self.log();
                assert!(s.success(), "exit status {s}:\n{log}");
                return log;
            }
            assert!(
                Instant::now() < end,
                "did not stop on SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_log(&self, needle: &str, within: Duration) {
        let end = Instant::now() + within;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < end,
                "no {needle:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_gue(f: &[u8]) -> bool {
    f.len() > 42 && f[12..14] == [0x08, 0x00] && f[23] == 17 && f[36..38] == 19523u16.to_be_bytes()
}

/// The outer destination and the GUE hop of an encapsulated frame.
fn hops(f: &[u8]) -> (Ipv4Addr, Ipv4Addr) {
    let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    let hop = Ipv4Addr::new(f[50], f[51], f[52], f[53]);
    (dst, hop)
}

/// Sends a SYN from client port `sport` and requires exactly one frame
/// back: glb-core's encapsulation of it by `table`.
fn round_trip(rig: &Rig, raw: &RawSocket, director: &Daemon, sport: u16, table: &[u8], what: &str) {
    let frame = rig.syn(sport);
    raw.send(&frame);
    let got = raw.collect(1, Duration::from_secs(5), is_gue);
    assert_eq!(
        got.len(),
        1,
        "{what}: no encapsulated frame came back:\n{}",
        director.log()
    );
    assert_eq!(got[0], expected(rig, table, &frame), "{what}: the frame");
}

/// glb-core's encapsulation of `frame` by `table`, as the director on `vd`
/// should send it.
fn expected(rig: &Rig, table: &[u8], frame: &[u8]) -> Vec<u8> {
    let file = TableFile::parse(table).unwrap();
    let options = RouteOptions {
        hash_fields: glb_core::flowhash::HashFields {
            src_addr: true,
            src_port: true,
            ..glb_core::flowhash::HashFields::NONE
        },
        ..RouteOptions::default()
    };
    let fwd = Forwarder::new(&file, options);
    let enc = Encapsulator::new(EncapParams {
        dst_mac: ethernet::Address(rig.vp_mac),
        src_mac: ethernet::Address(rig.vd_mac),
        src_ip: DIRECTOR_IP,
        udp_checksum: true,
    });
    let mut buf = OwnedFrame::new(frame, HEADROOM);
    let v = process_one(&fwd, &enc, &mut buf);
    assert!(
        matches!(v, Verdict::Forward(_)),
        "glb-core does not forward the test frame: {v:?}"
    );
    buf.frame().to_vec()
}

#[test]
fn director_on_a_veth_pair() {
    let rig = Rig::new("xdp");
    let table_path = rig.path("forwarding_table.bin");
    let table_a = table(&TABLE_A);
    let table_b = table(&TABLE_B);
    write_table(&table_path, &table_a);
    // statsd: a socket in the director's namespace, on its loopback.
    let statsd = rig
        .director_ns
        .enter(|| UdpSocket::bind("127.0.0.1:0").unwrap());
    statsd
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let statsd_port = statsd.local_addr().unwrap().port();
    let config = rig.config(statsd_port);
    let pid_file = rig.path("director.pid");
    let director = Daemon::start(
        &rig,
        env!("CARGO_BIN_EXE_glb-director-xdp"),
        &[
            "--interface",
            "vd",
            "--config-file",
            config.to_str().unwrap(),
            "--forwarding-table",
            table_path.to_str().unwrap(),
            "--bpf-program",
            objects::built("glb_encap.o").to_str().unwrap(),
            "--xdpcap-hook-path",
            "",
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
        "director",
    );
    let log = director.log();
    assert!(
        log.contains("attached") && log.contains("native"),
        "not attached natively:\n{log}"
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, director.child.id(), "the pid file names the director");

    let raw = rig.peer_socket();
    // Encapsulated back, exactly as glb-core encapsulates.
    round_trip(&rig, &raw, &director, 40_000, &table_a, "a SYN to the VIP");

    // Unmatched: a datagram to the director's own address reaches a
    // socket there (ARP on the way passes through too).
    let listener = rig
        .director_ns
        .enter(|| UdpSocket::bind((DIRECTOR_IP, 9999)).unwrap());
    listener
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    rig.peer_ns.enter(|| {
        let s = UdpSocket::bind((PEER_IP, 0)).unwrap();
        s.send_to(b"to the kernel", (DIRECTOR_IP, 9999)).unwrap();
    });
    let mut buf = [0u8; 64];
    let (n, from) = listener
        .recv_from(&mut buf)
        .expect("the unmatched datagram reached no socket");
    assert_eq!(&buf[..n], b"to the kernel");
    assert_eq!(from.ip(), PEER_IP);

    // A reload under a steady stream: every frame is routed by A or by B,
    // never by a mix.
    // The receiver collects from before the first frame to after the
    // last; the sender paces itself so the receiver keeps up.
    let stop = AtomicBool::new(false);
    let (sent, frames) = std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            let mut all = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                all.extend(raw.collect(usize::MAX, Duration::from_millis(100), is_gue));
            }
            all.extend(raw.collect(usize::MAX, Duration::from_millis(300), is_gue));
            all
        });
        let sender = s.spawn(|| {
            let tx = rig.peer_socket();
            let mut n = 0u32;
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end && n < 40_000 {
                tx.send(&rig.syn(1024 + (n % 20_000) as u16));
                n += 1;
                if n % 8 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            n
        });
        std::thread::sleep(Duration::from_millis(1000));
        write_table(&table_path, &table_b);
        director.signal("-USR1");
        director.wait_log("forwarding table reloaded", Duration::from_secs(10));
        let sent = sender.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        (sent, receiver.join().unwrap())
    });
    let set = |t: [&str; 2]| {
        t.iter()
            .map(|a| a.parse::<Ipv4Addr>().unwrap())
            .collect::<HashSet<_>>()
    };
    let (a, b) = (set(TABLE_A), set(TABLE_B));
    let (mut by_a, mut by_b, mut mixed) = (0, 0, 0);
    for f in &frames {
        let (dst, hop) = hops(f);
        if a.contains(&dst) && a.contains(&hop) {
            by_a += 1;
        } else if b.contains(&dst) && b.contains(&hop) {
            by_b += 1;
        } else {
            mixed += 1;
        }
    }
    eprintln!(
        "reload under load: {sent} sent, {} back: {by_a} by table A, {by_b} by table B, {mixed} mixed",
        frames.len()
    );
    assert_eq!(mixed, 0, "frames routed by a mix of both tables");
    assert!(
        by_a > 0 && by_b > 0,
        "the stream did not span the reload ({by_a} A, {by_b} B)"
    );

    // A corrupt table on reload: logged, traffic keeps flowing by B.
    write_table(&table_path, b"GLBD this is not a table");
    director.signal("-USR1");
    director.wait_log("reload failed", Duration::from_secs(10));
    round_trip(
        &rig,
        &raw,
        &director,
        41_000,
        &table_b,
        "after a bad reload",
    );

    // statsd: SPEC §14's names, tagged glb_engine:xdp, within one period.
    // One report may take several datagrams: read until they stop.
    let mut lines: Vec<String> = Vec::new();
    let end = Instant::now() + Duration::from_secs(15);
    let mut buf = vec![0u8; 65536];
    loop {
        match statsd.recv(&mut buf) {
            Ok(n) => lines.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_owned),
            ),
            Err(_) if !lines.is_empty() => break,
            Err(_) => assert!(Instant::now() < end, "no statsd datagram within 15 s"),
        }
    }
    for want in [
        "glb.director.packets.processed:",
        "glb.director.packets.encapsulated:",
        "glb.director.packets.encapsulated_bytes:",
        "glb.director.packets.results:",
        "glb.director.packets.internal_errors:",
        "glb.director.bind.packets:",
        "glb.director.backend.packets:",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "no {want} line in {lines:?}"
        );
    }
    assert!(
        lines.iter().all(|l| l.contains("|c|#glb_engine:xdp")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.ends_with("result:Matched")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("error:ErrorMissingGatewayMAC")),
        "{lines:?}"
    );

    let xdp_on_vd = || {
        let out = Command::new("ip")
            .args(["-n", &rig.director_ns.name, "link", "show", "vd"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        xdp_on_vd().contains("prog/xdp"),
        "no XDP program on vd: {}",
        xdp_on_vd()
    );
    let log = director.stop();
    assert!(log.contains("detached"), "{log}");
    assert!(!pid_file.exists(), "the pid file is removed on exit");
    let text = xdp_on_vd();
    assert!(
        !text.contains("prog/xdp"),
        "still attached after exit: {text}"
    );
}

/// A bpffs mounted for one test, unmounted when it ends.
struct Bpffs(tempfile::TempDir);

impl Bpffs {
    fn mount() -> Bpffs {
        let dir = tempfile::Builder::new()
            .prefix("glb-xdp-bpffs.")
            .tempdir()
            .unwrap();
        let status = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a bpffs at {}",
            dir.path().display()
        );
        Bpffs(dir)
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn director_in_a_root_shim_slot() {
    let rig = Rig::new("xdr");
    let bpffs = Bpffs::mount();
    let pin = bpffs.0.path().join("xdp_root_array@vd");
    let hook = bpffs.0.path().join("glb-director-xdp-capture-hook");
    let table_path = rig.path("forwarding_table.bin");
    let table_a = table(&TABLE_A);
    write_table(&table_path, &table_a);
    let config = rig.config(9);
    let shim = Daemon::start(
        &rig,
        env!("CARGO_BIN_EXE_xdp-root-shim"),
        &[
            objects::built("tailcall.o").to_str().unwrap(),
            pin.to_str().unwrap(),
            "vd",
        ],
        "shim",
    );
    assert!(
        pin.exists(),
        "the shim pinned no array at {}",
        pin.display()
    );

    let raw = rig.peer_socket();
    // An empty root array passes everything to the kernel.
    raw.send(&rig.syn(40_000));
    assert!(
        raw.collect(1, Duration::from_millis(500), is_gue)
            .is_empty(),
        "encapsulated without a director"
    );

    let director = Daemon::start(
        &rig,
        env!("CARGO_BIN_EXE_glb-director-xdp"),
        &[
            &format!("--xdp-root-path={}", pin.display()),
            "--xdp-root-idx=2",
            &format!("--config-file={}", config.display()),
            &format!("--forwarding-table={}", table_path.display()),
            &format!("--bpf-program={}", objects::built("glb_encap.o").display()),
            &format!("--xdpcap-hook-path={}", hook.display()),
        ],
        "director",
    );
    assert!(hook.exists(), "no xdpcap hook pinned:\n{}", director.log());
    // The pin names the interface, so the source MAC is vd's.
    round_trip(
        &rig,
        &raw,
        &director,
        40_001,
        &table_a,
        "through the root shim",
    );

    director.stop();
    assert!(!hook.exists(), "the xdpcap hook pin is removed on exit");
    raw.send(&rig.syn(40_002));
    assert!(
        raw.collect(1, Duration::from_millis(500), is_gue)
            .is_empty(),
        "still encapsulating after the director left its slot"
    );
    let log = shim.stop();
    assert!(log.contains("detached"), "{log}");
    assert!(!pin.exists(), "the shim removes its pin on exit");
}

#[test]
fn generic_mode_with_a_warning_where_the_driver_has_no_xdp() {
    let rig = Rig::new("xdg");
    // A bridge: its driver has no native XDP.
    rig.director_ns
        .exec(&["ip", "link", "add", "d0", "type", "bridge"]);
    rig.director_ns.exec(&["ip", "link", "set", "d0", "up"]);
    let table_path = rig.path("forwarding_table.bin");
    write_table(&table_path, &table(&TABLE_A));
    let config = rig.config(9);
    let director = Daemon::start(
        &rig,
        env!("CARGO_BIN_EXE_glb-director-xdp"),
        &[
            "--interface=d0",
            &format!("--config-file={}", config.display()),
            &format!("--forwarding-table={}", table_path.display()),
            &format!("--bpf-program={}", objects::built("glb_encap.o").display()),
            "--xdpcap-hook-path=",
        ],
        "director",
    );
    let log = director.log();
    assert!(
        log.contains("WARN") && log.contains("generic mode"),
        "no warning about generic mode:\n{log}"
    );
    assert!(
        log.contains("mode=\"generic\""),
        "not attached in generic mode:\n{log}"
    );
    let out = Command::new("ip")
        .args(["-n", &rig.director_ns.name, "link", "show", "d0"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp"),
        "no XDP program on d0"
    );
    director.stop();
}
