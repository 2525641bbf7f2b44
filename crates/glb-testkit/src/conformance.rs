//! The conformance data (`../shared/conformance` beside the repository, or
//! `GLB_CONFORMANCE_DIR`): inputs and exact expected outputs that tests
//! iterate, so a new case is picked up without a code change.
//!
//! A test that needs the data fails, naming what is missing; it never
//! passes by skipping.

use std::path::{Path, PathBuf};

/// The conformance folder (it may not exist; see [`require`]).
pub fn dir() -> PathBuf {
    match std::env::var_os("GLB_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    }
}

/// `rel` inside the conformance folder; panics with a message saying what
/// is missing and how to point the tests at a copy when it is not there.
pub fn require(rel: &str) -> PathBuf {
    let p = dir().join(rel);
    assert!(
        p.exists(),
        "conformance data {} is missing: the tests need the shared conformance folder \
         (../shared/conformance beside the repository, or set GLB_CONFORMANCE_DIR)",
        p.display()
    );
    p
}

/// The entries of the conformance sub-folder `rel`, sorted by name; panics
/// (as [`require`]) when it is missing or empty.
pub fn cases(rel: &str) -> Vec<PathBuf> {
    let d = require(rel);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("conformance folder {}: {e}", d.display()))
        .map(|e| e.expect("readable conformance entry").path())
        .collect();
    v.sort();
    assert!(
        !v.is_empty(),
        "conformance folder {} holds no case",
        d.display()
    );
    v
}

/// The sub-folders (one case each) of the conformance folder `rel`,
/// sorted; panics when there is none.
pub fn case_dirs(rel: &str) -> Vec<PathBuf> {
    let v: Vec<PathBuf> = cases(rel).into_iter().filter(|p| p.is_dir()).collect();
    assert!(
        !v.is_empty(),
        "no case folders under {}",
        dir().join(rel).display()
    );
    v
}
