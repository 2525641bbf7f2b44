//! The XDP director's statsd lines (SPEC §14): the original's names under
//! `glb.director.`, every line tagged `glb_engine:xdp`, values counted
//! since the previous report; plus per-bind and per-backend traffic,
//! which the original does not have.

use std::collections::HashMap;

use crate::maps::{Counter, Counters, Traffic};
use crate::program::{BackendKey, BindKey, TrafficTotals};

/// Prefix of every metric.
pub const NAMESPACE: &str = "glb.director";
/// Tag on every line.
pub const ENGINE_TAG: &str = "glb_engine:xdp";

/// `packets.results` tags.
const RESULTS: [(Counter, &str); 3] = [
    (Counter::UnknownFormat, "UnknownFormat"),
    (Counter::NoMatchingBind, "NoMatchingBind"),
    (Counter::Matched, "Matched"),
];

/// `packets.internal_errors` tags.
const ERRORS: [(Counter, &str); 7] = [
    (Counter::ErrorTable, "ErrorTable"),
    (Counter::ErrorSecret, "ErrorSecret"),
    (Counter::ErrorHashConfig, "ErrorHashConfig"),
    (Counter::ErrorMissingRow, "ErrorMissingRow"),
    (Counter::ErrorCreatingSpace, "ErrorCreatingSpace"),
    (Counter::ErrorMissingGatewayMac, "ErrorMissingGatewayMAC"),
    (
        Counter::ErrorMissingSourceAddress,
        "ErrorMissingSourceAddress",
    ),
];

/// Turns cumulative counters into the lines of one report.
#[derive(Debug, Default)]
pub struct Reporter {
    counters: Counters,
    binds: HashMap<BindKey, Traffic>,
    backends: HashMap<BackendKey, Traffic>,
    reloads: u64,
}

fn line(out: &mut Vec<String>, name: &str, value: u64, tags: &str) {
    let sep = if tags.is_empty() { "" } else { "," };
    out.push(format!(
        "{NAMESPACE}.{name}:{value}|c|#{ENGINE_TAG}{sep}{tags}"
    ));
}

fn delta(now: Traffic, prev: Option<&Traffic>) -> Traffic {
    let prev = prev.copied().unwrap_or_default();
    Traffic {
        packets: now.packets.wrapping_sub(prev.packets),
        bytes: now.bytes.wrapping_sub(prev.bytes),
    }
}

impl Reporter {
    /// The lines for what happened between the previous call and these
    /// cumulative readings; `reloads` counts successful table reloads.
    pub fn lines(&mut self, now: &Counters, traffic: &TrafficTotals, reloads: u64) -> Vec<String> {
        let d = |c: Counter| now.get(c).wrapping_sub(self.counters.get(c));
        let mut out = Vec::new();
        line(&mut out, "packets.processed", d(Counter::Processed), "");
        line(
            &mut out,
            "packets.encapsulated",
            d(Counter::Encapsulated),
            "",
        );
        line(
            &mut out,
            "packets.encapsulated_bytes",
            d(Counter::EncapsulatedBytes),
            "",
        );
        for (c, tag) in RESULTS {
            line(&mut out, "packets.results", d(c), &format!("result:{tag}"));
        }
        for (c, tag) in ERRORS {
            line(
                &mut out,
                "packets.internal_errors",
                d(c),
                &format!("error:{tag}"),
            );
        }
        // Ours: what was dropped and why, and the verdicts.
        line(
            &mut out,
            "packets.route_failed",
            d(Counter::RouteFailed),
            "",
        );
        for (c, tag) in [
            (Counter::XdpTx, "XDP_TX"),
            (Counter::XdpPass, "XDP_PASS"),
            (Counter::XdpDrop, "XDP_DROP"),
        ] {
            line(
                &mut out,
                "packets.verdicts",
                d(c),
                &format!("verdict:{tag}"),
            );
        }
        line(
            &mut out,
            "config_reload_count",
            reloads.wrapping_sub(self.reloads),
            "",
        );

        let mut binds: Vec<_> = traffic.binds.iter().collect();
        binds.sort_by(|a, b| a.0.cmp(b.0));
        for (k, &t) in binds {
            let dt = delta(t, self.binds.get(k));
            let tags = format!(
                "table:{},bind:{},proto:{},ports:{}",
                k.table, k.prefix, k.proto, k.ports
            );
            line(&mut out, "bind.packets", dt.packets, &tags);
            line(&mut out, "bind.bytes", dt.bytes, &tags);
        }
        let mut backends: Vec<_> = traffic.backends.iter().collect();
        backends.sort_by(|a, b| a.0.cmp(b.0));
        for (k, &t) in backends {
            let dt = delta(t, self.backends.get(k));
            let tags = format!("table:{},backend:{}", k.table, k.addr);
            line(&mut out, "backend.packets", dt.packets, &tags);
            line(&mut out, "backend.bytes", dt.bytes, &tags);
        }
        self.counters = *now;
        self.binds = traffic.binds.clone();
        self.backends = traffic.backends.clone();
        self.reloads = reloads;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_since_the_last_report_with_the_original_names() {
        let mut c = Counters::default();
        c.c[Counter::Processed as usize] = 10;
        c.c[Counter::Matched as usize] = 7;
        c.c[Counter::Encapsulated as usize] = 6;
        c.c[Counter::ErrorMissingGatewayMac as usize] = 1;
        let mut t = TrafficTotals::default();
        t.backends.insert(
            BackendKey {
                table: 0,
                addr: "10.0.0.1".parse().unwrap(),
            },
            Traffic {
                packets: 6,
                bytes: 600,
            },
        );
        let mut r = Reporter::default();
        let first = r.lines(&c, &t, 0);
        assert!(first.contains(&"glb.director.packets.processed:10|c|#glb_engine:xdp".to_string()));
        assert!(first.contains(
            &"glb.director.packets.results:7|c|#glb_engine:xdp,result:Matched".to_string()
        ));
        assert!(first.contains(
            &"glb.director.packets.internal_errors:1|c|#glb_engine:xdp,error:ErrorMissingGatewayMAC".to_string()
        ));
        assert!(
            first.contains(
                &"glb.director.backend.bytes:600|c|#glb_engine:xdp,table:0,backend:10.0.0.1"
                    .to_string()
            )
        );
        assert!(first.iter().all(|l| l.contains("|#glb_engine:xdp")));
        c.c[Counter::Processed as usize] = 15;
        t.backends.values_mut().for_each(|v| v.bytes = 700);
        let second = r.lines(&c, &t, 1);
        assert!(second.contains(&"glb.director.packets.processed:5|c|#glb_engine:xdp".to_string()));
        assert!(
            second.contains(
                &"glb.director.backend.bytes:100|c|#glb_engine:xdp,table:0,backend:10.0.0.1"
                    .to_string()
            )
        );
        assert!(
            second.contains(&"glb.director.config_reload_count:1|c|#glb_engine:xdp".to_string())
        );
    }
}
