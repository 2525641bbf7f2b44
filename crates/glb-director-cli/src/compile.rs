//! `build-config` and `check`: JSON in, validated binary out.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
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
    write_atomically(dst, &image)
        .with_context(|| format!("{}: cannot write the binary table", dst.display()))
}

/// Writes `bytes` to a temporary file in `dst`'s directory, syncs it and
/// renames it over `dst`, so readers only ever see a complete file. The
/// temporary file is removed on every error path (tempfile deletes it on
/// drop unless it was persisted).
fn write_atomically(dst: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mode = fs::metadata(dst)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let mut tmp = tempfile::Builder::new()
        .prefix(".glb-table.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .context("cannot create a temporary file beside it")?;
    tmp.write_all(bytes).context("write failed")?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .context("cannot set permissions")?;
    tmp.as_file().sync_all().context("fsync failed")?;
    tmp.persist(dst)
        .map_err(|e| e.error)
        .context("rename failed")?;
    // Make the rename itself durable.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .context("fsync of the directory failed")?;
    Ok(())
}
