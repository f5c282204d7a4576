//! Pods reach each other through the node; chained and delegating plugins work with jalur.

use jalur_tests::conflist::ConfList;
use jalur_tests::network::first_ip;
use jalur_tests::{require_root, sh, CniCall, Netns, Network, Node};
use serde_json::json;

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn two_pods_on_one_node_ping_and_traceroute_shows_the_node_then_the_pod() {
    require_root();
    let net = Network::new("trace", 51, json!([[{"subnet": "10.244.51.0/24"}]]));
    let (a, b) = (Netns::new("a"), Netns::new("b"));
    let ra = net.add("trace-a", &a.path());
    let rb = net.add("trace-b", &b.path());
    let ip_b = first_ip(&rb);
    a.exec(&format!("ping -c 3 -W 2 {ip_b}"));
    let trace = a.exec(&format!("traceroute -n -q 1 -w 2 -m 5 {ip_b}"));
    let hops: Vec<&str> = trace
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(hops, [net.node.ip.as_str(), ip_b.as_str()], "{trace}");
    net.del("trace-a", &a.path(), Some(&ra));
    net.del("trace-b", &b.path(), Some(&rb));
    net.assert_clean();
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_pod_cannot_send_with_another_pods_address() {
    require_root();
    let net = Network::new("spoof", 52, json!([[{"subnet": "10.244.52.0/24"}]]));
    let (a, b, c) = (Netns::new("a"), Netns::new("b"), Netns::new("c"));
    let ra = net.add("spoof-a", &a.path());
    let rb = net.add("spoof-b", &b.path());
    let rc = net.add("spoof-c", &c.path());
    let (ip_b, ip_c) = (first_ip(&rb), first_ip(&rc));
    let before = b.echos_received();
    a.exec(&format!("ping -c 1 -W 2 {ip_b}"));
    assert_eq!(b.echos_received(), before + 1, "an honest ping arrives");

    // Pod a claims pod c's address and sends from it: the node drops it at a's host end.
    a.exec(&format!("ip addr add {ip_c}/32 dev eth0"));
    let before = b.echos_received();
    let _ = a.try_exec(&format!("ping -c 2 -W 1 -I {ip_c} {ip_b}"));
    assert_eq!(
        b.echos_received(),
        before,
        "a forged source reached the other pod"
    );

    // Control: with the node's reverse-path filter off, the same packets do arrive, so the
    // check above measures the filter and nothing else.
    let host_a = ra["interfaces"][0]["name"].as_str().unwrap();
    net.node
        .ns
        .exec(&format!("sysctl -qw net.ipv4.conf.{host_a}.rp_filter=0"));
    let _ = a.try_exec(&format!("ping -c 2 -W 1 -I {ip_c} {ip_b}"));
    assert!(
        b.echos_received() > before,
        "control: without the filter the packets arrive"
    );

    for (cid, ns, r) in [
        ("spoof-a", &a, &ra),
        ("spoof-b", &b, &rb),
        ("spoof-c", &c, &rc),
    ] {
        net.del(cid, &ns.path(), Some(r));
    }
    net.assert_clean();
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn portmap_chained_after_jalur_forwards_a_host_port() {
    require_root();
    let node = Node::new("pmap", 53);
    let data = tempfile::tempdir().unwrap();
    let list = ConfList {
        list: json!({
            "cniVersion": "1.0.0",
            "name": "jt-pmap",
            "plugins": [
                {"type": "jalur", "ipam": {"type": "jalur-ipam",
                    "ranges": [[{"subnet": "10.244.53.0/24"}]], "dataDir": data.path()}},
                {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
            ]
        }),
        runtime_config: json!({"portMappings": [
            {"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}
        ]}),
    };
    let pod = Netns::new("pod");
    let result = list.add(&node.ns.name, "pmap", &pod.path(), "eth0");
    assert_eq!(
        result["interfaces"][1]["name"], "eth0",
        "portmap passes jalur's result on"
    );
    // A server in the pod, a client on the underlay reaching the node's host port.
    sh(&format!(
        "ip netns exec {} timeout 20 socat -T5 TCP-LISTEN:80,reuseaddr SYSTEM:'echo hello-from-pod' >/dev/null 2>&1 &",
        pod.name
    ));
    let mut answer = String::new();
    for _ in 0..50 {
        let (ok, out) = node.underlay.try_exec(&format!(
            "timeout 3 socat -T2 - TCP:{}:18080,connect-timeout=2 </dev/null",
            node.ip
        ));
        if ok && out.contains("hello") {
            answer = out;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        answer.contains("hello-from-pod"),
        "host port not forwarded: {answer:?}"
    );
    list.del(&node.ns.name, "pmap", &pod.path(), "eth0", &result);
    assert!(node.host_ends().is_empty());
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn jalur_delegates_to_host_local_and_ptp_uses_jalur_ipam() {
    require_root();
    let node = Node::new("deleg", 54);
    let data = tempfile::tempdir().unwrap();
    // jalur with the reference host-local as its IPAM (exec'd from CNI_PATH).
    let conf = json!({"cniVersion": "1.0.0", "name": "jt-deleg", "type": "jalur",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.54.0/24"}]],
                 "dataDir": data.path().join("hl")}});
    let pod = Netns::new("pod");
    let r = CniCall::new("jalur", "ADD", "deleg", &pod.path(), "eth0")
        .run(&node.ns.name, &conf.to_string())
        .ok();
    let ip = first_ip(&r);
    assert!(ip.starts_with("10.244.54."), "{r}");
    assert!(
        data.path().join("hl/jt-deleg").join(&ip).exists(),
        "host-local booked it"
    );
    let mut del = conf.clone();
    del["prevResult"] = r.clone();
    CniCall::new("jalur", "DEL", "deleg", &pod.path(), "eth0")
        .run(&node.ns.name, &del.to_string())
        .ok();
    assert!(
        !data.path().join("hl/jt-deleg").join(&ip).exists(),
        "host-local released it"
    );
    assert!(node.host_ends().is_empty());

    // The reference ptp with jalur-ipam as its IPAM plugin.
    let conf = json!({"cniVersion": "1.0.0", "name": "jt-ptp", "type": "ptp", "ipMasq": false,
        "ipam": {"type": "jalur-ipam", "ranges": [[{"subnet": "10.244.55.0/24"}]],
                 "dataDir": data.path().join("jl")}});
    let pod2 = Netns::new("pod");
    let r = CniCall::new("ptp", "ADD", "ptp", &pod2.path(), "eth0")
        .run(&node.ns.name, &conf.to_string())
        .ok();
    assert_eq!(
        r["ips"][0]["address"].as_str().unwrap().split('/').nth(1),
        Some("24")
    );
    assert!(first_ip(&r).starts_with("10.244.55."), "{r}");
    let state = data.path().join("jl/jt-ptp/allocations.json");
    assert!(std::fs::read_to_string(&state).unwrap().contains("\"ptp\""));
    let mut del = conf.clone();
    del["prevResult"] = r;
    CniCall::new("ptp", "DEL", "ptp", &pod2.path(), "eth0")
        .run(&node.ns.name, &del.to_string())
        .ok();
    assert!(!std::fs::read_to_string(&state).unwrap().contains("\"ptp\""));
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn conflists_with_cni_versions_pick_the_highest_known() {
    require_root();
    let node = Node::new("vers", 56);
    let data = tempfile::tempdir().unwrap();
    let list = ConfList {
        list: json!({
            "cniVersion": "1.0.0",
            "cniVersions": ["0.4.0", "1.0.0", "1.1.0"],
            "name": "jt-vers",
            "plugins": [{"type": "jalur", "ipam": {"type": "jalur-ipam",
                "ranges": [[{"subnet": "10.244.56.0/24"}]], "dataDir": data.path()}}]
        }),
        runtime_config: json!({}),
    };
    let pod = Netns::new("pod");
    let result = list.add(&node.ns.name, "vers", &pod.path(), "eth0");
    assert_eq!(result["cniVersion"], "1.1.0");
    list.del(&node.ns.name, "vers", &pod.path(), "eth0", &result);
    assert!(node.host_ends().is_empty());
}
