//! Network-namespace plumbing for the end-to-end tests and the bench:
//! namespaces and veth links that are removed even when a test fails, the
//! daemon under test started inside a namespace, a test "director" that
//! encapsulates with glb-core's director code, and packet builders written
//! field by field (checksums from the test kit, not from the code under
//! test).
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use glb_core::ForwardingTables;
use glb_core::encap::{self, EncapParams, Encapsulator};
use glb_core::route::{Decision, Forwarder, RouteOptions};
use glb_core::table::TableFile;
use glb_core::wire::ethernet;
use glb_redirect::counters::{Counter, Snapshot};
use glb_redirect::tun::Tun;
use glb_testkit::checksum::{csum, transport_v4};
pub use glb_testkit::netns::{Netns, link};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Generous bound for anything that waits on the network: the machine is
/// small and shared, so only a hang should ever hit it.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Fails the test with a clear message unless we are root and `ip` works.
pub fn require_root_and_ip() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "these tests create network namespaces, TUN devices and raw sockets: run them as root"
    );
    glb_testkit::netns::require_command("ip", &["-V"], "iproute2");
    assert!(
        Path::new("/dev/net/tun").exists(),
        "/dev/net/tun is missing: the kernel needs TUN support (CONFIG_TUN)"
    );
}

/// A unique prefix for this process's namespaces.
pub fn unique_prefix(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "glbr-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The daemon under test.
pub const GLB_REDIRECT: &str = env!("CARGO_BIN_EXE_glb-redirect");

/// A namespace `{prefix}-{name}` joined to `hub` by a veth pair:
/// `to-{name}` in `hub` with `{net}.1/24`, `eth0` in the new namespace
/// with `{net}.2/24`.
pub fn spoke(hub: &Netns, prefix: &str, name: &str, net: &str) -> Netns {
    let ns = Netns::create(format!("{prefix}-{name}"));
    link(
        hub,
        &format!("to-{name}"),
        &format!("{net}.1/24"),
        &ns,
        "eth0",
        &format!("{net}.2/24"),
    );
    ns
}

/// Runs `glb-redirect ARGS --stats-file STATS` in `ns` to its end, for a
/// start-up that must fail: fails the test if it succeeded; its stderr.
pub fn start_refused(ns: &Netns, args: &[&str], stats: &Path) -> String {
    let out = ns
        .command(Path::new(GLB_REDIRECT))
        .args(args)
        .arg("--stats-file")
        .arg(stats)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "glb-redirect {args:?} started: {err}"
    );
    err
}

/// A running `glb-redirect`, killed on drop.
#[derive(Debug)]
pub struct Daemon {
    pub name: String,
    pub child: Child,
    pub stats: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts the daemon in `ns` and waits until its stats file appears
    /// (written once its sockets are bound).
    pub fn start(name: &str, ns: &Netns, dir: &Path, extra: &[&str]) -> Daemon {
        Self::start_env(name, ns, dir, extra, &[])
    }

    /// [`Daemon::start`] with extra environment variables.
    pub fn start_env(
        name: &str,
        ns: &Netns,
        dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let stats = dir.join(format!("{name}.stats"));
        let log = dir.join(format!("{name}.log"));
        let log_file = File::create(&log).unwrap();
        let child = ns
            .command(Path::new(GLB_REDIRECT))
            .args(["--stats-file", stats.to_str().unwrap()])
            .args(["--stats-interval-ms", "100"])
            .args(extra)
            .env("RUST_LOG", "glb_redirect=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("cannot start glb-redirect");
        let mut d = Daemon {
            name: name.to_owned(),
            child,
            stats,
            log,
        };
        let start = Instant::now();
        while !d.stats.exists() {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!(
                    "{name}: glb-redirect exited with {status}: {}",
                    d.log_text()
                );
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{name}: no stats file after {PATIENCE:?}: {}",
                d.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
        d
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The counters as the daemon last wrote them.
    pub fn stats(&self) -> Snapshot {
        Snapshot::parse(&std::fs::read_to_string(&self.stats).unwrap_or_default())
    }

    /// Waits until `pred` holds for the counters; fails with all of them
    /// and the daemon's log otherwise.
    pub fn wait_stats(&mut self, what: &str, pred: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let start = Instant::now();
        loop {
            let s = self.stats();
            if pred(&s) {
                return s;
            }
            self.assert_running();
            assert!(
                start.elapsed() < PATIENCE,
                "{}: timed out waiting for {what}; counters:\n{}log:\n{}",
                self.name,
                s.render(),
                self.log_text()
            );
            thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{}: glb-redirect exited with {status}: {}",
                self.name,
                self.log_text()
            );
        }
    }

    pub fn get(&self, c: Counter) -> u64 {
        self.stats().get(c)
    }

    /// How a proxy should end a test that delivered traffic: still
    /// running, no local delivery failed, every datagram accounted for.
    pub fn assert_delivered_cleanly(&mut self) {
        assert_eq!(
            self.get(Counter::LocalDeliveryErrors),
            0,
            "{}: local delivery errors",
            self.name
        );
        self.assert_running_and_accounted();
    }

    /// How a proxy should end any test: still running, every datagram
    /// accounted for.
    pub fn assert_running_and_accounted(&mut self) {
        self.assert_running();
        self.assert_accounted();
    }

    /// Checks that every datagram counted in `total_packets` has exactly
    /// one outcome: accepted, forwarded, dropped, or a failed forward.
    pub fn assert_accounted(&self) {
        let s = self.stats();
        let outcomes: u64 = glb_redirect::counters::NAMES
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                n.starts_with("accepted_")
                    || n.starts_with("forwarded_")
                    || n.starts_with("dropped_")
                    || **n == "forward_errors"
            })
            .map(|(i, _)| glb_redirect::counters::ALL[i])
            .map(|c| s.get(c))
            .sum();
        assert_eq!(
            outcomes,
            s.get(Counter::Total),
            "{}: outcomes do not add up to total_packets:\n{}",
            self.name,
            s.render()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A line-echo TCP server on `vip:port` inside `ns`: each line comes back
/// prefixed with the server's name, so the client sees which proxy
/// served it.
pub fn start_server(ns: &Netns, name: &str, vip: impl Into<IpAddr>, port: u16) -> JoinHandle<()> {
    let vip = vip.into();
    let listener = ns.enter(move || TcpListener::bind((vip, port)).expect("bind the VIP"));
    let name = name.to_owned();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let name = name.clone();
            thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                for line in BufReader::new(conn).lines() {
                    let Ok(line) = line else { return };
                    if writeln!(w, "{name}:{line}").is_err() {
                        return;
                    }
                }
            });
        }
    })
}

/// A client connection made from inside `ns`.
pub fn connect(ns: &Netns, vip: impl Into<IpAddr>, port: u16) -> TcpStream {
    let vip = vip.into();
    let s = ns.enter(move || {
        TcpStream::connect_timeout(&SocketAddr::new(vip, port), PATIENCE)
            .expect("connect to the VIP")
    });
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Sends one line and returns the answer line.
pub fn ask(s: &mut TcpStream, line: &str) -> String {
    writeln!(s, "{line}").expect("send on the client connection");
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut out = String::new();
    r.read_line(&mut out)
        .expect("read the answer (a reset or timeout fails here)");
    out.trim_end().to_owned()
}

/// The forwarding table JSON for one bind and two proxies with the given
/// states.
pub fn table_json(vip: Ipv4Addr, p1: Ipv4Addr, s1: &str, p2: Ipv4Addr, s2: &str) -> String {
    table_json_binds(&[vip.into()], p1, s1, p2, s2)
}

/// The same with one TCP port 80 bind per address.
pub fn table_json_binds(vips: &[IpAddr], p1: Ipv4Addr, s1: &str, p2: Ipv4Addr, s2: &str) -> String {
    let binds = vips
        .iter()
        .map(|v| format!(r#"{{"ip": "{v}", "proto": "tcp", "port": 80}}"#))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"{{"tables": [{{
            "name": "redirect-test",
            "hash_key": "12345678901234561234567890123456",
            "seed": "34567890123456783456789012345678",
            "binds": [{binds}],
            "backends": [
                {{"ip": "{p1}", "state": "{s1}", "healthy": true}},
                {{"ip": "{p2}", "state": "{s2}", "healthy": true}}
            ]
        }}]}}"#
    )
}

/// Compiles a forwarding-table JSON the way glb-director-cli does and
/// loads it the way the director does.
pub fn forwarder(json: &str) -> Forwarder {
    let tables = ForwardingTables::from_json("test.json", json).expect("test table is valid");
    let bin = glb_core::table::compile(&tables);
    let file = TableFile::parse(&bin).expect("compiled table parses");
    Forwarder::new(&file, RouteOptions::default())
}

/// The test director: takes client packets the namespace routes into a
/// TUN device, routes and encapsulates them with glb-core's director
/// code, and sends the GUE packets to the first hop.
pub struct Director {
    pub table: Arc<Mutex<Arc<Forwarder>>>,
    /// GUE packets sent to a proxy.
    pub routed: Arc<AtomicU64>,
    /// IPv4 packets that reached the director with the VIP as source (a
    /// proxy reply that did not go straight to the client).
    pub from_vip: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Director {
    /// Creates TUN `tun` in `ns`, routes `vip` into it and starts
    /// encapsulating with `src` as the outer source.
    pub fn start(ns: &Netns, tun: &str, vip: Ipv4Addr, src: Ipv4Addr, fw: Forwarder) -> Director {
        Self::start_dual(ns, tun, vip, None, src, fw)
    }

    /// Like [`Director::start`], also routing the IPv6 VIP `vip6` into the TUN.
    pub fn start_dual(
        ns: &Netns,
        tun: &str,
        vip: Ipv4Addr,
        vip6: Option<Ipv6Addr>,
        src: Ipv4Addr,
        fw: Forwarder,
    ) -> Director {
        let tun_name = tun.to_owned();
        let (dev, raw) = ns.enter(move || {
            let dev = Tun::open(&tun_name).expect("director TUN");
            let raw = Socket::new(
                Domain::IPV4,
                Type::RAW,
                Some(Protocol::from(libc::IPPROTO_RAW)),
            )
            .expect("director raw socket");
            (dev, raw)
        });
        ns.ip(&["link", "set", tun, "up"]);
        ns.ip(&["route", "add", &format!("{vip}/32"), "dev", tun]);
        ns.sysctl("net.ipv4.ip_forward", "1");
        if let Some(v6) = vip6 {
            ns.sysctl("net.ipv6.conf.all.forwarding", "1");
            ns.ip(&["-6", "route", "add", &format!("{v6}/128"), "dev", tun]);
        }
        let table = Arc::new(Mutex::new(Arc::new(fw)));
        let stop = Arc::new(AtomicBool::new(false));
        let routed = Arc::new(AtomicU64::new(0));
        let from_vip = Arc::new(AtomicU64::new(0));
        let encapsulator = Encapsulator::new(EncapParams {
            dst_mac: ethernet::Address::ZERO,
            src_mac: ethernet::Address::ZERO,
            src_ip: src,
            udp_checksum: true,
        });
        let handle = {
            let (table, stop, routed, from_vip) = (
                table.clone(),
                stop.clone(),
                routed.clone(),
                from_vip.clone(),
            );
            thread::spawn(move || {
                let head = encap::MAX_EXTRA_HEADROOM;
                let mut buf = vec![0u8; head + ethernet::HEADER_LEN + 65536];
                while !stop.load(Ordering::Relaxed) {
                    if !dev.poll_readable(100).unwrap_or(false) {
                        continue;
                    }
                    let Ok(n) = dev.read_packet(&mut buf[head + ethernet::HEADER_LEN..]) else {
                        continue;
                    };
                    // The director's engines see Ethernet frames; give the
                    // IP packet the header a NIC would have delivered.
                    let ethertype: u16 = match buf[head + ethernet::HEADER_LEN] >> 4 {
                        4 => 0x0800,
                        6 => 0x86dd,
                        _ => continue,
                    };
                    let ip_at = head + ethernet::HEADER_LEN;
                    if ethertype == 0x0800 && n >= 20 && buf[ip_at + 12..ip_at + 16] == vip.octets()
                    {
                        from_vip.fetch_add(1, Ordering::Relaxed);
                    }
                    buf[head..head + 12].fill(0);
                    buf[head + 12..head + 14].copy_from_slice(&ethertype.to_be_bytes());
                    let fw = table.lock().unwrap().clone();
                    let frame_len = ethernet::HEADER_LEN + n;
                    let Decision::Forward(route) = fw.route_frame(&buf[head..head + frame_len])
                    else {
                        continue;
                    };
                    let Ok((start, len)) = encapsulator.encapsulate(&mut buf, head, &route) else {
                        continue;
                    };
                    let ip = &buf[start + ethernet::HEADER_LEN..start + len];
                    let to = SockAddr::from(SocketAddrV4::new(route.hops()[0], 0));
                    if raw.send_to(ip, &to).is_ok() {
                        routed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        Director {
            table,
            routed,
            from_vip,
            stop,
            handle: Some(handle),
        }
    }

    /// Loads a new table, as `systemctl reload glb-director` would.
    pub fn set_table(&self, fw: Forwarder) {
        *self.table.lock().unwrap() = Arc::new(fw);
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// An IPv4 header (20 bytes, valid checksum) followed by `payload`.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = csum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A 20-byte TCP header with a valid checksum for `src` → `dst`.
pub fn tcp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
) -> Vec<u8> {
    let mut t = Vec::with_capacity(20);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    let c = transport_v4(src, dst, 6, &t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// A UDP header (checksum 0: none) followed by `payload`.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// A GLB GUE header with a raw first byte (version, C bit, hlen),
/// protocol, next hop and hop count, the listed hops, then `inner`.
pub fn gue_raw(
    byte0: u8,
    proto: u8,
    next_hop: u8,
    hop_count: u8,
    hops: &[Ipv4Addr],
    inner: &[u8],
) -> Vec<u8> {
    let mut g = vec![byte0, proto, 0, 0, 0, 0, next_hop, hop_count];
    for h in hops {
        g.extend_from_slice(&h.octets());
    }
    g.extend_from_slice(inner);
    g
}

/// A well-formed GLB GUE payload.
pub fn gue(proto: u8, next_hop: u8, hops: &[Ipv4Addr], inner: &[u8]) -> Vec<u8> {
    gue_raw(
        1 + hops.len() as u8,
        proto,
        next_hop,
        hops.len() as u8,
        hops,
        inner,
    )
}
