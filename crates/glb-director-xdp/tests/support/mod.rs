//! Helpers shared by the XDP director's tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use glb_core::encap::EncapParams;
use glb_core::route::RouteOptions;
use glb_core::table::TableFile;
use glb_core::wire::ethernet;
use glb_director::DirectorConfig;
use glb_director_xdp::image::Image;
use glb_director_xdp::maps::Counter;
use glb_director_xdp::objects;
use glb_director_xdp::program::Director;
use glb_director_xdp::test_run::{self, action, action_name};

pub use glb_testkit::pcap::read_pcap;

/// The routing and encapsulation settings of a director.conf.
pub fn settings(config: &Path) -> (RouteOptions, EncapParams) {
    let loaded = DirectorConfig::load(config).unwrap_or_else(|e| panic!("{e}"));
    (
        loaded.config.route_options(),
        loaded.config.encap_params(ethernet::Address::ZERO),
    )
}

/// The director program loaded with `table` (the bytes of a binary table).
pub fn director_with(table: &[u8], options: &RouteOptions, encap: &EncapParams) -> Director {
    let file = TableFile::parse(table).unwrap_or_else(|e| panic!("table: {e}"));
    let mut d = Director::load_file(&objects::built("glb_encap.o"), 0)
        .unwrap_or_else(|e| panic!("loading glb_encap.o: {}", error_chain(&e)));
    let image =
        Image::build(&file, options, encap, d.tables_cap()).unwrap_or_else(|e| panic!("{e}"));
    d.install(&image)
        .unwrap_or_else(|e| panic!("installing: {}", error_chain(&e)));
    d
}

pub use glb_director_xdp::error_chain;

/// The case folders of `conformance/pcap/`, sorted.
pub fn conformance_cases() -> Vec<PathBuf> {
    glb_testkit::conformance::case_dirs("pcap")
}

/// A line of `expected.verdicts.txt`.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// XDP_TX as output frame K (1-based).
    Encap(usize),
    /// XDP_PASS, unchanged: the kernel is the exception path.
    Unclassified,
    /// XDP_DROP.
    RouteFailed,
}

fn parse_verdicts(text: &str) -> Result<Vec<Expect>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let mut w = line.split_whitespace();
            if w.next() != Some((i + 1).to_string().as_str()) {
                return Err(format!("line {line:?} is out of order"));
            }
            match (w.next(), w.next()) {
                (Some("encap"), Some(out)) => out
                    .strip_prefix("out=")
                    .and_then(|k| k.parse().ok())
                    .map(Expect::Encap)
                    .ok_or_else(|| format!("bad line {line:?}")),
                (Some("drop"), Some("unclassified")) => Ok(Expect::Unclassified),
                (Some("drop"), Some("route-failed")) => Ok(Expect::RouteFailed),
                _ => Err(format!("unknown verdict line {line:?}")),
            }
        })
        .collect()
}

/// Runs one conformance case through the program; returns a summary, or
/// what differed.
pub fn check_case(case: &Path) -> Result<String, String> {
    let name = case
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let read = |f: &str| std::fs::read(case.join(f)).map_err(|e| format!("{name}/{f}: {e}"));
    let (options, encap) = settings(&case.join("config.json"));
    let director = director_with(&read("table.bin")?, &options, &encap);
    let inputs = read_pcap(&case.join("input.pcap"));
    let outputs = read_pcap(&case.join("expected.pcap"));
    let verdicts = parse_verdicts(&String::from_utf8_lossy(&read("expected.verdicts.txt")?))?;
    let check = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };
    check(
        inputs.len() == verdicts.len(),
        format!(
            "{name}: {} frames but {} verdicts",
            inputs.len(),
            verdicts.len()
        ),
    )?;
    let before = director.counters().map_err(|e| error_chain(&e))?;
    let (mut tx, mut pass, mut drop, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    for (i, (frame, want)) in inputs.iter().zip(&verdicts).enumerate() {
        let got = test_run::run(director.program_fd(), frame, 1)
            .map_err(|e| format!("{name} frame {}: test run: {e}", i + 1))?;
        let what = format!("{name} frame {} ({want:?})", i + 1);
        let verdict = |a: u32| {
            check(
                got.action == a,
                format!(
                    "{what}: got {}, want {}",
                    action_name(got.action),
                    action_name(a)
                ),
            )
        };
        match want {
            Expect::Encap(k) => {
                tx += 1;
                verdict(action::TX)?;
                let exp = outputs
                    .get(k - 1)
                    .ok_or_else(|| format!("{what}: no output {k}"))?;
                bytes += exp.len() as u64;
                check(
                    got.frame.len() == exp.len(),
                    format!("{what}: length {} != {}", got.frame.len(), exp.len()),
                )?;
                check(
                    got.frame[..6] == exp[..6],
                    format!("{what}: Ethernet destination"),
                )?;
                check(
                    got.frame[6..12] == frame[..6],
                    format!("{what}: Ethernet source is not the address the frame was sent to"),
                )?;
                check(
                    got.frame[12..] == exp[12..],
                    format!(
                        "{what}: bytes differ:\n got {:02x?}\nwant {:02x?}",
                        got.frame, exp
                    ),
                )?;
            }
            Expect::Unclassified => {
                pass += 1;
                verdict(action::PASS)?;
                check(
                    &got.frame == frame,
                    format!("{what}: a passed frame was modified"),
                )?;
            }
            Expect::RouteFailed => {
                drop += 1;
                verdict(action::DROP)?;
            }
        }
    }
    let after = director.counters().map_err(|e| error_chain(&e))?;
    for (c, want) in [
        (Counter::Processed, inputs.len() as u64),
        (Counter::XdpTx, tx),
        (Counter::Encapsulated, tx),
        (Counter::EncapsulatedBytes, bytes),
        (Counter::XdpPass, pass),
        (Counter::XdpDrop, drop),
        (Counter::RouteFailed, drop),
    ] {
        let got = after.get(c) - before.get(c);
        check(
            got == want,
            format!("{name}: counter {c:?} is {got}, want {want}"),
        )?;
    }
    let unmatched = after.get(Counter::UnknownFormat) + after.get(Counter::NoMatchingBind)
        - before.get(Counter::UnknownFormat)
        - before.get(Counter::NoMatchingBind);
    check(
        unmatched == pass,
        format!("{name}: {unmatched} unmatched, want {pass}"),
    )?;
    Ok(format!(
        "{name}: {} frames: {tx} XDP_TX, {pass} XDP_PASS, {drop} XDP_DROP",
        inputs.len()
    ))
}
