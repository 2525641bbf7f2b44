//! Forward-path throughput: packets per second through one proxy's
//! `glb-redirect` to the next hop, against plain kernel IP forwarding over
//! the same veth path, in one run.
//!
//! ```text
//!   gen ──veth── proxy (glb-redirect) ──veth── sink
//! ```
//!
//! The generator blasts GUE datagrams with `sendmmsg`. For the redirect
//! figure they go to the proxy's GUE port, each an ACK of a flow the proxy
//! does not know, listing one hop behind the sink: the daemon looks the
//! flow up (SOCK_DIAG), rewrites the outer header and sends it on. For
//! the kernel figure the same datagrams are addressed to that hop
//! directly and the proxy's kernel routes them. Either way the sink
//! counts what arrives (its interface counter; it drops the packets
//! without answering because it does not forward).
//!
//! Prints `redirect_pps=X kernel_pps=Y ratio=Z`. Needs root and iproute2.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::process::Command;
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

fn rx_packets(ns: &Netns, dev: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "cat"])
        .arg(format!("/sys/class/net/{dev}/statistics/rx_packets"))
        .output()
        .expect("read the sink's counter");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("rx_packets is a number")
}

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

/// Runs the generator for warm-up plus measurement and returns the
/// sink's packets per second over the measurement window.
fn measure(gen_sock: &UdpSocket, sink: &Netns, to: SocketAddrV4, payload: &[u8]) -> (f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let sock = gen_sock.try_clone().unwrap();
    let payload = payload.to_vec();
    let h = {
        let stop = stop.clone();
        thread::spawn(move || blast(&sock, to, &payload, &stop))
    };
    thread::sleep(WARMUP);
    let (t0, c0) = (Instant::now(), rx_packets(sink, "eth0"));
    thread::sleep(MEASURE);
    let (t1, c1) = (Instant::now(), rx_packets(sink, "eth0"));
    stop.store(true, Ordering::Relaxed);
    let offered = h.join().unwrap();
    ((c1 - c0) as f64 / (t1 - t0).as_secs_f64(), offered)
}

fn main() {
    // `cargo bench` passes harness flags such as --bench; nothing to parse.
    require_root_and_ip();
    // Killed by a timeout, the bench still removes its namespaces.
    glb_testkit::netns::remove_on_signals();
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
    px.sysctl("net.ipv4.ip_forward", "1");

    let tmp = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start("proxy", &px, tmp.path(), &["--tun", "glbr0"]);

    let gen_sock = gen_ns.enter(|| UdpSocket::bind((GEN, 0)).unwrap());
    // An ACK of a flow the proxy does not know, listing one hop.
    let inner = ipv4(
        Ipv4Addr::new(192, 0, 2, 7),
        VIP,
        6,
        &tcp(Ipv4Addr::new(192, 0, 2, 7), VIP, 40000, 80, 1, 1, 0x10),
    );
    let payload = gue(4, 0, &[HOP], &inner);

    let (redirect_pps, redirect_offered) =
        measure(&gen_sock, &sink, SocketAddrV4::new(PROXY, 19523), &payload);
    let stats = daemon.wait_stats("counters after the redirect run", |s| {
        s.get(Counter::ForwardedToAlternate) > 0
    });
    let (kernel_pps, kernel_offered) =
        measure(&gen_sock, &sink, SocketAddrV4::new(HOP, 19523), &payload);
    daemon.assert_running();

    eprintln!(
        "redirect: offered {redirect_offered} datagrams; daemon received {} forwarded {} \
         (lookups {}, forward errors {}); kernel: offered {kernel_offered}",
        stats.get(Counter::Total),
        stats.get(Counter::ForwardedToAlternate),
        stats.get(Counter::SocketLookups),
        stats.get(Counter::ForwardErrors),
    );
    let ratio = if kernel_pps > 0.0 {
        redirect_pps / kernel_pps
    } else {
        0.0
    };
    println!("redirect_pps={redirect_pps:.0} kernel_pps={kernel_pps:.0} ratio={ratio:.3}");
}
