//! `dump`: what a compiled table contains and how evenly it spreads rows.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, Result};
use glb_core::table::{self, BackendRecord, TableFile, TableRecord};
use serde::Serialize;

/// Reads a binary table file and validates it.
pub fn load<'a>(path: &Path, bytes: &'a mut Vec<u8>) -> Result<TableFile<'a>> {
    *bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    TableFile::parse(bytes)
        .with_context(|| format!("{}: not a valid forwarding table", path.display()))
}

/// State name as the binary stores it; inactive backends are stored as
/// draining and never appear in a row.
pub fn state_name(code: u16) -> &'static str {
    match code {
        table::STATE_FILLING => "filling",
        table::STATE_ACTIVE => "active",
        _ => "draining",
    }
}

#[derive(Serialize)]
struct Dump {
    file: String,
    version: u32,
    tables: Vec<TableDump>,
}

#[derive(Serialize)]
struct TableDump {
    index: usize,
    binds: Vec<BindDump>,
    backends: Vec<BackendDump>,
}

#[derive(Serialize)]
struct BindDump {
    ip: String,
    prefix_len: u8,
    proto: String,
    port_start: u16,
    port_end: u16,
}

#[derive(Serialize)]
struct BackendDump {
    index: usize,
    ip: Option<IpAddr>,
    state: &'static str,
    healthy: bool,
    primary_rows: u32,
    secondary_rows: u32,
    /// How the rows this backend is primary for split over secondaries.
    secondary_spread: Option<Spread>,
}

#[derive(Serialize)]
struct Spread {
    secondaries: usize,
    min_rows: u32,
    max_rows: u32,
    /// min/max: 1.0 is perfectly even.
    evenness: f64,
}

fn summarise(index: usize, t: &TableRecord) -> TableDump {
    let backends = t.backends();
    let n = backends.len();
    let mut primary = vec![0u32; n];
    let mut secondary = vec![0u32; n];
    let mut pairs = vec![0u32; n * n];
    for r in t.rows.iter() {
        let (p, s) = (r.primary.get() as usize, r.secondary.get() as usize);
        primary[p] += 1;
        secondary[s] += 1;
        pairs[p * n + s] += 1;
    }
    let binds = t
        .binds()
        .iter()
        .filter_map(|b| table::bind_from_record(b).ok())
        .map(|b| BindDump {
            ip: b.addr.to_string(),
            prefix_len: b.prefix_len,
            proto: b.proto.to_string(),
            port_start: b.port_start,
            port_end: b.port_end,
        })
        .collect();
    let backends = backends
        .iter()
        .enumerate()
        .map(|(i, b): (usize, &BackendRecord)| {
            let counts: Vec<u32> = pairs[i * n..(i + 1) * n]
                .iter()
                .enumerate()
                .filter(|&(s, &c)| c > 0 && s != i)
                .map(|(_, &c)| c)
                .collect();
            let secondary_spread = (!counts.is_empty()).then(|| {
                let min = *counts.iter().min().unwrap_or(&0);
                let max = *counts.iter().max().unwrap_or(&0);
                Spread {
                    secondaries: counts.len(),
                    min_rows: min,
                    max_rows: max,
                    evenness: f64::from(min) / f64::from(max.max(1)),
                }
            });
            BackendDump {
                index: i,
                ip: table::backend_addr(b),
                state: state_name(b.state.get()),
                healthy: b.health.get() == 1,
                primary_rows: primary[i],
                secondary_rows: secondary[i],
                secondary_spread,
            }
        })
        .collect();
    TableDump {
        index,
        binds,
        backends,
    }
}

fn percent(rows: u32) -> f64 {
    f64::from(rows) * 100.0 / table::TABLE_ENTRIES as f64
}

fn render(d: &Dump) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: forwarding table version {}, {} table(s), {} rows each",
        d.file,
        d.version,
        d.tables.len(),
        table::TABLE_ENTRIES
    );
    for t in &d.tables {
        let _ = writeln!(
            out,
            "\ntable {}: {} bind(s), {} backend(s)",
            t.index,
            t.binds.len(),
            t.backends.len()
        );
        let _ = writeln!(out, "  binds:");
        for b in &t.binds {
            let ports = if b.port_start == b.port_end {
                b.port_start.to_string()
            } else {
                format!("{}-{}", b.port_start, b.port_end)
            };
            let _ = writeln!(out, "    {}/{} {} {}", b.ip, b.prefix_len, b.proto, ports);
        }
        let _ = writeln!(out, "  backends:");
        let w = t
            .backends
            .iter()
            .map(|b| b.ip.map_or(1, |ip| ip.to_string().len()))
            .max()
            .unwrap_or(0)
            .max("address".len());
        let _ = writeln!(
            out,
            "    {:>3}  {:<w$}  {:<8}  {:<9}  {:>15}  {:>15}  secondaries when primary",
            "#", "address", "state", "health", "primary rows", "secondary rows"
        );
        for b in &t.backends {
            let ip = b.ip.map_or_else(|| "?".to_string(), |ip| ip.to_string());
            let spread = match &b.secondary_spread {
                Some(s) => format!(
                    "{} backends, {}-{} rows each (evenness {:.2})",
                    s.secondaries, s.min_rows, s.max_rows, s.evenness
                ),
                None if b.primary_rows == 0 && b.secondary_rows == 0 => {
                    "in no row (inactive)".to_string()
                }
                None if b.primary_rows == 0 => "-".to_string(),
                None => "only itself".to_string(),
            };
            let _ = writeln!(
                out,
                "    {:>3}  {:<w$}  {:<8}  {:<9}  {:>6} ({:>5.1}%)  {:>6} ({:>5.1}%)  {}",
                b.index,
                ip,
                b.state,
                if b.healthy { "healthy" } else { "unhealthy" },
                b.primary_rows,
                percent(b.primary_rows),
                b.secondary_rows,
                percent(b.secondary_rows),
                spread
            );
        }
    }
    out
}

pub fn run(path: &Path, json: bool) -> Result<()> {
    let mut bytes = Vec::new();
    let file = load(path, &mut bytes)?;
    let d = Dump {
        file: path.display().to_string(),
        version: file.header().version.get(),
        tables: file
            .tables()
            .iter()
            .enumerate()
            .map(|(i, t)| summarise(i, t))
            .collect(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", render(&d));
    }
    Ok(())
}
