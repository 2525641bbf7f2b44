//! Scale benchmark: thousands of HTTP and TCP targets on 127.0.0.0/8.
//!
//! Starts one real listener per target (half HTTP answering 200, half
//! plain TCP) on its own loopback address, runs the release daemon against
//! them, and reports from one run: rounds completed and on time, CPU
//! seconds the daemon used, and its peak RSS, each against its target.
//!
//! Run with `script/bench-healthcheck`, or
//! `cargo bench -p glb-healthcheck --bench scale`. Knobs (environment):
//! `BENCH_TARGETS` (5000), `BENCH_INTERVAL_MS` (1000), `BENCH_TIMEOUT_MS`
//! (500), `BENCH_SECONDS` (30).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CPU_PER_SECOND_TARGET: f64 = 0.3;
const RSS_TARGET_MB: f64 = 100.0;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Target `i`'s address: HTTP targets on 127.78.x.y, TCP ones on 127.79.x.y.
fn target_addr(i: usize, http: bool) -> Ipv4Addr {
    let n = i / 2;
    Ipv4Addr::new(
        127,
        if http { 78 } else { 79 },
        (n / 250) as u8,
        (n % 250 + 1) as u8,
    )
}

async fn serve_http(listener: TcpListener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
                .await;
        });
    }
}

async fn serve_tcp(listener: TcpListener) {
    loop {
        let _ = listener.accept().await;
    }
}

fn http_get(addr: SocketAddr, path: &str) -> Option<Value> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
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

fn main() {
    let targets = env_u64("BENCH_TARGETS", 5000) as usize;
    let interval_ms = env_u64("BENCH_INTERVAL_MS", 1000);
    let timeout_ms = env_u64("BENCH_TIMEOUT_MS", 500);
    let seconds = env_u64("BENCH_SECONDS", 30);
    assert!(targets <= 2 * 250 * 250, "at most 125000 targets");

    // This process holds a listener per target plus the accepted connections.
    let need = targets as u64 * 2 + 200;
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

    // The servers run on one thread of their own so that they take at most
    // one of the machine's cores away from the daemon.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            for i in 0..targets {
                let http = i % 2 == 0;
                let port = if http { 8080 } else { 2222 };
                let listener = TcpListener::bind((target_addr(i, http), port))
                    .await
                    .unwrap_or_else(|e| panic!("binding target {i}: {e}"));
                if http {
                    tokio::spawn(serve_http(listener));
                } else {
                    tokio::spawn(serve_tcp(listener));
                }
            }
            ready_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    ready_rx.recv().expect("the target servers failed to start");

    let mut tables = Vec::new();
    let backends: Vec<Value> = (0..targets)
        .map(|i| {
            let http = i % 2 == 0;
            let checks = if http {
                json!({"http": 8080, "http_uri": "/health"})
            } else {
                json!({"tcp": 2222})
            };
            json!({"ip": target_addr(i, http).to_string(), "state": "active", "healthy": true,
                   "healthchecks": checks})
        })
        .collect();
    for (t, chunk) in backends.chunks(250).enumerate() {
        tables.push(json!({
            "name": format!("bench{t}"),
            "hash_key": "12345678901234561234567890123456",
            "seed": "34567890123456783456789012345678",
            "binds": [{"ip": format!("10.{t}.0.1"), "proto": "tcp", "port": 80}],
            "backends": chunk,
        }));
    }
    let src = json!({
        "healthchecks": {"interval_ms": interval_ms, "timeout_ms": timeout_ms, "trigger": 3},
        "tables": tables,
    });
    let dir = tempfile::tempdir().unwrap();
    let listen: SocketAddr = "127.78.255.1:19520".parse().unwrap();
    let conf = json!({
        "forwarding_table": {
            "src": dir.path().join("src.json"),
            "dst": dir.path().join("checked.json"),
        },
        "listen": listen.to_string(),
    });
    std::fs::write(dir.path().join("src.json"), src.to_string()).unwrap();
    std::fs::write(dir.path().join("hc.conf"), conf.to_string()).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_glb-healthcheck"))
        .arg("--config")
        .arg(dir.path().join("hc.conf"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("cannot start glb-healthcheck");
    let pid = child.id();

    let vars = || http_get(listen, "/debug/vars");
    let get = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    // Measure from the end of the first round: start-up is not the steady state.
    let start = Instant::now();
    let v0 = loop {
        if let Some(v) = vars().filter(|v| get(v, "rounds") >= 1) {
            break v;
        }
        if child.try_wait().unwrap().is_some() || start.elapsed() > Duration::from_secs(60) {
            eprintln!("bench-healthcheck: the daemon did not complete a first round");
            let _ = child.kill();
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let cpu0 = cpu_seconds(pid, ticks_per_second);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let v1 = vars().expect("the daemon stopped answering /debug/vars");
    let cpu1 = cpu_seconds(pid, ticks_per_second);
    let wall = t0.elapsed().as_secs_f64();
    let peak_rss_kb = status_kb(pid, "VmHWM:").unwrap_or(0);
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = child.wait();

    let rounds = get(&v1, "rounds") - get(&v0, "rounds");
    let late = get(&v1, "rounds_late") - get(&v0, "rounds_late");
    let expected = (wall * 1000.0 / interval_ms as f64).floor() as u64;
    let ok = get(&v1, "checks_ok") - get(&v0, "checks_ok");
    let failed = get(&v1, "checks_failed") - get(&v0, "checks_failed");
    let cpu = cpu1 - cpu0;
    let cpu_rate = cpu / wall;
    let rss_mb = peak_rss_kb as f64 / 1024.0;

    let verdict = |pass: bool| if pass { "ok" } else { "MISSED" };
    let on_time = rounds - late.min(rounds);
    println!(
        "glb-healthcheck scale: {targets} targets ({} http, {} tcp) on 127.0.0.0/8, \
         interval {interval_ms} ms, timeout {timeout_ms} ms, measured over {wall:.1} s",
        targets.div_ceil(2),
        targets / 2
    );
    println!("  rounds completed   {rounds:>8}      (schedule allows {expected})");
    println!(
        "  rounds on time     {on_time:>8}/{rounds:<5} target: all            {}",
        verdict(late == 0 && rounds + 1 >= expected)
    );
    println!(
        "  CPU seconds        {cpu:>8.2}      {cpu_rate:.3} per second, target < {CPU_PER_SECOND_TARGET}  {}",
        verdict(cpu_rate < CPU_PER_SECOND_TARGET)
    );
    println!(
        "  peak RSS           {rss_mb:>8.1} MB   target < {RSS_TARGET_MB} MB            {}",
        verdict(rss_mb < RSS_TARGET_MB)
    );
    println!(
        "  checks passed      {ok:>8}      failed {failed} (every target is up; failures mean overload)"
    );
}
