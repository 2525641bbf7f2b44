//! Careless and hostile use of `build-config` (issue 14): outputs that are
//! not regular files, an output that is the input, a compile killed half
//! way, and a table count beyond the documented limit.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn cli(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glb-director-cli"))
        .args(args)
        .output()
        .expect("spawn glb-director-cli")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
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
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("t.json");
    let text = tables_json(1, 2);
    fs::write(&src, &text).unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink("t.json", &link).unwrap();
    for dst in [src.clone(), dir.path().join("sub/../t.json"), link.clone()] {
        let o = cli(&[Path::new("build-config"), &src, &dst]);
        assert!(!o.status.success(), "{} accepted", dst.display());
        assert!(stderr(&o).contains("are the same file"), "{}", stderr(&o));
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
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("t.json");
    fs::write(&src, tables_json(1, 2)).unwrap();
    // A FIFO in the test's own folder stands for /dev/null (tests never
    // write at host paths): written through, never renamed over.
    let fifo = dir.path().join("out.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "mkfifo (coreutils) is needed"
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).unwrap().len())
    };
    let o = cli(&[Path::new("build-config"), &src, &fifo]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(reader.join().unwrap(), 24 + 537_624);
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());

    let sub = dir.path().join("out.bin");
    fs::create_dir(&sub).unwrap();
    let o = cli(&[Path::new("build-config"), &src, &sub]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));
    assert!(sub.is_dir());
    assert_eq!(names(dir.path()), ["out.bin", "out.fifo", "t.json"]);
}

#[test]
fn sigterm_mid_compile_leaves_no_temporary_file_and_a_stale_one_is_swept() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("t.json");
    // Slow to compile: 40 tables of 256 backends.
    fs::write(&src, tables_json(40, 256)).unwrap();
    let dst = dir.path().join("t.bin");
    // Left by a compile that was SIGKILLed (PID above any Linux hands out).
    fs::write(dir.path().join(".t.bin.tmp-4194305-abcdef"), b"partial").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_glb-director-cli"))
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
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("t.json");
    fs::write(&src, tables_json(1025, 1)).unwrap();
    let dst = dir.path().join("t.bin");
    let o = cli(&[Path::new("build-config"), &src, &dst]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("1025 tables; a file holds at most 1024"),
        "{}",
        stderr(&o)
    );
    assert_eq!(o.status.code(), Some(1), "an error, not an abort");
    assert_eq!(names(dir.path()), ["t.json"]);
}
