//! ADD / CHECK / DEL as runtimes drive them, for every CNI version, against the real kernel.

use jalur_tests::network::first_ip;
use jalur_tests::{require_root, Netns, Network};
use serde_json::json;

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn add_check_del_in_every_version_uses_that_versions_result_format() {
    require_root();
    let net = Network::new("life", 11, json!([[{"subnet": "10.244.11.0/24"}]]));
    for (i, version) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
        .iter()
        .enumerate()
    {
        let pod = Netns::new("pod");
        let cid = format!("life-{i}");
        let result = net
            .call("ADD", &cid, &pod.path(), "eth0", &net.stdin(version, None))
            .ok();
        assert_eq!(result["cniVersion"], *version);
        let ip = &result["ips"][0];
        assert!(ip["address"].as_str().unwrap().ends_with("/32"), "{result}");
        assert_eq!(ip["gateway"], "169.254.1.1");
        assert_eq!(ip["interface"], 1);
        assert_eq!(result["interfaces"][1]["name"], "eth0");
        assert_eq!(result["interfaces"][1]["sandbox"], pod.path());
        assert_eq!(result["routes"][0]["dst"], "0.0.0.0/0");
        if version.starts_with("0.") {
            assert_eq!(ip["version"], "4", "0.x results carry the IP version");
        } else {
            assert!(
                ip.get("version").is_none(),
                "1.x results have no IP version"
            );
        }
        assert_eq!(
            result["interfaces"][1].get("mtu").is_some(),
            *version == "1.1.0",
            "interface mtu exists only in 1.1.0"
        );

        // The kernel holds what the result says.
        let addr = first_ip(&result);
        let pod_addrs = pod.exec("ip -o addr show dev eth0");
        assert!(
            pod_addrs.contains(&format!("inet {addr}/32")),
            "{pod_addrs}"
        );
        let pod_routes = pod.exec("ip route show");
        assert!(
            pod_routes.contains("default via 169.254.1.1 dev eth0"),
            "{pod_routes}"
        );
        assert!(pod
            .exec("ip neigh show 169.254.1.1")
            .contains("ee:ee:ee:ee:ee:ee PERMANENT"));
        let host_end = result["interfaces"][0]["name"].as_str().unwrap();
        let node_routes = net.node.ns.exec("ip route show proto 74");
        assert!(
            node_routes.contains(&format!("{addr} dev {host_end}")),
            "{node_routes}"
        );

        let check = net.call(
            "CHECK",
            &cid,
            &pod.path(),
            "eth0",
            &net.stdin(version, Some(&result)),
        );
        if *version == "0.3.0" || *version == "0.3.1" {
            check.err(1); // CHECK does not exist before 0.4.0
        } else {
            assert_eq!(
                check.ok(),
                serde_json::Value::Null,
                "CHECK prints nothing on success"
            );
        }
        net.call(
            "DEL",
            &cid,
            &pod.path(),
            "eth0",
            &net.stdin(version, Some(&result)),
        )
        .ok();
        assert!(!pod.links().contains(&"eth0".to_owned()), "pod end removed");
    }
    net.assert_clean();
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn check_reports_what_changed() {
    require_root();
    let net = Network::new("chk", 12, json!([[{"subnet": "10.244.12.0/24"}]]));
    let pod = Netns::new("pod");
    let result = net.add("chk", &pod.path());
    let check = || {
        net.call(
            "CHECK",
            "chk",
            &pod.path(),
            "eth0",
            &net.stdin("1.1.0", Some(&result)),
        )
    };
    check().ok();
    pod.exec("ip route del default");
    let msg = check().err(104);
    assert!(msg.contains("0.0.0.0/0"), "{msg}");
    net.del("chk", &pod.path(), Some(&result));
    net.assert_clean();
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn del_is_idempotent_and_needs_neither_netns_nor_prev_result() {
    require_root();
    let net = Network::new("del", 13, json!([[{"subnet": "10.244.13.0/24"}]]));

    // DEL twice.
    let pod = Netns::new("pod");
    let result = net.add("twice", &pod.path());
    net.del("twice", &pod.path(), Some(&result));
    net.del("twice", &pod.path(), Some(&result));

    // DEL after the netns was deleted (the pod end died with it).
    let gone = Netns::new("gone");
    net.add("gone", &gone.path());
    let path = gone.path();
    drop(gone);
    net.del("gone", &path, None);

    // DEL with an empty CNI_NETNS and no prevResult, as containerd's second DEL.
    let pod2 = Netns::new("pod");
    net.add("bare", &pod2.path());
    net.del("bare", "", None);

    // DEL of something that never existed.
    net.del("never", "", None);
    net.assert_clean();
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn repeated_ipam_add_returns_the_same_address_and_del_then_add_works() {
    require_root();
    let net = Network::new("again", 14, json!([[{"subnet": "10.244.14.0/24"}]]));
    // The IPAM plugin on its own: a repeated ADD for one (container, ifname) is the same
    // address, another pair gets another.
    let stdin = net.stdin("1.1.0", None);
    let sandbox = Netns::new("ipam");
    let ipam = |cid: &str| {
        jalur_tests::CniCall::new("jalur-ipam", "ADD", cid, &sandbox.path(), "eth0")
            .run(&net.node.ns.name, &stdin)
            .ok()
    };
    let first = ipam("again");
    assert_eq!(ipam("again")["ips"], first["ips"]);
    assert_ne!(ipam("other")["ips"], first["ips"]);
    for cid in ["again", "other"] {
        jalur_tests::CniCall::new("jalur-ipam", "DEL", cid, "", "eth0")
            .run(&net.node.ns.name, &stdin)
            .ok();
    }
    // podman restart: DEL then ADD with the same container id.
    let pod = Netns::new("pod");
    let r1 = net.add("again", &pod.path());
    net.del("again", &pod.path(), Some(&r1));
    let r2 = net.add("again", &pod.path());
    net.del("again", &pod.path(), Some(&r2));
    net.assert_clean();
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn dual_stack_pods_get_one_address_per_family_and_reach_each_other() {
    require_root();
    let net = Network::new(
        "dual",
        15,
        json!([[{"subnet": "10.244.15.0/24"}], [{"subnet": "fd10:244:15::/64"}]]),
    );
    let (a, b) = (Netns::new("a"), Netns::new("b"));
    let ra = net.add("dual-a", &a.path());
    let rb = net.add("dual-b", &b.path());
    let ips: Vec<&str> = rb["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap())
        .collect();
    assert_eq!(ips.len(), 2, "{rb}");
    assert!(
        ips[0].ends_with("/32") && ips[1].ends_with("/128"),
        "{ips:?}"
    );
    let routes = rb["routes"].to_string();
    assert!(
        routes.contains("::/0") && routes.contains("fe80::1"),
        "{routes}"
    );
    let b6 = ips[1].split('/').next().unwrap();
    let b4 = ips[0].split('/').next().unwrap();
    a.exec(&format!("ping -c 2 -W 2 {b4}"));
    a.exec(&format!("ping -6 -c 2 -W 2 {b6}"));
    net.del("dual-a", &a.path(), Some(&ra));
    net.del("dual-b", &b.path(), Some(&rb));
    net.assert_clean();
}
