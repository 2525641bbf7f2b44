//! Files a test makes and inspects inside its own temporary folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;

/// The names in `dir`, sorted: what a test expects to be left behind.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Makes a FIFO at `path` and a thread reading it to the end, whose join
/// returns what was written through it. A FIFO in the test's own folder
/// stands for a device such as `/dev/null`: tests never write at host paths.
pub fn fifo_reader(path: &Path) -> JoinHandle<Vec<u8>> {
    let made = Command::new("mkfifo").arg(path).status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "mkfifo (coreutils) is needed to make a FIFO for this test"
    );
    let path: PathBuf = path.to_owned();
    std::thread::spawn(move || std::fs::read(path).unwrap())
}
