//! The agent on a shared, imperfect node (issue 10): a nodes file that is missing, broken or
//! rewritten in place; a forwarding sysctl it cannot write; a firewall it cannot install; a
//! chain of its table flushed by someone else. Each failure is told once, stays in its own
//! part of the node's state, and readiness says what pods can have.

use std::io::Write;
use std::time::Duration;

use jalur_tests::cluster::{wait_until, Cluster};
use jalur_tests::{require_root, require_test_hooks};

/// Lines of `log` that contain `what`.
fn count(log: &str, what: &str) -> usize {
    log.lines().filter(|l| l.contains(what)).count()
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_missing_then_broken_nodes_file_is_told_once_each_and_its_end_with_a_count() {
    require_root();
    let mut c = Cluster::new("nfile", 81, "auto");
    let path = c.dir().join("later.yaml");
    let file = path.display().to_string();
    c.start_agent_with(0, &["--nodes-file", &file], &[]);
    std::thread::sleep(Duration::from_millis(1500)); // 75 polls
    let log = c.agent_log(0);
    assert_eq!(count(&log, "waiting for the nodes file"), 1, "{log}");
    assert_eq!(
        count(&log, &file),
        1,
        "one line for a missing file, not one per poll:\n{log}"
    );

    std::fs::write(&path, "items: [\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let log = c.agent_log(0);
    assert_eq!(count(&log, "keeping the last view"), 1, "{log}");

    let good = c.dir().join(".good.tmp");
    let nodes = std::fs::read_to_string(&c.nodes_file).unwrap();
    std::fs::write(&good, nodes).unwrap();
    std::fs::rename(&good, &path).unwrap();
    c.wait_ready(0);
    let log = c.agent_log(0);
    let back: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("readable again"))
        .collect();
    assert_eq!(back.len(), 1, "{log}");
    let reads: u64 = back[0]
        .split_whitespace()
        .find_map(|f| f.strip_prefix("failed_reads="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count: {}", back[0]));
    assert!(reads >= 20, "the failed reads were counted: {}", back[0]);
    assert_eq!(count(&log, "keeping the last view"), 1, "{log}");
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_nodes_file_rewritten_in_place_in_small_pieces_never_drops_a_peer() {
    require_root();
    let mut c = Cluster::new("inplace", 82, "auto");
    c.start_agent(0, &[]);
    c.wait_ready(0);
    assert!(wait_until(Duration::from_secs(5), || c
        .agent_routes(0)
        .contains("10.82.3.0/24")));
    let routes = c.agent_routes(0);
    let list: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&c.nodes_file).unwrap()).unwrap();
    // YAML: cut at a line, it still parses, as a shorter list.
    let yaml = serde_saphyr::to_string(&list).unwrap();
    for _ in 0..15 {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&c.nodes_file)
            .unwrap();
        for piece in yaml.as_bytes().chunks(48) {
            f.write_all(piece).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    std::thread::sleep(Duration::from_millis(1500)); // a resync or more
    let log = c.agent_log(0);
    let reads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("nodes file read"))
        .collect();
    assert!(
        reads.iter().all(|l| l.contains("nodes=3")),
        "a torn read was taken for a view: {reads:#?}"
    );
    assert_eq!(count(&log, "peer gone"), 0, "{log}");
    assert_eq!(c.agent_routes(0), routes, "routes changed");
}

/// Runs node 1's agent where `/proc/sys/net` is read-only (as in an unprivileged agent
/// container) with IPv4 forwarding on (as an init container would have left it) and IPv6
/// forwarding off.
#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_read_only_forwarding_sysctl_leaves_the_other_family_and_the_routes_served() {
    require_root();
    let mut c = Cluster::new("rosys", 83, "auto");
    let node = c.nodes[0].ns.name.clone();
    jalur_tests::sh(&format!(
        "ip netns exec {node} sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=0"
    ));
    let read_only = "mount --bind /proc/sys/net /proc/sys/net && \
                     mount -o remount,bind,ro /proc/sys/net && exec \"$0\" \"$@\"";
    let file = c.nodes_file.display().to_string();
    c.start_agent_wrapped(
        0,
        &["unshare", "-m", "sh", "-c", read_only],
        &[],
        &["--nodes-file", &file],
        &[],
    );
    c.wait_ready(0);
    let conflist = std::fs::read_to_string(c.nodes[0].conf_dir.join("10-jalur.conflist")).unwrap();
    assert!(conflist.contains("10.83.1.0/24"), "{conflist}");
    assert!(
        !conflist.contains("fd00:83:1::"),
        "IPv6 pods would go nowhere: {conflist}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || c
            .agent_routes(0)
            .contains("fd00:83:2::/64")),
        "IPv6 peers still get routes: {}",
        c.agent_routes(0)
    );
    let ready = c.agent_http(0, "/readyz");
    assert!(ready.contains(" 200 OK"), "{ready}");
    assert!(ready.contains("forwarding: failed"), "{ready}");
    assert!(ready.contains("routes: ok"), "{ready}");
    std::thread::sleep(Duration::from_millis(2500)); // two resyncs more
    let m = c.agent_http(0, "/metrics");
    assert!(m.contains("jalur_part_ok{part=\"forwarding\"} 0"), "{m}");
    assert!(m.contains("jalur_part_ok{part=\"routes\"} 1"), "{m}");
    let log = c.agent_log(0);
    assert_eq!(
        count(&log, "net/ipv6/conf/all/forwarding"),
        1,
        "told once:\n{log}"
    );
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_firewall_that_cannot_be_installed_blocks_readiness_only_when_masquerade_needs_it() {
    require_root();
    require_test_hooks();
    let mut c = Cluster::new("nofw", 84, "auto");
    let file = c.nodes_file.display().to_string();
    let fail = [(jalur_node_agent::testhook::VAR, "firewall")];
    c.start_agent_wrapped(0, &[], &fail, &["--nodes-file", &file], &[]);
    assert!(
        wait_until(Duration::from_secs(5), || c
            .agent_routes(0)
            .contains("10.84.3.0/24")),
        "routes do not wait for the firewall: {}",
        c.agent_routes(0)
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !c.nodes[0].state_dir.join("ready").exists(),
        "masquerade is on: not ready"
    );
    let ready = c.agent_http(0, "/readyz");
    assert!(ready.contains(" 503 "), "{ready}");
    assert!(ready.contains("firewall: failed"), "{ready}");
    c.stop_agent(0);

    c.start_agent_wrapped(
        0,
        &[],
        &fail,
        &["--nodes-file", &file],
        &["--no-masquerade"],
    );
    c.wait_ready(0);
    let ready = c.agent_http(0, "/readyz");
    assert!(
        ready.contains(" 200 OK") && ready.contains("firewall: failed"),
        "{ready}"
    );
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_chain_flushed_by_someone_else_is_put_back_at_the_next_resync() {
    require_root();
    let mut c = Cluster::new("flush", 85, "auto");
    c.start_agent(0, &[]);
    c.wait_ready(0);
    let ns = c.nodes[0].ns.name.clone();
    let list = |chain: &str| {
        jalur_tests::sh(&format!(
            "ip netns exec {ns} nft list chain inet jalur {chain}"
        ))
    };
    assert!(list("postrouting").contains("masquerade"));
    jalur_tests::sh(&format!(
        "ip netns exec {ns} nft flush chain inet jalur postrouting"
    ));
    jalur_tests::sh(&format!(
        "ip netns exec {ns} nft flush chain inet jalur antispoof"
    ));
    assert!(
        wait_until(Duration::from_secs(4), || list("postrouting")
            .contains("masquerade")
            && list("antispoof").contains("drop")),
        "not repaired: {}",
        list("postrouting")
    );
    let log = c.agent_log(0);
    assert_eq!(count(&log, "changed by someone else"), 1, "{log}");
}
