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
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
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

/// Connects from `client` to `ip:port` (IPv6: `port + 1`) and returns the address the server
/// saw the connection come from.
fn tcp_ask(client: &jalur_tests::Netns, ip: &str, port: u16) -> std::net::IpAddr {
    let (target, port) = if ip.contains(':') {
        (format!("[{ip}]"), port + 1)
    } else {
        (ip.to_owned(), port)
    };
    for _ in 0..50 {
        let (ok, out) = client.try_exec(&format!(
            "timeout 3 socat -T2 - TCP:{target}:{port},connect-timeout=2 </dev/null"
        ));
        if ok && !out.trim().is_empty() {
            let text = out.trim().trim_start_matches('[').trim_end_matches(']');
            return text
                .parse()
                .unwrap_or_else(|_| panic!("server said {text:?}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no answer from {ip}:{port}");
}

/// Starts TCP servers in `ns` (IPv4 on `port`, IPv6 on `port + 1`) that answer each
/// connection with the peer's address.
fn serve_peer_address(ns: &jalur_tests::Netns, port: u16) {
    jalur_tests::sh(&format!(
        "ip netns exec {n} timeout 60 socat TCP4-LISTEN:{port},reuseaddr,fork SYSTEM:'echo $SOCAT_PEERADDR' >/dev/null 2>&1 & \
         ip netns exec {n} timeout 60 socat TCP6-LISTEN:{p6},ipv6only=1,reuseaddr,fork SYSTEM:'echo $SOCAT_PEERADDR' >/dev/null 2>&1 &",
        n = ns.name,
        p6 = port + 1
    ));
}

fn addr(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn tcp_servers_see_the_client_pods_own_address_and_egress_is_masqueraded() {
    require_root();
    let mut c = Cluster::new("nat", 62, "auto");
    c.start_agents();
    let (a, ip_a, ip6_a) = c.add_pod(0, "a");
    let (b, ip_b, _) = c.add_pod(0, "b");
    let (d, ip_d, ip6_d) = c.add_pod(1, "d");
    let (e, ip_e, _) = c.add_pod(2, "e");
    for server in [&b, &d, &e] {
        serve_peer_address(c.pod(server), 8080);
    }
    let client = c.pod(&a);
    for ip in [&ip_b, &ip_d, &ip_e] {
        let seen = tcp_ask(client, ip, 8080);
        assert_eq!(seen, addr(&ip_a), "{ip} saw {seen}, not the client pod");
    }
    let seen6 = tcp_ask(client, ip6_d.as_ref().unwrap(), 8080);
    assert_eq!(
        seen6,
        addr(ip6_a.as_ref().unwrap()),
        "IPv6: the server saw {seen6}"
    );
    // Leaving the cluster: the outside host sees the node's address.
    serve_peer_address(&c.outside, 8080);
    let outside_ip = c.outside_ip.clone();
    let seen = tcp_ask(client, &outside_ip, 8080);
    assert_eq!(
        seen,
        addr(&c.nodes[0].ip),
        "the outside host saw {seen}, not node1's address"
    );
    let _ = (ip_d, ip_e);
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn the_largest_df_packet_passes_and_one_byte_more_does_not_on_direct_and_overlay_paths() {
    require_root();
    let mut c = Cluster::new("mtu", 63, "auto");
    c.start_agents();
    let list = c.conflist(0).list;
    let mtu = list["plugins"][0]["mtu"].as_u64().unwrap();
    assert_eq!(mtu, 1450, "underlay 1500 less the VXLAN overhead");
    let (a, _, _) = c.add_pod(0, "a");
    let (_, ip_b, _) = c.add_pod(1, "b");
    let (_, ip_c, _) = c.add_pod(2, "c");
    let largest = mtu - 28; // IPv4 + ICMP headers
    let pod = c.pod(&a);
    for dst in [&ip_b, &ip_c] {
        pod.exec(&format!("ping -M do -s {largest} -c 2 -W 2 {dst}"));
        let (ok, out) = pod.try_exec(&format!("ping -M do -s {} -c 1 -W 2 {dst}", largest + 1));
        assert!(!ok, "a {}-byte DF ping to {dst} passed: {out}", largest + 1);
    }
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn ipv6_only_nodes_reach_each_other_directly_and_over_an_ipv6_overlay() {
    require_root();
    let mut c = Cluster::new_ipv6_only("six", 64, "auto");
    c.start_agents();
    let mtu = c.conflist(0).list["plugins"][0]["mtu"].as_u64().unwrap();
    assert_eq!(mtu, 1430, "underlay 1500 less VXLAN's overhead over IPv6");
    let (a1, _, _) = c.add_pod(0, "a1");
    let (_, ip_a2, _) = c.add_pod(0, "a2");
    let (_, ip_b, _) = c.add_pod(1, "b");
    let (_, ip_c, _) = c.add_pod(2, "c");
    assert!(ip_c.starts_with("fd00:64:3::"), "{ip_c}");
    let device = c.nodes[0].ns.exec("ip -d link show jalur.vxlan");
    assert!(device.contains("local fd00:64::2"), "{device}");
    let pod = c.pod(&a1);
    let largest = mtu - 48; // IPv6 + ICMPv6 headers
    for dst in [&ip_a2, &ip_b, &ip_c] {
        pod.exec(&format!("ping -6 -M do -s {largest} -c 2 -W 2 {dst}"));
    }
    let (ok, out) = pod.try_exec(&format!(
        "ping -6 -M do -s {} -c 1 -W 2 {ip_c}",
        largest + 1
    ));
    assert!(
        !ok,
        "a {}-byte DF ping to {ip_c} passed: {out}",
        largest + 1
    );
    // IPv6 picks the source of an ICMP error by longest prefix, so a node answers from its
    // underlay or its tunnel address: each hop must be one of that node's own addresses.
    let addrs = |i: usize| c.nodes[i].ns.exec("ip -6 -o addr show scope global");
    let path = |dst: &str, via: &[usize]| {
        let hops = hops(pod, dst);
        assert_eq!(hops.len(), via.len() + 1, "to {dst}: {hops:?}");
        assert_eq!(hops[via.len()], dst, "to {dst}: {hops:?}");
        for (hop, node) in hops.iter().zip(via) {
            let own = addrs(*node);
            assert!(
                own.contains(&format!(" {hop}/")),
                "to {dst}: hop {hop} is not node{}'s: {own}",
                node + 1
            );
        }
    };
    path(&ip_a2, &[0]);
    path(&ip_b, &[0, 1]);
    path(&ip_c, &[0, 2]);
}
