//! The `http` check's client against real servers on loopback that answer
//! well, badly, slowly or not at all: every answer gives a verdict and a
//! reason, never a panic, and a kept connection is reused only when the
//! server allows it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use glb_healthcheck::checks::{Check, Prober};
use glb_healthcheck::counters::Counters;
use glb_healthcheck::http::HttpCheck;
use glb_healthcheck::target::{CheckKind, Target};

/// What a scripted server does with its `n`-th connection (from 0).
type Script = dyn Fn(usize, TcpStream) + Send + Sync;

/// A server on an ephemeral loopback port running `script` for each
/// connection in a thread of its own; counts the connections.
struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Server {
    fn start(script: impl Fn(usize, TcpStream) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(script);
        let count = accepted.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let n = count.fetch_add(1, Ordering::SeqCst);
                let script = script.clone();
                std::thread::spawn(move || script(n, conn));
            }
        });
        Server { addr, accepted }
    }

    /// A server that answers every request on a connection with `reply`,
    /// keeping the connection open for the next one.
    fn answering(reply: &'static [u8]) -> Server {
        Server::start(move |_, mut s| {
            while read_request(&mut s).is_some() {
                if s.write_all(reply).is_err() {
                    return;
                }
            }
        })
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn check(&self, path: &str) -> HttpCheck {
        HttpCheck::new(self.addr, path).unwrap()
    }
}

/// Reads one request head; `None` when the client closed the connection.
fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Runs `check` once, bounded by `limit` as the daemon bounds it.
async fn run(check: &mut HttpCheck, limit: Duration) -> Result<(), String> {
    match tokio::time::timeout(limit, check.run()).await {
        Ok(r) => r,
        Err(_) => Err("timed out".into()),
    }
}

const LIMIT: Duration = Duration::from_secs(5);

/// Runs `times` checks of `/` in a row on one `HttpCheck` of `server`'s,
/// each required to pass; returns the connections the server took.
async fn passes(server: &Server, times: usize) -> usize {
    let mut check = server.check("/");
    for i in 1..=times {
        assert_eq!(run(&mut check, LIMIT).await, Ok(()), "check {i}");
    }
    server.accepted()
}

#[tokio::test]
async fn a_kept_connection_carries_the_next_checks() {
    let server = Server::answering(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
    let mut check = server.check("/status");
    for _ in 0..5 {
        assert_eq!(run(&mut check, LIMIT).await, Ok(()));
        assert!(check.has_connection());
    }
    assert_eq!(server.accepted(), 1, "five checks on one connection");
}

#[tokio::test]
async fn the_request_is_a_get_of_the_path_with_a_host() {
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let record = seen.clone();
    let server = Server::start(move |_, mut s| {
        if let Some(req) = read_request(&mut s) {
            *record.lock().unwrap() = req;
            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
        }
    });
    let mut check = server.check("/status?q=1#frag");
    assert_eq!(run(&mut check, LIMIT).await, Ok(()), "204 is 2xx");
    let req = seen.lock().unwrap().clone();
    let first = req.lines().next().unwrap_or_default();
    assert_eq!(
        first, "GET /status?q=1 HTTP/1.1",
        "the fragment is never sent"
    );
    assert!(
        req.lines()
            .any(|l| l.eq_ignore_ascii_case(&format!("host: {}", server.addr))),
        "no Host header naming {} in {req:?}",
        server.addr
    );
}

#[test]
fn paths_no_request_line_can_carry_are_refused() {
    let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
    for bad in ["status", "/a b", "/a\tb", "/a\r\nHost: x", "/\u{7f}"] {
        assert!(HttpCheck::new(addr, bad).is_none(), "{bad:?} accepted");
    }
    assert!(
        HttpCheck::new(addr, "/ünï").is_some(),
        "non-ASCII is encoded"
    );
}

/// Status codes and the words the operator reads for them.
#[tokio::test]
async fn status_codes_decide_and_name_the_failure() {
    let cases: [(&'static [u8], Result<(), &str>); 6] = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", Ok(())),
        (
            b"HTTP/1.1 299 Whatever\r\nContent-Length: 0\r\n\r\n",
            Ok(()),
        ),
        (
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
            Err("HTTP status 500 Internal Server Error"),
        ),
        (
            b"HTTP/1.1 404 Nope\r\nContent-Length: 0\r\n\r\n",
            Err("HTTP status 404 Not Found"),
        ),
        (
            b"HTTP/1.1 599 Odd Thing\r\nContent-Length: 0\r\n\r\n",
            Err("HTTP status 599 Odd Thing"),
        ),
        // A 3xx without a Location is no redirect.
        (
            b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n",
            Err("HTTP status 302 Found"),
        ),
    ];
    for (reply, want) in cases {
        let server = Server::answering(reply);
        let got = run(&mut server.check("/"), LIMIT).await;
        assert_eq!(
            got,
            want.map_err(str::to_owned),
            "for {:?}",
            String::from_utf8_lossy(reply)
        );
    }
}

#[tokio::test]
async fn informational_answers_are_skipped() {
    let server = Server::answering(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    assert_eq!(passes(&server, 2).await, 1);
}

/// Whether the server lets the connection carry the next request decides
/// whether a second check opens a new one.
#[tokio::test]
async fn a_connection_is_kept_only_when_the_server_allows_it() {
    let cases: [(&'static [u8], bool); 9] = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n", true),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n",
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n0\r\nX-Trailer: 1\r\n\r\n",
            true,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", true),
        (
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        // Malformed chunk framing: the status counts, the connection not.
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
            false,
        ),
        // More bytes than the answer has: something is off, start afresh.
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
            false,
        ),
    ];
    for (reply, kept) in cases {
        let server = Server::answering(reply);
        let mut check = server.check("/");
        let what = String::from_utf8_lossy(reply);
        assert_eq!(run(&mut check, LIMIT).await, Ok(()), "for {what:?}");
        assert_eq!(check.has_connection(), kept, "kept after {what:?}");
        assert_eq!(run(&mut check, LIMIT).await, Ok(()), "again, for {what:?}");
        let want = if kept { 1 } else { 2 };
        assert_eq!(server.accepted(), want, "connections for {what:?}");
    }
}

/// A body that runs to the end of the connection: the check passes once
/// the status is known, and never waits for the end.
#[tokio::test]
async fn an_unframed_or_endless_body_does_not_hold_the_check() {
    let heads: [&'static [u8]; 2] = [
        // Unframed: the body runs to the end of the connection.
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
    ];
    for head in heads {
        let server = Server::start(move |_, mut s| {
            if read_request(&mut s).is_some() {
                let _ = s.write_all(head);
                // Then body bytes without end, until the client leaves.
                while s.write_all(&[b'x'; 4096]).is_ok() {}
            }
        });
        let what = String::from_utf8_lossy(head);
        let mut check = server.check("/");
        assert_eq!(run(&mut check, LIMIT).await, Ok(()), "for {what:?}");
        assert!(!check.has_connection(), "kept after {what:?}");
    }
}

/// What a server closing an idle kept connection looks like to the next
/// check: sent again on a fresh connection, not a failure.
#[tokio::test]
async fn a_kept_connection_the_server_closed_is_replaced_within_the_check() {
    let server = Server::start(|_, mut s| {
        if read_request(&mut s).is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
        // The server's idle limit: closed after one answer, unannounced.
        let _ = s.shutdown(Shutdown::Both);
    });
    let mut check = server.check("/");
    for _ in 0..3 {
        assert_eq!(run(&mut check, LIMIT).await, Ok(()));
        // Let the close arrive while the connection sits idle.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.accepted(), 3);
}

/// The same, when the close races the request: the request meets a
/// connection already gone.
#[tokio::test]
async fn a_request_on_a_connection_closed_under_it_is_sent_again() {
    let server = Server::start(|n, mut s| {
        if read_request(&mut s).is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
        if n == 0 {
            // Read the second request, then close without an answer.
            let _ = read_request(&mut s);
        }
    });
    assert_eq!(passes(&server, 2).await, 2);
}

/// Hostile or broken answers: each a failure with a reason, never a panic,
/// and the connection is not kept.
#[tokio::test]
async fn malformed_answers_fail_with_a_reason() {
    let big_head: &'static [u8] = {
        let mut v = b"HTTP/1.1 200 OK\r\nX-Filler: ".to_vec();
        v.resize(20_000, b'a');
        Box::leak(v.into_boxed_slice())
    };
    let many_headers: &'static [u8] = {
        let mut v = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..100 {
            v.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        v.extend_from_slice(b"\r\n");
        Box::leak(v.into_boxed_slice())
    };
    let binary: &'static [u8] = {
        // A fixed pseudo-random byte string, the same every run.
        let mut x: u32 = 0x9e37_79b9;
        let v: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        Box::leak(v.into_boxed_slice())
    };
    let cases: [(&'static [u8], &str); 9] = [
        (b"HTTP/1.1 OK\r\n\r\n", "malformed response"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "malformed response"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "malformed response"),
        (binary, "malformed response"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
            "conflicting Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "malformed response: Content-Length",
        ),
        (big_head, "response head longer than"),
        (many_headers, "response headers"),
        (
            b"HTTP/1.1 200 O",
            "closed in the middle of the response head",
        ),
    ];
    for (reply, want) in cases {
        let server = Server::start(move |_, mut s| {
            if read_request(&mut s).is_some() {
                let _ = s.write_all(reply);
            }
        });
        let mut check = server.check("/");
        let got = run(&mut check, LIMIT).await;
        let shown = String::from_utf8_lossy(&reply[..reply.len().min(40)]).into_owned();
        match got {
            Err(why) => assert!(why.contains(want), "{shown:?}: {why:?}, wanted {want:?}"),
            Ok(()) => panic!("{shown:?} passed"),
        }
        assert!(!check.has_connection(), "{shown:?}: connection kept");
    }
}

#[tokio::test]
async fn a_server_that_closes_without_answering_fails_the_check() {
    let server = Server::start(|_, mut s| {
        let _ = read_request(&mut s);
    });
    let got = run(&mut server.check("/"), LIMIT).await;
    assert_eq!(got, Err("connection closed without an answer".into()));
    // A fresh connection that fails is not tried again.
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn a_refused_connection_fails_the_check() {
    // A port nobody listens on: bind one, learn it, let it go.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let got = run(&mut HttpCheck::new(addr, "/").unwrap(), LIMIT).await;
    assert_eq!(got, Err("connect: Connection refused".into()));
}

/// A server that trickles its answer, or says nothing: the check's
/// timeout ends it, as the daemon reports it.
#[tokio::test]
async fn slow_and_silent_servers_time_out() {
    let trickle = Server::start(|_, mut s| {
        if read_request(&mut s).is_some() {
            for b in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" {
                std::thread::sleep(Duration::from_millis(100));
                if s.write_all(&[*b]).is_err() {
                    return;
                }
            }
        }
    });
    let silent = Server::start(|_, mut s| {
        let _ = read_request(&mut s);
        std::thread::sleep(Duration::from_secs(10));
    });
    let prober = Prober::new(None, Arc::new(Counters::default()));
    for server in [&trickle, &silent] {
        let target = Target {
            kind: CheckKind::Http,
            ip: server.addr.ip(),
            port: server.addr.port(),
            uri: Some("/".into()),
        };
        let mut check = Check::new(&target);
        let outcome = prober
            .check(&target, &mut check, Duration::from_millis(300))
            .await;
        assert!(!outcome.ok);
        assert!(outcome.timed_out);
        assert_eq!(outcome.error.as_deref(), Some("no answer within 300 ms"));
        assert!(!check.has_connection());
    }
}

#[tokio::test]
async fn redirects_are_followed_to_an_answer() {
    let server = Server::start(|_, mut s| {
        while let Some(req) = read_request(&mut s) {
            let path = req.split(' ').nth(1).unwrap_or_default().to_owned();
            let reply = match path.as_str() {
                "/a/b" => {
                    "HTTP/1.1 301 Moved\r\nLocation: c?x=1\r\nContent-Length: 0\r\n\r\n".into()
                }
                "/a/c?x=1" => {
                    "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n".into()
                }
                "/ok" => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_owned(),
                "/loop" => {
                    "HTTP/1.1 307 Again\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n".into()
                }
                "/tls" => {
                    "HTTP/1.1 308 Go\r\nLocation: https://example.org/\r\nContent-Length: 0\r\n\r\n"
                        .into()
                }
                "/bad" => "HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n".into(),
                _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into(),
            };
            if s.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    });
    assert_eq!(run(&mut server.check("/a/b"), LIMIT).await, Ok(()));
    let looped = run(&mut server.check("/loop"), LIMIT).await;
    assert_eq!(looped, Err("more than 10 redirects".into()));
    let tls = run(&mut server.check("/tls"), LIMIT).await.unwrap_err();
    assert!(tls.contains("only http:// is followed"), "{tls}");
    let bad = run(&mut server.check("/bad"), LIMIT).await.unwrap_err();
    assert!(
        bad.contains("after a redirect to /x: HTTP status 404"),
        "{bad}"
    );
}

/// A `tcp` check ends the connection it opened with a reset, so that
/// thousands of checks a second leave no TIME_WAIT behind on the checker.
#[tokio::test]
async fn a_tcp_check_resets_the_connection_it_opened() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let prober = Prober::new(None, Arc::new(Counters::default()));
    let target = Target {
        kind: CheckKind::Tcp,
        ip: addr.ip(),
        port: addr.port(),
        uri: None,
    };
    let outcome = prober.check(&target, &mut Check::new(&target), LIMIT).await;
    assert!(outcome.ok, "{outcome:?}");
    let (mut accepted, _) = listener.accept().unwrap();
    accepted.set_read_timeout(Some(LIMIT)).unwrap();
    let got = accepted.read(&mut [0u8; 16]);
    assert_eq!(
        got.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "the server saw an orderly close (or nothing), not a reset"
    );
}
