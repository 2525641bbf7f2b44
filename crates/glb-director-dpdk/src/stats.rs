//! Metrics (SPEC §9): every 10 s the counters since the previous report
//! go to statsd on 127.0.0.1 as DogStatsD counters under the
//! `glb_director_ng.` namespace, tagged `port:N`, `port:N,queue:Q` or
//! `core:N`.

use std::collections::BTreeMap;

use crate::rte::ethdev::{PortStats, QUEUE_STAT_COUNTERS};
use glb_director::counters::CounterSnapshot;

/// Metric name prefix.
pub const NAMESPACE: &str = "glb_director_ng";

/// One core's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreSample {
    /// The packet path's and the engine's counters.
    pub counters: CounterSnapshot,
    /// Forwarding tables this core has switched to.
    pub reloads: u64,
    /// Packets a port or ring kept refusing (not a statsd metric).
    pub dropped: u64,
}

/// Everything reported, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// Port counters by port id.
    pub ports: BTreeMap<u16, PortStats>,
    /// Core counters by lcore id.
    pub cores: BTreeMap<u32, CoreSample>,
}

fn push(lines: &mut Vec<String>, name: &str, value: u64, tags: &str) {
    lines.push(format!("{NAMESPACE}.{name}:{value}|c|#{tags}"));
}

/// The metric lines for the change from `prev` to `now`, with `queues`
/// queues per port.
pub fn metric_lines(prev: &Sample, now: &Sample, queues: u16) -> Vec<String> {
    let mut lines = Vec::new();
    let zero = PortStats::default();
    for (&port, s) in &now.ports {
        let p = prev.ports.get(&port).unwrap_or(&zero);
        let tags = format!("port:{port}");
        for (name, a, b) in [
            ("port.packets.rx", s.ipackets, p.ipackets),
            ("port.packets.tx", s.opackets, p.opackets),
            ("port.packets.rx_missed", s.imissed, p.imissed),
            ("port.packets.rx_errors", s.ierrors, p.ierrors),
            ("port.packets.tx_errors", s.oerrors, p.oerrors),
            ("port.packets.rx_nombuf", s.rx_nombuf, p.rx_nombuf),
            ("port.bytes.rx", s.ibytes, p.ibytes),
            ("port.bytes.tx", s.obytes, p.obytes),
        ] {
            push(&mut lines, name, a.wrapping_sub(b), &tags);
        }
        for q in 0..usize::from(queues).min(QUEUE_STAT_COUNTERS) {
            let tags = format!("port:{port},queue:{q}");
            for (name, a, b) in [
                ("queue.packets.rx", s.q_ipackets[q], p.q_ipackets[q]),
                ("queue.packets.tx", s.q_opackets[q], p.q_opackets[q]),
                ("queue.packets.rx_errors", s.q_errors[q], p.q_errors[q]),
                ("queue.bytes.rx", s.q_ibytes[q], p.q_ibytes[q]),
                ("queue.bytes.tx", s.q_obytes[q], p.q_obytes[q]),
            ] {
                push(&mut lines, name, a.wrapping_sub(b), &tags);
            }
        }
    }
    let zero = CoreSample::default();
    for (&core, s) in &now.cores {
        let p = prev.cores.get(&core).unwrap_or(&zero);
        let d = s.counters.since(&p.counters);
        let tags = format!("core:{core}");
        for (name, delta) in [
            ("core.packets.total", d.total),
            ("core.packets.matched", d.matched),
            ("core.packets.unmatched", d.unmatched),
            ("core.packets.rx_errors", d.rx_errors),
            ("core.packets.kni", d.kni),
            ("core.packets.encap.success", d.encap_success),
            // Matched but not sent on: no route (cut-off headers, IPv6
            // proxy) or no room for the outer headers.
            (
                "core.packets.encap.failure",
                d.route_failed.wrapping_add(d.encap_failure),
            ),
            ("core.packets.eth_tx_sent", d.eth_tx_sent),
            ("core.packets.kni_tx_sent", d.kni_tx_sent),
            (
                "core.config_reload_count",
                s.reloads.wrapping_sub(p.reloads),
            ),
        ] {
            push(&mut lines, name, delta, &tags);
        }
    }
    lines
}

/// Turns samples into the statsd lines of the change since the
/// previous one.
#[derive(Debug)]
pub struct Metrics {
    prev: Sample,
    queues: u16,
}

impl Metrics {
    /// Metrics for ports with `queues` queues each.
    pub fn new(queues: u16) -> Metrics {
        Metrics {
            prev: Sample::default(),
            queues,
        }
    }

    /// The lines for the change from the previous sample to `now`.
    pub fn lines(&mut self, now: Sample) -> Vec<String> {
        let lines = metric_lines(&self.prev, &now, self.queues);
        self.prev = now;
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_deltas_with_dogstatsd_tags() {
        let mut prev = Sample::default();
        let mut now = Sample::default();
        let mut p = PortStats {
            ipackets: 10,
            ..PortStats::default()
        };
        p.q_ipackets[1] = 4;
        prev.ports.insert(3, p);
        let mut n = p;
        n.ipackets = 25;
        n.obytes = 640;
        n.q_ipackets[1] = 9;
        now.ports.insert(3, n);
        let mut c = CoreSample::default();
        c.counters.encap_success = 7;
        c.counters.route_failed = 2;
        c.counters.encap_failure = 1;
        c.reloads = 1;
        now.cores.insert(2, c);

        let lines = metric_lines(&prev, &now, 2);
        assert_eq!(lines.len(), 8 + 2 * 5 + 10);
        for want in [
            "glb_director_ng.port.packets.rx:15|c|#port:3",
            "glb_director_ng.port.bytes.tx:640|c|#port:3",
            "glb_director_ng.port.packets.rx_nombuf:0|c|#port:3",
            "glb_director_ng.queue.packets.rx:5|c|#port:3,queue:1",
            "glb_director_ng.queue.packets.rx:0|c|#port:3,queue:0",
            "glb_director_ng.core.packets.encap.success:7|c|#core:2",
            "glb_director_ng.core.packets.encap.failure:3|c|#core:2",
            "glb_director_ng.core.packets.kni_tx_sent:0|c|#core:2",
            "glb_director_ng.core.config_reload_count:1|c|#core:2",
        ] {
            assert!(
                lines.iter().any(|l| l == want),
                "missing {want} in {lines:#?}"
            );
        }
    }
}
