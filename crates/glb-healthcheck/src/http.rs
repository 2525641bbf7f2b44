//! The `http` check's client: an HTTP/1.1 `GET` of one path, on a
//! connection kept from one round to the next.
//!
//! Thousands of these run every round, so the client does only what a
//! health check needs: the request is rendered once per target, the
//! response head is parsed with `httparse`, a short body is skipped so that
//! the connection can carry the next round's request, and the read buffer
//! is the only allocation a check makes.
//!
//! A kept connection ends when the server says so (`Connection: close`,
//! an HTTP/1.0 answer without keep-alive, a body that runs to the end of
//! the connection), when a check on it fails or times out, and at the
//! latest [`MAX_CONNECTION_AGE`] after it was opened, so that a server
//! which stopped accepting connections fails its check even while an old
//! connection still answers. A request on a kept connection that the
//! server closed in the meantime (its keep-alive timeout) is sent again,
//! once, on a fresh connection within the same timeout: a server's idle
//! limit never fails a check. Redirects are followed on fresh connections,
//! at most [`MAX_REDIRECTS`] of them.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Redirects followed before a check fails (as the original's Go client).
pub const MAX_REDIRECTS: usize = 10;

/// Age after which a kept connection is closed and a fresh one opened.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(10);

/// Longest response head read.
const MAX_HEAD: usize = 16 * 1024;

/// Longest body skipped to keep a connection; a longer one is not read at
/// all (the status is known by then) and the connection is closed.
const MAX_BODY: usize = 64 * 1024;

/// Most header lines in a response head.
const MAX_HEADERS: usize = 64;

/// The `http` check of one target and the connection it keeps.
#[derive(Debug)]
pub struct HttpCheck {
    addr: SocketAddr,
    /// The request target, for resolving relative redirects.
    path: String,
    request: Box<[u8]>,
    idle: Option<Idle>,
}

#[derive(Debug)]
struct Idle {
    stream: TcpStream,
    opened: Instant,
}

impl HttpCheck {
    /// The check of `GET http://ADDR/PATH`; `None` when `path` is not a
    /// usable request target (see [`request_target`]).
    pub fn new(addr: SocketAddr, path: &str) -> Option<HttpCheck> {
        let target = request_target(path)?;
        Some(HttpCheck {
            addr,
            request: render_request(&target, &addr.to_string()),
            path: target,
            idle: None,
        })
    }

    /// Whether a connection is kept for the next check.
    pub fn has_connection(&self) -> bool {
        self.idle.is_some()
    }

    /// Runs the check: `Ok` on a 2xx answer (after redirects), otherwise
    /// why not. The caller bounds the time; dropping the future closes the
    /// connection it was using.
    pub async fn run(&mut self) -> Result<(), String> {
        let mut answer = None;
        if let Some(idle) = self.take_idle() {
            match exchange(idle.stream, &self.request).await {
                // Closed by the server while it sat idle: ask again below.
                Err(e) if e.nothing_received => {}
                Err(e) => return Err(e.why),
                Ok(a) => answer = Some((a, idle.opened)),
            }
        }
        let (answer, opened) = match answer {
            Some(a) => a,
            None => {
                let opened = Instant::now();
                let stream = connect(self.addr).await?;
                (
                    exchange(stream, &self.request).await.map_err(|e| e.why)?,
                    opened,
                )
            }
        };
        let Answer { head, stream: kept } = answer;
        if let Some(stream) = kept {
            self.idle = Some(Idle { stream, opened });
        }
        match head.verdict() {
            Verdict::Healthy => Ok(()),
            Verdict::Unhealthy(why) => Err(why),
            Verdict::Redirect(location) => follow_redirects(self.addr, &self.path, location).await,
        }
    }

    /// The kept connection, if it is young enough and still open.
    fn take_idle(&mut self) -> Option<Idle> {
        let idle = self.idle.take()?;
        if idle.opened.elapsed() >= MAX_CONNECTION_AGE {
            return None;
        }
        // Readable while idle means the server closed it (or sent
        // something unasked): either way it cannot carry a request. This
        // costs no system call while the socket has signalled nothing.
        let mut probe = [0u8; 1];
        match idle.stream.try_read(&mut probe) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Some(idle),
            _ => None,
        }
    }
}

/// Follows `location` (the answer to `GET path` from `addr`) and the
/// redirects after it, each on a fresh connection.
async fn follow_redirects(
    mut addr: SocketAddr,
    path: &str,
    mut location: String,
) -> Result<(), String> {
    let mut host = addr.to_string();
    let mut path = path.to_owned();
    for _ in 0..MAX_REDIRECTS {
        let next = resolve_location(&host, &path, &location)?;
        if next.host != host {
            addr = lookup(&next.host).await?;
        }
        host = next.host;
        path = next.path;
        let request = render_request(&path, &host);
        let stream = connect(addr).await?;
        let answer = exchange(stream, &request).await.map_err(|e| e.why)?;
        match answer.head.verdict() {
            Verdict::Healthy => return Ok(()),
            Verdict::Unhealthy(why) => return Err(format!("after a redirect to {path}: {why}")),
            Verdict::Redirect(l) => location = l,
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// The address a redirect's `host[:port]` names (DNS for a name).
async fn lookup(host: &str) -> Result<SocketAddr, String> {
    let (name, port) = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, rest)) => (ip, rest.strip_prefix(':')),
            None => return Err(format!("redirect to {host}: malformed host")),
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    let port = match port {
        None | Some("") => 80,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("redirect to {host}: malformed port"))?,
    };
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    tokio::net::lookup_host((name, port))
        .await
        .map_err(|e| format!("redirect to {host}: {}", crate::checks::io_reason(&e)))?
        .next()
        .ok_or_else(|| format!("redirect to {host}: the name has no address"))
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {}", crate::checks::io_reason(&e)))?;
    // Requests are single small writes; never hold one back.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// An answer read to its end; `stream` is the connection when it can
/// carry another request.
struct Answer {
    head: Head,
    stream: Option<TcpStream>,
}

/// Why an exchange failed, and whether the server sent nothing at all
/// (the sign of a kept connection it had closed).
#[derive(Debug)]
struct ExchangeError {
    why: String,
    nothing_received: bool,
}

/// Sends `request` on `stream` and reads the answer.
async fn exchange(mut stream: TcpStream, request: &[u8]) -> Result<Answer, ExchangeError> {
    let silent = |why: String| ExchangeError {
        why,
        nothing_received: true,
    };
    stream
        .write_all(request)
        .await
        .map_err(|e| silent(format!("send: {}", crate::checks::io_reason(&e))))?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    // The head, skipping informational (1xx) answers.
    let head = loop {
        match parse_head(&buf) {
            Ok(Some(head)) if head.informational() => {
                buf.drain(..head.len);
                continue;
            }
            Ok(Some(head)) => break head,
            Ok(None) if buf.len() >= MAX_HEAD => {
                return Err(ExchangeError {
                    why: format!("response head longer than {MAX_HEAD} bytes"),
                    nothing_received: false,
                });
            }
            Ok(None) => {}
            Err(why) => {
                return Err(ExchangeError {
                    why,
                    nothing_received: false,
                });
            }
        }
        let received = buf.len();
        match stream.read_buf(&mut buf).await {
            Ok(0) if received == 0 => {
                return Err(silent("connection closed without an answer".into()));
            }
            Ok(0) => {
                return Err(ExchangeError {
                    why: "connection closed in the middle of the response head".into(),
                    nothing_received: false,
                });
            }
            Ok(_) => {}
            Err(e) => {
                let why = crate::checks::io_reason(&e);
                return Err(if received == 0 {
                    silent(why)
                } else {
                    ExchangeError {
                        why,
                        nothing_received: false,
                    }
                });
            }
        }
    };
    let reusable = head.keep_alive && skip_body(&mut stream, &mut buf, &head).await;
    Ok(Answer {
        stream: reusable.then_some(stream),
        head,
    })
}

/// Reads the rest of a short body so the connection can be used again;
/// `false` when it cannot (too long, malformed, unframed, closed, or more
/// bytes than the answer had).
async fn skip_body(stream: &mut TcpStream, buf: &mut Vec<u8>, head: &Head) -> bool {
    loop {
        let body = &buf[head.len..];
        match body_end(head.framing, body) {
            BodyEnd::Complete(n) => return n == body.len(),
            BodyEnd::Invalid => return false,
            BodyEnd::Incomplete if body.len() >= MAX_BODY => return false,
            BodyEnd::Incomplete => {}
        }
        if let Framing::Length(n) = head.framing {
            if n > MAX_BODY as u64 {
                return false;
            }
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

/// How a response body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (1xx, 204, 304).
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// What a response head says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, the blank line included.
    pub len: usize,
    /// The status code.
    pub status: u16,
    /// The reason phrase as sent.
    pub reason: String,
    /// `Location`, if any.
    pub location: Option<String>,
    /// How the body ends.
    pub framing: Framing,
    /// Whether the server allows another request on the connection.
    pub keep_alive: bool,
}

/// What a final answer means for the check.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Healthy,
    Unhealthy(String),
    Redirect(String),
}

impl Head {
    fn informational(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }

    fn verdict(&self) -> Verdict {
        match (self.status, &self.location) {
            (200..=299, _) => Verdict::Healthy,
            (301 | 302 | 303 | 307 | 308, Some(l)) => Verdict::Redirect(l.clone()),
            (code, _) => {
                let reason = match hyper::StatusCode::from_u16(code)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                {
                    Some(r) => r,
                    None => self.reason.as_str(),
                };
                Verdict::Unhealthy(format!("HTTP status {code} {reason}").trim_end().to_owned())
            }
        }
    }
}

/// Parses a response head at the start of `buf`: `Ok(None)` until it is
/// complete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(format!("more than {MAX_HEADERS} response headers"));
        }
        Err(e) => return Err(format!("malformed response: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let http11 = resp.version == Some(1);
    let (mut close, mut keep_alive_token, mut chunked, mut coded) = (false, false, false, false);
    let mut length: Option<u64> = None;
    let mut location = None;
    for h in resp.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep_alive_token |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            coded = true;
            // Chunked must be the last coding; anything else runs to the close.
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<u64>()
                .map_err(|_| format!("malformed response: Content-Length {value:?}"))?;
            if length.is_some_and(|m| m != n) {
                return Err("malformed response: conflicting Content-Length headers".into());
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("location") {
            location = Some(value.to_owned());
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else if coded {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match length {
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    let keep_alive =
        framing != Framing::UntilClose && status != 101 && !close && (http11 || keep_alive_token);
    Ok(Some(Head {
        len,
        status,
        reason: resp.reason.unwrap_or("").to_owned(),
        location,
        framing,
        keep_alive,
    }))
}

/// Where a body that starts at `body[0]` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// After this many bytes.
    Complete(usize),
    /// Not within these bytes.
    Incomplete,
    /// Not a body this framing can end (or one that never ends).
    Invalid,
}

/// Finds the end of a body framed as `framing` in `body`.
pub fn body_end(framing: Framing, body: &[u8]) -> BodyEnd {
    match framing {
        Framing::None => BodyEnd::Complete(0),
        Framing::UntilClose => BodyEnd::Invalid,
        Framing::Length(n) => match usize::try_from(n) {
            Ok(n) if n <= body.len() => BodyEnd::Complete(n),
            _ => BodyEnd::Incomplete,
        },
        Framing::Chunked => {
            let mut at = 0;
            loop {
                let (line, size) = match httparse::parse_chunk_size(&body[at..]) {
                    Ok(httparse::Status::Complete(c)) => c,
                    Ok(httparse::Status::Partial) => return BodyEnd::Incomplete,
                    Err(_) => return BodyEnd::Invalid,
                };
                at += line;
                if size == 0 {
                    // Trailer fields, then the blank line.
                    let mut trailers = [httparse::EMPTY_HEADER; 16];
                    return match httparse::parse_headers(&body[at..], &mut trailers) {
                        Ok(httparse::Status::Complete((n, _))) => BodyEnd::Complete(at + n),
                        Ok(httparse::Status::Partial) => BodyEnd::Incomplete,
                        Err(_) => BodyEnd::Invalid,
                    };
                }
                let Some(end) = usize::try_from(size)
                    .ok()
                    .and_then(|s| at.checked_add(s)?.checked_add(2))
                else {
                    return BodyEnd::Invalid;
                };
                if end > body.len() {
                    return BodyEnd::Incomplete;
                }
                if &body[end - 2..end] != b"\r\n" {
                    return BodyEnd::Invalid;
                }
                at = end;
            }
        }
    }
}

/// The request target sent for `path` (which starts with `/`): the
/// fragment dropped, bytes outside visible ASCII and the few a request
/// line cannot carry percent-encoded. `None` for control characters and
/// white space, which no URL path holds.
pub fn request_target(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    let path = path.split_once('#').map_or(path, |(p, _)| p);
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'"' | b'<' | b'>' | b'`' | b'{' | b'}' | b'\\' | b'^' | b'|' | 0x80.. => {
                let _ = write!(out, "%{b:02X}");
            }
            _ => out.push(char::from(b)),
        }
    }
    Some(out)
}

fn render_request(target: &str, host: &str) -> Box<[u8]> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: glb-healthcheck/{}\r\nAccept: */*\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
    .into_boxed_slice()
}

/// Where a redirect points: `host[:port]` and request target.
#[derive(Debug, PartialEq, Eq)]
pub struct Location {
    /// `host[:port]` as the `Host` header carries it.
    pub host: String,
    /// The request target.
    pub path: String,
}

/// Resolves a `Location` against the request it answered (RFC 3986 §5.2,
/// for the `http` scheme).
pub fn resolve_location(host: &str, path: &str, location: &str) -> Result<Location, String> {
    let refuse = |why: &str| Err(format!("redirect to {location:?}: {why}"));
    let location = location.split_once('#').map_or(location, |(l, _)| l);
    let scheme = location
        .split_once(':')
        .map(|(s, _)| s)
        .filter(|s| !s.is_empty() && !s.contains(['/', '?']));
    let (host, rest) = match scheme {
        Some(s) if s.eq_ignore_ascii_case("http") => {
            let Some(after) = location[s.len() + 1..].strip_prefix("//") else {
                return refuse("not an http:// URL");
            };
            split_authority(after)
        }
        Some(_) => return refuse("only http:// is followed"),
        None => match location.strip_prefix("//") {
            Some(after) => split_authority(after),
            None => (host, location),
        },
    };
    if host.is_empty() {
        return refuse("no host");
    }
    let (rel_path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let (base, base_query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let (merged, query) = if rel_path.is_empty() {
        // The same path; the same query unless a new one is given.
        (base.to_owned(), query.or(base_query))
    } else if rel_path.starts_with('/') {
        (rel_path.to_owned(), query)
    } else {
        let dir = base.rfind('/').map_or("/", |i| &base[..=i]);
        (format!("{dir}{rel_path}"), query)
    };
    let mut path = remove_dot_segments(&merged);
    if let Some(q) = query {
        path.push('?');
        path.push_str(q);
    }
    let Some(target) = request_target(&path) else {
        return refuse("not a valid URL path");
    };
    Ok(Location {
        host: host.to_owned(),
        path: target,
    })
}

/// `host[:port]` and what follows it.
fn split_authority(after: &str) -> (&str, &str) {
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    // Credentials are never sent.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (authority, if rest.is_empty() { "/" } else { rest })
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}
