//! `director.conf` loading: every key's default, the two additions, and a
//! clear error naming the key for each kind of mistake.

use std::net::Ipv4Addr;

use glb_core::flowhash::HashFields;
use glb_director::config::{ConfigError, DEFAULT_STATSD_PORT, DirectorConfig, DpdkKeys, Role};
use serde_json::{Value, json};

fn minimal() -> Value {
    json!({
        "outbound_gateway_mac": "3a:89:7c:7b:5d:1f",
        "outbound_src_ip": "65.65.65.65",
        "flow_paths": [{ "rx_port": 0, "rx_queue": 0, "tx_port": 0, "tx_queue": 0 }],
        "lcores": {
            "lcore-1": { "rx": true, "tx": true, "flow_paths": [0], "dist": true, "num_dist_workers": 1 },
            "lcore-2": { "work": true, "work_source": 1 }
        }
    })
}

fn load(v: &Value) -> Result<glb_director::config::Loaded, ConfigError> {
    DirectorConfig::from_json("director.conf", &v.to_string())
}

fn err(v: &Value) -> ConfigError {
    load(v).expect_err("configuration should be refused")
}

/// Applies `f` to a copy of the minimal configuration and expects an error
/// whose key is `key` and whose text contains `needle`.
/// Requires `key` set to `value` to be refused, the error saying `needle`.
fn refuse_value(key: &str, value: Value, needle: &str) {
    refuse(|v| v[key] = value, key, needle);
}

fn refuse(f: impl FnOnce(&mut Value), key: &str, needle: &str) {
    let mut v = minimal();
    f(&mut v);
    let e = err(&v);
    assert_eq!(e.key, key, "{e}");
    assert!(e.message.contains(needle), "{e}");
    assert!(e.to_string().starts_with("director.conf: "), "{e}");
}

#[test]
fn defaults() {
    let c = load(&minimal()).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = c.config;
    assert_eq!(
        c.outbound_gateway_mac.0,
        [0x3a, 0x89, 0x7c, 0x7b, 0x5d, 0x1f]
    );
    assert_eq!(c.outbound_src_ip, Ipv4Addr::new(65, 65, 65, 65));
    assert_eq!(c.hash_fields, HashFields::SRC_ADDR);
    assert_eq!(c.alt_hash_fields, None);
    assert!(c.forward_icmp_ping_responses);
    assert_eq!(c.num_worker_queues, 1);
    assert!(c.rx_drop_en);
    assert_eq!(c.statsd_port, 28125);
    assert_eq!(DEFAULT_STATSD_PORT, 28125);
    assert_eq!(c.kni_ip, None);
    assert!(
        c.udp_checksum,
        "UDP checksums are on by default, as the reference sends them"
    );
    assert_eq!(c.flow_paths.len(), 1);
    assert_eq!(c.lcores[&1].role(), Role::Distributor);
    assert_eq!(c.lcores[&2].role(), Role::Worker);
    assert_eq!(c.lcores[&2].work_source, Some(1));
}

#[test]
fn every_key_is_read() {
    let mut v = minimal();
    let o = v.as_object_mut().unwrap();
    o.insert(
        "hash_fields".into(),
        json!({"dst_port": true, "src_addr": true}),
    );
    o.insert("alt_hash_fields".into(), json!({"src_port": true}));
    o.insert("forward_icmp_ping_responses".into(), json!(false));
    o.insert("num_worker_queues".into(), json!(4));
    o.insert("rx_drop_en".into(), json!(false));
    o.insert("statsd_port".into(), json!(9125));
    o.insert("kni_ip".into(), json!("10.0.0.5"));
    o.insert("udp_checksum".into(), json!(false));
    o.insert(
        "flow_paths".into(),
        json!([{ "rx_port": 0, "rx_queue": 3, "tx_port": 1, "tx_queue": 2 }]),
    );
    let c = load(&v).unwrap().config;
    let src_addr_dst_port = HashFields {
        dst_port: true,
        ..HashFields::SRC_ADDR
    };
    assert_eq!(c.hash_fields, src_addr_dst_port);
    assert_eq!(
        c.alt_hash_fields,
        Some(HashFields {
            src_addr: false,
            dst_addr: false,
            src_port: true,
            dst_port: false
        })
    );
    assert!(!c.forward_icmp_ping_responses);
    assert_eq!(c.num_worker_queues, 4);
    assert!(!c.rx_drop_en);
    assert_eq!(c.statsd_port, 9125);
    assert_eq!(c.kni_ip, Some(Ipv4Addr::new(10, 0, 0, 5)));
    assert!(!c.udp_checksum);
    assert_eq!(
        (
            c.flow_paths[0].rx_queue,
            c.flow_paths[0].tx_port,
            c.flow_paths[0].tx_queue
        ),
        (3, 1, 2)
    );
    let r = c.route_options();
    assert!(!r.forward_icmp_echo);
    assert_eq!(r.alt_hash_fields, c.alt_hash_fields);
    let p = c.encap_params(glb_core::wire::ethernet::Address([1, 2, 3, 4, 5, 6]));
    assert!(!p.udp_checksum);
    assert_eq!(p.src_mac.0, [1, 2, 3, 4, 5, 6]);
}

/// The original reads statsd_port as a string; both forms work.
#[test]
fn statsd_port_as_string() {
    let mut v = minimal();
    v["statsd_port"] = json!("8125");
    assert_eq!(load(&v).unwrap().config.statsd_port, 8125);
    refuse_value("statsd_port", json!("port"), "not a port");
    refuse_value("statsd_port", json!(70000), "0 to 65535");
}

#[test]
fn run_to_completion_core() {
    let mut v = minimal();
    v["lcores"] = json!({ "lcore-0": { "rx": true, "tx": true, "work": true, "flow_paths": [0] } });
    let c = load(&v).unwrap().config;
    assert_eq!(c.lcores[&0].role(), Role::RunToCompletion);
    refuse(
        |v| v["lcores"] = json!({ "lcore-0": { "rx": true, "tx": true, "work": true, "flow_paths": [0], "work_source": 1 } }),
        "lcores.\"lcore-0\".work_source",
        "run-to-completion",
    );
}

#[test]
fn unknown_keys_are_warnings() {
    let mut v = minimal();
    v["colour"] = json!("blue");
    v["hash_fields"] = json!({"src_addr": true, "src_ip": true});
    let l = load(&v).unwrap();
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
    assert!(l.warnings.iter().any(|w| w.contains("\"colour\"")));
    assert!(
        l.warnings
            .iter()
            .any(|w| w.contains("hash_fields.\"src_ip\""))
    );
}

#[test]
fn required_keys() {
    for key in [
        "outbound_gateway_mac",
        "outbound_src_ip",
        "flow_paths",
        "lcores",
    ] {
        refuse(
            |v| {
                v.as_object_mut().unwrap().remove(key);
            },
            key,
            "missing",
        );
    }
}

#[test]
fn bad_mac_and_ips() {
    refuse_value(
        "outbound_gateway_mac",
        json!("3a:89:7c:7b:5d"),
        "not a MAC address",
    );
    refuse_value("outbound_gateway_mac", json!(12), "MAC address string");
    refuse_value("outbound_src_ip", json!("65.65.65"), "not an IPv4 address");
    refuse_value("outbound_src_ip", json!("fd00::1"), "not an IPv4 address");
    refuse_value("kni_ip", json!("nope"), "not an IPv4 address");
}

#[test]
fn hash_fields_need_one_true_boolean() {
    refuse_value("hash_fields", json!({}), "no hash field set");
    refuse_value(
        "hash_fields",
        json!({"src_addr": false}),
        "no hash field set",
    );
    refuse_value(
        "alt_hash_fields",
        json!({"dst_port": false}),
        "no hash field set",
    );
    refuse(
        |v| v["hash_fields"] = json!({"src_addr": "yes"}),
        "hash_fields.src_addr",
        "true or false",
    );
    refuse_value("hash_fields", json!(["src_addr"]), "expected an object");
}

#[test]
fn booleans_and_numbers_are_typed() {
    refuse_value("udp_checksum", json!("false"), "true or false");
    refuse_value("rx_drop_en", json!(0), "true or false");
    refuse_value("forward_icmp_ping_responses", json!(null), "true or false");
    refuse_value("num_worker_queues", json!(0), "at least 1");
    refuse_value("num_worker_queues", json!(-2), "integer");
}

#[test]
fn flow_paths_must_exist() {
    refuse_value("flow_paths", json!([]), "at least one");
    refuse(
        |v| v["flow_paths"][0]["tx_queue"] = json!(1),
        "flow_paths[0].tx_queue",
        "num_worker_queues is 1",
    );
    refuse(
        |v| {
            v["flow_paths"][0]
                .as_object_mut()
                .unwrap()
                .remove("rx_port");
        },
        "flow_paths[0].rx_port",
        "missing",
    );
    refuse(
        |v| v["lcores"]["lcore-1"]["flow_paths"] = json!([0, 1]),
        "lcores.\"lcore-1\".flow_paths[1]",
        "flow path 1 does not exist",
    );
    refuse(
        |v| v["lcores"]["lcore-1"]["flow_paths"] = json!([]),
        "lcores.\"lcore-1\".flow_paths",
        "at least one flow path",
    );
}

#[test]
fn workers_and_distributors_agree() {
    refuse(
        |v| v["lcores"]["lcore-2"]["work_source"] = json!(3),
        "lcores.\"lcore-2\".work_source",
        "lcore-3 is not configured",
    );
    refuse(
        |v| {
            v["lcores"]["lcore-3"] = json!({ "tx": true, "flow_paths": [0] });
            v["lcores"]["lcore-2"]["work_source"] = json!(3);
        },
        "lcores.\"lcore-2\".work_source",
        "not a distributor",
    );
    refuse(
        |v| v["lcores"]["lcore-1"]["num_dist_workers"] = json!(2),
        "lcores.\"lcore-1\".num_dist_workers",
        "says 2 but 1 worker",
    );
    refuse(
        |v| {
            v["lcores"]["lcore-1"]
                .as_object_mut()
                .unwrap()
                .remove("num_dist_workers");
        },
        "lcores.\"lcore-1\".num_dist_workers",
        "required",
    );
    refuse(
        |v| {
            v["lcores"]["lcore-2"]
                .as_object_mut()
                .unwrap()
                .remove("work_source");
        },
        "lcores.\"lcore-2\".work_source",
        "required",
    );
    refuse(
        |v| v["lcores"]["core-1"] = json!({}),
        "lcores.\"core-1\"",
        "lcore-N",
    );
    refuse(
        |v| v["lcores"] = json!({ "lcore-2": { "work": true, "work_source": 2 } }),
        "lcores.\"lcore-2\".work_source",
        "not a distributor",
    );
    refuse(
        |v| v["lcores"]["lcore-1"] = json!({ "rx": true, "flow_paths": [0] }),
        "lcores.\"lcore-1\"",
        "must also process",
    );
}

#[test]
fn conformance_configs_load() {
    let mut n = 0;
    for case in glb_testkit::conformance::case_dirs("pcap") {
        let cfg = case.join("config.json");
        if cfg.exists() {
            let l = DirectorConfig::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
            assert!(l.warnings.is_empty(), "{:?}", l.warnings);
            n += 1;
        }
    }
    assert!(n > 0);
}

#[test]
fn not_json() {
    let e = DirectorConfig::from_json("director.conf", "{ nope").unwrap_err();
    assert!(e.to_string().contains("not valid JSON"), "{e}");
    // A byte order mark is skipped, a comment and a non-object are named.
    let text = minimal().to_string();
    assert!(DirectorConfig::from_json("director.conf", &format!("\u{feff}{text}")).is_ok());
    let e = DirectorConfig::from_json("director.conf", &format!("// router\n{text}")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "director.conf: line 1: a comment; JSON has no comments (remove it)"
    );
    let e = DirectorConfig::from_json("director.conf", "[1]").unwrap_err();
    assert!(e.to_string().contains("must be a JSON object"), "{e}");
    let e = DirectorConfig::load(std::path::Path::new("/nonexistent/director.conf")).unwrap_err();
    assert!(
        e.to_string()
            .contains("/nonexistent/director.conf: cannot read"),
        "{e}"
    );
}

#[test]
fn dpdk_keys_are_optional_for_engines_without_cores() {
    let mut v = minimal();
    let o = v.as_object_mut().unwrap();
    o.remove("flow_paths");
    o.remove("lcores");
    let e = err(&v);
    assert_eq!(e.key, "flow_paths", "{e}");
    let text = v.to_string();
    let loaded =
        DirectorConfig::from_json_with("director.conf", &text, DpdkKeys::Optional).unwrap();
    assert!(loaded.config.flow_paths.is_empty() && loaded.config.lcores.is_empty());
    assert_eq!(loaded.config.outbound_src_ip, Ipv4Addr::new(65, 65, 65, 65));
    // Present ones are still checked.
    let mut bad = minimal();
    bad["lcores"]["lcore-2"]["work_source"] = json!(9);
    let e = DirectorConfig::from_json_with("director.conf", &bad.to_string(), DpdkKeys::Optional)
        .expect_err("a bad lcores entry is still refused");
    assert!(e.key.starts_with("lcores"), "{e}");
}
