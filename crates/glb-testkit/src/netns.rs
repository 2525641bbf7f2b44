//! Network namespaces that a test creates and that are removed when it
//! ends, whatever happens, with unique names so tests run side by side.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Requires root, for namespaces, raw sockets and tap devices.
pub fn require_root(what: &str) {
    use std::os::unix::fs::MetadataExt;
    let euid = std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid());
    assert_eq!(
        euid, 0,
        "{what} needs root (network namespaces, raw sockets, tap devices)"
    );
}

/// Requires `program args...` to run and succeed (e.g. `ip -V`), so a
/// test that needs a tool says which Debian package to install.
pub fn require_command(program: &str, args: &[&str], package: &str) {
    let ok = Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs the `{program}` command (Debian package {package})"
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

/// Namespaces alive now, for [`remove_on_signals`].
static LIVE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<String>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes `SIGTERM`, `SIGINT` and `SIGHUP` (a `timeout`, a ^C) delete every
/// namespace this process created before it ends, as dropping them would.
/// For long-running programs such as benchmarks; a test harness ends
/// tests by unwinding, which drops them anyway.
pub fn remove_on_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]).expect("signal handlers");
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            for name in live().drain(..) {
                let _ = Command::new("ip").args(["netns", "del", &name]).output();
            }
            let _ = signal_hook::low_level::emulate_default_handler(sig);
            std::process::exit(128 + sig);
        }
    });
}

/// A network namespace that exists for the life of the value.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A namespace named `name` (make it unique, e.g. with [`unique`]),
    /// with loopback up.
    pub fn create(name: String) -> Netns {
        run(&["ip", "netns", "add", &name]);
        live().push(name.clone());
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// A fresh, uniquely named namespace with loopback up and IPv6 off
    /// (so Linux sends no neighbour discovery noise on the test's
    /// interfaces).
    pub fn new(tag: &str) -> Netns {
        let ns = Netns::create(unique(tag));
        // /proc/sys/net belongs to the namespace of the thread using it.
        // A kernel without IPv6 has nothing to turn off.
        ns.enter(|| {
            for key in ["all", "default"] {
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{key}/disable_ipv6"), "1");
            }
        });
        ns
    }

    /// `ip -n NAME ARGS...`, required to succeed.
    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        run(&v);
    }

    /// Writes a sysctl inside the namespace (`/proc/sys/net` is per
    /// namespace, so this goes through `ip netns exec`).
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.exec(&["sh", "-c", &format!("echo {value} > {path}")]);
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

    /// Packets `iface` has received, from its kernel counter (which a
    /// veth counts as it delivers, before any program or socket sees the
    /// packet).
    pub fn rx_packets(&self, iface: &str) -> u64 {
        // `ip netns exec` mounts the namespace's own /sys for the command.
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "cat"])
            .arg(format!("/sys/class/net/{iface}/statistics/rx_packets"))
            .output()
            .unwrap_or_else(|e| panic!("reading {iface}'s rx_packets in {}: {e}", self.name));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{iface} in {} has no rx_packets counter", self.name))
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
        live().retain(|n| *n != self.name);
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Connects two namespaces with a veth pair, both ends up, no addresses.
pub fn veth_between(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    // Created inside `a` so the names never exist in the root namespace.
    a.ip(&[
        "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// Connects two namespaces with a veth pair and addresses both ends.
pub fn link(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    veth_between(a, a_if, b, b_if);
    a.ip(&["addr", "add", a_addr, "dev", a_if]);
    b.ip(&["addr", "add", b_addr, "dev", b_if]);
}
