//! HTTP/1.1 over plain std threads: the accept loop (which closes connections at once during
//! an outage), one thread per connection with keep-alive, request parsing, and the routes
//! other than watches: `/version`, list and get of Nodes, and `Status` errors for the rest.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags};
use serde_json::Value;

use super::objects::{not_found, status, version};
use super::store::Inner;
use super::watch::serve_watch;

/// Accepts connections until the server stops, each served on a thread of its own.
pub(super) fn accept_loop(inner: &Arc<Inner>, listener: &TcpListener) {
    loop {
        if inner.lock().stop {
            return;
        }
        // Wait (bounded, to see `stop`) for a connection; the listener is non-blocking.
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, 100u16);
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let id = {
            let mut st = inner.lock();
            if st.stop || st.down {
                // An outage (or shutting down): close at once.
                drop(stream);
                continue;
            }
            let Ok(clone) = stream.try_clone() else {
                continue;
            };
            st.next_conn += 1;
            let id = st.next_conn;
            st.conns.insert(id, clone);
            id
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_nodelay(true);
        let conn_inner = inner.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("fake-apiserver-conn-{id}"))
            .spawn(move || {
                let _ = serve_connection(&conn_inner, id, stream);
                let mut st = conn_inner.lock();
                if let Some(c) = st.conns.remove(&id) {
                    let _ = c.shutdown(Shutdown::Both);
                }
                st.watches.remove(&id);
                conn_inner.cond.notify_all();
            });
        let mut threads = inner.threads.lock().unwrap_or_else(|e| e.into_inner());
        threads.retain(|t| !t.is_finished());
        match spawned {
            Ok(t) => threads.push(t),
            Err(_) => {
                inner.lock().conns.remove(&id);
            }
        }
    }
}

/// A request: what the routes look at.
pub(super) struct Request {
    method: String,
    /// Path and query as sent.
    target: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter, decoded.
    pub(super) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads one request; None on a clean close before it. A body (no route takes one) is read
/// and dropped; a chunked one is refused (the connection closes).
fn read_request(r: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    // Tolerate stray empty lines between requests.
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(invalid("bad request line"));
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut headers = Vec::new();
    let mut total = 0;
    loop {
        line.clear();
        let n = r.read_line(&mut line)?;
        total += n;
        if n == 0 || total > 256 * 1024 {
            return Err(invalid("bad headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let req = Request {
        path: path.to_owned(),
        query: form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        method,
        target,
        headers,
    };
    if req.header("transfer-encoding").is_some() {
        return Err(invalid("a chunked request body"));
    }
    if let Some(len) = req.header("content-length") {
        let len: u64 = len.parse().map_err(|_| invalid("bad content-length"))?;
        io::copy(&mut r.by_ref().take(len), &mut io::sink())?;
    }
    Ok(Some(req))
}

fn serve_connection(inner: &Arc<Inner>, id: u64, stream: TcpStream) -> io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(req) = read_request(&mut reader)? else {
            return Ok(());
        };
        {
            let mut st = inner.lock();
            if st.stop || st.down {
                return Ok(());
            }
            st.log.push(format!("{} {}", req.method, req.target));
            inner.cond.notify_all();
        }
        let close = req
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let keep = if req.method == "GET"
            && req.path == "/api/v1/nodes"
            && matches!(req.param("watch"), Some("true" | "1"))
        {
            serve_watch(inner, id, &req, &mut out)?
        } else {
            let (code, body) = route(inner, &req);
            respond(&mut out, code, &body, close)?;
            true
        };
        if close || !keep {
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// Writes a whole JSON response.
pub(super) fn respond(out: &mut TcpStream, code: u16, body: &Value, close: bool) -> io::Result<()> {
    let body = serde_json::to_vec(body).expect("serialize JSON");
    let mut msg = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache, private\r\n",
        reason_phrase(code),
        body.len()
    );
    if close {
        msg.push_str("Connection: close\r\n");
    }
    msg.push_str("\r\n");
    let mut bytes = msg.into_bytes();
    bytes.extend_from_slice(&body);
    out.write_all(&bytes)?;
    out.flush()
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    }
}

/// Everything but watches.
fn route(inner: &Inner, req: &Request) -> (u16, Value) {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["version"]) => (200, version()),
        ("GET", ["api", "v1", "nodes"]) => {
            let after = req.param("continue").filter(|c| !c.is_empty());
            let limit = req
                .param("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .filter(|l| *l > 0);
            (200, inner.lock().list(after, limit))
        }
        ("GET", ["api", "v1", "nodes", name]) => match inner.lock().nodes.get(*name) {
            Some(n) => (200, n.clone()),
            None => not_found(name),
        },
        (_, ["api", "v1", "nodes", ..]) => {
            let msg = format!(
                "the server does not allow this method on the requested resource: {}",
                req.method
            );
            (405, status(405, "MethodNotAllowed", &msg, None))
        }
        _ => {
            let msg = "the server could not find the requested resource";
            (404, status(404, "NotFound", msg, None))
        }
    }
}
