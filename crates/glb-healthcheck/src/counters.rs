//! Internal counters, served as JSON on `/debug/vars`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Monotonic event counts since start-up.
        #[derive(Debug, Default)]
        pub struct Counters {
            $( $(#[$doc])* pub $name: AtomicU64, )*
        }

        impl Counters {
            /// All counters as a JSON object keyed by field name.
            pub fn to_json(&self) -> Value {
                let mut m = Map::new();
                $( m.insert(stringify!($name).to_owned(), Value::from(self.$name.load(Ordering::Relaxed))); )*
                Value::Object(m)
            }
        }
    };
}

counters! {
    /// Rounds completed.
    rounds,
    /// Rounds that started later than their schedule (a previous round overran).
    rounds_late,
    /// Checks started.
    checks_sent,
    /// Checks that passed.
    checks_ok,
    /// Checks that failed, timeouts included.
    checks_failed,
    /// Checks that got no answer within `timeout_ms`.
    timeouts,
    /// Times a target's dampened health flipped.
    health_changes,
    /// Source table loads that succeeded (start-up included).
    reloads,
    /// Source table loads that failed (the old table stayed in use).
    reload_failures,
    /// Checked files written.
    writes,
    /// Checked files that could not be written.
    write_failures,
    /// Reload commands started.
    reload_commands,
    /// Reload commands that exited non-zero, died or could not start.
    reload_command_failures,
    /// Tunnel (gue/fou) probe packets sent.
    tunnel_probes_sent,
    /// ICMP echo replies matched to a pending tunnel probe.
    icmp_replies_matched,
    /// ICMP echo replies carrying one of our payloads after its check ended.
    icmp_replies_late,
    /// ICMP echo replies that were not ours (another ping, another daemon).
    icmp_replies_unknown,
}

impl Counters {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_every_counter() {
        let c = Counters::default();
        Counters::bump(&c.rounds);
        Counters::bump(&c.rounds);
        Counters::bump(&c.icmp_replies_late);
        let v = c.to_json();
        assert_eq!(v["rounds"], 2);
        assert_eq!(v["icmp_replies_late"], 1);
        assert_eq!(v["write_failures"], 0);
        assert_eq!(v.as_object().unwrap().len(), 17);
    }
}
