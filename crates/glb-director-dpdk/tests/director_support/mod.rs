//! Helpers for the tests that run the `glb-director` binary on DPDK
//! software devices: the process itself (with its `--stats-interval`
//! lines) and EAL arguments for this machine. Namespaces, raw sockets and
//! pcap files come from `glb-testkit`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
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
