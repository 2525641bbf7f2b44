//! The daemon over time: dampening, when the reload command runs, SIGHUP,
//! and crashes at random moments.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// A server whose status code the test sets.
fn switchable(addr: &str, initial: u16) -> (HttpServer, Arc<AtomicU16>) {
    let status = Arc::new(AtomicU16::new(initial));
    let s = status.clone();
    let server = HttpServer::start(
        addr,
        Arc::new(move |_, _| Reply::Status(s.load(Ordering::SeqCst))),
    );
    (server, status)
}

fn one_backend_source(ip: &str, trigger: u32, interval_ms: u64) -> Value {
    one_table_source(
        interval_ms,
        1000,
        trigger,
        vec![
            json!({"ip": ip, "state": "active", "healthy": true, "healthchecks": {"http": 8080}}),
            json!({"ip": "127.77.0.250", "state": "active", "healthy": true}),
        ],
    )
}

/// The daemon's setup, listening on `{net}.1`, for a
/// [`one_backend_source`] whose checked backend is `{net}.10`.
fn one_backend_setup(net: &str, trigger: u32, interval_ms: u64, extra: Value) -> Setup {
    let src = one_backend_source(&format!("{net}.10"), trigger, interval_ms);
    Setup::new(&format!("{net}.1"), &src, extra)
}

fn first_backend_healthy(doc: &Value) -> Option<bool> {
    doc["tables"][0]["backends"][0]["healthy"].as_bool()
}

/// With `trigger: 3`, two failures in a row leave a healthy backend
/// healthy and the third flips it; recovery likewise needs three passes.
#[test]
fn flapping_needs_trigger_consecutive_results() {
    // Answer n (1-based) of the script, then 200 for ever.
    const SCRIPT: [u16; 13] = [
        200, 500, 500, 200, 500, 500, 500, 200, 200, 500, 200, 200, 200,
    ];
    // The health to report after n results, worked out by hand:
    // first result taken as is, then a flip needs 3 opposite in a row.
    const EXPECTED: [bool; 14] = [
        true, true, true, true, true, true, false, false, false, false, false, false, true, true,
    ];
    let _server = HttpServer::start(
        "127.77.10.10:8080",
        Arc::new(|i, _| Reply::Status(*SCRIPT.get(i).unwrap_or(&200))),
    );
    let setup = one_backend_setup("127.77.10", 3, 300, json!({"reload_hold_ms": 0}));
    let runs = setup.record_reloads();
    let d = setup.start();

    // Every snapshot of /health pairs the number of results with the
    // health reported after them; check each one seen.
    let target = "http://127.77.10.10:8080/";
    let mut seen = std::collections::BTreeMap::new();
    wait_for("14 results for the scripted target", WAIT, || {
        let t = d.target(target)?;
        let n = t["results"].as_u64()? as usize;
        if n >= 1 {
            seen.insert(n, t["healthy"].as_bool()?);
        }
        (n >= 14).then_some(())
    });
    for (&n, &healthy) in &seen {
        if n <= EXPECTED.len() {
            assert_eq!(
                healthy,
                EXPECTED[n - 1],
                "after {n} results the target should be reported {}; seen: {seen:?}",
                EXPECTED[n - 1]
            );
        }
    }

    // The checked file went healthy → unhealthy → healthy, once each: the
    // two-failure dips never reached it.
    let history = wait_for("three reload runs", WAIT, || {
        let runs = recorded_runs(&runs);
        (runs.len() >= 3).then_some(runs)
    });
    let flags: Vec<Option<bool>> = history
        .iter()
        .map(|(doc, _)| first_backend_healthy(doc))
        .collect();
    assert_eq!(flags, [Some(true), Some(false), Some(true)]);
    let more = d.var("rounds").unwrap();
    d.wait_rounds_past(more + 2);
    assert_eq!(
        recorded_runs(&runs).len(),
        3,
        "a reload ran without a change"
    );
}

/// The reload command runs after the first round, then only when the
/// checked file changes, and never sooner than the hold time (10 s by
/// default) after the previous run.
#[test]
fn reload_command_runs_exactly_when_the_file_changes_within_the_hold_time() {
    let (_server, status) = switchable("127.77.11.10:8080", 200);
    let setup = one_backend_setup("127.77.11", 1, 200, json!({}));
    let runs = setup.record_reloads();
    let d = setup.start();
    let target = "http://127.77.11.10:8080/";

    // Run 1: after the first round, with the backend healthy.
    let r = wait_for("the first reload run", WAIT, || {
        let r = recorded_runs(&runs);
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(first_backend_healthy(&r[0].0), Some(true));
    assert_eq!(read_json(&setup.dst), Some(r[0].0.clone()));

    // Run 2: the backend fails; the change waits for the hold time.
    status.store(500, Ordering::SeqCst);
    let r = wait_for("the second reload run", WAIT, || {
        let r = recorded_runs(&runs);
        (r.len() >= 2).then_some(r)
    });
    assert_eq!(first_backend_healthy(&r[1].0), Some(false));
    let gap = Duration::from_nanos((r[1].1 - r[0].1) as u64);
    assert!(
        gap >= Duration::from_millis(9_500),
        "second reload only {gap:?} after the first; the hold time is 10 s"
    );

    // Flip and flip back inside the next hold time: the file ends where it
    // was, so nothing is written and nothing runs.
    status.store(200, Ordering::SeqCst);
    wait_for("the target to pass again", WAIT, || {
        (d.target(target)?["healthy"] == true).then_some(())
    });
    status.store(500, Ordering::SeqCst);
    wait_for("the target to fail again", WAIT, || {
        (d.target(target)?["healthy"] == false).then_some(())
    });
    let writes = d.var("writes").unwrap();
    // Past the end of the hold time that started with run 2.
    let hold_end = Instant::now() + Duration::from_secs(11);
    while Instant::now() < hold_end {
        std::thread::sleep(Duration::from_millis(200));
    }
    let rounds = d.var("rounds").unwrap();
    d.wait_rounds_past(rounds + 1);
    assert_eq!(
        recorded_runs(&runs).len(),
        2,
        "a reload ran for an unchanged file"
    );
    assert_eq!(
        d.var("writes").unwrap(),
        writes,
        "an unchanged file was rewritten"
    );

    // Run 3: a real change after the hold time runs again.
    status.store(200, Ordering::SeqCst);
    let r = wait_for("the third reload run", WAIT, || {
        let r = recorded_runs(&runs);
        (r.len() >= 3).then_some(r)
    });
    assert_eq!(first_backend_healthy(&r[2].0), Some(true));
    assert_eq!(r.len(), 3);
    // Every run saw a different file from the run before it.
    assert_ne!(r[0].0, r[1].0);
    assert_ne!(r[1].0, r[2].0);
    // Start-up write + one write per run.
    assert_eq!(d.var("writes").unwrap(), 4);
    assert_eq!(d.var("reload_commands").unwrap(), 3);
}

/// A failing reload command is logged with its exit status and output and
/// is not re-run until the next change.
#[test]
fn failing_reload_command_is_logged_and_retried_on_the_next_change() {
    let (_server, status) = switchable("127.77.12.10:8080", 200);
    let setup = one_backend_setup(
        "127.77.12",
        1,
        200,
        json!({"reload_hold_ms": 0,
               "reload_command": "echo reload-output-marker; echo to-stderr >&2; exit 3"}),
    );
    let d = setup.start();
    wait_for("the first reload command failure", WAIT, || {
        d.var("reload_command_failures").filter(|n| *n >= 1)
    });
    let log = d.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("reload command failed"))
        .unwrap_or_else(|| panic!("no failure line in:\n{log}"));
    assert!(line.contains("exit status: 3"), "{line}");
    assert!(line.contains("reload-output-marker"), "{line}");
    assert!(line.contains("to-stderr"), "{line}");

    // No change, no retry.
    let rounds = d.var("rounds").unwrap();
    d.wait_rounds_past(rounds + 5);
    assert_eq!(d.var("reload_commands").unwrap(), 1);

    // A change: retried.
    status.store(500, Ordering::SeqCst);
    wait_for("the reload command to run again", WAIT, || {
        d.var("reload_commands").filter(|n| *n == 2)
    });
    // The checked file itself was written fine both times.
    assert_eq!(first_backend_healthy(&d.checked().unwrap()), Some(false));
    assert_eq!(d.var("write_failures").unwrap(), 0);
}

/// SIGHUP with a broken source keeps the old table in service; SIGHUP with
/// a new backend checks it from the next round.
#[test]
fn sighup_keeps_the_old_table_on_errors_and_checks_new_backends() {
    let _a = HttpServer::always("127.77.13.10:8080", Reply::Status(200));
    let b = HttpServer::always("127.77.13.11:8080", Reply::Status(200));
    let _c = HttpServer::always("127.77.13.12:8080", Reply::Status(500));
    let backend_a = json!({"ip": "127.77.13.10", "state": "active", "healthy": true, "healthchecks": {"http": 8080}});
    let first = source(300, 1000, 1, vec![table("t", vec![backend_a.clone()])]);
    let setup = Setup::new("127.77.13.1", &first, json!({}));
    let runs = setup.record_reloads();
    let mut d = setup.start();
    wait_for("the first reload run", WAIT, || {
        (recorded_runs(&runs).len() == 1).then_some(())
    });
    let served = std::fs::read(&setup.dst).unwrap();

    // Broken JSON, then a table glb-core rejects: both keep the old table.
    let broken: [(&[u8], &str); 2] = [
        (b"{\"tables\": [", "not valid JSON"),
        (
            br#"{"tables": [{"hash_key": "12345678901234561234567890123456",
                 "seed": "34567890123456783456789012345678",
                 "binds": [{"ip": "10.0.0.1", "proto": "tcp", "port": 80}],
                 "backends": [{"ip": "127.77.13.10", "state": "sleeping"}]}]}"#,
            "backend 0: \"state\"",
        ),
    ];
    for (i, (text, why)) in broken.iter().enumerate() {
        std::fs::write(&setup.src, text).unwrap();
        d.signal("HUP");
        wait_for("the reload failure to be counted", WAIT, || {
            d.var("reload_failures").filter(|n| *n == i as u64 + 1)
        });
        let log = d.log_text();
        assert!(
            log.lines()
                .any(|l| l.contains("cannot reload the source table") && l.contains(why)),
            "no reload error naming {why:?} in:\n{log}"
        );
        let rounds = d.var("rounds").unwrap();
        d.wait_rounds_past(rounds + 2);
        assert!(d.child.try_wait().unwrap().is_none(), "the daemon died");
        assert_eq!(
            std::fs::read(&setup.dst).unwrap(),
            served,
            "the checked file changed"
        );
        assert!(d.target("http://127.77.13.10:8080/").is_some());
    }
    assert_eq!(recorded_runs(&runs).len(), 1);

    // A good source with two new backends, claimed the opposite of what
    // their servers say, and a new unknown key.
    let mut second = one_table_source(
        300,
        1000,
        1,
        vec![
            backend_a,
            json!({"ip": "127.77.13.11", "state": "active", "healthy": false, "healthchecks": {"http": 8080}}),
            json!({"ip": "127.77.13.12", "state": "active", "healthy": true, "healthchecks": {"http": 8080}}),
        ],
    );
    second["added-by"] = json!("sighup test");
    setup.write_source(&second);
    d.signal("HUP");
    wait_for("the reload to be counted", WAIT, || {
        d.var("reloads").filter(|n| *n == 2)
    });
    let mut want = second.clone();
    want["tables"][0]["backends"][1]["healthy"] = json!(true);
    want["tables"][0]["backends"][2]["healthy"] = json!(false);
    d.wait_checked("the new backends' checked health", &want);
    assert!(b.count() >= 1, "the new backend was never probed");
    // The reload wrote once, after the round that checked the new
    // backends: the one run it caused already saw their real health.
    let r = wait_for("the reload run after SIGHUP", WAIT, || {
        let r = recorded_runs(&runs);
        (r.len() >= 2).then_some(r)
    });
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].0, want);
}

/// SIGHUP with the source unchanged and every backend as healthy as
/// before still writes the checked table and runs the reload command: it
/// is how `systemctl reload glb-healthcheck` restores a binary table
/// edited by hand, or pushes the table again after what the reload
/// command reads changed. Rounds are paced over the interval, so one is
/// in flight at each SIGHUP and completes first, finding nothing changed;
/// the write must still follow the next round. (No hold time, as when the
/// last write is older than it: that finding is then final.)
#[test]
fn sighup_writes_and_reloads_even_when_nothing_changed() {
    // Ten targets: their checks start a tenth of the interval apart.
    let _servers: Vec<HttpServer> = (10..20)
        .map(|i| HttpServer::always(&format!("127.77.15.{i}:8080"), Reply::Status(200)))
        .collect();
    let backends = (10..20)
        .map(|i| json!({"ip": format!("127.77.15.{i}"), "state": "active", "healthy": true, "healthchecks": {"http": 8080}}))
        .collect();
    let src = one_table_source(1000, 1000, 1, backends);
    let setup = Setup::new("127.77.15.1", &src, json!({"reload_hold_ms": 0}));
    let runs = setup.record_reloads();
    let d = setup.start();
    wait_for("the first reload run", WAIT, || {
        (recorded_runs(&runs).len() == 1).then_some(())
    });
    let first = recorded_runs(&runs)[0].0.clone();
    for n in 2..=4 {
        // Some rounds later, as when an operator comes back to it, and in
        // the middle of a round (a round ends as the next one starts).
        let rounds = d.var("rounds").unwrap();
        d.wait_rounds_past(rounds + 1);
        std::thread::sleep(Duration::from_millis(400));
        d.signal("HUP");
        let r = wait_for(
            &format!("reload run {n}, after SIGHUP {}", n - 1),
            WAIT,
            || {
                let r = recorded_runs(&runs);
                (r.len() >= n).then_some(r)
            },
        );
        assert_eq!(
            r.len(),
            n,
            "one SIGHUP ran the reload command more than once"
        );
        assert_eq!(r[n - 1].0, first, "the rewritten table differs");
    }
    eprintln!("LOG{}", d.log_text());
    // One more: the start-up write before the first round.
    assert_eq!(d.var("writes").unwrap(), 5);
}

/// SIGKILL at random moments while the daemon rewrites a large checked
/// file every round: the file is always complete and valid.
#[test]
fn killing_the_daemon_at_random_moments_never_leaves_a_partial_file() {
    // Alternates 200/500 so the health, and the file, change every round.
    let _flap = HttpServer::start(
        "127.77.14.10:8080",
        Arc::new(|i, _| Reply::Status(if i % 2 == 0 { 200 } else { 500 })),
    );
    let mut tables = Vec::new();
    for t in 0..8 {
        let mut backends = vec![
            json!({"ip": "127.77.14.10", "state": "active", "healthy": true, "healthchecks": {"http": 8080}}),
        ];
        for b in 0..250 {
            backends.push(
                json!({"ip": format!("10.{t}.{}.{}", b / 200, b % 200 + 1), "state": "active",
                                 "healthy": true, "comment": "x".repeat(256)}),
            );
        }
        tables.push(table(&format!("t{t}"), backends));
    }
    // The shortest round the checker accepts, so the file is rewritten often.
    let src = source(100, 100, 1, tables);
    let setup = Setup::new("127.77.14.1", &src, json!({"reload_hold_ms": 0}));
    let size_hint = serde_json::to_vec_pretty(&src).unwrap().len();
    assert!(
        size_hint > 500_000,
        "the file should be big enough to take a while to write"
    );

    // A simple xorshift: the moments vary from run to run, and the seed
    // is printed so that a failure can be replayed.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };

    let mut existed = false;
    let mut writes_seen = 0u64;
    for i in 0..30 {
        let mut d = setup.spawn();
        let delay = Duration::from_millis(next() % 800);
        let start = Instant::now();
        while start.elapsed() < delay {
            if let Some(w) = d.var("writes") {
                writes_seen = writes_seen.max(w);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(st) = d.child.try_wait().unwrap() {
            panic!(
                "iteration {i}: glb-healthcheck exited with {st} before it was killed:\n{}",
                d.log_text()
            );
        }
        d.child.kill().unwrap();
        d.child.wait().unwrap();
        match std::fs::read(&setup.dst) {
            Ok(bytes) => {
                existed = true;
                let text = String::from_utf8(bytes).expect("checked file is not UTF-8");
                assert!(
                    glb_core::ForwardingTables::from_json("checked", &text).is_ok(),
                    "iteration {i}: partial or invalid checked file ({} bytes)",
                    text.len()
                );
                let doc: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(doc["tables"].as_array().unwrap().len(), 8, "iteration {i}");
                for t in doc["tables"].as_array().unwrap() {
                    assert_eq!(
                        t["backends"].as_array().unwrap().len(),
                        251,
                        "iteration {i}"
                    );
                }
            }
            Err(e) => assert!(!existed, "iteration {i}: the checked file vanished: {e}"),
        }
    }
    assert!(existed, "the daemon never wrote the checked file");
    assert!(
        writes_seen >= 3,
        "too few writes happened to make this test meaningful"
    );

    // Temporary files a kill left behind are cleaned up by the next start.
    let d = setup.start();
    d.wait_rounds_past(1);
    let leftovers: Vec<String> = std::fs::read_dir(setup.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-") && !n.contains(&format!(".tmp-{}-", d.pid())))
        .collect();
    assert!(leftovers.is_empty(), "stale temporary files: {leftovers:?}");
}

/// Peak resident memory of a process, from /proc (kB).
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A reload command that prints 300 MB before failing leaves the daemon
/// small (only the end of the output is kept) and logs the end.
#[test]
fn a_reload_command_that_prints_without_end_does_not_grow_the_daemon() {
    let setup = one_backend_setup("127.77.14", 1, 300, json!({"reload_hold_ms": 0}));
    let done = setup.path("done");
    setup.set_reload_command(&format!(
        "yes | head -c 300000000; echo the-end; touch {}; exit 3",
        done.display()
    ));
    let d = setup.start();
    wait_for("the noisy reload command to fail", WAIT, || {
        d.var("reload_command_failures").filter(|n| *n >= 1)
    });
    assert!(done.exists());
    let kb = peak_rss_kb(d.pid()).expect("the daemon's /proc status");
    assert!(kb < 100 * 1024, "peak RSS {kb} kB after 300 MB of output");
    wait_for("the failure logged with the output's end", WAIT, || {
        d.log_text().contains("the-end").then_some(())
    });
}

/// An unknown kind of check is refused at start, naming table, backend and
/// key, instead of being skipped and the backend written healthy.
#[test]
fn an_unknown_check_kind_stops_the_daemon_at_start() {
    let src = lone_backend_source(300, 100, 1, "127.77.14.20", json!({"bogus": 1}));
    let setup = Setup::new("127.77.14.2", &src, json!({}));
    let mut d = setup.spawn();
    let status = d.wait_exit(WAIT).expect("the daemon exits");
    assert!(!status.success());
    let log = d.log_text();
    assert!(
        log.contains("table 0 (\"t\"), backend 0: \"healthchecks\": unknown field `bogus`"),
        "{log}"
    );
    assert!(!setup.dst.exists(), "no checked table written");
}
