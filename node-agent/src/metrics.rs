//! Health, readiness and Prometheus metrics, served on `--metrics-addr` by a minimal HTTP/1.1
//! responder (three fixed GET paths need no web framework).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the reconciler reports after each sync.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// The node can serve pods (own subnet known, routes in place, conflist written).
    pub ready: bool,
    /// Peers per routing mode label (`direct`, `vxlan`, `unroutable`, `rejected`).
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
}

/// Shared between the reconciler and the server.
pub type SharedStats = Arc<Mutex<Stats>>;

fn render(stats: &Stats) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP jalur_peers Peer nodes by how they are routed.\n# TYPE jalur_peers gauge"
    );
    for mode in ["direct", "vxlan", "unroutable", "rejected"] {
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
    let _ = writeln!(out, "# HELP jalur_ready Whether the node can serve pods.\n# TYPE jalur_ready gauge\njalur_ready {}", u8::from(stats.ready));
    out
}

fn respond(path: &str, stats: &Stats) -> (u16, &'static str, String) {
    match path {
        "/healthz" => (200, "text/plain", "ok\n".into()),
        "/readyz" if stats.ready => (200, "text/plain", "ready\n".into()),
        "/readyz" => (503, "text/plain", "not ready\n".into()),
        "/metrics" => (200, "text/plain; version=0.0.4", render(stats)),
        _ => (404, "text/plain", "not found\n".into()),
    }
}

/// Serves until the process ends.
pub async fn serve(listener: TcpListener, stats: SharedStats) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let limit = std::time::Duration::from_secs(5);
            let Ok(Some(head)) = tokio::time::timeout(limit, read_head(&mut conn)).await else {
                return;
            };
            let request = String::from_utf8_lossy(&head);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let snapshot = stats.lock().map(|s| s.clone()).unwrap_or_default();
            let (code, kind, body) = respond(path, &snapshot);
            let reason = match code {
                200 => "OK",
                503 => "Service Unavailable",
                _ => "Not Found",
            };
            let head = format!(
                "HTTP/1.1 {code} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

/// Reads a request's head, up to its blank line. The whole head must be read: a socket
/// closed with unread bytes answers with a reset, and the client may lose the response.
/// None: the peer closed first, or the head is over 8 KiB.
async fn read_head(conn: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await.ok()?;
        if n == 0 || head.len() + n > 8192 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(head)
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
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with("\r\n\r\nready\n"), "{response}");
        server.abort();
    }
}
