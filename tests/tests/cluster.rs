//! The simulated cluster: every pod reaches every pod, by its own address, across nodes and
//! across the router, as traceroute shows.

use jalur_tests::cluster::Cluster;
use jalur_tests::require_root;

fn hops(ns: &jalur_tests::Netns, dst: &str) -> Vec<String> {
    let out = ns.exec(&format!("traceroute -n -q 1 -w 2 -m 6 {dst}"));
    out.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}

#[test]
fn pods_reach_pods_on_the_same_node_across_nodes_and_across_the_router() {
    require_root();
    let mut c = Cluster::new("reach", 61, "auto");
    c.start_agents();
    let (a1, _, _) = c.add_pod(0, "a1");
    let (_, ip_a2, _) = c.add_pod(0, "a2");
    let (_, ip_b, ip6_b) = c.add_pod(1, "b");
    let (_, ip_c, _) = c.add_pod(2, "c");
    let pod = c.pod(&a1);
    for dst in [&ip_a2, &ip_b, &ip_c] {
        pod.exec(&format!("ping -c 2 -W 2 {dst}"));
    }
    pod.exec(&format!("ping -6 -c 2 -W 2 {}", ip6_b.unwrap()));
    let node1 = c.nodes[0].ip.clone();
    assert_eq!(hops(pod, &ip_a2), [node1.as_str(), &ip_a2]);
    assert_eq!(hops(pod, &ip_b), [node1.as_str(), &c.nodes[1].ip, &ip_b]);
    let tunnel3 = "10.61.3.0".to_owned();
    assert_eq!(hops(pod, &ip_c), [node1.as_str(), &tunnel3, &ip_c]);
}
