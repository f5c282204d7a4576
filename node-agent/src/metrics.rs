//! Health, readiness and Prometheus metrics, served on `--metrics-addr` over HTTP/1.1 by
//! hyper (the stack kube-rs already brings): `/healthz`, `/readyz` (with each part of the
//! node's state, see [`crate::parts`]) and `/metrics`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::repeat::{Failed, Repeated};

/// What the reconciler reports after each sync.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// The node can serve pods (own subnet known, routes in place, conflist written).
    pub ready: bool,
    /// Peers per routing mode label (`direct`, `vxlan`, `mixed`, `partial`, `unroutable`,
    /// `rejected`).
    pub peers: Vec<(&'static str, usize)>,
    /// Nodes whose claims are rejected (this node for its own pod CIDRs), with the rule.
    pub rejected: Vec<(String, &'static str)>,
    /// Routes the agent owns.
    pub routes: usize,
    /// Completed syncs.
    pub syncs: u64,
    /// Failed syncs.
    pub sync_errors: u64,
    /// Duration of the last sync, seconds.
    pub last_sync_seconds: f64,
    /// Routes changed in total (added + removed).
    pub route_changes: u64,
    /// Foreign routes replaced by Jalur's (`--replace-foreign-routes`).
    pub foreign_routes_replaced: u64,
    /// Each part of the node's state in the last sync: `None` in place, else the error.
    pub parts: Vec<(&'static str, Option<String>)>,
    /// Syncs in which each part failed.
    pub part_errors: std::collections::BTreeMap<&'static str, u64>,
}

/// Shared between the reconciler and the server.
pub type SharedStats = Arc<Mutex<Stats>>;

fn render(stats: &Stats) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP jalur_peers Peer nodes by how they are routed.\n# TYPE jalur_peers gauge"
    );
    for mode in [
        "direct",
        "vxlan",
        "mixed",
        "partial",
        "unroutable",
        "rejected",
    ] {
        let n = stats
            .peers
            .iter()
            .find(|(m, _)| *m == mode)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "jalur_peers{{mode=\"{mode}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP jalur_rejected_claims Nodes whose claim broke a rule, by node and rule.\n# TYPE jalur_rejected_claims gauge"
    );
    for (node, rule) in &stats.rejected {
        let node = node.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(
            out,
            "jalur_rejected_claims{{node=\"{node}\",rule=\"{rule}\"}} 1"
        );
    }
    let _ = writeln!(out, "# HELP jalur_routes Routes the agent owns (proto 74).\n# TYPE jalur_routes gauge\njalur_routes {}", stats.routes);
    let _ = writeln!(out, "# HELP jalur_syncs_total Completed syncs.\n# TYPE jalur_syncs_total counter\njalur_syncs_total {}", stats.syncs);
    let _ = writeln!(out, "# HELP jalur_sync_errors_total Failed syncs.\n# TYPE jalur_sync_errors_total counter\njalur_sync_errors_total {}", stats.sync_errors);
    let _ = writeln!(out, "# HELP jalur_sync_duration_seconds Duration of the last sync.\n# TYPE jalur_sync_duration_seconds gauge\njalur_sync_duration_seconds {}", stats.last_sync_seconds);
    let _ = writeln!(out, "# HELP jalur_route_changes_total Routes added or removed.\n# TYPE jalur_route_changes_total counter\njalur_route_changes_total {}", stats.route_changes);
    let _ = writeln!(out, "# HELP jalur_foreign_routes_replaced_total Routes that were not Jalur's replaced by Jalur's (--replace-foreign-routes).\n# TYPE jalur_foreign_routes_replaced_total counter\njalur_foreign_routes_replaced_total {}", stats.foreign_routes_replaced);
    let _ = writeln!(out, "# HELP jalur_part_ok Whether each part of the node's state is in place.\n# TYPE jalur_part_ok gauge");
    for (part, error) in &stats.parts {
        let _ = writeln!(
            out,
            "jalur_part_ok{{part=\"{part}\"}} {}",
            u8::from(error.is_none())
        );
    }
    let _ = writeln!(out, "# HELP jalur_part_errors_total Syncs in which a part failed.\n# TYPE jalur_part_errors_total counter");
    for (part, _) in &stats.parts {
        let n = stats.part_errors.get(part).copied().unwrap_or(0);
        let _ = writeln!(out, "jalur_part_errors_total{{part=\"{part}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP jalur_ready Whether the node can serve pods.\n# TYPE jalur_ready gauge\njalur_ready {}", u8::from(stats.ready));
    out
}

fn readiness_text(stats: &Stats) -> String {
    let mut out = String::from(if stats.ready {
        "ready\n"
    } else {
        "not ready\n"
    });
    for (part, error) in &stats.parts {
        match error {
            None => {
                let _ = writeln!(out, "{part}: ok");
            }
            Some(e) => {
                let _ = writeln!(out, "{part}: failed: {e}");
            }
        }
    }
    out
}

fn respond(path: &str, stats: &Stats) -> (u16, &'static str, String) {
    match path {
        "/healthz" => (200, "text/plain", "ok\n".into()),
        "/readyz" if stats.ready => (200, "text/plain", readiness_text(stats)),
        "/readyz" => (503, "text/plain", readiness_text(stats)),
        "/metrics" => (200, "text/plain; version=0.0.4", render(stats)),
        _ => (404, "text/plain", "not found\n".into()),
    }
}

/// A client must send its request head within this time.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// No connection lives longer than this (a client that reads its answer slowly included).
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many connections at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// The longest pause after failed accepts (file descriptors exhausted, ...); the pause
/// doubles from 5 ms up to it, and resets with the next accepted connection.
pub const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

async fn answer(
    request: Request<Incoming>,
    stats: SharedStats,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let snapshot = stats.lock().map(|s| s.clone()).unwrap_or_default();
    let (code, kind, body) = if request.method() == Method::GET || request.method() == Method::HEAD
    {
        respond(request.uri().path(), &snapshot)
    } else {
        (405, "text/plain", "only GET\n".into())
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    Ok(response)
}

/// Serves HTTP/1.1 (hyper) until the process ends: one request per connection, a header
/// read timeout against slow clients, a cap on connections, and a back-off on accept errors
/// (which never end the server).
pub async fn serve(listener: TcpListener, stats: SharedStats) {
    serve_with(listener, stats, HEADER_TIMEOUT).await
}

async fn serve_with(listener: TcpListener, stats: SharedStats, header_timeout: Duration) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Duration::ZERO;
    let mut failures = Repeated::default();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(5), MAX_ACCEPT_BACKOFF);
                match failures.failed(&e.to_string()) {
                    Failed::Started => {
                        tracing::warn!(error = %e, "metrics server cannot accept connections; backing off")
                    }
                    Failed::Still { count } => {
                        tracing::warn!(error = %e, failed_accepts = count, "metrics server still cannot accept connections")
                    }
                    Failed::Quiet => {}
                }
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        backoff = Duration::ZERO;
        if let Some(ended) = failures.succeeded() {
            tracing::info!(failed_accepts = ended.count, was = %ended.error, "metrics server accepts connections again");
        }
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut http = http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(false);
            let service = service_fn(move |request| answer(request, stats.clone()));
            let connection = http.serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
            drop(slot);
        });
    }
}

/// Binds the metrics address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_and_readiness() {
        let stats = Stats {
            ready: true,
            peers: vec![("direct", 2), ("vxlan", 1), ("rejected", 1)],
            rejected: vec![("evil".into(), "too-broad")],
            routes: 4,
            ..Stats::default()
        };
        let (code, _, body) = respond("/metrics", &stats);
        assert_eq!(code, 200);
        assert!(body.contains("jalur_peers{mode=\"direct\"} 2"));
        assert!(body.contains("jalur_peers{mode=\"unroutable\"} 0"));
        assert!(body.contains("jalur_peers{mode=\"rejected\"} 1"));
        assert!(body.contains("jalur_rejected_claims{node=\"evil\",rule=\"too-broad\"} 1"));
        assert!(body.contains("jalur_routes 4"));
        assert_eq!(respond("/readyz", &stats).0, 200);
        assert_eq!(respond("/readyz", &Stats::default()).0, 503);
        assert_eq!(respond("/nope", &stats).0, 404);
    }

    /// bash's `printf "GET / HTTP/1.0\r\n\r\n" >&3` writes the request in two pieces. A server
    /// that answers the first and closes with the second unread sends a reset, which can cost
    /// the client the response: it must wait for the blank line.
    #[tokio::test]
    async fn a_request_split_across_writes_gets_its_whole_response_and_a_clean_close() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpStream;
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats: SharedStats = Arc::new(Mutex::new(Stats {
            ready: true,
            ..Stats::default()
        }));
        let server = tokio::spawn(serve(listener, stats));
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /readyz HTTP/1.0\r\n").await.unwrap();
        let mut byte = [0u8; 1];
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(100), conn.read(&mut byte)).await;
        assert!(early.is_err(), "answered before the blank line: {early:?}");
        conn.write_all(b"\r\n").await.unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response)
            .await
            .expect("the response up to a clean end of stream");
        // hyper answers in the request's version.
        assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
        assert!(response.ends_with("\r\n\r\nready\n"), "{response}");
        server.abort();
    }

    /// A client that never finishes its request head is cut off at the header timeout, and
    /// the server goes on answering others.
    #[tokio::test]
    async fn a_slow_client_is_cut_off_and_others_are_served() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpStream;
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats: SharedStats = Arc::new(Mutex::new(Stats::default()));
        let server = tokio::spawn(serve_with(listener, stats, Duration::from_millis(300)));
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut fast = TcpStream::connect(addr).await.unwrap();
        fast.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        fast.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 503 "), "{response}");
        let mut rest = Vec::new();
        let cut = tokio::time::timeout(Duration::from_secs(3), slow.read_to_end(&mut rest)).await;
        assert!(cut.is_ok(), "the slow client was never cut off");
        server.abort();
    }
}
