//! Test helpers: the daemon as a real child process, real HTTP/TCP servers
//! and a GUE/FOU responder on loopback addresses (127.77.x.y).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Upper bound for any wait in these tests. Generous on purpose: the
/// tests assert what happens, never how fast.
pub const WAIT: Duration = Duration::from_secs(60);

/// Polls `f` every 20 ms until it returns `Some`, or panics after `limit`
/// naming what was awaited.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("gave up after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A forwarding table with fixed keys and one bind.
pub fn table(name: &str, backends: Vec<Value>) -> Value {
    json!({
        "name": name,
        "hash_key": "12345678901234561234567890123456",
        "seed": "34567890123456783456789012345678",
        "binds": [{"ip": "10.10.10.10", "proto": "tcp", "port": 80}],
        "backends": backends,
    })
}

pub fn source(interval_ms: u64, timeout_ms: u64, trigger: u32, tables: Vec<Value>) -> Value {
    json!({
        "healthchecks": {"interval_ms": interval_ms, "timeout_ms": timeout_ms, "trigger": trigger},
        "tables": tables,
    })
}

/// A source holding one table, named `t`, of `backends`.
pub fn one_table_source(
    interval_ms: u64,
    timeout_ms: u64,
    trigger: u32,
    backends: Vec<Value>,
) -> Value {
    source(interval_ms, timeout_ms, trigger, vec![table("t", backends)])
}

/// A source holding one table, named `t`, whose one backend, at `ip`, is
/// active and checked by `checks`.
pub fn lone_backend_source(
    interval_ms: u64,
    timeout_ms: u64,
    trigger: u32,
    ip: &str,
    checks: Value,
) -> Value {
    let backend = json!({"ip": ip, "state": "active", "healthchecks": checks});
    one_table_source(interval_ms, timeout_ms, trigger, vec![backend])
}

/// The test's files and the daemon's configuration.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub src: PathBuf,
    pub dst: PathBuf,
    pub conf: PathBuf,
    pub log: PathBuf,
    pub listen: SocketAddr,
}

impl Setup {
    /// Writes `src` and a configuration listening on `listen_ip:19520`.
    /// `extra` is merged into the configuration object.
    pub fn new(listen_ip: &str, src: &Value, extra: Value) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let setup = Setup {
            src: dir.path().join("forwarding_table.src.json"),
            dst: dir.path().join("forwarding_table.checked.json"),
            conf: dir.path().join("healthcheck.conf"),
            log: dir.path().join("daemon.log"),
            listen: SocketAddr::new(ip(listen_ip), 19520),
            dir,
        };
        setup.write_source(src);
        let mut conf = json!({
            "forwarding_table": {"src": setup.src, "dst": setup.dst},
            "listen": setup.listen.to_string(),
        });
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                conf[k] = v;
            }
        }
        std::fs::write(&setup.conf, serde_json::to_vec_pretty(&conf).unwrap()).unwrap();
        setup
    }

    pub fn write_source(&self, src: &Value) {
        std::fs::write(&self.src, serde_json::to_vec_pretty(src).unwrap()).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Sets the configuration's reload command.
    pub fn set_reload_command(&self, command: &str) {
        let mut conf: Value = read_json(&self.conf).unwrap();
        conf["reload_command"] = json!(command);
        std::fs::write(&self.conf, conf.to_string()).unwrap();
    }

    /// Makes the reload command record every run (see
    /// [`recording_reload_command`]) and returns where.
    pub fn record_reloads(&self) -> PathBuf {
        let runs = self.path("runs");
        self.set_reload_command(&recording_reload_command(&self.dst, &runs));
        runs
    }

    /// Starts the daemon and waits until it is ready.
    pub fn start(&self) -> Running {
        let mut d = self.spawn();
        d.wait_ready();
        d
    }

    pub fn spawn(&self) -> Running {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_glb-healthcheck"))
            .arg("--config")
            .arg(&self.conf)
            .env("GLB_HEALTHCHECK_LOG_DEBUG", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start glb-healthcheck");
        Running {
            child,
            listen: self.listen,
            dst: self.dst.clone(),
            log: self.log.clone(),
        }
    }
}

/// A running daemon; killed when dropped.
pub struct Running {
    pub child: Child,
    pub listen: SocketAddr,
    pub dst: PathBuf,
    pub log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill(1) is needed to signal the daemon");
        assert!(st.success(), "kill -{sig} failed");
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.listen, path)
    }

    pub fn get_json(&self, path: &str) -> Option<Value> {
        let (status, body) = self.get(path)?;
        (status == 200).then(|| serde_json::from_str(&body).ok())?
    }

    pub fn health(&self) -> Option<Value> {
        self.get_json("/health")
    }

    pub fn var(&self, name: &str) -> Option<u64> {
        self.get_json("/debug/vars")?.get(name)?.as_u64()
    }

    /// Waits until the status listener answers, failing early if the
    /// daemon exits.
    pub fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!(
                    "glb-healthcheck exited with {st} during start-up:\n{}",
                    self.log_text()
                );
            }
            if self.get("/debug/vars").is_some() {
                return;
            }
            assert!(
                start.elapsed() < WAIT,
                "daemon did not start:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `rounds` has grown past `n`.
    pub fn wait_rounds_past(&self, n: u64) -> u64 {
        wait_for(&format!("round {} to complete", n + 1), WAIT, || {
            self.var("rounds").filter(|r| *r > n)
        })
    }

    /// Waits until the checked file equals `want`; on timeout, shows both.
    pub fn wait_checked(&self, what: &str, want: &Value) {
        let start = Instant::now();
        loop {
            let got = self.checked();
            if got.as_ref() == Some(want) {
                return;
            }
            if start.elapsed() > WAIT {
                panic!(
                    "gave up waiting for {what}\nwant: {want}\ngot:  {}\nlog:\n{}",
                    got.map(|g| g.to_string())
                        .unwrap_or_else(|| "(no file)".into()),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn checked(&self) -> Option<Value> {
        let text = std::fs::read(&self.dst).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The target's entry in `/health`.
    pub fn target(&self, target: &str) -> Option<Value> {
        let h = self.health()?;
        h["targets"]
            .as_array()?
            .iter()
            .find(|t| t["target"] == target)
            .cloned()
    }
}

/// A plain HTTP/1.0 GET; `None` when nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// How a test HTTP server answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// Answer 200, but only after this long.
    Slow(Duration),
    /// Accept, read the request, never answer.
    Silent,
    Redirect(String),
}

pub type Behaviour = Arc<dyn Fn(usize, &str) -> Reply + Send + Sync>;

/// A real HTTP server on a loopback address.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
}

impl HttpServer {
    pub fn always(addr: &str, reply: Reply) -> HttpServer {
        HttpServer::start(addr, Arc::new(move |_, _| reply.clone()))
    }

    /// `behaviour(request_index, path)` decides each answer.
    pub fn start(addr: &str, behaviour: Behaviour) -> HttpServer {
        let listener = TcpListener::bind(addr)
            .unwrap_or_else(|e| panic!("cannot bind test HTTP server on {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let behaviour = behaviour.clone();
                let count = count.clone();
                std::thread::spawn(move || serve_one(stream, &behaviour, &count));
            }
        });
        HttpServer { addr, requests }
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn serve_one(mut s: TcpStream, behaviour: &Behaviour, count: &AtomicUsize) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let index = count.fetch_add(1, Ordering::SeqCst);
    let (status, extra) = match behaviour(index, &path) {
        Reply::Status(code) => (code, String::new()),
        Reply::Slow(d) => {
            std::thread::sleep(d);
            (200, String::new())
        }
        Reply::Silent => {
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
        Reply::Redirect(to) => (302, format!("Location: {to}\r\n")),
    };
    let _ = write!(
        s,
        "HTTP/1.1 {status} Test\r\n{extra}Content-Length: 3\r\nConnection: close\r\n\r\nok\n"
    );
    let _ = s.shutdown(Shutdown::Write);
}

/// A TCP listener that accepts and closes connections.
pub fn tcp_listener(addr: &str) -> SocketAddr {
    let listener = TcpListener::bind(addr).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            drop(s);
        }
    });
    addr
}

/// Which tunnel header a responder expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    Gue,
    Fou,
}

/// A stand-in for a proxy's tunnel endpoint: takes the probe off UDP,
/// checks the headers the specification prescribes, and answers the inner
/// echo request directly with a plain ICMP echo reply from `addr`.
pub struct Responder {
    /// Probes answered.
    pub answered: Arc<AtomicUsize>,
    /// Packets that did not look like a well-formed probe.
    pub malformed: Arc<AtomicUsize>,
}

impl Responder {
    pub fn start(addr: &str, port: u16, encap: Encap, delay: Duration) -> Responder {
        let backend: Ipv4Addr = addr.parse().unwrap();
        let udp = UdpSocket::bind((backend, port)).unwrap();
        let raw = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::ICMPV4),
        )
        .expect("the GUE responder needs a raw ICMP socket: run the tests as root (or with CAP_NET_RAW)");
        raw.bind(&SocketAddrV4::new(backend, 0).into()).unwrap();
        let answered = Arc::new(AtomicUsize::new(0));
        let malformed = Arc::new(AtomicUsize::new(0));
        let (a, m) = (answered.clone(), malformed.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            loop {
                let Ok((n, _from)) = udp.recv_from(&mut buf) else {
                    return;
                };
                match echo_reply_for(&buf[..n], encap, backend) {
                    Some((to, reply)) => {
                        if !delay.is_zero() {
                            std::thread::sleep(delay);
                        }
                        raw.send_to(&reply, &SocketAddrV4::new(to, 0).into())
                            .unwrap();
                        a.fetch_add(1, Ordering::SeqCst);
                    }
                    None => {
                        m.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
        Responder {
            answered,
            malformed,
        }
    }
}

fn sum16(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Decapsulates one probe; returns where to send the reply and the ICMP
/// echo reply message (the kernel adds the IP header).
fn echo_reply_for(
    udp_payload: &[u8],
    encap: Encap,
    backend: Ipv4Addr,
) -> Option<(Ipv4Addr, Vec<u8>)> {
    let inner = match encap {
        Encap::Gue => {
            // ver 0, C 0, hlen 1, proto 4, flags 0, private type 0, next hop 0, 0 hops.
            if udp_payload.get(..8)? != [0x01, 0x04, 0, 0, 0, 0, 0, 0] {
                return None;
            }
            &udp_payload[8..]
        }
        Encap::Fou => {
            // GRE with key present, protocol IPv4, key 0.
            if udp_payload.get(..8)? != [0x20, 0x00, 0x08, 0x00, 0, 0, 0, 0] {
                return None;
            }
            &udp_payload[8..]
        }
    };
    let ihl = usize::from(inner.first()? & 0x0f) * 4;
    if inner[0] >> 4 != 4 || ihl != 20 || *inner.get(9)? != 1 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([inner[2], inner[3]]));
    if total != inner.len() || sum16(&inner[..20]) != 0 {
        return None;
    }
    let src = Ipv4Addr::new(inner[12], inner[13], inner[14], inner[15]);
    let dst = Ipv4Addr::new(inner[16], inner[17], inner[18], inner[19]);
    if dst != backend {
        return None;
    }
    let icmp = &inner[20..];
    if icmp.len() < 8 || icmp[0] != 8 || icmp[1] != 0 || sum16(icmp) != 0 {
        return None;
    }
    let mut reply = icmp.to_vec();
    reply[0] = 0;
    reply[2] = 0;
    reply[3] = 0;
    let c = sum16(&reply);
    reply[2..4].copy_from_slice(&c.to_be_bytes());
    Some((src, reply))
}

/// Reads a JSON file; `None` when it is missing or not (yet) complete JSON.
pub fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// `healthy` of every backend of every table, in file order.
pub fn healthy_flags(doc: &Value) -> Vec<Vec<Option<bool>>> {
    doc["tables"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    t["backends"]
                        .as_array()
                        .map(|bs| bs.iter().map(|b| b["healthy"].as_bool()).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A reload command that keeps a copy of the checked file per run, named
/// by run number, in `dir`.
pub fn recording_reload_command(dst: &Path, dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    format!(
        "n=$(ls {dir} | grep -c json); cp {dst} {dir}/run-$(printf %04d $n).json; date +%s%N > {dir}/run-$(printf %04d $n).time",
        dir = dir.display(),
        dst = dst.display()
    )
}

/// The runs recorded by [`recording_reload_command`]: (checked file, time in ns).
pub fn recorded_runs(dir: &Path) -> Vec<(Value, u128)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.retain(|p| p.extension().is_some_and(|e| e == "json"));
    names.sort();
    names
        .iter()
        .filter_map(|p| {
            let doc = read_json(p)?;
            let t = std::fs::read_to_string(p.with_extension("time")).ok()?;
            Some((doc, t.trim().parse().ok()?))
        })
        .collect()
}
