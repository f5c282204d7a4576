//! The agent against a Kubernetes API (a fake one speaking list/watch over HTTP, so kube-rs's
//! real code path runs): it follows Nodes, survives a dropped watch, a `410 Gone` and an API
//! outage (keeping the last known routes meanwhile).

use std::time::Duration;

use jalur_tests::cluster::{wait_until, Cluster};
use jalur_tests::fake_apiserver::{kubeconfig_for, FakeApiServer};
use jalur_tests::require_root;

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn the_agent_follows_nodes_through_watch_drops_expiry_and_outages() {
    require_root();
    let mut c = Cluster::new("kube", 69, "auto");
    // The API server listens in the router namespace, reachable from both subnets.
    let api = FakeApiServer::start_in(&c.router.path(), "0.0.0.0:6443".parse().unwrap()).unwrap();
    for i in 0..3 {
        api.upsert_node(c.node_object(i));
    }
    for i in 0..3 {
        let gateway = if i < 2 {
            "192.168.69.1"
        } else {
            "192.168.169.1"
        };
        let path = c.dir().join(format!("kubeconfig-{i}"));
        std::fs::write(&path, kubeconfig_for(&format!("http://{gateway}:6443"))).unwrap();
        let path = path.display().to_string();
        c.start_agent_with(i, &["--kubeconfig", &path], &[]);
    }
    for i in 0..3 {
        c.wait_ready(i);
    }
    let (a, _, _) = c.add_pod(0, "a");
    let (_, ip_b, _) = c.add_pod(1, "b");
    let (_, ip_c, _) = c.add_pod(2, "c");
    c.pod(&a).exec(&format!("ping -c 1 -W 2 {ip_b}"));
    c.pod(&a).exec(&format!("ping -c 1 -W 2 {ip_c}"));
    let has = |c: &Cluster, cidr: &str| c.agent_routes(0).contains(cidr);
    let settle = Duration::from_secs(10);

    // A deleted Node's routes go; a re-added one's come back.
    api.delete_node("node3");
    assert!(
        wait_until(settle, || !has(&c, "10.69.3.0/24")),
        "{}",
        c.agent_routes(0)
    );
    api.upsert_node(c.node_object(2));
    assert!(wait_until(settle, || has(&c, "10.69.3.0/24")));

    // A dropped watch: the agent re-watches and still sees changes.
    api.drop_watches();
    api.delete_node("node2");
    assert!(
        wait_until(settle, || !has(&c, "10.69.2.0/24")),
        "after a dropped watch"
    );
    api.upsert_node(c.node_object(1));
    assert!(wait_until(settle, || has(&c, "10.69.2.0/24")));

    // 410 Gone: the agent relists.
    let lists_before = api
        .request_log()
        .iter()
        .filter(|r| !r.contains("watch="))
        .count();
    api.expire_history();
    api.drop_watches();
    api.delete_node("node3");
    assert!(
        wait_until(settle, || !has(&c, "10.69.3.0/24")),
        "after 410 Gone"
    );
    let lists_after = api
        .request_log()
        .iter()
        .filter(|r| !r.contains("watch="))
        .count();
    assert!(lists_after > lists_before, "no relist after 410");
    api.upsert_node(c.node_object(2));
    assert!(wait_until(settle, || has(&c, "10.69.3.0/24")));

    // An outage: routes stay as they were, through several resync periods.
    let before = c.agent_routes(0);
    api.set_down(true);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        c.agent_routes(0),
        before,
        "routes changed during the API outage"
    );
    c.pod(&a).exec(&format!("ping -c 1 -W 2 {ip_c}"));
    api.set_down(false);
    api.delete_node("node2");
    assert!(
        wait_until(Duration::from_secs(20), || !has(&c, "10.69.2.0/24")),
        "no recovery after the outage"
    );
}
