//! Every case of `conformance/pcap/`: each input frame is run through the
//! loaded XDP program with BPF_PROG_TEST_RUN and must give exactly the
//! frame of `expected.pcap` (apart from the Ethernet source, which a test
//! run has no port to take from: the program then uses the address the
//! frame was sent to) with the verdict `expected.verdicts.txt` gives it.

mod support;

use glb_director_xdp::maps::Counter;
use glb_director_xdp::test_run::{self, action, action_name};
use support::*;

#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// XDP_TX as output frame K (1-based).
    Encap(usize),
    /// XDP_PASS, unchanged: the kernel is the exception path.
    Unclassified,
    /// XDP_DROP.
    RouteFailed,
}

fn parse_verdicts(text: &str) -> Vec<Expect> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let mut w = line.split_whitespace();
            assert_eq!(
                w.next(),
                Some((i + 1).to_string().as_str()),
                "line {line:?}"
            );
            match (w.next(), w.next()) {
                (Some("encap"), Some(out)) => {
                    let k = out.strip_prefix("out=").and_then(|k| k.parse().ok());
                    Expect::Encap(k.unwrap_or_else(|| panic!("bad line {line:?}")))
                }
                (Some("drop"), Some("unclassified")) => Expect::Unclassified,
                (Some("drop"), Some("route-failed")) => Expect::RouteFailed,
                _ => panic!("unknown verdict line {line:?}"),
            }
        })
        .collect()
}

#[test]
fn conformance_pcaps_through_the_program() {
    let root = conformance_dir().join("pcap");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.verdicts.txt").exists())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", root.display());
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let (options, encap) = settings(&case.join("config.json"));
        let table = std::fs::read(case.join("table.bin")).unwrap();
        let director = director_with(&table, &options, &encap);
        let inputs = read_pcap(&case.join("input.pcap"));
        let outputs = read_pcap(&case.join("expected.pcap"));
        let verdicts =
            parse_verdicts(&std::fs::read_to_string(case.join("expected.verdicts.txt")).unwrap());
        assert_eq!(
            inputs.len(),
            verdicts.len(),
            "{name}: one verdict per input frame"
        );
        let before = director.counters().unwrap();
        let (mut tx, mut pass, mut drop) = (0u64, 0u64, 0u64);
        for (i, (frame, want)) in inputs.iter().zip(&verdicts).enumerate() {
            let got = test_run::run(director.program_fd(), frame, 1)
                .unwrap_or_else(|e| panic!("{name} frame {}: test run: {e}", i + 1));
            let what = format!("{name} frame {} ({want:?})", i + 1);
            match want {
                Expect::Encap(k) => {
                    tx += 1;
                    assert_eq!(
                        got.action,
                        action::TX,
                        "{what}: got {}",
                        action_name(got.action)
                    );
                    let exp = &outputs[k - 1];
                    assert_eq!(got.frame.len(), exp.len(), "{what}: length");
                    assert_eq!(got.frame[..6], exp[..6], "{what}: Ethernet destination");
                    assert_eq!(
                        got.frame[6..12],
                        frame[..6],
                        "{what}: Ethernet source is the address the frame was sent to"
                    );
                    assert_eq!(
                        got.frame[12..],
                        exp[12..],
                        "{what}: bytes after the Ethernet addresses"
                    );
                }
                Expect::Unclassified => {
                    pass += 1;
                    assert_eq!(
                        got.action,
                        action::PASS,
                        "{what}: got {}",
                        action_name(got.action)
                    );
                    assert_eq!(&got.frame, frame, "{what}: passed frames are not modified");
                }
                Expect::RouteFailed => {
                    drop += 1;
                    assert_eq!(
                        got.action,
                        action::DROP,
                        "{what}: got {}",
                        action_name(got.action)
                    );
                }
            }
        }
        let after = director.counters().unwrap();
        let delta = |c| after.get(c) - before.get(c);
        assert_eq!(
            delta(Counter::Processed),
            inputs.len() as u64,
            "{name}: processed"
        );
        assert_eq!(delta(Counter::XdpTx), tx, "{name}: XDP_TX count");
        assert_eq!(delta(Counter::Encapsulated), tx, "{name}: encapsulated");
        assert_eq!(delta(Counter::XdpPass), pass, "{name}: XDP_PASS count");
        assert_eq!(delta(Counter::XdpDrop), drop, "{name}: XDP_DROP count");
        assert_eq!(delta(Counter::RouteFailed), drop, "{name}: route failures");
        assert_eq!(
            delta(Counter::UnknownFormat) + delta(Counter::NoMatchingBind),
            pass,
            "{name}: unmatched"
        );
        let bytes: u64 = verdicts
            .iter()
            .filter_map(|v| match v {
                Expect::Encap(k) => Some(outputs[k - 1].len() as u64),
                _ => None,
            })
            .sum();
        assert_eq!(
            delta(Counter::EncapsulatedBytes),
            bytes,
            "{name}: encapsulated bytes"
        );
        eprintln!(
            "{name}: {} frames: {tx} XDP_TX, {pass} XDP_PASS, {drop} XDP_DROP",
            inputs.len()
        );
    }
}
