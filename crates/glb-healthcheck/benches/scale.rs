//! Scale benchmark: thousands of HTTP and TCP targets on 127.0.0.0/8.
//!
//! One real listener per target (half HTTP answering 200 on kept-alive
//! connections, half plain TCP), each on its own loopback address, runs in
//! listener processes of their own, so the daemon's CPU and the
//! listeners' are measured apart. The release daemon checks them all, and
//! one run reports rounds on time, false failures (every target is up, so
//! every failed check is one), the daemon's CPU and peak RSS, each against
//! its target, and the listeners' CPU beside them.
//!
//! Run with `script/bench-healthcheck`, or
//! `cargo bench -p glb-healthcheck --bench scale`. Knobs (environment):
//! `BENCH_TARGETS` (5000), `BENCH_INTERVAL_MS` (1000), `BENCH_TIMEOUT_MS`
//! (500), `BENCH_SECONDS` (30), `BENCH_KEEPALIVE` (1; 0 makes the HTTP
//! listeners close every connection after one answer), `BENCH_DAEMON` (the
//! daemon to run instead of this build's), `BENCH_BASELINE` (a daemon run
//! first, against the same listeners, and printed beside it: before and
//! after in one run), `BENCH_DAEMON_LOG` (set: the daemons' logs go to
//! standard error).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CPU_PER_SECOND_TARGET: f64 = 0.2;
const RSS_TARGET_MB: f64 = 100.0;
/// The scale the CPU and memory targets are set for; at any other only
/// rounds on time and false failures have one.
const TARGETS_WITH_LIMITS: usize = 5000;

/// Set in a listener process: `FIRST,COUNT`, the targets it serves.
const LISTENER_ROLE: &str = "GLB_BENCH_LISTENERS";

/// Targets per listener process: each holds a socket per target plus the
/// connections the daemon keeps, within a 20,000-descriptor limit.
const TARGETS_PER_LISTENER_PROCESS: usize = 6000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Target `i`'s address: HTTP targets on 127.78.x.y, TCP ones on 127.79.x.y.
fn target_addr(i: usize) -> SocketAddr {
    let http = i % 2 == 0;
    let n = i / 2;
    let ip = Ipv4Addr::new(
        127,
        if http { 78 } else { 79 },
        (n / 250) as u8,
        (n % 250 + 1) as u8,
    );
    SocketAddr::new(ip.into(), if http { 8080 } else { 2222 })
}

// ---------------------------------------------------------------------------
// The listener processes

fn run_listeners(spec: &str) {
    let (first, count) = spec
        .split_once(',')
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        .expect("GLB_BENCH_LISTENERS is FIRST,COUNT");
    let keep_alive = env_u64("BENCH_KEEPALIVE", 1) != 0;
    // Gone with the benchmark: it holds our standard input open.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        for i in first..first + count {
            let listener = TcpListener::bind(target_addr(i))
                .await
                .unwrap_or_else(|e| panic!("binding target {i} ({}): {e}", target_addr(i)));
            if i % 2 == 0 {
                tokio::spawn(serve_http(listener, keep_alive));
            } else {
                tokio::spawn(serve_tcp(listener));
            }
        }
        println!("ready");
        let _ = std::io::stdout().flush();
        std::future::pending::<()>().await;
    });
}

async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((s, _)) => return s,
            // Out of descriptors: the daemon will see it as failures.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn serve_http(listener: TcpListener, keep_alive: bool) {
    loop {
        let s = accept(&listener).await;
        tokio::spawn(answer_http(s, keep_alive));
    }
}

/// Answers every request on the connection with 200, as a proxy's status
/// page would, until the client closes it (or after one, without
/// keep-alive).
async fn answer_http(mut s: TcpStream, keep_alive: bool) {
    let reply: &[u8] = if keep_alive {
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
    } else {
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
    };
    let mut buf = Vec::with_capacity(512);
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        buf.drain(..end);
        if s.write_all(reply).await.is_err() || !keep_alive {
            return;
        }
    }
}

async fn serve_tcp(listener: TcpListener) {
    loop {
        drop(accept(&listener).await);
    }
}

// ---------------------------------------------------------------------------
// Measuring

fn http_get(addr: SocketAddr, path: &str) -> Option<Value> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
}

/// A few targets whose latest check failed, with why and how long it took.
fn failing_now(listen: SocketAddr) -> Vec<String> {
    let Some(health) = http_get(listen, "/health") else {
        return Vec::new();
    };
    let list = health["targets"].as_array().cloned().unwrap_or_default();
    let failing: Vec<&Value> = list.iter().filter(|t| t["last"]["ok"] == false).collect();
    let mut out: Vec<String> = failing
        .iter()
        .take(4)
        .map(|t| {
            format!(
                "{}: {} after {} ms",
                t["target"], t["last"]["error"], t["last"]["duration_ms"]
            )
        })
        .collect();
    if failing.len() > 4 {
        out.push(format!("{} more", failing.len() - 4));
    }
    out
}

fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// utime + stime of a process in seconds (dead threads included).
fn cpu_seconds(pid: u32, ticks_per_second: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / ticks_per_second
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Children killed when the benchmark ends, however it ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_listeners(targets: usize) -> Children {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let mut children = Children(Vec::new());
    for first in (0..targets).step_by(TARGETS_PER_LISTENER_PROCESS) {
        let count = TARGETS_PER_LISTENER_PROCESS.min(targets - first);
        let child = Command::new(&exe)
            .env(LISTENER_ROLE, format!("{first},{count}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot start a listener process");
        children.0.push(child);
    }
    for c in &mut children.0 {
        let mut line = String::new();
        let out = c.stdout.take().expect("piped");
        BufReader::new(out).read_line(&mut line).ok();
        assert_eq!(line.trim(), "ready", "a listener process failed to start");
    }
    children
}

fn write_config(dir: &std::path::Path, targets: usize, listen: SocketAddr) -> PathBuf {
    let interval_ms = env_u64("BENCH_INTERVAL_MS", 1000);
    let timeout_ms = env_u64("BENCH_TIMEOUT_MS", 500);
    let backends: Vec<Value> = (0..targets)
        .map(|i| {
            let addr = target_addr(i);
            let checks = if i % 2 == 0 {
                json!({"http": addr.port(), "http_uri": "/health"})
            } else {
                json!({"tcp": addr.port()})
            };
            json!({"ip": addr.ip().to_string(), "state": "active", "healthy": true,
                   "healthchecks": checks})
        })
        .collect();
    let tables: Vec<Value> = backends
        .chunks(250)
        .enumerate()
        .map(|(t, chunk)| {
            json!({
                "name": format!("bench{t}"),
                "hash_key": "12345678901234561234567890123456",
                "seed": "34567890123456783456789012345678",
                "binds": [{"ip": format!("10.{t}.0.1"), "proto": "tcp", "port": 80}],
                "backends": chunk,
            })
        })
        .collect();
    let src = json!({
        "healthchecks": {"interval_ms": interval_ms, "timeout_ms": timeout_ms, "trigger": 3},
        "tables": tables,
    });
    let conf = json!({
        "forwarding_table": {"src": dir.join("src.json"), "dst": dir.join("checked.json")},
        "listen": listen.to_string(),
    });
    std::fs::write(dir.join("src.json"), src.to_string()).unwrap();
    std::fs::write(dir.join("hc.conf"), conf.to_string()).unwrap();
    dir.join("hc.conf")
}

/// What one daemon did over the measured time.
struct Figures {
    daemon: PathBuf,
    wall: f64,
    rounds: u64,
    late: u64,
    expected: u64,
    ok: u64,
    failed: u64,
    timeouts: u64,
    cpu: f64,
    listeners_cpu: f64,
    rss_mb: f64,
    failing: Vec<String>,
}

impl Figures {
    fn all_on_time(&self) -> bool {
        self.late == 0 && self.rounds + 1 >= self.expected
    }
    fn cpu_rate(&self) -> f64 {
        self.cpu / self.wall
    }
    fn listeners_rate(&self) -> f64 {
        self.listeners_cpu / self.wall
    }
}

/// Runs `daemon` against the listeners for `seconds` after its first
/// round and measures it.
fn measure(
    daemon: &std::path::Path,
    conf: &std::path::Path,
    listen: SocketAddr,
    listener_pids: &[u32],
    seconds: u64,
    interval_ms: u64,
    ticks_per_second: f64,
) -> Figures {
    let child = Command::new(daemon)
        .arg("--config")
        .arg(conf)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stderr(if std::env::var_os("BENCH_DAEMON_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", daemon.display()));
    let pid = child.id();
    let mut child = Children(vec![child]);

    let vars = || http_get(listen, "/debug/vars");
    let get = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    // Measure from the end of the first round: start-up is not the steady state.
    let start = Instant::now();
    let v0 = loop {
        if let Some(v) = vars().filter(|v| get(v, "rounds") >= 1) {
            break v;
        }
        let exited = child.0[0].try_wait().unwrap().is_some();
        if exited || start.elapsed() > Duration::from_secs(60) {
            eprintln!(
                "bench-healthcheck: {} did not complete a first round",
                daemon.display()
            );
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let listeners_cpu = || -> f64 {
        listener_pids
            .iter()
            .map(|&p| cpu_seconds(p, ticks_per_second))
            .sum()
    };
    let (cpu0, lcpu0) = (cpu_seconds(pid, ticks_per_second), listeners_cpu());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let v1 = vars().expect("the daemon stopped answering /debug/vars");
    let (cpu1, lcpu1) = (cpu_seconds(pid, ticks_per_second), listeners_cpu());
    let wall = t0.elapsed().as_secs_f64();
    let peak_rss_kb = status_kb(pid, "VmHWM:").unwrap_or(0);
    let failing = failing_now(listen);
    drop(child);

    let delta = |k: &str| get(&v1, k).saturating_sub(get(&v0, k));
    let rounds = delta("rounds");
    Figures {
        daemon: daemon.to_owned(),
        wall,
        rounds,
        late: delta("rounds_late").min(rounds),
        expected: (wall * 1000.0 / interval_ms as f64).floor() as u64,
        ok: delta("checks_ok"),
        failed: delta("checks_failed"),
        timeouts: delta("timeouts"),
        cpu: cpu1 - cpu0,
        listeners_cpu: lcpu1 - lcpu0,
        rss_mb: peak_rss_kb as f64 / 1024.0,
        failing,
    }
}

fn main() {
    if let Ok(spec) = std::env::var(LISTENER_ROLE) {
        run_listeners(&spec);
        return;
    }
    let targets = env_u64("BENCH_TARGETS", 5000) as usize;
    let interval_ms = env_u64("BENCH_INTERVAL_MS", 1000);
    let timeout_ms = env_u64("BENCH_TIMEOUT_MS", 500);
    let seconds = env_u64("BENCH_SECONDS", 30);
    let keep_alive = env_u64("BENCH_KEEPALIVE", 1) != 0;
    assert!(targets <= 2 * 250 * 250, "at most 125000 targets");

    // A listener process holds a socket per target and one connection per
    // HTTP target; the daemon holds about one per HTTP target too.
    let per_process = TARGETS_PER_LISTENER_PROCESS.min(targets);
    let need = (per_process + per_process / 2).max(targets / 2) as u64 + 300;
    match open_file_limit() {
        Some(n) if n < need => {
            eprintln!(
                "bench-healthcheck: the open-file limit is {n}; {targets} targets need about {need}. \
                 Raise it first (`ulimit -n {need}`; script/bench-healthcheck does this)."
            );
            std::process::exit(2);
        }
        _ => {}
    }
    let ticks_per_second: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);

    let children = start_listeners(targets);
    let listener_pids: Vec<u32> = children.0.iter().map(Child::id).collect();

    let dir = tempfile::tempdir().unwrap();
    let listen: SocketAddr = "127.78.255.1:19520".parse().unwrap();
    let conf = write_config(dir.path(), targets, listen);
    let daemon = std::env::var_os("BENCH_DAEMON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_glb-healthcheck")));
    let baseline = std::env::var_os("BENCH_BASELINE").map(PathBuf::from);
    let run = |d: &std::path::Path| {
        measure(
            d,
            &conf,
            listen,
            &listener_pids,
            seconds,
            interval_ms,
            ticks_per_second,
        )
    };
    // The baseline first, against the same listeners, then this build.
    let before = baseline.as_deref().map(&run);
    let after = run(&daemon);
    drop(children);

    let verdict = |pass: bool| if pass { "ok" } else { "MISSED" };
    println!(
        "glb-healthcheck scale: {targets} targets ({} http{}, {} tcp) on 127.0.0.0/8, \
         interval {interval_ms} ms, timeout {timeout_ms} ms, each daemon measured over {seconds} s",
        targets.div_ceil(2),
        if keep_alive {
            ""
        } else {
            " closing every connection"
        },
        targets / 2
    );
    println!(
        "  machine            {} (the health checker runs no vector code)",
        glb_testkit::machine::describe()
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("  load average       {} at the end", load.join(" "));
    }
    let a = &after;
    let column = |f: &Figures, w: &dyn Fn(&Figures) -> String| w(f);
    let both = |name: &str, w: &dyn Fn(&Figures) -> String, target: String| match &before {
        Some(b) => println!(
            "  {name:<18} {:>14} {:>14}   {target}",
            column(b, w),
            column(a, w)
        ),
        None => println!("  {name:<18} {:>14}   {target}", column(a, w)),
    };
    if before.is_some() {
        println!("  {:<18} {:>14} {:>14}", "", "baseline", "this build");
    }
    both(
        "rounds on time",
        &|f| format!("{}/{}", f.rounds - f.late, f.rounds),
        format!(
            "target: all ({} scheduled)  {}",
            a.expected,
            verdict(a.all_on_time())
        ),
    );
    both(
        "false failures",
        &|f| f.failed.to_string(),
        format!(
            "target: 0, every target is up ({} timed out)  {}",
            a.timeouts,
            verdict(a.failed == 0)
        ),
    );
    both(
        "daemon CPU-s/s",
        &|f| format!("{:.3}", f.cpu_rate()),
        if targets == TARGETS_WITH_LIMITS {
            format!(
                "target < {CPU_PER_SECOND_TARGET}  {}",
                verdict(a.cpu_rate() < CPU_PER_SECOND_TARGET)
            )
        } else {
            format!("target < {CPU_PER_SECOND_TARGET} at {TARGETS_WITH_LIMITS} targets; none here")
        },
    );
    both(
        "daemon peak RSS",
        &|f| format!("{:.1} MB", f.rss_mb),
        if targets == TARGETS_WITH_LIMITS {
            format!(
                "target < {RSS_TARGET_MB} MB  {}",
                verdict(a.rss_mb < RSS_TARGET_MB)
            )
        } else {
            format!("target < {RSS_TARGET_MB} MB at {TARGETS_WITH_LIMITS} targets; none here")
        },
    );
    both(
        "listeners' CPU-s/s",
        &|f| format!("{:.3}", f.listeners_rate()),
        format!(
            "{} processes of their own, not the daemon's",
            listener_pids.len()
        ),
    );
    both("checks passed", &|f| f.ok.to_string(), String::new());
    for f in before.iter().chain([a]) {
        println!("  daemon             {}", f.daemon.display());
        if !f.failing.is_empty() {
            println!("    failing at the end {}", f.failing.join("; "));
        }
    }
    for (label, f) in before.iter().map(|b| ("baseline", b)).chain([("build", a)]) {
        println!(
            "hc_{label} targets={targets} rounds={} rounds_late={} false_failures={} \
             daemon_cpu_per_s={:.3} daemon_peak_rss_mb={:.1} listeners_cpu_per_s={:.3}",
            f.rounds,
            f.late,
            f.failed,
            f.cpu_rate(),
            f.rss_mb,
            f.listeners_rate()
        );
    }
}
