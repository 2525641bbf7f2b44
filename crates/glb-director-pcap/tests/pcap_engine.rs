//! The `glb-director-pcap` binary against every case folder of the
//! conformance suite, and its behaviour on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use glb_testkit::conformance;
use glb_testkit::files::fifo_reader;
use glb_testkit::pcap::{Flavour, read_records, write_records};
use glb_testkit::process::stderr;

fn cases() -> Vec<PathBuf> {
    conformance::case_dirs("pcap")
}

/// Runs the engine on a configuration, a table and a capture, writing
/// `out` and, when asked, `verdicts`.
fn engine(config: &Path, table: &Path, pcap: &Path, out: &Path, verdicts: Option<&Path>) -> Output {
    engine_cmd(config, table, pcap, out, verdicts)
        .output()
        .expect("run glb-director-pcap")
}

/// The command [`engine`] runs, for adding options.
fn engine_cmd(
    config: &Path,
    table: &Path,
    pcap: &Path,
    out: &Path,
    verdicts: Option<&Path>,
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_glb-director-pcap"));
    cmd.arg("--config-file")
        .arg(config)
        .arg("--forwarding-table")
        .arg(table)
        .arg("--pcap-file")
        .arg(pcap)
        .arg("--output")
        .arg(out);
    if let Some(verdicts) = verdicts {
        cmd.arg("--verdicts").arg(verdicts);
    }
    cmd
}

/// Replays a case folder's capture through its configuration and table.
fn replay(case: &Path, out: &Path, verdicts: Option<&Path>) -> Output {
    replay_cmd(case, out, verdicts)
        .output()
        .expect("run glb-director-pcap")
}

/// The command [`replay`] runs, for adding options.
fn replay_cmd(case: &Path, out: &Path, verdicts: Option<&Path>) -> Command {
    let input = |name| case.join(name);
    engine_cmd(
        &input("config.json"),
        &input("table.bin"),
        &input("input.pcap"),
        out,
        verdicts,
    )
}

#[test]
fn every_conformance_case_matches_byte_for_byte() {
    every_case_matches(|case, out, verdicts| replay(case, out, Some(verdicts)));
}

/// The flow hash on every vector engine this CPU runs, named with
/// `--lane-engine`, gives the expected bytes of every case.
#[test]
fn every_lane_engine_matches_byte_for_byte() {
    for e in glb_core::hash::LaneEngine::available() {
        every_case_matches(|case, out, verdicts| {
            replay_cmd(case, out, Some(verdicts))
                .arg("--lane-engine")
                .arg(e.name())
                .output()
                .expect("run glb-director-pcap")
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pcap");
    let run = replay_cmd(&case0(), &out, None)
        .args(["--lane-engine", "sse9"])
        .output()
        .expect("run glb-director-pcap");
    assert!(!run.status.success(), "an unknown engine is refused");
    assert!(
        stderr(&run).contains("unknown lane engine \"sse9\""),
        "{}",
        stderr(&run)
    );
    assert!(!out.exists(), "nothing written");
}

/// Replays every case with `run` (case folder, output, verdicts file) and
/// compares with the expected output and verdicts.
fn every_case_matches(run: impl Fn(&Path, &Path, &Path) -> Output) {
    let dir = tempfile::tempdir().unwrap();
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let out = dir.path().join(format!("{name}.pcap"));
        let verdicts = dir.path().join(format!("{name}.txt"));
        let run = run(&case, &out, &verdicts);
        assert!(
            run.status.success(),
            "{name}: exit {:?}: {}",
            run.status,
            stderr(&run)
        );
        let got = std::fs::read(&out).unwrap();
        let want = std::fs::read(case.join("expected.pcap")).unwrap();
        if got != want {
            let at = got
                .iter()
                .zip(&want)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(want.len()));
            panic!(
                "{name}: output differs from expected.pcap at byte {at} (got {} bytes, want {})",
                got.len(),
                want.len()
            );
        }
        let got = std::fs::read_to_string(&verdicts).unwrap();
        let want = std::fs::read_to_string(case.join("expected.verdicts.txt")).unwrap();
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(g, w, "{name}: verdict line {}", i + 1);
        }
        assert_eq!(
            got, want,
            "{name}: verdicts differ in length or line endings"
        );
    }
}

fn case0() -> PathBuf {
    cases().into_iter().next().unwrap()
}

/// Runs with one input replaced and checks for a clean failure that names
/// `needle`, leaving an existing output untouched.
fn expect_failure(config: &Path, table: &Path, pcap: &Path, needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pcap");
    let verdicts = dir.path().join("v.txt");
    std::fs::write(&out, b"previous").unwrap();
    let run = engine(config, table, pcap, &out, Some(&verdicts));
    let stderr = stderr(&run);
    assert!(!run.status.success(), "should fail: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(needle),
        "stderr should mention {needle:?}: {stderr}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
    assert!(!verdicts.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "out.pcap")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn bad_inputs_fail_cleanly_without_output() {
    let case = case0();
    let (cfg, table, pcap) = (
        case.join("config.json"),
        case.join("table.bin"),
        case.join("input.pcap"),
    );
    let dir = tempfile::tempdir().unwrap();

    let bad_cfg = dir.path().join("bad.conf");
    std::fs::write(
        &bad_cfg,
        r#"{"outbound_gateway_mac": "zz", "outbound_src_ip": "1.2.3.4"}"#,
    )
    .unwrap();
    expect_failure(&bad_cfg, &table, &pcap, "outbound_gateway_mac");

    let bad_table = dir.path().join("bad.bin");
    std::fs::write(&bad_table, b"GLBX").unwrap();
    expect_failure(&cfg, &bad_table, &pcap, "bad.bin");

    let ng = dir.path().join("capture.pcapng");
    std::fs::write(&ng, [0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0]).unwrap();
    expect_failure(&cfg, &table, &ng, "pcapng");

    let mut cut = std::fs::read(&pcap).unwrap();
    cut.truncate(cut.len() - 3);
    let cut_path = dir.path().join("cut.pcap");
    std::fs::write(&cut_path, &cut).unwrap();
    expect_failure(&cfg, &table, &cut_path, "cut.pcap");

    let mut raw = std::fs::read(&pcap).unwrap();
    raw[20] = 101; // LINKTYPE_RAW
    let raw_path = dir.path().join("raw.pcap");
    std::fs::write(&raw_path, &raw).unwrap();
    expect_failure(&cfg, &table, &raw_path, "link type 101");

    expect_failure(
        &cfg,
        &table,
        &dir.path().join("missing.pcap"),
        "missing.pcap",
    );

    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    expect_failure(&cfg, &table, &empty, "empty.pcap: the file is empty");
    let short = dir.path().join("short.pcap");
    std::fs::write(&short, &std::fs::read(&pcap).unwrap()[..10]).unwrap();
    expect_failure(
        &cfg,
        &table,
        &short,
        "ends inside the 24-byte pcap header (10 bytes)",
    );
}

/// Each error is printed once, not once per layer of its cause chain.
#[test]
fn an_error_is_printed_once() {
    let case = case0();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    let (config, table) = (case.join("config.json"), case.join("table.bin"));
    let run = engine(&config, &table, &empty, &dir.path().join("out.pcap"), None);
    let stderr = stderr(&run);
    assert_eq!(stderr.matches("the file is empty").count(), 1, "{stderr}");
}

/// No output may be one of the files read, however its path is spelled.
#[test]
fn outputs_never_overwrite_inputs() {
    let case = case0();
    let dir = tempfile::tempdir().unwrap();
    for name in ["config.json", "table.bin", "input.pcap"] {
        std::fs::copy(case.join(name), dir.path().join(name)).unwrap();
    }
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let p = |n: &str| dir.path().join(n);
    let before: Vec<Vec<u8>> = ["config.json", "table.bin", "input.pcap"]
        .iter()
        .map(|n| std::fs::read(p(n)).unwrap())
        .collect();
    let cases = [
        (p("sub/../input.pcap"), p("v.txt"), "also the input capture"),
        (
            p("sub/../config.json"),
            p("v.txt"),
            "also the configuration",
        ),
        (
            p("out.pcap"),
            p("sub/../table.bin"),
            "also the forwarding table",
        ),
        (
            p("out.pcap"),
            p("sub/../out.pcap"),
            "also the output capture",
        ),
    ];
    for (out, verdicts, want) in cases {
        let run = replay(dir.path(), &out, Some(&verdicts));
        let stderr = stderr(&run);
        assert!(!run.status.success(), "{}: accepted", out.display());
        assert!(stderr.contains(want), "{stderr}");
    }
    let after: Vec<Vec<u8>> = ["config.json", "table.bin", "input.pcap"]
        .iter()
        .map(|n| std::fs::read(p(n)).unwrap())
        .collect();
    assert!(before == after, "an input was changed");
}

/// Big-endian and nanosecond captures are read; timestamps are carried
/// over with their resolution.
#[test]
fn reads_other_pcap_flavours() {
    let case = case0();
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("be.pcap");
    // The input rewritten as big-endian with nanosecond timestamps.
    let mut records = read_records(&case.join("input.pcap"));
    for r in &mut records {
        r.ts_frac *= 1000;
    }
    let flavour = Flavour {
        big_endian: true,
        nanos: true,
        snaplen: 262_144,
    };
    write_records(&inp, &records, flavour);
    let out = dir.path().join("out.pcap");
    let (config, table) = (case.join("config.json"), case.join("table.bin"));
    let run = engine(&config, &table, &inp, &out, None);
    assert!(run.status.success(), "{}", stderr(&run));
    let got = std::fs::read(&out).unwrap();
    let want = std::fs::read(case.join("expected.pcap")).unwrap();
    assert_eq!(&got[..4], &0xa1b2_3c4du32.to_le_bytes());
    assert_eq!(got[4..24], want[4..24]);
    assert_eq!(got.len(), want.len());
    // Same frames; every stamp carried over in nanoseconds.
    let (got, want) = (
        read_records(&out),
        read_records(&case.join("expected.pcap")),
    );
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            (g.ts_sec, g.ts_frac),
            (w.ts_sec, w.ts_frac * 1000),
            "record {i} stamp"
        );
        assert!(g.data == w.data, "record {i} frame differs");
    }
}

/// Writing to a FIFO (or a device such as /dev/null) writes through it;
/// it must never be replaced by a rename. A FIFO in the test's own folder
/// stands for both: tests never write at host paths.
#[test]
fn device_outputs_are_written_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let case = case0();
    let dir = tempfile::tempdir().unwrap();
    let verdicts = dir.path().join("v.txt");
    let fifo = dir.path().join("out.fifo");
    let reader = fifo_reader(&fifo);
    let run = replay(&case, &fifo, Some(&verdicts));
    assert!(run.status.success(), "{}", stderr(&run));
    let through = reader.join().unwrap();
    let want = std::fs::read(case.join("expected.pcap")).unwrap();
    assert_eq!(
        through.len(),
        want.len(),
        "the capture went through the FIFO"
    );
    let m = std::fs::metadata(&fifo).unwrap();
    assert!(m.file_type().is_fifo(), "the FIFO was replaced by a file");
    let want = std::fs::read_to_string(case.join("expected.verdicts.txt")).unwrap();
    assert_eq!(std::fs::read_to_string(&verdicts).unwrap(), want);
}
