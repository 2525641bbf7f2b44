//! `build-config` against the shared conformance data: every table must
//! compile byte for byte, every reject must fail cleanly.

use std::fs;
use std::path::{Path, PathBuf};

use std::process::Output;

use glb_testkit::conformance;
use glb_testkit::files::names;
use glb_testkit::process::{self, output, stderr};

/// The `*.json` files of a conformance subfolder; the test fails, naming
/// the folder, when it is missing or holds none.
fn cases(sub: &str) -> Vec<PathBuf> {
    let files: Vec<PathBuf> = conformance::cases(sub)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert!(
        !files.is_empty(),
        "{} holds no *.json cases",
        conformance::dir().join(sub).display()
    );
    files
}

fn cli(args: &[&Path]) -> Output {
    output(env!("CARGO_BIN_EXE_glb-director-cli"), args)
}

fn build(src: &Path, dst: &Path) -> Output {
    cli(&[Path::new("build-config"), src, dst])
}

/// A temporary folder holding `ft.json` with [`WARNY`], and its compile
/// to `dst` (relative to the folder).
fn build_warny(dst: &str) -> (tempfile::TempDir, std::path::PathBuf, Output, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("ft.json");
    fs::write(&src, WARNY).expect("write");
    let out = build(&src, &tmp.path().join(dst));
    let err = stderr(&out);
    (tmp, src, out, err)
}

#[test]
fn every_table_compiles_byte_for_byte() {
    let files = cases("tables");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    for src in &files {
        let want_path = src.with_extension("bin");
        let want = fs::read(&want_path).unwrap_or_else(|e| panic!("{}: {e}", want_path.display()));
        let dst = tmp.path().join("out.bin");
        let out = build(src, &dst);
        if !out.status.success() {
            failures.push(format!(
                "{}: exit {:?}: {}",
                src.display(),
                out.status.code(),
                stderr(&out)
            ));
            continue;
        }
        let got = fs::read(&dst).expect("output written");
        if got != want {
            let first = got.iter().zip(&want).position(|(a, b)| a != b);
            failures.push(format!(
                "{}: output differs (len {} vs {}, first difference at byte {first:?})",
                src.display(),
                got.len(),
                want.len()
            ));
        }
        assert_eq!(
            names(tmp.path()),
            ["out.bin"],
            "stray files after {}",
            src.display()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{} tables compiled byte for byte", files.len());
}

#[test]
fn every_reject_fails_and_leaves_dst_alone() {
    let files = cases("rejects");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dst = tmp.path().join("forwarding_table.bin");
    let sentinel = b"previous table, must survive".to_vec();
    for src in &files {
        fs::write(&dst, &sentinel).expect("write sentinel");
        let out = build(src, &dst);
        let stderr = stderr(&out);
        assert!(!out.status.success(), "{} was accepted", src.display());
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", src.display());
        let name = src.file_name().expect("file name").to_string_lossy();
        assert!(
            stderr.contains(&*name) && stderr.contains("error"),
            "{}: the message should name the file: {stderr}",
            src.display()
        );
        assert!(!stderr.contains("panicked"), "{}: {stderr}", src.display());
        assert_eq!(
            fs::read(&dst).expect("dst"),
            sentinel,
            "{} touched dst",
            src.display()
        );
        assert_eq!(
            names(tmp.path()),
            ["forwarding_table.bin"],
            "{}",
            src.display()
        );
    }
}

#[test]
fn rejects_leave_no_dst_when_there_was_none() {
    let files = cases("rejects");
    let tmp = tempfile::tempdir().expect("tempdir");
    for src in &files {
        let out = build(src, &tmp.path().join("new.bin"));
        assert!(!out.status.success());
        assert!(names(tmp.path()).is_empty(), "{} left files", src.display());
    }
}

const WARNY: &str = r#"{"tables": [{
  "hash_key": "12345678901234561234567890123456",
  "seed": "34567890123456783456789012345678",
  "binds": [{"ip": "10.10.10.10", "proto": "tcp", "port": 80}],
  "backends": [
    {"ip": "192.168.50.10", "state": "active"},
    {"ip": "192.168.50.11", "state": "draining", "healthy": true},
    {"ip": "192.168.50.12", "state": "filling", "healthy": true}
  ]}]}"#;

#[test]
fn warnings_go_to_stderr_and_still_succeed() {
    let (_tmp, src, out, stderr) = build_warny("ft.bin");
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("backend 0") && stderr.contains("\"healthy\""),
        "{stderr}"
    );
    assert!(stderr.contains("2 backends are not active"), "{stderr}");
    assert!(
        !stderr.contains("1234567890123456"),
        "secret in output: {stderr}"
    );

    let out = cli(&[Path::new("check"), &src]);
    assert!(out.status.success());
    assert!(process::stderr(&out).contains("not active"));
}

#[test]
fn unwritable_destination_is_an_error_not_a_panic() {
    let (tmp, _src, out, stderr) = build_warny("no/such/dir/ft.bin");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no/such/dir/ft.bin"), "{stderr}");
    let out = build(&tmp.path().join("missing.json"), &tmp.path().join("ft.bin"));
    assert_eq!(out.status.code(), Some(1));
    assert!(process::stderr(&out).contains("missing.json"));
}
