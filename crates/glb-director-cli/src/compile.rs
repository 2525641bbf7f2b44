//! `build-config` and `check`: JSON in, validated binary out.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use glb_core::ForwardingTables;
use glb_core::table;
use glb_io::atomic_file::{self, AtomicFile};

/// Reads and validates a JSON table, printing its warnings to stderr.
fn load(src: &Path) -> Result<ForwardingTables> {
    let name = src.display().to_string();
    let text = fs::read_to_string(src).with_context(|| format!("{name}: cannot read"))?;
    let tables = ForwardingTables::from_json(&name, &text)?;
    for w in tables.warnings() {
        eprintln!("{name}: warning: {w}");
    }
    Ok(tables)
}

pub fn check(src: &Path) -> Result<()> {
    let tables = load(src)?;
    println!("{}: ok, {} table(s)", src.display(), tables.tables.len());
    Ok(())
}

pub fn build_config(src: &Path, dst: &Path) -> Result<()> {
    if glb_io::file_id::same_file(src, dst) {
        bail!(
            "{} and {} are the same file: the binary table would overwrite its source",
            src.display(),
            dst.display()
        );
    }
    // A compile killed by a signal removes its temporary file; one killed
    // by SIGKILL left it for this sweep.
    atomic_file::remove_temps_on_signals().context("cannot handle signals")?;
    atomic_file::remove_stale_temps(dst);
    let tables = load(src)?;
    let write_err = || format!("{}: cannot write the binary table", dst.display());
    let mut out = AtomicFile::create(dst).with_context(write_err)?;
    let mut buffered = std::io::BufWriter::with_capacity(1 << 20, &mut out);
    table::write_to(&tables, &mut buffered)
        .and_then(|()| buffered.flush())
        .with_context(write_err)?;
    drop(buffered);
    out.commit().with_context(write_err)
}
