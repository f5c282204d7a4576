//! Issue 10, point 1: a route that is not Jalur's to a peer's pod subnet. Node1 holds
//! `10.<net>.2.0/24 via 192.168.<net>.1 proto static` (node2's pod CIDR, through the router).
//! By default the agent leaves it byte for byte, rejects node2 once with a line naming both
//! routes, and counts it. With `--replace-foreign-routes` it replaces it with its own
//! (proto 74, via node2) once, with one warning naming both, and counts that.

use std::time::Duration;

use jalur_tests::cluster::{wait_until, Cluster};
use jalur_tests::require_root;

fn metrics(c: &Cluster) -> String {
    c.agent_http(0, "/metrics")
}

/// Node1's route to node2's pod CIDR, as `ip route` prints it.
fn route(c: &Cluster, net: u8) -> String {
    c.nodes[0]
        .ns
        .exec(&format!("ip route show table main 10.{net}.2.0/24"))
}

/// Adds the static route to node2's pod CIDR on node1 and starts node1's agent.
fn start(net: u8, tag: &str, extra: &[&str]) -> Cluster {
    let mut c = Cluster::new(tag, net, "auto");
    c.nodes[0].ns.exec(&format!(
        "ip route add 10.{net}.2.0/24 via 192.168.{net}.1 proto static"
    ));
    c.start_agent(0, extra);
    c.wait_ready(0);
    c
}

fn lines<'a>(log: &'a str, what: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(what)).collect()
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_foreign_route_to_a_peer_is_reported_and_left() {
    require_root();
    let net = 87;
    let c = start(net, "frleave", &[]);
    let theirs = format!("10.{net}.2.0/24 via 192.168.{net}.1 dev eth0 proto static");
    let ours = format!("10.{net}.2.0/24 via 192.168.{net}.3 dev eth0 proto 74");
    let logged = wait_until(Duration::from_secs(10), || {
        !lines(&c.agent_log(0), "peer claim rejected").is_empty()
    });
    assert!(logged, "{}", c.agent_log(0));
    let before = route(&c, net);
    assert!(before.contains("proto static"), "{before}");
    std::thread::sleep(Duration::from_millis(3500)); // three resyncs
    assert_eq!(route(&c, net), before, "the static route changed");
    let log = c.agent_log(0);
    let rejected = lines(&log, "peer claim rejected");
    assert_eq!(rejected.len(), 1, "{log}");
    let line = rejected[0];
    assert!(
        line.contains("peer=node2") && line.contains("overlaps-foreign-route"),
        "{line}"
    );
    assert!(
        line.contains(&theirs),
        "the line names the static route: {line}"
    );
    assert!(line.contains(&ours), "the line names Jalur's route: {line}");
    assert!(!log.contains("replaced a route"), "{log}");
    let m = metrics(&c);
    assert!(m.contains("jalur_peers{mode=\"rejected\"} 1"), "{m}");
    let rule = "jalur_rejected_claims{node=\"node2\",rule=\"overlaps-foreign-route\"} 1";
    assert!(m.contains(rule), "{m}");
    assert!(m.contains("jalur_foreign_routes_replaced_total 0"), "{m}");
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn with_the_flag_a_foreign_route_to_a_peer_is_replaced_once_and_loudly() {
    require_root();
    let net = 88;
    let c = start(net, "frrepl", &["--replace-foreign-routes"]);
    let theirs = format!("10.{net}.2.0/24 via 192.168.{net}.1 dev eth0 proto static");
    let ours = format!("10.{net}.2.0/24 via 192.168.{net}.3 dev eth0 proto 74");
    let replaced = wait_until(Duration::from_secs(10), || {
        route(&c, net).contains(&format!("via 192.168.{net}.3 dev eth0 proto 74"))
    });
    assert!(replaced, "{}\n{}", route(&c, net), c.agent_log(0));
    let after = route(&c, net);
    assert_eq!(after.lines().count(), 1, "{after}");
    std::thread::sleep(Duration::from_millis(1500)); // one more resync: all settled
    let syncs = c.agent_log(0).matches(" synced").count();
    std::thread::sleep(Duration::from_millis(3500)); // three resyncs
    assert_eq!(route(&c, net), after, "the route changed again");
    let log = c.agent_log(0);
    assert_eq!(
        log.matches(" synced").count(),
        syncs,
        "a resync changed the kernel:\n{log}"
    );
    let warned = lines(&log, "replaced a route that was not Jalur's");
    assert_eq!(warned.len(), 1, "{log}");
    assert!(warned[0].contains("WARN"), "{}", warned[0]);
    assert!(
        warned[0].contains(&theirs) && warned[0].contains(&ours),
        "{}",
        warned[0]
    );
    assert!(warned[0].contains("peer=node2"), "{}", warned[0]);
    assert!(lines(&log, "peer claim rejected").is_empty(), "{log}");
    let m = metrics(&c);
    assert!(m.contains("jalur_foreign_routes_replaced_total 1"), "{m}");
    assert!(m.contains("jalur_peers{mode=\"rejected\"} 0"), "{m}");
}
