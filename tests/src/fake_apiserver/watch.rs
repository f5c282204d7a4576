//! Watch streams: `GET /api/v1/nodes?watch=true` answers a chunked body of newline-delimited
//! JSON events, from the requested resource version on, until `timeoutSeconds` (a clean end),
//! a fault (cut mid-stream: no end-of-body chunk) or shutdown. A version older than the
//! history kept gets the real server's answer: a 200 stream whose only event is a
//! `410 Expired` ERROR.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::http::{respond, Request};
use super::objects::status;
use super::store::{Event, Inner};

/// One open watch, in the shared state.
pub(super) struct Watch {
    /// Events not yet written.
    pub(super) queue: VecDeque<Event>,
    /// Cut by `drop_watches`.
    pub(super) dropped: bool,
}

/// Serves a watch request on connection `id`. Returns whether the connection may serve
/// another request (the stream ended cleanly on its timeout or after an error event).
pub(super) fn serve_watch(
    inner: &Inner,
    id: u64,
    req: &Request,
    out: &mut TcpStream,
) -> io::Result<bool> {
    let deadline = req
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t));
    let rv = req.param("resourceVersion").unwrap_or("");

    // Set the watch up under the lock, so that no change slips between history and queue.
    let refused = {
        let mut st = inner.lock();
        match st.replay(rv) {
            Ok(queue) => {
                let watch = Watch {
                    queue,
                    dropped: false,
                };
                st.watches.insert(id, watch);
                inner.cond.notify_all();
                None
            }
            Err(code) => Some(code),
        }
    };
    if refused == Some(400) {
        let msg = format!("resourceVersion: Invalid value: {rv:?}");
        respond(out, 400, &status(400, "BadRequest", &msg, None), false)?;
        return Ok(true);
    }
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
          Cache-Control: no-cache, private\r\n\r\n",
    )?;
    out.flush()?;
    if refused.is_some() {
        // As the real server: a 200 stream whose only event is the 410 error.
        let msg = format!("too old resource version: {rv}");
        write_chunk(out, &("ERROR", status(410, "Expired", &msg, None)))?;
        out.write_all(b"0\r\n\r\n")?;
        out.flush()?;
        return Ok(true);
    }

    let result = stream(inner, id, deadline, out);
    let mut st = inner.lock();
    st.watches.remove(&id);
    inner.cond.notify_all();
    result
}

/// How a stream ends.
enum End {
    /// `timeoutSeconds` reached.
    Timeout,
    /// Dropped, down or stopping.
    Cut,
}

/// Writes the watch's events as they come, until it ends.
fn stream(
    inner: &Inner,
    id: u64,
    deadline: Option<Instant>,
    out: &mut TcpStream,
) -> io::Result<bool> {
    loop {
        let (events, end) = next_events(inner, id, deadline);
        for ev in &events {
            write_chunk(out, ev)?;
        }
        match end {
            None => continue,
            Some(End::Timeout) => {
                // End the body cleanly.
                out.write_all(b"0\r\n\r\n")?;
                out.flush()?;
                return Ok(true);
            }
            Some(End::Cut) => {
                // No end-of-body chunk.
                let _ = out.shutdown(Shutdown::Both);
                return Ok(false);
            }
        }
    }
}

/// Waits for the watch's next events, or its end.
fn next_events(inner: &Inner, id: u64, deadline: Option<Instant>) -> (Vec<Event>, Option<End>) {
    let mut st = inner.lock();
    loop {
        let cut = st.watches.get(&id).is_none_or(|w| w.dropped);
        if cut || st.stop || st.down {
            return (Vec::new(), Some(End::Cut));
        }
        let w = st.watches.get_mut(&id).expect("watch present");
        if !w.queue.is_empty() {
            return (w.queue.drain(..).collect(), None);
        }
        let wait = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return (Vec::new(), Some(End::Timeout));
                }
                (d - now).min(Duration::from_secs(1))
            }
            None => Duration::from_secs(1),
        };
        st = inner
            .cond
            .wait_timeout(st, wait)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Writes one watch event, `{"type":..,"object":..}` and a newline, as one chunk.
fn write_chunk(out: &mut TcpStream, (kind, object): &Event) -> io::Result<()> {
    let object = serde_json::to_string(object).expect("serialize JSON");
    let line = format!("{{\"type\":\"{kind}\",\"object\":{object}}}\n");
    let mut bytes = format!("{:x}\r\n", line.len()).into_bytes();
    bytes.extend_from_slice(line.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    out.write_all(&bytes)?;
    out.flush()
}
