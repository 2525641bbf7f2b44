//! `route`: the on-call question "where does this flow go?".

use std::net::IpAddr;

use anyhow::{Result, bail};
use glb_core::Key16;
use glb_core::classify::Classifier;
use glb_core::flowhash::{FlowKey, row_of};
use glb_core::inspect::Lookup;
use glb_core::model::Bind;
use glb_core::table::{self, TableRecord};
use serde::Serialize;

use glb_director_cli::cli::RouteArgs;

use crate::dump::{load, state_name};

#[derive(Serialize)]
struct Hop {
    backend: usize,
    ip: Option<IpAddr>,
    state: &'static str,
    healthy: bool,
}

#[derive(Serialize)]
struct Route {
    table: usize,
    /// The matched bind, when the destination was given.
    bind: Option<usize>,
    hash_fields: String,
    hash: String,
    row: usize,
    hops: Vec<Hop>,
}

fn hops_for(t: &TableRecord, row: usize) -> [Hop; 2] {
    let r = &t.rows[row];
    [r.primary.get(), r.secondary.get()].map(|i| {
        let b = &t.backends()[i as usize];
        Hop {
            backend: i as usize,
            ip: table::backend_addr(b),
            state: state_name(b.state.get()),
            healthy: b.health.get() == 1,
        }
    })
}

fn route_in(
    t: &TableRecord,
    index: usize,
    bind: Option<usize>,
    a: &RouteArgs,
    flow: &FlowKey,
) -> Route {
    let key = Key16::new(t.hash_key);
    let hash = a.hash_fields.hash(&key, flow);
    let mut hops: Vec<Hop> = hops_for(t, row_of(hash)).into();
    if let Some(alt) = &a.alt_hash_fields {
        hops.extend(hops_for(t, row_of(alt.hash(&key, flow))));
    }
    Route {
        table: index,
        bind,
        hash_fields: a.hash_fields.to_string(),
        hash: format!("{hash:016x}"),
        row: row_of(hash),
        hops,
    }
}

fn check_args(a: &RouteArgs) -> Result<()> {
    for f in std::iter::once(&a.hash_fields).chain(&a.alt_hash_fields) {
        if f.dst_addr && a.dst_ip.is_none() {
            bail!("hash field dst_addr needs --dst-ip");
        }
        if f.src_port && a.src_port.is_none() {
            bail!("hash field src_port needs --src-port");
        }
        if f.dst_port && a.dst_port.is_none() {
            bail!("hash field dst_port needs --dst-port");
        }
    }
    if let Some(dst) = a.dst_ip {
        if dst.is_ipv4() != a.src_ip.is_ipv4() {
            bail!("--src-ip and --dst-ip must both be IPv4 or both IPv6");
        }
        if a.dst_port.is_none() {
            bail!("--dst-ip needs --dst-port to match a bind");
        }
    }
    Ok(())
}

fn render(r: &Route, a: &RouteArgs, t: &TableRecord) -> String {
    let mut s = match r.bind {
        Some(b) => {
            let bind = table::bind_from_record(&t.binds()[b]).ok();
            let desc = bind.map_or_else(String::new, |b| {
                format!(
                    " ({}/{} {} {}-{})",
                    b.addr, b.prefix_len, b.proto, b.port_start, b.port_end
                )
            });
            format!("table {}, bind {b}{desc}\n", r.table)
        }
        None => format!("table {}\n", r.table),
    };
    s += &format!(
        "  hash over {}: {}  row {} (0x{:04x})\n  hops:",
        r.hash_fields, r.hash, r.row, r.row
    );
    for (i, h) in r.hops.iter().enumerate() {
        let ip = h.ip.map_or_else(|| "?".into(), |ip| ip.to_string());
        let role = match i {
            0 => "primary",
            1 => "secondary",
            2 => "alt primary",
            _ => "alt secondary",
        };
        s += &format!(
            "\n    {}. {ip:<15} backend {}, {}, {} ({role})",
            i + 1,
            h.backend,
            h.state,
            if h.healthy { "healthy" } else { "unhealthy" }
        );
    }
    if a.alt_hash_fields.is_some() {
        s += "\n  (hops 3-4 come from alt_hash_fields)";
    }
    s + "\n"
}

pub fn run(a: &RouteArgs) -> Result<()> {
    check_args(a)?;
    let mut bytes = Vec::new();
    let file = load(&a.table, &mut bytes)?;
    let unspecified = if a.src_ip.is_ipv4() {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u8; 16])
    };
    let flow = FlowKey {
        src: a.src_ip,
        dst: a.dst_ip.unwrap_or(unspecified),
        src_port: a.src_port.unwrap_or(0),
        dst_port: a.dst_port.unwrap_or(0),
    };
    let routes: Vec<(Route, &TableRecord)> = match a.dst_ip {
        Some(dst) => {
            let dport = a.dst_port.unwrap_or(0);
            // The director's own classifier, so the answer is the datapath's.
            let binds: Vec<Vec<Bind>> = file
                .tables()
                .iter()
                .map(|t| t.bind_entries().collect())
                .collect();
            let classifier = Classifier::new(&binds, true);
            let lookup = Lookup::Transport {
                proto: a.proto.number(),
                dst,
                dst_port: dport,
            };
            let hit = classifier
                .classify_bind(&lookup)
                .and_then(|(ti, bi)| Some((ti, bi, file.tables().get(ti)?)));
            let Some((ti, bi, t)) = hit else {
                bail!(
                    "no bind in {} matches {} {dst} port {dport}: the director would not forward this packet",
                    a.table.display(),
                    a.proto
                );
            };
            vec![(route_in(t, ti, Some(bi), a, &flow), t)]
        }
        None => file
            .tables()
            .iter()
            .enumerate()
            .map(|(ti, t)| (route_in(t, ti, None, a, &flow), t))
            .collect(),
    };
    if a.json {
        let only: Vec<&Route> = routes.iter().map(|(r, _)| r).collect();
        println!("{}", serde_json::to_string_pretty(&only)?);
    } else {
        if a.dst_ip.is_none() {
            println!("no --dst-ip: showing the row in every table");
        }
        for (r, t) in &routes {
            print!("{}", render(r, a, t));
        }
    }
    Ok(())
}
