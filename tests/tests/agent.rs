//! The agent's lifecycle in the simulated cluster: following the node list, repairing what
//! someone else changed, restarting without disturbing traffic, uninstalling cleanly.

use std::process::{Command, Stdio};
use std::time::Duration;

use jalur_tests::cluster::{wait_until, Cluster};
use jalur_tests::{require_root, sh};

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_node_removed_from_the_list_loses_its_routes_everywhere_and_comes_back() {
    require_root();
    let mut c = Cluster::new("follow", 64, "auto");
    c.start_agents();
    let (a, _, _) = c.add_pod(0, "a");
    let (_, ip_c, _) = c.add_pod(2, "c");
    c.pod(&a).exec(&format!("ping -c 1 -W 2 {ip_c}"));
    let cidr3 = "10.64.3.0/24";
    assert!(c.agent_routes(0).contains(cidr3) && c.agent_routes(1).contains(cidr3));

    c.write_nodes_file(&[0, 1]);
    for i in [0, 1] {
        assert!(
            wait_until(Duration::from_secs(5), || !c
                .agent_routes(i)
                .contains(cidr3)),
            "node{} kept a route to the removed node: {}",
            i + 1,
            c.agent_routes(i)
        );
    }
    // No peer needs the overlay now: its forwarding entries (and the device) are gone.
    let fdb = sh(&format!("bridge -n {} fdb show", c.nodes[0].ns.name));
    assert!(
        !fdb.contains(&c.nodes[2].ip),
        "forwarding entry left: {fdb}"
    );

    c.write_nodes_file(&[0, 1, 2]);
    assert!(wait_until(Duration::from_secs(5), || c
        .agent_routes(0)
        .contains(cidr3)));
    c.pod(&a).exec(&format!("ping -c 1 -W 2 {ip_c}"));
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_route_deleted_by_hand_is_back_within_the_resync_period() {
    require_root();
    let mut c = Cluster::new("repair", 65, "auto");
    c.start_agents();
    let node = c.nodes[0].ns.name.clone();
    sh(&format!("ip -n {node} route del 10.65.2.0/24"));
    sh(&format!("ip -n {node} route del 10.65.3.0/24"));
    // --resync-seconds 1 in the fixture.
    let wanted = [
        "10.65.2.0/24 via 192.168.65.3",
        "10.65.3.0/24 via 10.65.3.0 dev jalur.vxlan",
    ];
    assert!(
        c.routes_appear(0, &wanted, Duration::from_secs(4)),
        "not repaired: {}",
        c.agent_routes(0)
    );
    // A route that is not Jalur's is never touched.
    sh(&format!(
        "ip -n {node} route add 10.200.0.0/16 via 192.168.65.1"
    ));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(sh(&format!("ip -n {node} route show 10.200.0.0/16")).contains("via 192.168.65.1"));
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn restarting_the_agent_loses_no_ping_and_changes_no_route() {
    require_root();
    let mut c = Cluster::new("restart", 66, "auto");
    c.start_agents();
    let (a, _, _) = c.add_pod(0, "a");
    let (_, ip_b, _) = c.add_pod(1, "b");
    let (_, ip_c, _) = c.add_pod(2, "c");
    let before = c.agent_routes(0);
    // 80 pings 50 ms apart to a pod across nodes and one across the router, while node1's
    // agent is stopped and started again.
    let pings: Vec<_> = [&ip_b, &ip_c]
        .iter()
        .map(|dst| {
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &c.pod(&a).name,
                    "ping",
                    "-i",
                    "0.05",
                    "-c",
                    "80",
                    "-W",
                    "1",
                    dst,
                ])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    c.stop_agent(0);
    c.start_agent(0, &[]);
    c.wait_ready(0);
    for (ping, dst) in pings.into_iter().zip([&ip_b, &ip_c]) {
        let out = String::from_utf8_lossy(&ping.wait_with_output().unwrap().stdout).into_owned();
        assert!(
            out.contains("80 received, 0% packet loss"),
            "pings lost to {dst}: {out}"
        );
    }
    assert_eq!(c.agent_routes(0), before, "the restart changed routes");
    assert!(
        !c.agent_log(0).contains("synced"),
        "the restarted agent changed something:\n{}",
        c.agent_log(0)
    );
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn uninstall_removes_what_the_agent_made_and_nothing_else() {
    require_root();
    let mut c = Cluster::new("uninst", 67, "auto");
    c.start_agents();
    let (_, ip_a, _) = c.add_pod(0, "a");
    let node = c.nodes[0].ns.name.clone();
    sh(&format!(
        "ip -n {node} route add 10.201.0.0/16 via 192.168.67.1"
    ));
    c.stop_agent(0);
    let n = &c.nodes[0];
    sh(&format!(
        "ip netns exec {node} {} uninstall --cni-conf-dir {} --state-dir {}",
        jalur_tests::bin_dir().join("jalur-agent").display(),
        n.conf_dir.display(),
        n.state_dir.display()
    ));
    let routes = c.agent_routes(0);
    let (pods, others): (Vec<&str>, Vec<&str>) =
        routes.lines().partition(|l| l.contains(" dev jl"));
    assert!(others.is_empty(), "agent routes left: {others:?}");
    assert!(
        pods.iter().any(|l| l.starts_with(&ip_a)),
        "the pod's own route belongs to the plugin and stays"
    );
    assert!(!sh(&format!("ip -n {node} link show")).contains("jalur.vxlan"));
    assert!(!sh(&format!("ip netns exec {node} nft list tables")).contains("jalur"));
    assert!(!n.conf_dir.join("10-jalur.conflist").exists());
    assert!(!n.state_dir.join("ready").exists());
    assert!(sh(&format!("ip -n {node} route show 10.201.0.0/16")).contains("via"));
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn metrics_and_health_are_served() {
    require_root();
    let mut c = Cluster::new("metrics", 68, "auto");
    c.start_agents();
    let get = |path: &str| {
        c.nodes[0].ns.exec(&format!(
            "bash -c 'exec 3<>/dev/tcp/127.0.0.1/9644; printf \"GET {path} HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3'"
        ))
    };
    assert!(get("/healthz").contains(" 200 OK\r\n"));
    // The readiness mark is written inside the sync; the metrics follow right after it.
    assert!(wait_until(Duration::from_secs(5), || get("/readyz")
        .contains(" 200 OK\r\n")));
    let ready = get("/readyz");
    for part in ["routes", "overlay", "forwarding", "firewall", "cni-config"] {
        assert!(ready.contains(&format!("{part}: ok")), "{ready}");
    }
    let m = get("/metrics");
    assert!(m.contains("jalur_peers{mode=\"direct\"} 1"), "{m}");
    assert!(m.contains("jalur_peers{mode=\"vxlan\"} 1"), "{m}");
    assert!(m.contains("jalur_ready 1"), "{m}");
    assert!(m.contains("jalur_sync_errors_total 0"), "{m}");
    assert!(m.contains("jalur_part_ok{part=\"firewall\"} 1"), "{m}");
    assert!(
        m.contains("jalur_part_errors_total{part=\"routes\"} 0"),
        "{m}"
    );
}
