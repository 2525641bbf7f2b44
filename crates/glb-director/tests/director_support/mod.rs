//! Helpers for the tests that run the `glb-director` binary on DPDK
//! software devices: the process itself (with its `--stats-interval`
//! lines), EAL arguments for this machine, network namespaces with veth
//! pairs, raw `AF_PACKET` sockets inside them, and pcap files.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any wait in these tests may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The binary under test.
pub fn director_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_glb-director"))
}

/// `glb-director-cli`, built beside the test (by `cargo test
/// --workspace` or `cargo build -p glb-director-cli`), or as
/// `GLB_DIRECTOR_CLI` says.
pub fn cli_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GLB_DIRECTOR_CLI") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let p = profile.join("glb-director-cli");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p glb-director-cli` first \
         (`cargo test --workspace` builds it), or set GLB_DIRECTOR_CLI",
        p.display()
    );
    p
}

/// Requires root, for namespaces, raw sockets and tap devices.
pub fn require_root(what: &str) {
    use std::os::unix::fs::MetadataExt;
    let euid = std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid());
    assert_eq!(
        euid, 0,
        "{what} needs root (network namespaces, raw sockets, tap devices)"
    );
}

/// A name unique to this test process and call.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "glbd{}{}{}",
        tag,
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `--lcores` for the given configured lcores: the main lcore is the
/// smallest id they do not use, on CPU 0; the others go to CPU 1 when the
/// machine has two CPUs (else CPU 0), e.g. `0@0,1@1,2@1`.
pub fn lcores_arg(configured: &[u32]) -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let worker_cpu = if cpus >= 2 { 1 } else { 0 };
    let main = (0..).find(|i| !configured.contains(i)).unwrap();
    let mut parts = vec![format!("{main}@0")];
    for id in configured {
        parts.push(format!("{id}@{worker_cpu}"));
    }
    format!("--lcores={}", parts.join(","))
}

/// EAL memory and device arguments that need no setup: ordinary pages,
/// no shared runtime files, no PCI scan, no telemetry socket.
pub fn eal_base() -> Vec<String> {
    [
        "--no-huge",
        "--no-shconf",
        "-m",
        "256",
        "--no-pci",
        "--no-telemetry",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The lcore ids of a director.conf's `lcores` object.
pub fn config_lcores(config: &serde_json::Value) -> Vec<u32> {
    let mut ids: Vec<u32> = config["lcores"]
        .as_object()
        .expect("config has an lcores object")
        .keys()
        .map(|k| {
            k.strip_prefix("lcore-")
                .and_then(|n| n.parse().ok())
                .expect("lcore-N")
        })
        .collect();
    ids.sort();
    ids
}

/// Counters from a `stats ...` line.
#[derive(Debug, Clone, Default)]
pub struct Stats(pub HashMap<String, f64>);

impl Stats {
    pub fn parse(line: &str) -> Option<Stats> {
        let rest = line.strip_prefix("stats ")?;
        let mut m = HashMap::new();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            m.insert(k.to_owned(), v.parse().ok()?);
        }
        Some(Stats(m))
    }

    /// A counter (0 when absent).
    pub fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0.0) as u64
    }

    /// The sum of `coreN.{suffix}` over all cores.
    pub fn cores(&self, suffix: &str) -> u64 {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with("core") && k.ends_with(&format!(".{suffix}")))
            .map(|(_, v)| *v as u64)
            .sum()
    }
}

/// A running `glb-director`, its output collected as it comes.
pub struct Director {
    child: Option<Child>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Director {
    /// Spawns `cmd` (the binary, possibly under `ip netns exec`).
    pub fn spawn(mut cmd: Command) -> Director {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let o = Arc::clone(&stdout);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                o.lock().unwrap().push(line);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let e = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                e.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Director {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Everything on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Everything on stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().unwrap().try_wait().unwrap()
    }

    fn fail(&self, why: &str) -> ! {
        panic!(
            "{why}\n--- director stdout (last lines)\n{}\n--- director stderr\n{}",
            self.stdout()
                .iter()
                .rev()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
            self.stderr()
        )
    }

    /// The latest stats line.
    pub fn latest_stats(&self) -> Option<Stats> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|l| Stats::parse(l))
    }

    /// Waits for a stats line that satisfies `ok`.
    pub fn wait_stats(&mut self, what: &str, ok: impl Fn(&Stats) -> bool) -> Stats {
        let end = Instant::now() + PATIENCE;
        loop {
            if let Some(s) = self.latest_stats() {
                if ok(&s) {
                    return s;
                }
            }
            if let Some(st) = self.exited() {
                self.fail(&format!("director exited ({st}) while waiting for {what}"));
            }
            if Instant::now() > end {
                self.fail(&format!(
                    "gave up waiting for {what}; last stats: {:?}",
                    self.latest_stats()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until stderr contains `needle` `count` times.
    pub fn wait_log(&mut self, needle: &str, count: usize) {
        let end = Instant::now() + PATIENCE;
        while self.stderr().matches(needle).count() < count {
            if let Some(st) = self.exited() {
                self.fail(&format!(
                    "director exited ({st}) while waiting for log {needle:?}"
                ));
            }
            if Instant::now() > end {
                self.fail(&format!("gave up waiting for log {needle:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.pid() as i32, sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.pid());
    }

    /// SIGTERM, then waits for the exit; returns the status.
    pub fn stop(mut self) -> (ExitStatus, String) {
        self.signal(libc::SIGTERM);
        let end = Instant::now() + PATIENCE;
        loop {
            if let Some(st) = self.exited() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                let err = self.stderr();
                self.child = None;
                return (st, err);
            }
            if Instant::now() > end {
                self.fail("director did not exit within a minute of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a command and requires success.
pub fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e} (is iproute2 installed?)"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace that exists for the life of the value.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A fresh namespace with loopback up and IPv6 off (so Linux sends
    /// no neighbour discovery noise on the test's interfaces).
    pub fn new(tag: &str) -> Netns {
        let name = unique(tag);
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        // /proc/sys/net belongs to the namespace of the thread using it.
        // A kernel without IPv6 has nothing to turn off.
        ns.enter(|| {
            for key in ["all", "default"] {
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{key}/disable_ipv6"), "1");
            }
        });
        ns
    }

    /// Runs a command inside the namespace and requires success.
    pub fn exec(&self, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full);
    }

    /// A veth pair `a`—`b`, both up.
    pub fn veth(&self, a: &str, b: &str) {
        self.exec(&["ip", "link", "add", a, "type", "veth", "peer", "name", b]);
        self.exec(&["ip", "link", "set", a, "up"]);
        self.exec(&["ip", "link", "set", b, "up"]);
    }

    /// The MAC address of `iface`.
    pub fn mac(&self, iface: &str) -> [u8; 6] {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-o", "link", "show", iface])
            .output()
            .expect("ip link show");
        let text = String::from_utf8_lossy(&out.stdout);
        let mac = text
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .unwrap_or_else(|| panic!("no MAC for {iface} in {text:?}"));
        let b: Vec<u8> = mac
            .split(':')
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        b.try_into().unwrap()
    }

    /// Whether `iface` exists in the namespace.
    pub fn has_link(&self, iface: &str) -> bool {
        Command::new("ip")
            .args(["-n", &self.name, "link", "show", iface])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs `f` on a thread that has joined the namespace; sockets it
    /// opens stay in the namespace wherever they are used later.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                // SAFETY: setns on this thread only, with a namespace fd we
                // hold open; network namespaces may be joined per thread.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("namespace thread panicked")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

const ETH_P_ALL: u16 = 0x0003;
const PACKET_OUTGOING: u8 = 4;

/// A raw `AF_PACKET` socket bound to one interface.
pub struct RawSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl RawSocket {
    /// Opens a socket on `iface` (call inside [`Netns::enter`]).
    pub fn open(iface: &str) -> std::io::Result<RawSocket> {
        let name = CString::new(iface).unwrap();
        // SAFETY: if_nametoindex reads a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: plain socket(2); the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                i32::from(ETH_P_ALL.to_be()),
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid start.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: sll is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        // SAFETY: SO_RCVTIMEO takes a timeval of the size given.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        Ok(RawSocket {
            fd,
            ifindex: ifindex as i32,
        })
    }

    /// Sends one frame out of the interface.
    pub fn send(&self, frame: &[u8]) {
        // SAFETY: the buffer is valid for its length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send on raw socket: {}",
            std::io::Error::last_os_error()
        );
    }

    /// The next frame the interface received (not one it sent), or None
    /// after a short timeout.
    pub fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: sockaddr_ll is plain data.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: buf and from are valid for the sizes given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&raw mut from).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                return None;
            }
            if from.sll_pkttype == PACKET_OUTGOING {
                continue;
            }
            return Some(buf[..n as usize].to_vec());
        }
    }

    /// Frames received until `pred` has accepted `count` of them, or the
    /// deadline passes; returns the accepted ones.
    pub fn collect(
        &self,
        count: usize,
        within: Duration,
        pred: impl Fn(&[u8]) -> bool,
    ) -> Vec<Vec<u8>> {
        let end = Instant::now() + within;
        let mut got = Vec::new();
        while got.len() < count && Instant::now() < end {
            if let Some(f) = self.recv() {
                if pred(&f) {
                    got.push(f);
                }
            }
        }
        got
    }

    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }
}

/// Frames of a classic pcap file (either timestamp precision).
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        data.len() >= 24,
        "{}: shorter than a pcap header",
        path.display()
    );
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    assert!(
        magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d,
        "{}: not a little-endian pcap (magic {magic:#x})",
        path.display()
    );
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap()) as usize;
    let mut frames = Vec::new();
    let mut off = 24;
    while off < data.len() {
        assert!(
            off + 16 <= data.len(),
            "{}: cut record header",
            path.display()
        );
        let caplen = u32_at(off + 8);
        off += 16;
        assert!(off + caplen <= data.len(), "{}: cut record", path.display());
        frames.push(data[off..off + caplen].to_vec());
        off += caplen;
    }
    frames
}

/// Writes frames as a classic microsecond pcap file.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
}
