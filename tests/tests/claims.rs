//! Issue 13: a Node cannot hijack a node's routing. Node1's agent (the simulated cluster,
//! `--cluster-cidr 10.<net>.0.0/16`) is shown six hostile or broken Nodes — a default route,
//! a slice of its underlay, a CIDR outside the cluster CIDR, another node's CIDR, its own
//! CIDR, and its own address as an InternalIP — from a NodeList file and from the (fake)
//! Kubernetes API. Each is rejected, logged once with the rule it broke and counted in the
//! metrics, and node1's routing table does not change, through several resyncs.

use std::time::Duration;

use jalur_tests::cluster::{wait_until, Cluster};
use jalur_tests::fake_apiserver::{kubeconfig_for, node_json, FakeApiServer};
use jalur_tests::require_root;
use serde_json::{json, Value};

const OLD: &str = "2020-01-01T00:00:00Z";
const NEW: &str = "2024-01-01T00:00:00Z";
const OLDEST: &str = "2019-01-01T00:00:00Z";

/// (name, InternalIP, pod CIDRs, creationTimestamp, the rule it must break).
fn hostile(net: u8) -> Vec<(String, String, Vec<String>, &'static str, &'static str)> {
    let ip = |host: u8| format!("192.168.{net}.{host}");
    vec![
        (
            "evil-default".into(),
            ip(50),
            vec!["0.0.0.0/0".into(), "::/0".into()],
            NEW,
            "too-broad",
        ),
        (
            "evil-underlay".into(),
            ip(51),
            vec![format!("192.168.{net}.0/25")],
            NEW,
            "overlaps-node-address",
        ),
        (
            "evil-outside".into(),
            ip(52),
            vec!["172.31.9.0/24".into()],
            NEW,
            "outside-cluster-cidr",
        ),
        // Sorts before node2 by name, but is younger: node2 keeps its CIDR.
        (
            "a-thief".into(),
            ip(53),
            vec![format!("10.{net}.2.0/24")],
            NEW,
            "overlaps-older-node",
        ),
        // Older than node1 itself: node1 still keeps its own.
        (
            "evil-own".into(),
            ip(54),
            vec![format!("10.{net}.1.0/24")],
            OLDEST,
            "overlaps-own-pod-cidr",
        ),
        (
            "evil-ip".into(),
            ip(2),
            vec![format!("10.{net}.9.0/24")],
            NEW,
            "address-is-local",
        ),
    ]
}

fn hostile_objects(net: u8) -> Vec<Value> {
    hostile(net)
        .into_iter()
        .map(|(name, ip, cidrs, created, _)| {
            let cidrs: Vec<&str> = cidrs.iter().map(String::as_str).collect();
            let mut node = node_json(&name, &ip, &cidrs);
            node["metadata"]["creationTimestamp"] = json!(created);
            node
        })
        .collect()
}

/// The cluster's own nodes, created at `OLD`.
fn own_objects(c: &Cluster) -> Vec<Value> {
    (0..c.nodes.len())
        .map(|i| {
            let mut node = c.node_object(i);
            node["metadata"]["creationTimestamp"] = json!(OLD);
            node
        })
        .collect()
}

fn write_nodes_file(c: &Cluster, items: Vec<Value>) {
    let list = json!({"apiVersion": "v1", "kind": "NodeList", "items": items});
    let tmp = c.dir().join(".claims.tmp");
    std::fs::write(&tmp, list.to_string()).unwrap();
    std::fs::rename(&tmp, &c.nodes_file).unwrap();
}

/// Node `i`'s whole main routing table, both families.
fn routing_table(c: &Cluster, i: usize) -> String {
    c.nodes[i]
        .ns
        .exec("sh -c 'ip -4 route show table main; ip -6 route show table main'")
}

fn metrics(c: &Cluster, i: usize) -> String {
    c.nodes[i].ns.exec(
        "bash -c 'exec 3<>/dev/tcp/127.0.0.1/9644; printf \"GET /metrics HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3'",
    )
}

fn rejections(log: &str, name: &str) -> Vec<String> {
    let peer = format!("peer={name} ");
    log.lines()
        .filter(|l| l.contains("peer claim rejected") && l.contains(&peer))
        .map(str::to_owned)
        .collect()
}

/// Waits until node1's agent routes its two sound peers, and returns its routing table and
/// how many syncs changed the kernel so far.
fn settled(c: &Cluster, net: u8) -> (String, usize) {
    let wanted = [
        format!("10.{net}.2.0/24 via 192.168.{net}.3"),
        format!("10.{net}.3.0/24 via 10.{net}.3.0 dev jalur.vxlan"),
    ];
    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let routed = c.routes_appear(0, &wanted, Duration::from_secs(10));
    assert!(routed, "{}\n{}", c.agent_routes(0), c.agent_log(0));
    // One more resync (1 s) so that nothing is left half-done.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !c.agent_log(0).contains("rejected"),
        "a sound view had a claim rejected (node1's own IPv6 CIDR beside its tunnel address?):\n{}",
        c.agent_log(0)
    );
    (
        routing_table(c, 0),
        c.agent_log(0).matches(" synced").count(),
    )
}

/// After the hostile Nodes appeared: each is rejected once with its rule, nothing in the
/// kernel changed, through three resyncs.
fn assert_rejected_and_untouched(c: &Cluster, net: u8, before: &str, syncs: usize) {
    let all_logged = wait_until(Duration::from_secs(10), || {
        let log = c.agent_log(0);
        hostile(net)
            .iter()
            .all(|(name, ..)| !rejections(&log, name).is_empty())
    });
    assert!(
        all_logged,
        "not every claim was rejected:\n{}",
        c.agent_log(0)
    );
    std::thread::sleep(Duration::from_millis(3500)); // three resyncs
    let log = c.agent_log(0);
    for (name, _, cidrs, _, rule) in hostile(net) {
        let lines = rejections(&log, &name);
        assert_eq!(
            lines.len(),
            1,
            "{name} logged {} times:\n{log}",
            lines.len()
        );
        assert!(lines[0].contains(rule), "{name}: {}", lines[0]);
        assert!(
            cidrs.iter().any(|cidr| lines[0].contains(cidr.as_str()))
                || lines[0].contains("InternalIP"),
            "the line names the claim: {}",
            lines[0]
        );
    }
    assert_eq!(
        routing_table(c, 0),
        before,
        "the routing table changed:\n{log}"
    );
    assert_eq!(
        log.matches(" synced").count(),
        syncs,
        "a sync changed the kernel after the hostile Nodes appeared:\n{log}"
    );
    let m = metrics(c, 0);
    assert!(m.contains("jalur_peers{mode=\"rejected\"} 6"), "{m}");
    assert!(m.contains("jalur_peers{mode=\"direct\"} 1"), "{m}");
    assert!(m.contains("jalur_peers{mode=\"vxlan\"} 1"), "{m}");
    for (name, .., rule) in hostile(net) {
        let line = format!("jalur_rejected_claims{{node=\"{name}\",rule=\"{rule}\"}} 1");
        assert!(m.contains(&line), "{line} missing:\n{m}");
    }
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn hostile_claims_in_the_nodes_file_leave_the_routing_table_untouched() {
    require_root();
    let net = 71;
    let mut c = Cluster::new("claims", net, "auto");
    write_nodes_file(&c, own_objects(&c));
    let cluster_cidr = format!("--cluster-cidr=10.{net}.0.0/16");
    c.start_agent(0, &[&cluster_cidr]);
    c.wait_ready(0);
    let (before, syncs) = settled(&c, net);
    assert!(before.contains(&format!("default via 192.168.{net}.1")));

    let mut items = own_objects(&c);
    items.extend(hostile_objects(net));
    write_nodes_file(&c, items);
    assert_rejected_and_untouched(&c, net, &before, syncs);

    // The view is re-read unchanged (a new file with the same content): still nothing.
    let mut items = own_objects(&c);
    items.extend(hostile_objects(net));
    items.reverse();
    write_nodes_file(&c, items);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(routing_table(&c, 0), before);
    assert_eq!(c.agent_log(0).matches(" synced").count(), syncs);
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn hostile_nodes_in_the_api_leave_the_routing_table_untouched() {
    require_root();
    let net = 72;
    let mut c = Cluster::new("claimsk", net, "auto");
    let api = FakeApiServer::start_in(&c.router.path(), "0.0.0.0:6443".parse().unwrap()).unwrap();
    for node in own_objects(&c) {
        api.upsert_node(node);
    }
    let path = c.dir().join("kubeconfig");
    std::fs::write(
        &path,
        kubeconfig_for(&format!("http://192.168.{net}.1:6443")),
    )
    .unwrap();
    let path = path.display().to_string();
    let cluster_cidr = format!("--cluster-cidr=10.{net}.0.0/16");
    c.start_agent_with(0, &["--kubeconfig", &path], &[&cluster_cidr]);
    c.wait_ready(0);
    let (before, syncs) = settled(&c, net);

    for node in hostile_objects(net) {
        api.upsert_node(node);
    }
    assert_rejected_and_untouched(&c, net, &before, syncs);

    // A MODIFIED event for a rejected Node (a kubelet heartbeat) neither logs it again nor
    // changes the kernel.
    let mut evil = hostile_objects(net).remove(0);
    evil["metadata"]["labels"]["heartbeat"] = json!("1");
    api.upsert_node(evil);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rejections(&c.agent_log(0), "evil-default").len(), 1);
    assert_eq!(routing_table(&c, 0), before);
    assert_eq!(c.agent_log(0).matches(" synced").count(), syncs);

    // When node2 leaves, the thief's claim no longer overlaps anything older: it is routed.
    // Deterministic, not a flap: it follows the view.
    api.delete_node("node2");
    let thief = format!("10.{net}.2.0/24 via 192.168.{net}.53");
    assert!(
        wait_until(Duration::from_secs(10), || c
            .agent_routes(0)
            .contains(&thief)),
        "{}\n{}",
        c.agent_routes(0),
        c.agent_log(0)
    );
}
