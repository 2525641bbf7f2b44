//! NFQUEUE mode in network namespaces: an iptables rule queues GUE to
//! the daemon, which answers with verdicts. This kernel has no `fou`
//! module, so a plain UDP socket on the GUE port stands in for the
//! kernel's fou socket: whatever the daemon ACCEPTs arrives there, and
//! what it forwards arrives at the hop instead. Needs root, iproute2 and
//! iptables.

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use glb_redirect::counters::Counter;
use glb_testkit::netns::run;
use support::*;

const DIRECTOR: Ipv4Addr = Ipv4Addr::new(10, 203, 1, 2);
const PROXY: Ipv4Addr = Ipv4Addr::new(10, 203, 1, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 44);

fn require_iptables() {
    glb_testkit::netns::require_command("iptables", &["--version"], "iptables");
}

/// Collects datagrams arriving on `sock` until `want` arrived, then waits
/// a little longer to catch anything extra.
fn collect(sock: &UdpSocket, want: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    while got.len() < want && start.elapsed() < PATIENCE {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            got.push((buf[..n].to_vec(), from));
        }
    }
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(500) {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            got.push((buf[..n].to_vec(), from));
        }
    }
    got
}

#[test]
fn nfqueue_mode_gives_verdicts_and_forwards() {
    require_root_and_ip();
    require_iptables();
    let p = unique_prefix("nfq");
    let px = Netns::create(format!("{p}-px"));
    let dir = spoke(&px, &p, "dir", "10.203.1");
    run(&[
        "ip",
        "netns",
        "exec",
        &px.name,
        "iptables",
        "-A",
        "INPUT",
        "-p",
        "udp",
        "--dport",
        "19523",
        "-j",
        "NFQUEUE",
        "--queue-num",
        "7",
        "--queue-bypass",
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(
        "proxy-nfq",
        &px,
        tmp.path(),
        &["--mode", "nfqueue", "--queue-num", "7"],
    );

    // The stand-in for the fou socket, the hop's socket, and a real TCP
    // connection on the proxy that an inner packet can belong to.
    let (stand_in, listener, conn) = px.enter(|| {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 19523)).unwrap();
        let l = TcpListener::bind((PROXY, 80)).unwrap();
        let c = TcpStream::connect((PROXY, 80)).unwrap();
        (s, l, c)
    });
    let (_server_side, _) = listener.accept().unwrap();
    let conn_port = conn.local_addr().unwrap().port();
    let (tx, hop) = dir.enter(|| {
        (
            UdpSocket::bind((DIRECTOR, 0)).unwrap(),
            UdpSocket::bind((DIRECTOR, 19523)).unwrap(),
        )
    });

    let syn = gue(
        4,
        0,
        &[DIRECTOR],
        &ipv4(CLIENT, PROXY, 6, &tcp(CLIENT, PROXY, 5000, 80, 1, 0, 0x02)),
    );
    let unknown_ack = gue(
        4,
        0,
        &[DIRECTOR],
        &ipv4(CLIENT, PROXY, 6, &tcp(CLIENT, PROXY, 5001, 80, 1, 1, 0x10)),
    );
    let established = gue(
        4,
        0,
        &[DIRECTOR],
        &ipv4(
            PROXY,
            PROXY,
            6,
            &tcp(PROXY, PROXY, conn_port, 80, 1, 1, 0x10),
        ),
    );
    let last_resort = gue(
        4,
        0,
        &[],
        &ipv4(CLIENT, PROXY, 6, &tcp(CLIENT, PROXY, 5002, 80, 1, 1, 0x10)),
    );
    let mut malformed = unknown_ack.clone();
    malformed[7] = 0; // hop_count 0 with hlen 2

    for m in [&syn, &unknown_ack, &established, &last_resort, &malformed] {
        tx.send_to(m, (PROXY, 19523)).unwrap();
    }
    let s = d.wait_stats("five verdicts", |s| s.get(Counter::Total) >= 5);
    assert_eq!(s.get(Counter::Total), 5);
    assert_eq!(s.get(Counter::AcceptedSyn), 1);
    assert_eq!(s.get(Counter::AcceptedEstablished), 1);
    assert_eq!(s.get(Counter::AcceptedLastResort), 1);
    assert_eq!(s.get(Counter::DroppedBadHopCount), 1);
    assert_eq!(s.get(Counter::ForwardedToAlternate), 1);
    assert_eq!(s.get(Counter::ForwardErrors), 0);

    // ACCEPTed packets reach the (stand-in) fou socket unchanged.
    let mut accepted: Vec<Vec<u8>> = collect(&stand_in, 3).into_iter().map(|g| g.0).collect();
    accepted.sort();
    let mut want = vec![syn.clone(), established.clone(), last_resort.clone()];
    want.sort();
    assert_eq!(accepted, want);

    // The forwarded packet reaches the hop from the proxy, with the
    // director's UDP source port and next_hop incremented.
    let forwarded = collect(&hop, 1);
    assert_eq!(
        forwarded.len(),
        1,
        "exactly the unknown flow's ACK is forwarded"
    );
    let (bytes, from) = &forwarded[0];
    assert_eq!(from.ip(), std::net::IpAddr::V4(PROXY));
    assert_eq!(from.port(), tx.local_addr().unwrap().port());
    assert_eq!(bytes[6], 1);
    assert_eq!(&bytes[..6], &unknown_ack[..6]);
    assert_eq!(&bytes[7..], &unknown_ack[7..]);
    d.assert_running_and_accounted();
}
