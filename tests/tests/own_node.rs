//! The agent and its own Node: a Node that leaves the view and comes back with other pod
//! subnets (as when `kubectl delete node` is followed by the kubelet registering again, and
//! the controller-manager hands out another CIDR). Found on the real cluster
//! (tests/cluster/cluster-test.sh): the node kept its old tunnel address as the overlay
//! device's first address, so what the node itself sent over the overlay left from an
//! address no peer routed any more, and pods wired while its Node was away got addresses
//! from the old subnet.

use std::time::Duration;

use jalur_tests::cluster::{wait_until, Cluster};
use jalur_tests::{require_root, sh, try_sh};

/// `ip netns exec NS CMD`, for a namespace the cluster owns while it is being changed.
fn exec(ns: &str, cmd: &str) -> String {
    sh(&format!("ip netns exec {ns} {cmd}"))
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_node_away_from_the_view_serves_no_new_pod_and_comes_back_renumbered_cleanly() {
    require_root();
    let mut c = Cluster::new("renum", 77, "auto");
    c.start_agents();
    let (pod_a, ip_a, _) = c.add_pod(0, "a");
    // node3 (index 2) is behind the router: node1 reaches it over the overlay.
    let node3 = c.nodes[2].ns.name.clone();
    let ready3 = c.nodes[2].state_dir.join("ready");
    let vxlan_addrs = || exec(&node3, "ip -o addr show dev jalur.vxlan");
    assert!(vxlan_addrs().contains("10.77.3.0/32"), "{}", vxlan_addrs());
    let routes_before = exec(&node3, "ip route show proto 74");

    // Its Node leaves the view: the kernel is left alone, but no new pod is served.
    c.write_nodes_file(&[0, 1]);
    assert!(
        wait_until(Duration::from_secs(10), || !ready3.exists()),
        "node3 still marked ready without its Node:\n{}",
        c.agent_log(2)
    );
    assert_eq!(exec(&node3, "ip route show proto 74"), routes_before);

    // It comes back with other pod subnets.
    c.nodes[2].pod_cidrs = vec!["10.77.9.0/24".into(), "fd00:77:9::/64".into()];
    c.write_nodes_file(&[0, 1, 2]);
    c.wait_ready(2);
    let conflist = std::fs::read_to_string(c.nodes[2].conf_dir.join("10-jalur.conflist")).unwrap();
    assert!(conflist.contains("10.77.9.0/24"), "{conflist}");
    let renumbered = || {
        let a = vxlan_addrs();
        a.contains("10.77.9.0/32") && !a.contains("10.77.3.0/32") && !a.contains("fd00:77:3::/128")
    };
    assert!(
        wait_until(Duration::from_secs(10), renumbered),
        "node3's overlay device kept its old tunnel address:\n{}",
        vxlan_addrs()
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            c.nodes[0]
                .ns
                .exec("ip route show proto 74")
                .contains("10.77.9.0/24 via 10.77.9.0")
        }),
        "node1 never routed node3's new subnet"
    );
    // What node3 itself sends over the overlay leaves from its new tunnel address, which
    // node1 routes back.
    let (ok, out) = try_sh(&format!("ip netns exec {node3} ping -c 2 -W 2 {ip_a}"));
    assert!(
        ok,
        "node3 cannot reach a pod on node1 after renumbering:\n{out}"
    );
    // And a pod made now gets an address from the new subnet, reachable from node1's pod.
    let (_, ip_c, _) = c.add_pod(2, "c");
    assert!(ip_c.starts_with("10.77.9."), "{ip_c}");
    c.pod(&pod_a).exec(&format!("ping -c 2 -W 2 {ip_c}"));
}
