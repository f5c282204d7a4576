//! The fake API server speaks list/watch/get of Nodes well enough for kube-rs's real client
//! and watcher: a watcher follows changes, resumes after a dropped watch, relists after
//! `410 Expired`, and recovers from an outage.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jalur_tests::fake_apiserver::{node_json, FakeApiServer};
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Config};
use nix::sched::{setns, CloneFlags};
use serde_json::json;
use tokio::sync::mpsc;

/// Every single wait in these tests.
const WAIT: Duration = Duration::from_secs(15);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A client built from the kubeconfig file the server writes, as an agent would.
async fn client_from_kubeconfig(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config from kubeconfig");
    Client::try_from(config).expect("client")
}

/// What the watcher task forwards: an event (kind and node name) or an error's text.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Init,
    InitApply(String),
    InitDone,
    Apply(String),
    Delete(String),
    Error(String),
}

fn name(n: &Node) -> String {
    n.metadata.name.clone().unwrap_or_default()
}

/// Runs a watcher (with kube's default backoff) in a task, forwarding what it yields.
fn spawn_watcher(api: Api<Node>, config: watcher::Config) -> mpsc::UnboundedReceiver<Seen> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = watcher(api, config).default_backoff().boxed();
        while let Some(item) = stream.next().await {
            let seen = match item {
                Ok(watcher::Event::Init) => Seen::Init,
                Ok(watcher::Event::InitApply(n)) => Seen::InitApply(name(&n)),
                Ok(watcher::Event::InitDone) => Seen::InitDone,
                Ok(watcher::Event::Apply(n)) => Seen::Apply(name(&n)),
                Ok(watcher::Event::Delete(n)) => Seen::Delete(name(&n)),
                Err(e) => Seen::Error(e.to_string()),
            };
            if tx.send(seen).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits (bounded) for the watcher to yield something `want` accepts; returns everything
/// it yielded up to and including that.
async fn expect(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    what: &str,
    want: impl Fn(&Seen) -> bool,
) -> Vec<Seen> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(s)) => {
                let hit = want(&s);
                seen.push(s);
                if hit {
                    return seen;
                }
            }
            Ok(None) => panic!("watcher ended while waiting for {what}; saw {seen:?}"),
            Err(_) => panic!("timed out waiting for {what}; saw {seen:?}"),
        }
    }
}

/// Waits (bounded, without blocking the runtime) until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn list_requests(server: &FakeApiServer) -> usize {
    server
        .request_log()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/nodes") && !r.contains("watch=true"))
        .filter(|r| !r.starts_with("GET /api/v1/nodes/"))
        .count()
}

fn add(server: &FakeApiServer, n: &str, octet: u8) {
    server.upsert_node(node_json(
        n,
        &format!("192.168.{octet}.2"),
        &[
            &format!("10.244.{octet}.0/24"),
            &format!("fd00:10:244:{octet}::/64"),
        ],
    ));
}

/// A fake API server holding nodes n1 and n2, and a kubeconfig for it in a temp dir (kept
/// as long as the returned guard).
fn two_nodes_and_a_kubeconfig() -> (FakeApiServer, tempfile::TempDir, std::path::PathBuf) {
    let server = FakeApiServer::start(loopback()).unwrap();
    add(&server, "n1", 1);
    add(&server, "n2", 2);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.kubeconfig(&kubeconfig).unwrap();
    (server, dir, kubeconfig)
}

#[test]
fn kube_watcher_follows_drops_expiry_and_outage() {
    let (server, _dir, kubeconfig) = two_nodes_and_a_kubeconfig();

    runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(50), async {
            let client = client_from_kubeconfig(&kubeconfig).await;
            let version = client.apiserver_version().await.expect("/version");
            assert_eq!(version.major, "1");

            // (1) list and get.
            let api: Api<Node> = Api::all(client.clone());
            let list = api.list(&ListParams::default()).await.expect("list nodes");
            let names: Vec<String> = list.items.iter().map(name).collect();
            assert_eq!(names, ["n1", "n2"]);
            assert_eq!(
                list.metadata.resource_version,
                Some(server.resource_version().to_string())
            );
            let n1 = api.get("n1").await.expect("get n1");
            let spec = n1.spec.unwrap();
            assert_eq!(spec.pod_cidr.as_deref(), Some("10.244.1.0/24"));
            assert_eq!(spec.pod_cidrs.unwrap().len(), 2);
            let addrs = n1.status.unwrap().addresses.unwrap();
            assert!(addrs
                .iter()
                .any(|a| a.type_ == "InternalIP" && a.address == "192.168.1.2"));
            match api.get("nope").await {
                Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
                other => panic!("get of a missing node: {other:?}"),
            }
            assert!(api.get_opt("nope").await.unwrap().is_none());

            // (2) a watcher sees the initial list, then an upsert and a delete.
            let mut rx = spawn_watcher(api.clone(), watcher::Config::default());
            let init = expect(&mut rx, "initial list", |s| *s == Seen::InitDone).await;
            assert!(init.contains(&Seen::InitApply("n1".into())), "{init:?}");
            assert!(init.contains(&Seen::InitApply("n2".into())), "{init:?}");
            eventually("the watcher watches", || server.open_watches() == 1).await;
            add(&server, "n3", 3);
            expect(&mut rx, "n3 added", |s| *s == Seen::Apply("n3".into())).await;
            let mut n1 = server.node("n1").unwrap();
            n1["metadata"]["labels"]["jalur.io/changed"] = json!("yes");
            server.upsert_node(n1);
            expect(&mut rx, "n1 modified", |s| *s == Seen::Apply("n1".into())).await;
            assert!(server.delete_node("n2"));
            expect(&mut rx, "n2 deleted", |s| *s == Seen::Delete("n2".into())).await;

            // (3) a dropped watch: the watcher resumes from its version, no relist.
            let lists = list_requests(&server);
            server.drop_watches();
            add(&server, "n4", 4);
            expect(&mut rx, "n4 after a dropped watch", |s| {
                *s == Seen::Apply("n4".into())
            })
            .await;
            add(&server, "n5", 5);
            expect(&mut rx, "n5 after a dropped watch", |s| {
                *s == Seen::Apply("n5".into())
            })
            .await;
            assert_eq!(
                list_requests(&server),
                lists,
                "a resumed watch must not relist"
            );

            // (4) expired history + dropped watch: 410, then a relist.
            let lists = list_requests(&server);
            server.expire_history();
            server.drop_watches();
            add(&server, "n6", 6);
            let seen = expect(
                &mut rx,
                "n6 after a relist",
                |s| matches!(s, Seen::Apply(n) | Seen::InitApply(n) if n == "n6"),
            )
            .await;
            assert!(
                seen.iter().any(
                    |s| matches!(s, Seen::Error(e) if e.contains("410") || e.contains("too old"))
                ),
                "no 410 seen: {seen:?}"
            );
            expect(&mut rx, "the relist's end", |s| *s == Seen::InitDone).await;
            assert!(
                list_requests(&server) > lists,
                "no relist after 410: {:?}",
                server.request_log()
            );
            add(&server, "n7", 7);
            expect(&mut rx, "n7 after the relist", |s| {
                *s == Seen::Apply("n7".into())
            })
            .await;

            // (5) an outage: the watcher fails, backs off, and recovers.
            server.set_down(true);
            eventually("the watch is cut", || server.open_watches() == 0).await;
            add(&server, "n8", 8);
            let down = expect(&mut rx, "an error while down", |s| {
                matches!(s, Seen::Error(_))
            })
            .await;
            assert!(!down.contains(&Seen::Apply("n8".into())), "{down:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
            server.set_down(false);
            expect(
                &mut rx,
                "n8 after the outage",
                |s| matches!(s, Seen::Apply(n) | Seen::InitApply(n) if n == "n8"),
            )
            .await;
            eventually("the watcher watches again", || server.open_watches() == 1).await;
            server.delete_node("n8");
            expect(&mut rx, "n8 deleted", |s| *s == Seen::Delete("n8".into())).await;
        })
        .await
        .expect("the scenario took too long");
    });
}

/// One raw HTTP/1.1 exchange with `Connection: close`; returns the whole response text.
fn raw(addr: SocketAddr, method: &str, target: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    // A connection closed unanswered (the server is down) may fail the write or be reset
    // rather than ended: that reads as "".
    let _ = write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn raw_http_answers() {
    let server = FakeApiServer::start(loopback()).unwrap();
    let a = server.addr();
    add(&server, "n1", 1);

    let v = raw(a, "GET", "/version");
    assert!(
        v.starts_with("HTTP/1.1 200 OK\r\n") && v.contains("\"gitVersion\""),
        "{v}"
    );
    let r = raw(a, "GET", "/apis/foo");
    assert!(
        r.starts_with("HTTP/1.1 404") && r.contains("\"kind\":\"Status\""),
        "{r}"
    );
    let r = raw(a, "GET", "/api/v1/nodes/missing");
    assert!(
        r.starts_with("HTTP/1.1 404") && r.contains("\"reason\":\"NotFound\""),
        "{r}"
    );

    // Pagination.
    add(&server, "n2", 2);
    let r = raw(a, "GET", "/api/v1/nodes?limit=1");
    assert!(
        r.contains("\"continue\":\"n1\"") && !r.contains("\"n2\""),
        "{r}"
    );
    let r = raw(a, "GET", "/api/v1/nodes?limit=1&continue=n1");
    assert!(
        r.contains("\"name\":\"n2\"") && !r.contains("\"continue\""),
        "{r}"
    );

    // Storing a node unchanged is a no-op, as on the real server: no new version.
    let rv = server.resource_version();
    server.upsert_node(server.node("n1").unwrap());
    assert_eq!(server.resource_version(), rv);

    // timeoutSeconds ends the stream cleanly.
    let rv = server.resource_version();
    let started = Instant::now();
    let w = raw(
        a,
        "GET",
        &format!("/api/v1/nodes?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        w.contains("Transfer-Encoding: chunked") && w.ends_with("0\r\n\r\n"),
        "{w}"
    );

    // A watch from 0 starts with the current state; from N replays what came after N.
    let w = raw(
        a,
        "GET",
        "/api/v1/nodes?watch=1&resourceVersion=0&timeoutSeconds=1",
    );
    assert_eq!(w.matches("\"type\":\"ADDED\"").count(), 2, "{w}");
    let w = raw(
        a,
        "GET",
        &format!(
            "/api/v1/nodes?watch=true&resourceVersion={}&timeoutSeconds=1",
            rv - 1
        ),
    );
    assert_eq!(w.matches("\"type\":\"ADDED\"").count(), 1, "{w}");

    // Expired history: a 200 stream with one 410 ERROR event, then the end.
    server.expire_history();
    let w = raw(
        a,
        "GET",
        &format!("/api/v1/nodes?watch=true&resourceVersion={rv}"),
    );
    assert!(w.starts_with("HTTP/1.1 200 OK\r\n"), "{w}");
    assert!(
        w.contains("{\"type\":\"ERROR\",\"object\":{") && w.contains("\"code\":410"),
        "{w}"
    );
    assert!(
        w.contains("\"reason\":\"Expired\"") && w.ends_with("0\r\n\r\n"),
        "{w}"
    );

    // Down: connections are closed at once, with no answer.
    server.set_down(true);
    assert_eq!(raw(a, "GET", "/version"), "");
    server.set_down(false);
    assert!(raw(a, "GET", "/version").starts_with("HTTP/1.1 200"));

    let log = server.request_log();
    assert!(
        log.contains(&"GET /api/v1/nodes?limit=1".to_owned()),
        "{log:?}"
    );

    // Drop ends everything promptly, also an open watch.
    let mut open = TcpStream::connect(a).unwrap();
    write!(
        open,
        "GET /api/v1/nodes?watch=true HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    assert!(server.wait_for_watches(1, WAIT));
    let started = Instant::now();
    drop(server);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    open.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    let _ = open.read_to_end(&mut rest);
    assert!(TcpStream::connect(a).is_err(), "still listening after drop");
}

/// In a network namespace: reachable from inside it (by kube's client, too), not from the
/// test's own namespace.
#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn serves_inside_a_network_namespace() {
    jalur_tests::require_root();
    let ns = jalur_tests::Netns::new("fakeapi");
    let server = FakeApiServer::start_in(&ns.path(), loopback()).unwrap();
    add(&server, "inside", 9);
    let addr = server.addr();
    assert!(
        TcpStream::connect(addr).is_err(),
        "reachable outside its namespace"
    );

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.kubeconfig(&kubeconfig).unwrap();
    let path = ns.path();
    let names = std::thread::spawn(move || {
        // Only this helper thread changes namespace.
        let f = std::fs::File::open(&path).unwrap();
        setns(f, CloneFlags::CLONE_NEWNET).expect("setns");
        // A current-thread runtime: its sockets are made on this thread, in the namespace.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(WAIT, async {
                let api: Api<Node> = Api::all(client_from_kubeconfig(&kubeconfig).await);
                let list = api.list(&ListParams::default()).await.expect("list inside");
                list.items.iter().map(name).collect::<Vec<_>>()
            })
            .await
            .expect("list inside the namespace took too long")
        })
    })
    .join()
    .unwrap();
    assert_eq!(names, ["inside"]);
}
