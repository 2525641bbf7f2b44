//! `build-config` and `check`: JSON in, validated binary out.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use glb_core::ForwardingTables;
use glb_core::table;

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
    let tables = load(src)?;
    let image = table::compile(&tables);
    glb_io::atomic_file::replace(dst, &image)
        .with_context(|| format!("{}: cannot write the binary table", dst.display()))
}
