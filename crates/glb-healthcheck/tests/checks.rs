//! The checks against real servers on loopback, the checked file they
//! produce, the status endpoints and start-up validation.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// Every kind of HTTP and TCP outcome, one backend each, plus the keys an
/// operator may add anywhere: the checked file must say `healthy` right
/// for each backend and keep everything else as it was.
#[test]
fn checked_file_marks_each_backend_and_keeps_unknown_keys() {
    let ok = HttpServer::always("127.77.1.10:8080", Reply::Status(200));
    let _e500 = HttpServer::always("127.77.1.11:8080", Reply::Status(500));
    let _slow = HttpServer::always("127.77.1.12:8080", Reply::Slow(Duration::from_secs(5)));
    let _silent = HttpServer::always("127.77.1.13:8080", Reply::Silent);
    let tcp_open = tcp_listener("127.77.1.15:2222");
    let inactive = HttpServer::always("127.77.1.17:8080", Reply::Status(200));
    let _both = HttpServer::always("127.77.1.18:8080", Reply::Status(200));
    let _redirect = HttpServer::start(
        "127.77.1.22:8080",
        Arc::new(|_, path| match path {
            "/old" => Reply::Redirect("/new".into()),
            "/new" => Reply::Status(200),
            _ => Reply::Status(404),
        }),
    );
    let _no_content = HttpServer::always("127.77.1.23:8080", Reply::Status(204));
    let _not_found = HttpServer::always("127.77.1.24:8080", Reply::Status(404));

    let backend = |ip: &str, state: &str, checks: Value| json!({"ip": ip, "state": state, "healthy": true, "healthchecks": checks, "rack": format!("rack-{ip}")});
    let http_uri = |uri: &str| json!({"http": 8080, "http_uri": uri});
    let mut web = table(
        "web",
        vec![
            backend("127.77.1.10", "active", http_uri("/status")),
            backend("127.77.1.11", "active", json!({"http": 8080})),
            backend("127.77.1.12", "active", json!({"http": 8080})),
            backend("127.77.1.13", "active", json!({"http": 8080})),
            backend("127.77.1.14", "active", json!({"tcp": 9})),
            backend("127.77.1.15", "draining", json!({"tcp": tcp_open.port()})),
            json!({"ip": "127.77.1.16", "state": "active"}),
            backend("127.77.1.17", "inactive", json!({"http": 8080})),
            backend("127.77.1.18", "active", json!({"http": 8080, "tcp": 9})),
            backend("127.77.1.22", "filling", http_uri("/old")),
            backend("127.77.1.23", "active", json!({"http": 8080})),
            backend("127.77.1.24", "active", json!({"http": 8080})),
        ],
    );
    web["owner"] = json!({"team": "edge", "tags": ["a", "b"]});
    web["binds"][0]["comment"] = json!("the VIP");
    // The same proxy and check in a second table: probed once, used twice.
    let dup = table(
        "dup",
        vec![
            json!({"ip": "127.77.1.10", "state": "active", "healthy": false,
                     "healthchecks": {"http": 8080, "http_uri": "/status"}}),
        ],
    );
    let mut src = source(500, 1000, 1, vec![web, dup]);
    src["x-operator-note"] = json!("changed by ops, 2026");
    src["healthchecks"]["x-extra"] = json!(null);

    let setup = Setup::new("127.77.1.1", &src, json!({}));
    let d = setup.start();

    // Worked out by hand from the servers above.
    let want_web = [
        true,  // 200
        false, // 500
        false, // answers after the timeout
        false, // never answers
        false, // closed port
        true,  // open port
        true,  // no checks
        false, // inactive: never checked, never claimed healthy
        false, // http passes, tcp fails: all checks must pass
        true,  // redirect followed to a 200
        true,  // 204 is 2xx
        false, // 404
    ];
    let mut want = src.clone();
    for (i, h) in want_web.iter().enumerate() {
        want["tables"][0]["backends"][i]["healthy"] = json!(h);
    }
    want["tables"][1]["backends"][0]["healthy"] = json!(true);

    d.wait_checked("the checked file to show every backend's health", &want);

    let health = d.health().unwrap();
    let targets = health["targets"].as_array().unwrap();
    let status_targets: Vec<&Value> = targets
        .iter()
        .filter(|t| t["target"] == "http://127.77.1.10:8080/status")
        .collect();
    assert_eq!(status_targets.len(), 1, "a shared target is listed once");
    assert!(
        targets.iter().all(|t| t["ip"] != "127.77.1.17"),
        "inactive backends are not checked"
    );
    assert_eq!(
        inactive.count(),
        0,
        "the inactive backend's server was probed"
    );
    // 12 backends: one has no checks, one is inactive, one has two checks.
    assert_eq!(targets.len(), 11);

    // Each round probes a shared target once, not once per table.
    let rounds_before = d.var("rounds").unwrap();
    let requests_before = ok.count();
    let rounds_after = d.wait_rounds_past(rounds_before + 3);
    let requests = ok.count() - requests_before;
    let rounds = (rounds_after - rounds_before) as usize;
    assert!(
        requests <= rounds + 1,
        "{requests} requests to the shared target in {rounds} rounds"
    );

    let why = |target: &str| d.target(target).unwrap()["last"]["error"].clone();
    assert_eq!(
        why("http://127.77.1.11:8080/"),
        "HTTP status 500 Internal Server Error"
    );
    assert_eq!(why("http://127.77.1.12:8080/"), "no answer within 1000 ms");
    assert_eq!(why("tcp 127.77.1.14:9"), "connect: Connection refused");
    assert_eq!(why("http://127.77.1.10:8080/status"), Value::Null);

    // The change log names the table, the backend and the failing check.
    let log = d.log_text();
    assert!(
        log.lines().any(|l| l.contains("backend is unhealthy")
            && l.contains("table=web")
            && l.contains("backend=127.77.1.11")
            && l.contains("HTTP status 500")),
        "no health change line for 127.77.1.11 in:\n{log}"
    );
    assert!(
        log.contains("round summary"),
        "no per-table round summary at debug level"
    );
}

#[test]
fn status_endpoints_report_targets_and_counters() {
    let _ok = HttpServer::always("127.77.2.10:8080", Reply::Status(200));
    let v6 = HttpServer::always("[::1]:0", Reply::Status(200));
    let src = one_table_source(
        300,
        1000,
        3,
        vec![
            json!({"ip": "127.77.2.10", "state": "active", "healthchecks": {"http": 8080}}),
            json!({"ip": "127.77.2.11", "state": "active", "healthchecks": {"tcp": 9}}),
            json!({"ip": "::1", "state": "active", "healthchecks": {"http": v6.addr.port(), "http_uri": "/v6"}}),
        ],
    );
    let setup = Setup::new("127.77.2.1", &src, json!({}));
    let mut d = setup.start();
    d.wait_rounds_past(1);

    let h = d.health().unwrap();
    assert!(h["round"].as_u64().unwrap() >= 2);
    let t = d.target("http://127.77.2.10:8080/").unwrap();
    assert_eq!(t["type"], "http");
    assert_eq!(t["ip"], "127.77.2.10");
    assert_eq!(t["port"], 8080);
    assert_eq!(t["uri"], "/");
    assert_eq!(t["healthy"], true);
    assert_eq!(t["last"]["ok"], true);
    assert!(t["results"].as_u64().unwrap() >= 2);
    let t = d.target("tcp 127.77.2.11:9").unwrap();
    assert_eq!(t["healthy"], false);
    assert_eq!(t["last"]["ok"], false);

    let t = d
        .target(&format!("http://[::1]:{}/v6", v6.addr.port()))
        .unwrap();
    assert_eq!(t["healthy"], true, "IPv6 backend: {t}");

    let vars = d.get_json("/debug/vars").unwrap();
    for key in [
        "rounds",
        "checks_sent",
        "timeouts",
        "reloads",
        "write_failures",
        "writes",
        "reload_commands",
        "icmp_replies_late",
    ] {
        assert!(vars[key].is_u64(), "/debug/vars has no {key}: {vars}");
    }
    assert_eq!(vars["reloads"], 1);
    assert_eq!(vars["targets"], 3);
    assert!(vars["checks_sent"].as_u64().unwrap() >= 6);
    assert_eq!(vars["write_failures"], 0);

    assert_eq!(d.get("/nope").unwrap().0, 404);
    assert!(
        setup.listen.ip().is_loopback(),
        "the listener must be loopback"
    );

    d.signal("TERM");
    let st = d.wait_exit(WAIT).expect("SIGTERM did not stop the daemon");
    assert!(st.success(), "SIGTERM exit status {st}");
    assert!(d.log_text().contains("stopping"));
}

/// The GUE and FOU checks against a responder that decapsulates the probe
/// and answers the echo directly; a silent port fails; a reply after the
/// timeout is ignored and counted as late.
#[test]
fn tunnel_checks_echo_through_gue_and_fou() {
    let gue = Responder::start("127.77.3.10", 19523, Encap::Gue, Duration::ZERO);
    let fou = Responder::start("127.77.3.11", 19524, Encap::Fou, Duration::ZERO);
    let late = Responder::start("127.77.3.13", 19523, Encap::Gue, Duration::from_millis(900));
    let src = source(
        700,
        300,
        1,
        vec![table(
            "tunnels",
            vec![
                json!({"ip": "127.77.3.10", "state": "active", "healthy": false, "healthchecks": {"gue": 19523}}),
                json!({"ip": "127.77.3.11", "state": "active", "healthy": false, "healthchecks": {"fou": 19524}}),
                json!({"ip": "127.77.3.12", "state": "active", "healthy": true, "healthchecks": {"gue": 19523}}),
                json!({"ip": "127.77.3.13", "state": "active", "healthy": true, "healthchecks": {"gue": 19523}}),
            ],
        )],
    );
    let setup = Setup::new("127.77.3.1", &src, json!({}));
    let d = setup.start();

    let want = vec![vec![Some(true), Some(true), Some(false), Some(false)]];
    wait_for("gue/fou health in the checked file", WAIT, || {
        let got = d.checked()?;
        (healthy_flags(&got) == want).then_some(())
    });
    assert!(gue.answered.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert!(fou.answered.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(gue.malformed.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(fou.malformed.load(std::sync::atomic::Ordering::SeqCst), 0);
    wait_for("a late echo reply to be counted", WAIT, || {
        d.var("icmp_replies_late").filter(|n| *n >= 1)
    });
    assert!(late.answered.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(
        d.target("gue 127.77.3.13:19523").unwrap()["last"]["error"],
        "no answer within 300 ms"
    );
    assert!(d.var("icmp_replies_matched").unwrap() >= 2);
}

fn start_and_expect_failure(conf_path: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_glb-healthcheck"))
        .arg("--config")
        .arg(conf_path)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "start-up should have failed for {}",
        conf_path.display()
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_configuration_or_source_fails_at_start_up() {
    let good_src = lone_backend_source(1000, 500, 3, "127.77.4.10", json!({"tcp": 9}));
    let setup = Setup::new("127.77.4.1", &good_src, json!({}));
    let conf = setup.path("bad.conf");

    let missing = setup.path("missing.conf");
    let e = start_and_expect_failure(&missing);
    assert!(
        e.contains("missing.conf") && e.contains("cannot read"),
        "{e}"
    );

    let cases: Vec<(String, &str)> = vec![
        ("{".into(), "not valid JSON"),
        (
            r#"{"forwarding_table": {"src": "a"}}"#.into(),
            "bad.conf: forwarding_table.dst: missing",
        ),
        (
            format!(
                r#"{{"forwarding_table": {{"src": "{}", "dst": "{}"}}, "listen": "0.0.0.0:19520"}}"#,
                setup.src.display(),
                setup.dst.display()
            ),
            "not a loopback address",
        ),
        (
            format!(
                r#"{{"forwarding_table": {{"src": "{}", "dst": "{}"}}, "listen": "127.77.4.1:19520"}}"#,
                setup.path("nope.json").display(),
                setup.dst.display()
            ),
            "nope.json: cannot read",
        ),
        (
            format!(
                r#"{{"forwarding_table": {{"src": "{}", "dst": "{}"}}, "listen": "127.77.4.1:19520"}}"#,
                setup.src.display(),
                setup.path("no/such/dir/checked.json").display()
            ),
            "cannot write the checked table",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(&conf, &text).unwrap();
        let e = start_and_expect_failure(&conf);
        assert!(
            e.contains(want),
            "for config {text}: {e:?} should contain {want:?}"
        );
        assert!(
            e.contains("bad.conf") || want.contains("nope") || want.contains("cannot write"),
            "{e}"
        );
    }

    // A source the table compiler would reject is rejected naming the
    // table, the entry and the field, and no checked file appears.
    let mut bad = good_src.clone();
    bad["tables"][0]["backends"][0]["ip"] = json!("127.77.4.x");
    setup.write_source(&bad);
    let e = start_and_expect_failure(&setup.conf);
    assert!(
        e.contains("forwarding_table.src.json: table 0 (\"t\"), backend 0: \"ip\""),
        "{e}"
    );
    assert!(
        !setup.dst.exists(),
        "a checked file was written from a bad source"
    );

    let mut bad = good_src.clone();
    bad["tables"][0]["backends"][0]["healthchecks"] = json!({"http": 80, "http_uri": "status"});
    setup.write_source(&bad);
    let e = start_and_expect_failure(&setup.conf);
    assert!(e.contains("backend 0: \"healthchecks.http_uri\""), "{e}");
    assert!(!e.contains("1234567890123456"), "a secret leaked: {e}");

    // The listener's port is taken: a clear error, not a silent daemon.
    let _taken = std::net::TcpListener::bind("127.77.4.1:19520").unwrap();
    setup.write_source(&good_src);
    let e = start_and_expect_failure(&setup.conf);
    assert!(e.contains("cannot listen on 127.77.4.1:19520"), "{e}");
}

/// The shipped default configuration and source table are accepted as
/// they are, and the unit starts the daemon with the flags it takes.
#[test]
fn packaged_defaults_are_valid() {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/glb-healthcheck");
    let conf = glb_healthcheck::config::Config::load(&root.join("healthcheck.conf")).unwrap();
    assert_eq!(
        conf.src,
        std::path::Path::new("/etc/glb/forwarding_table.src.json")
    );
    assert_eq!(
        conf.dst,
        std::path::Path::new("/etc/glb/forwarding_table.checked.json")
    );
    assert!(
        conf.reload_command
            .unwrap()
            .contains("glb-director-cli build-config")
    );
    assert!(conf.unknown_keys.is_empty());
    glb_healthcheck::source::SourceTable::load(&root.join("forwarding_table.src.json")).unwrap();

    let unit = std::fs::read_to_string(root.join("glb-healthcheck.service")).unwrap();
    assert!(
        unit.contains("\nExecStart=/usr/sbin/glb-healthcheck --config /etc/glb/healthcheck.conf\n")
    );
    assert!(unit.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"));

    // The daemon really starts from the shipped source table.
    let setup = Setup::new(
        "127.77.5.1",
        &read_json(&root.join("forwarding_table.src.json")).unwrap(),
        json!({}),
    );
    let d = setup.start();
    d.wait_rounds_past(0);
    assert_eq!(d.checked().unwrap()["tables"], json!([]));
}
