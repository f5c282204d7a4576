//! What rides on the pod network: a Service VIP programmed the way kube-proxy does it
//! (nftables DNAT on every node), and the agent's anti-spoofing across nodes.

use jalur_tests::cluster::Cluster;
use jalur_tests::{require_root, sh, Netns};

const VIP: &str = "10.96.0.10";

/// kube-proxy's nftables mode in miniature: VIP:80 → one of the endpoints' :8080, chosen in
/// turn; traffic from an endpoint to itself is marked and masqueraded (hairpin).
fn program_service(node: &Netns, endpoints: &[&str]) {
    let jumps: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, _)| format!("{i} : jump ep{i}"))
        .collect();
    let mut rules = format!(
        "table ip kube-proxy-test {{\n\
           chain prerouting {{ type nat hook prerouting priority dstnat; ip daddr {VIP} tcp dport 80 jump svc; }}\n\
           chain output {{ type nat hook output priority -100; ip daddr {VIP} tcp dport 80 jump svc; }}\n\
           chain postrouting {{ type nat hook postrouting priority srcnat; meta mark 0x4000 masquerade; }}\n\
           chain svc {{ numgen inc mod {} vmap {{ {} }}; }}\n",
        endpoints.len(),
        jumps.join(", ")
    );
    for (i, ep) in endpoints.iter().enumerate() {
        rules.push_str(&format!(
            "chain ep{i} {{ ip saddr {ep} meta mark set 0x4000; meta l4proto tcp dnat to {ep}:8080; }}\n"
        ));
    }
    rules.push_str("}\n");
    sh(&format!(
        "echo '{rules}' | ip netns exec {} nft -f -",
        node.name
    ));
}

fn serve_name(pod: &Netns, name: &str) {
    sh(&format!(
        "ip netns exec {} timeout 60 socat TCP4-LISTEN:8080,reuseaddr,fork SYSTEM:'echo {name}' >/dev/null 2>&1 &",
        pod.name
    ));
}

fn ask(client: &Netns, target: &str) -> String {
    for _ in 0..50 {
        let (ok, out) = client.try_exec(&format!(
            "timeout 3 socat -T2 - TCP:{target},connect-timeout=2 </dev/null"
        ));
        if ok && !out.trim().is_empty() {
            return out.trim().to_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no answer from {target}");
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_service_vip_reaches_backends_on_both_nodes_and_a_pod_reaches_itself() {
    require_root();
    let mut c = Cluster::new("svc", 70, "auto");
    c.start_agents();
    let (ep1, ip1, _) = c.add_pod(0, "ep1");
    let (ep2, ip2, _) = c.add_pod(1, "ep2");
    let (client, _, _) = c.add_pod(2, "cl");
    serve_name(c.pod(&ep1), "backend-on-node1");
    serve_name(c.pod(&ep2), "backend-on-node2");
    for n in &c.nodes {
        program_service(&n.ns, &[&ip1, &ip2]);
    }
    let mut seen: Vec<String> = (0..4)
        .map(|_| ask(c.pod(&client), &format!("{VIP}:80")))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        ["backend-on-node1", "backend-on-node2"],
        "a client on node3 reaches both"
    );
    // An endpoint reaching the service, and through it itself (hairpin), on its own node.
    let mut from_ep1: Vec<String> = (0..4)
        .map(|_| ask(c.pod(&ep1), &format!("{VIP}:80")))
        .collect();
    from_ep1.sort();
    from_ep1.dedup();
    assert_eq!(from_ep1, ["backend-on-node1", "backend-on-node2"]);
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_spoofed_source_is_dropped_at_the_node_even_with_the_plugin_filter_off() {
    require_root();
    let mut c = Cluster::new("spoofx", 71, "auto");
    c.start_agents();
    let (a, _, _) = c.add_pod(0, "a");
    let (b, ip_b, _) = c.add_pod(1, "b");
    let node1 = c.nodes[0].ns.name.clone();
    // Turn the plugin's reverse-path filter off everywhere on node1: the agent's nftables
    // table alone must stop the forged packets.
    sh(&format!(
        "ip netns exec {node1} sh -c 'for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > $f; done'"
    ));
    let forged = "10.71.2.77"; // an address of node2's pod subnet, not pod a's
    c.pod(&a).exec(&format!("ip addr add {forged}/32 dev eth0"));
    let before = c.pod(&b).echos_received();
    c.pod(&a).exec(&format!("ping -c 1 -W 2 {ip_b}"));
    assert_eq!(
        c.pod(&b).echos_received(),
        before + 1,
        "honest traffic passes"
    );
    let _ = c
        .pod(&a)
        .try_exec(&format!("ping -c 2 -W 1 -I {forged} {ip_b}"));
    assert_eq!(
        c.pod(&b).echos_received(),
        before + 1,
        "a forged source crossed the cluster"
    );
}
