//! Forward-path throughput and cost: packets per second through one
//! proxy to the next hop, and the proxy's CPU time per forwarded packet,
//! for glb-redirect's socket path, its kernel fast path (`--fast-path`)
//! and plain kernel IP forwarding, over the same veth path, in one run.
//!
//! ```text
//!   gen ──veth── proxy (glb-redirect) ──veth── sink
//!   CPU 0          CPU 1 (RPS on its gen-facing veth; the daemon pinned)
//! ```
//!
//! The generator blasts GUE datagrams with `sendmmsg` from CPU 0. For the
//! redirect figures they go to the proxy's GUE port, each an ACK of a flow
//! the proxy does not know, listing one hop behind the sink: the flow is
//! looked up, the outer header rewritten and the packet sent on. For the
//! kernel figure the same datagrams are addressed to that hop directly and
//! the proxy's kernel routes them. The sink counts what arrives (its
//! interface counter; it does not forward).
//!
//! Everything the proxy does runs on CPU 1: receive processing is steered
//! there (RPS), where the fast path and kernel forwarding run, and the
//! daemon's threads are pinned there. Its busy time over the window
//! (/proc/stat), divided by the packets forwarded, is the cost per packet,
//! which does not depend on how fast the generator is; on a slow machine
//! the generator, not the proxy, may bound the rates.
//!
//! Prints the medians over the rounds:
//! `redirect_pps=X kernel_pps=Y ratio=Z socket_pps=W socket_ratio=V` and
//! `redirect_ns=A kernel_ns=B cost_ratio=C socket_ns=D socket_cost_ratio=E`,
//! where `redirect` is the fast path and a ratio above 1 means faster or
//! cheaper than the kernel. Needs root and iproute2.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use glb_redirect::counters::Counter;
use glb_redirect::sys::{Ring, SendItem};
use support::*;

const GEN: Ipv4Addr = Ipv4Addr::new(10, 202, 1, 2);
const PROXY: Ipv4Addr = Ipv4Addr::new(10, 202, 1, 1);
const SINK: Ipv4Addr = Ipv4Addr::new(10, 202, 2, 2);
/// The hop: routed by the proxy through the sink, which drops it.
const HOP: Ipv4Addr = Ipv4Addr::new(10, 202, 9, 9);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 202, 100, 10);

const WARMUP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_secs(3);
const BATCH: usize = 64;

/// Blasts `payload` at `to` from `sock` until `stop`; returns datagrams
/// handed to the kernel.
fn blast(sock: &UdpSocket, to: SocketAddrV4, payload: &[u8], stop: &AtomicBool) -> u64 {
    let mut ring = Ring::new(BATCH, payload.len(), 0);
    for i in 0..BATCH {
        ring.frame_mut(i, payload.len()).copy_from_slice(payload);
    }
    let items: Vec<_> = (0..BATCH)
        .map(|slot| SendItem {
            slot,
            start: 0,
            len: payload.len(),
            to,
        })
        .collect();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (n, _, _) = ring.send(sock.as_fd(), &items);
        sent += n as u64;
    }
    sent
}

/// Pins thread `tid` (0: the calling one) to `cpu`.
fn pin(tid: libc::pid_t, cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes inside it;
    // sched_setaffinity only reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(rc, 0, "cannot pin thread {tid} to CPU {cpu}");
}

/// Pins every thread of process `pid` to `cpu`.
fn pin_process(pid: u32, cpu: usize) {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("list the daemon's threads") {
        let tid = task.unwrap().file_name().to_string_lossy().parse().unwrap();
        pin(tid, cpu);
    }
}

/// The generator's CPU and the proxy's.
const GEN_CPU: usize = 0;
const PROXY_CPU: usize = 1;

/// CPU `cpu`'s busy time so far (every /proc/stat column but idle and
/// iowait), in clock ticks.
fn busy_ticks(cpu: usize) -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("read /proc/stat");
    let name = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
        .unwrap_or_else(|| panic!("no {name} in /proc/stat: the bench needs 2 CPUs"));
    line.split_whitespace()
        .skip(1)
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v.parse::<u64>().unwrap_or(0))
        .sum()
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// One window's figures.
struct Window {
    pps: f64,
    /// The proxy CPU's busy nanoseconds per packet the sink received.
    ns_per_packet: f64,
    offered: u64,
}

/// Runs the generator for warm-up plus measurement and returns the
/// sink's packets per second over the measurement window, with the
/// proxy CPU's cost per packet.
fn measure(gen_sock: &UdpSocket, sink: &Netns, to: SocketAddrV4, payload: &[u8]) -> Window {
    let stop = Arc::new(AtomicBool::new(false));
    let sock = gen_sock.try_clone().unwrap();
    let payload = payload.to_vec();
    let h = {
        let stop = stop.clone();
        thread::spawn(move || {
            pin(0, GEN_CPU);
            blast(&sock, to, &payload, &stop)
        })
    };
    thread::sleep(WARMUP);
    let (t0, c0, b0) = (
        Instant::now(),
        sink.rx_packets("eth0"),
        busy_ticks(PROXY_CPU),
    );
    thread::sleep(MEASURE);
    let (t1, c1, b1) = (
        Instant::now(),
        sink.rx_packets("eth0"),
        busy_ticks(PROXY_CPU),
    );
    stop.store(true, Ordering::Relaxed);
    let offered = h.join().unwrap();
    let packets = (c1 - c0).max(1) as f64;
    Window {
        pps: (c1 - c0) as f64 / (t1 - t0).as_secs_f64(),
        ns_per_packet: (b1 - b0) as f64 / ticks_per_second() * 1e9 / packets,
        offered,
    }
}

/// Rounds of the three measurements, taken in turns so that a slow
/// phase of a shared machine hits all three.
const ROUNDS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[derive(Default)]
struct Series {
    pps: Vec<f64>,
    ns: Vec<f64>,
}

impl Series {
    fn push(&mut self, w: &Window) {
        self.pps.push(w.pps);
        self.ns.push(w.ns_per_packet);
    }

    fn medians(self) -> (f64, f64) {
        (median(self.pps), median(self.ns))
    }
}

fn main() {
    // `cargo bench` passes harness flags such as --bench; nothing to parse.
    require_root_and_ip();
    assert!(
        thread::available_parallelism().map_or(0, |n| n.get()) >= 2,
        "the bench puts the generator and the proxy on CPUs 0 and 1: it needs 2 CPUs"
    );
    // Killed by a timeout, the bench still removes its namespaces.
    glb_testkit::netns::remove_on_signals();
    println!("# {}", glb_testkit::machine::describe());
    let p = unique_prefix("bench");
    let px = Netns::create(format!("{p}-px"));
    let gen_ns = spoke(&px, &p, "gen", "10.202.1");
    let sink = spoke(&px, &p, "sink", "10.202.2");
    gen_ns.ip(&["route", "add", "default", "via", "10.202.1.1"]);
    px.ip(&[
        "route",
        "add",
        &format!("{HOP}/32"),
        "via",
        &SINK.to_string(),
    ]);
    // For the kernel's figure; the fast path needs only lo's (the daemon
    // sets it).
    px.sysctl("net.ipv4.ip_forward", "1");
    // The sink owns the hop's address and drops what arrives at a full
    // socket that is never read, after its interface counted it. (Packets
    // for an address it does not route would each cost it an error route
    // allocated and freed, on the proxy's CPU — veth delivers on the
    // sender's — more than the proxy's own work.)
    sink.ip(&["addr", "add", &format!("{HOP}/32"), "dev", "lo"]);
    let _sink_socket = sink.enter(|| {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.set_recv_buffer_size(0).unwrap();
        s.bind(&SocketAddrV4::new(HOP, 19523).into()).unwrap();
        s
    });
    // The proxy's receive processing on its own CPU.
    px.exec(&[
        "sh",
        "-c",
        &format!(
            "echo {:x} > /sys/class/net/to-gen/queues/rx-0/rps_cpus",
            1u32 << PROXY_CPU
        ),
    ]);

    let tmp = tempfile::tempdir().unwrap();
    let gen_sock = gen_ns.enter(|| UdpSocket::bind((GEN, 0)).unwrap());
    // An ACK of a flow the proxy does not know, listing one hop.
    let inner = ipv4(
        Ipv4Addr::new(192, 0, 2, 7),
        VIP,
        6,
        &tcp(Ipv4Addr::new(192, 0, 2, 7), VIP, 40000, 80, 1, 1, 0x10),
    );
    let payload = gue(4, 0, &[HOP], &inner);
    let to_proxy = SocketAddrV4::new(PROXY, 19523);

    let (mut socket, mut fast, mut kernel) =
        (Series::default(), Series::default(), Series::default());
    for round in 1..=ROUNDS {
        for fast_path in [false, true] {
            let (what, extra): (&str, &[&str]) = if fast_path {
                ("fast path", &["--tun", "glbr0", "--fast-path", "to-gen"])
            } else {
                ("socket", &["--tun", "glbr0"])
            };
            let name = format!(
                "proxy-{round}-{}",
                if fast_path { "fast" } else { "socket" }
            );
            let mut daemon = Daemon::start(&name, &px, tmp.path(), extra);
            pin_process(daemon.child.id(), PROXY_CPU);
            let w = measure(&gen_sock, &sink, to_proxy, &payload);
            let stats = daemon.wait_stats("counters after the run", |s| {
                s.get(Counter::ForwardedToAlternate) > 0
            });
            daemon.assert_running();
            let in_kernel = stats.get(Counter::FastPathForwarded) as f64
                / stats.get(Counter::ForwardedToAlternate).max(1) as f64;
            if fast_path {
                assert!(
                    in_kernel > 0.99,
                    "with --fast-path the kernel forwarded only {:.1}% of the packets",
                    in_kernel * 100.0
                );
            }
            eprintln!(
                "round {round}, {what}: {:.0} pps, {:.0} ns/packet; offered {}, received {} \
                 forwarded {} (in the kernel {}, lookups {}, forward errors {})",
                w.pps,
                w.ns_per_packet,
                w.offered,
                stats.get(Counter::Total),
                stats.get(Counter::ForwardedToAlternate),
                stats.get(Counter::FastPathForwarded),
                stats.get(Counter::SocketLookups),
                stats.get(Counter::ForwardErrors),
            );
            if fast_path { &mut fast } else { &mut socket }.push(&w);
        }
        let w = measure(&gen_sock, &sink, SocketAddrV4::new(HOP, 19523), &payload);
        eprintln!(
            "round {round}, kernel forwarding: {:.0} pps, {:.0} ns/packet; offered {}",
            w.pps, w.ns_per_packet, w.offered
        );
        kernel.push(&w);
    }

    let ((fast_pps, fast_ns), (socket_pps, socket_ns), (kernel_pps, kernel_ns)) =
        (fast.medians(), socket.medians(), kernel.medians());
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    println!(
        "redirect_pps={fast_pps:.0} kernel_pps={kernel_pps:.0} ratio={:.3} \
         socket_pps={socket_pps:.0} socket_ratio={:.3}",
        ratio(fast_pps, kernel_pps),
        ratio(socket_pps, kernel_pps)
    );
    println!(
        "redirect_ns={fast_ns:.0} kernel_ns={kernel_ns:.0} cost_ratio={:.3} \
         socket_ns={socket_ns:.0} socket_cost_ratio={:.3}",
        ratio(kernel_ns, fast_ns),
        ratio(kernel_ns, socket_ns)
    );
}
