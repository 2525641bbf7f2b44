//! Packets of one flow arriving in runs share one socket-table lookup;
//! every packet must still get the answer for its own flow, however the
//! runs of several flows interleave. Runs in the test's own network
//! namespace against a real loopback connection (no root needed).

#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;

use glb_redirect::allow::Allow;
use glb_redirect::counters::{Counter, Local, Shared, Snapshot};
use glb_redirect::decide::{LocalReason, Verdict};
use glb_redirect::worker::{Decider, LocalAddrs};
use support::{gue, ipv4, tcp};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// Named in the GUE header only; nothing is sent in this test.
const HOP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);

#[test]
fn interleaved_runs_each_get_their_own_flows_answer() {
    let server = TcpListener::bind((LO, 0)).unwrap();
    let vport = server.local_addr().unwrap().port();
    let client = TcpStream::connect((LO, vport)).unwrap();
    let _accepted = server.accept().unwrap();
    let known = client.local_addr().unwrap().port();
    // ACKs to the listener's port: from the connected client (ours), and
    // from ports with no connection (the listener answers: not ours).
    let ack = |sport: u16| {
        gue(
            4,
            0,
            &[HOP],
            &ipv4(LO, LO, 6, &tcp(LO, LO, sport, vport, 1, 1, 0x10)),
        )
    };
    let strangers: Vec<u16> = (1..=6).map(|d| known.wrapping_add(d).max(1)).collect();
    let mut order = vec![
        known,
        known,
        strangers[0],
        known,
        strangers[0],
        strangers[0],
    ];
    // More distinct flows than a lookup is compared with, then the known
    // one again, twice.
    order.extend(&strangers);
    order.extend([known, known, strangers[5]]);
    let payloads: Vec<Vec<u8>> = order.iter().map(|&p| ack(p)).collect();

    let mut decider = Decider::new(
        payloads.len(),
        Arc::new(LocalAddrs::default()),
        Vec::new(),
        Allow::default(),
    )
    .expect("a NETLINK_SOCK_DIAG socket");
    let mut counters = Local::default();
    let mut out = Vec::new();
    decider.decide(
        payloads.len(),
        |i| Ok((payloads[i].as_slice(), Some(LO), Some(LO))),
        &mut counters,
        &mut out,
    );

    let got: Vec<(u16, Verdict)> = order
        .iter()
        .zip(&out)
        .map(|(&p, d)| (p, d.verdict))
        .collect();
    let want: Vec<(u16, Verdict)> = order
        .iter()
        .map(|&p| {
            let v = if p == known {
                Verdict::Local(LocalReason::Established)
            } else {
                Verdict::Forward(HOP)
            };
            (p, v)
        })
        .collect();
    assert_eq!(got, want);
    let shared = Shared::default();
    shared.add(&counters);
    let counted = Snapshot::sum([&shared]);
    assert_eq!(counted.get(Counter::SocketLookups), order.len() as u64);
    assert_eq!(counted.get(Counter::SocketLookupErrors), 0);
}
