//! Careless and hostile use of `build-config` (issue 14): outputs that are
//! not regular files, an output that is the input, a compile killed half
//! way, and a table count beyond the documented limit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use glb_testkit::files::{fifo_reader, names};
use glb_testkit::process::{output, stderr};

const CLI: &str = env!("CARGO_BIN_EXE_glb-director-cli");

fn build_config(src: &Path, dst: &Path) -> Output {
    output(CLI, &[Path::new("build-config"), src, dst])
}

/// Requires a failed run whose error says `why`.
fn refused(o: &Output, why: &str) {
    assert!(!o.status.success(), "accepted");
    assert!(stderr(o).contains(why), "{}", stderr(o));
}

/// A temporary folder holding `t.json` with `json`.
fn folder_with_source(json: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("t.json");
    fs::write(&src, json).unwrap();
    (dir, src)
}

/// `n` tables of `backends` backends each.
fn tables_json(n: usize, backends: usize) -> String {
    let backends: Vec<String> = (0..backends)
        .map(|i| {
            format!(
                r#"{{"ip": "10.1.{}.{}", "state": "active", "healthy": true}}"#,
                i / 250,
                i % 250 + 1
            )
        })
        .collect();
    let table = format!(
        r#"{{"hash_key": "12345678901234561234567890123456", "seed": "34567890123456783456789012345678",
            "binds": [{{"ip": "10.0.0.1", "proto": "tcp", "port": 80}}],
            "backends": [{}]}}"#,
        backends.join(",")
    );
    format!(r#"{{"tables": [{}]}}"#, vec![table; n].join(","))
}

#[test]
fn the_source_is_never_the_destination_however_it_is_spelled() {
    let text = tables_json(1, 2);
    let (dir, src) = folder_with_source(&text);
    fs::create_dir(dir.path().join("sub")).unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink("t.json", &link).unwrap();
    for dst in [src.clone(), dir.path().join("sub/../t.json"), link.clone()] {
        refused(&build_config(&src, &dst), "are the same file");
        assert_eq!(
            fs::read_to_string(&src).unwrap(),
            text,
            "the source survived"
        );
    }
}

#[test]
fn a_device_or_fifo_output_is_not_replaced_and_a_directory_is_refused() {
    use std::os::unix::fs::FileTypeExt;
    let (dir, src) = folder_with_source(&tables_json(1, 2));
    // The FIFO stands for /dev/null: written through, never renamed over.
    let fifo = dir.path().join("out.fifo");
    let reader = fifo_reader(&fifo);
    let o = build_config(&src, &fifo);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(reader.join().unwrap().len(), 24 + 537_624);
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());

    let sub = dir.path().join("out.bin");
    fs::create_dir(&sub).unwrap();
    refused(&build_config(&src, &sub), "is a directory");
    assert!(sub.is_dir());
    assert_eq!(names(dir.path()), ["out.bin", "out.fifo", "t.json"]);
}

#[test]
fn sigterm_mid_compile_leaves_no_temporary_file_and_a_stale_one_is_swept() {
    // Slow to compile: 40 tables of 256 backends.
    let (dir, src) = folder_with_source(&tables_json(40, 256));
    let dst = dir.path().join("t.bin");
    // Left by a compile that was SIGKILLed (PID above any Linux hands out).
    fs::write(dir.path().join(".t.bin.tmp-4194305-abcdef"), b"partial").unwrap();
    let mut child = Command::new(CLI)
        .arg("build-config")
        .arg(&src)
        .arg(&dst)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the compile is writing its temporary file.
    let start = Instant::now();
    let mut writing = false;
    while start.elapsed() < Duration::from_secs(60) {
        if names(dir.path())
            .iter()
            .any(|n| n.starts_with(&format!(".t.bin.tmp-{}-", child.id())))
        {
            writing = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        writing,
        "the compile never started writing (or finished too soon)"
    );
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(15),
        "ends as SIGTERM would: {status:?}"
    );
    assert_eq!(
        names(dir.path()),
        ["t.json"],
        "no partial table, stale one swept"
    );
}

#[test]
fn more_tables_than_the_limit_are_refused_without_allocating_them() {
    let (dir, src) = folder_with_source(&tables_json(1025, 1));
    let o = build_config(&src, &dir.path().join("t.bin"));
    refused(&o, "1025 tables; a file holds at most 1024");
    assert_eq!(o.status.code(), Some(1), "an error, not an abort");
    assert_eq!(names(dir.path()), ["t.json"]);
}
