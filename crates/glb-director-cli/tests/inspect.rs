//! `dump` and `route` on tables from the conformance data, checked against
//! figures the reference director produced (its verdicts), not against our
//! own code.

use std::process::Output;

use glb_testkit::conformance;
use glb_testkit::process::{output, stderr, stdout_ok as stdout};

fn cli(args: &[&str]) -> Output {
    output(env!("CARGO_BIN_EXE_glb-director-cli"), args)
}

/// Requires `route TABLE ARGS...` to fail (exit 1) saying `why`.
fn route_refused(table: &str, args: &[&str], why: &str) {
    let out = cli(&[&["route", table][..], args].concat());
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
}

#[test]
fn route_matches_the_reference_verdicts() {
    let table = conformance::require("pcap/mixed/table.bin");
    let t = table.to_str().expect("utf-8 path");
    // (arguments, table, hash, via, alt) from pcap/mixed/expected.verdicts.txt
    // and the matching packets described in pcap/mixed/input.txt.
    let cases: [(&[&str], &str, &str, &str, &str); 4] = [
        (
            &[
                "--src-ip",
                "10.200.1.1",
                "--dst-ip",
                "198.18.10.80",
                "--src-port",
                "49201",
                "--dst-port",
                "80",
            ],
            "0",
            "117af643ac4c4a57",
            "10.20.0.11",
            "10.20.0.13",
        ),
        (
            &[
                "--src-ip",
                "198.51.100.201",
                "--dst-ip",
                "198.18.10.80",
                "--dst-port",
                "443",
            ],
            "0",
            "9999a7f8ec1cf93f",
            "10.20.0.13",
            "10.20.0.12",
        ),
        (
            &[
                "--src-ip",
                "2001:db8:aaaa::10",
                "--dst-ip",
                "fd42:42:42::443",
                "--dst-port",
                "443",
            ],
            "1",
            "df4e03179aba3c18",
            "10.30.0.22",
            "10.30.0.21",
        ),
        (
            &[
                "--src-ip",
                "172.18.9.9",
                "--dst-ip",
                "198.18.20.31",
                "--proto",
                "udp",
                "--dst-port",
                "5010",
            ],
            "1",
            "64e6f448f9e88b85",
            "10.30.0.23",
            "10.30.0.22",
        ),
    ];
    for (args, table_index, hash, via, alt) in cases {
        let mut full = vec!["route", t, "--json"];
        full.extend_from_slice(args);
        let v: serde_json::Value = serde_json::from_str(&stdout(&cli(&full))).expect("json");
        let r = &v[0];
        assert_eq!(r["table"].to_string(), table_index, "{args:?}");
        assert_eq!(r["hash"], hash, "{args:?}");
        assert_eq!(r["hops"][0]["ip"], via, "{args:?}");
        assert_eq!(r["hops"][1]["ip"], alt, "{args:?}");
    }
}

#[test]
fn route_explains_an_unmatched_packet() {
    let table = conformance::require("pcap/mixed/table.bin");
    let t = table.to_str().expect("utf-8 path");
    // Packet 18 of the mixed capture: port 5011 is outside 5000-5010.
    let packet = ["--src-ip", "192.168.55.1", "--dst-ip", "198.18.20.20"];
    let udp_5011 = ["--proto", "udp", "--dst-port", "5011"];
    route_refused(t, &[&packet[..], &udp_5011[..]].concat(), "no bind");
    // A hash field without its input is refused rather than guessed.
    let fields = ["--hash-fields", "src_addr,src_port"];
    route_refused(t, &[&packet[..2], &fields[..]].concat(), "--src-port");
}

#[test]
fn route_without_destination_shows_every_table() {
    let table = conformance::require("pcap/1k_pkts/table.bin");
    let text = stdout(&cli(&[
        "route",
        table.to_str().expect("utf-8"),
        "--src-ip",
        "10.11.12.13",
    ]));
    // The reference director logged hash 008972f1657a5cbd via 3.4.5.6,
    // alt 2.3.4.5 for this client in table 0.
    assert!(text.contains("table 0"), "{text}");
    assert!(text.contains("table 1"), "{text}");
    assert!(text.contains("008972f1657a5cbd"), "{text}");
    let t0 = &text[text.find("table 0").expect("t0")..text.find("table 1").expect("t1")];
    let (p, s) = (
        t0.find("3.4.5.6").expect("primary"),
        t0.find("2.3.4.5").expect("secondary"),
    );
    assert!(p < s, "{t0}");
}

#[test]
fn dump_counts_rows_and_hides_keys() {
    let table = conformance::require("tables/states_mix.bin");
    let t = table.to_str().expect("utf-8");
    let json_path = table.with_extension("json");
    let src: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("json")).expect("parse");
    let key = src["tables"][0]["hash_key"]
        .as_str()
        .expect("key")
        .to_lowercase();

    let text = stdout(&cli(&["dump", t]));
    let json = stdout(&cli(&["dump", t, "--json"]));
    for out in [&text, &json] {
        assert!(!out.to_lowercase().contains(&key[..16]), "hash_key leaked");
    }
    let v: serde_json::Value = serde_json::from_str(&json).expect("dump json");
    let backends = v["tables"][0]["backends"].as_array().expect("backends");
    let src_backends = src["tables"][0]["backends"]
        .as_array()
        .expect("src backends");
    assert_eq!(backends.len(), src_backends.len());
    let total = |k: &str| -> u64 { backends.iter().map(|b| b[k].as_u64().expect("count")).sum() };
    assert_eq!(total("primary_rows"), 65536);
    assert_eq!(total("secondary_rows"), 65536);
    for (b, s) in backends.iter().zip(src_backends) {
        assert_eq!(b["ip"], s["ip"]);
        match s["state"].as_str().expect("state") {
            // Never chosen, whatever else happens.
            "inactive" => {
                assert_eq!(b["primary_rows"], 0);
                assert_eq!(b["secondary_rows"], 0);
            }
            // Demoted wherever an active backend could take its place.
            "draining" => assert!(b["primary_rows"].as_u64() < b["secondary_rows"].as_u64()),
            _ => {}
        }
    }
    assert!(
        text.contains("backends:") && text.contains("binds:"),
        "{text}"
    );
}

#[test]
fn corrupt_binary_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = tmp.path().join("bad.bin");
    std::fs::write(&p, b"GLBD\x03\0\0\0").expect("write");
    let out = cli(&["dump", p.to_str().expect("utf-8")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bad.bin") && err.contains("not a valid forwarding table"),
        "{err}"
    );
}
