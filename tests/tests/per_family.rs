//! The routing mode is decided per peer and per address family (issue 10): in a dual-stack
//! cluster where node 2's IPv4 address is on node 1's subnet and its IPv6 one is routed,
//! IPv4 goes direct and IPv6 through the overlay, and pods reach each other in both.

use std::time::Duration;

use jalur_tests::cluster::{wait_until, Cluster};
use jalur_tests::{require_root, sh};

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn ipv4_on_link_goes_direct_while_a_routed_ipv6_goes_over_the_overlay() {
    require_root();
    let mut c = Cluster::new("family", 86, "auto");
    let (n1, n2, rt) = (
        c.nodes[0].ns.name.clone(),
        c.nodes[1].ns.name.clone(),
        c.router.name.clone(),
    );
    // Node 2's IPv6 address moves to another subnet, reached through the router.
    sh(&format!(
        "ip -n {rt} addr add fd00:87::1/64 dev leg0 nodad && \
         ip -n {n2} addr del fd00:86::3/64 dev eth0 && \
         ip -n {n2} addr add fd00:87::3/64 dev eth0 nodad && \
         ip -n {n2} -6 route add default via fd00:87::1 && \
         ip -n {n1} -6 route add default via fd00:86::1"
    ));
    c.nodes[1].ip6 = Some("fd00:87::3".into());
    c.write_nodes_file(&[0, 1, 2]);
    c.start_agents();
    let wanted = [
        "10.86.2.0/24 via 192.168.86.3 dev eth0",
        "fd00:86:2::/64 via fd00:86:2:: dev jalur.vxlan",
    ];
    assert!(
        c.routes_appear(0, &wanted, Duration::from_secs(5)),
        "{}",
        c.agent_routes(0)
    );
    let (a, _, a6) = c.add_pod(0, "a");
    let (_, b4, b6) = c.add_pod(1, "b");
    let (a6, b6) = (a6.unwrap(), b6.unwrap());
    assert!(!a6.is_empty());
    let pod = c.pod(&a);
    assert!(wait_until(Duration::from_secs(5), || pod
        .try_exec(&format!("ping -c 1 -W 1 {b4}"))
        .0));
    assert!(wait_until(Duration::from_secs(5), || pod
        .try_exec(&format!("ping -6 -c 1 -W 1 {b6}"))
        .0));
    let m = c.agent_http(0, "/metrics");
    assert!(m.contains("jalur_peers{mode=\"mixed\"} 1"), "{m}");
    c.stop_agent(0);

    // Forced direct: IPv4 is still routed, only IPv6 is not.
    c.mode = "direct".into();
    c.start_agent(0, &[]);
    assert!(
        wait_until(Duration::from_secs(5), || {
            let r = c.agent_routes(0);
            r.contains("10.86.2.0/24 via 192.168.86.3") && !r.contains("fd00:86:2::/64")
        }),
        "{}",
        c.agent_routes(0)
    );
    assert!(wait_until(Duration::from_secs(3), || c
        .agent_log(0)
        .contains("peer routed in part")));
}
