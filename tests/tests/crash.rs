//! A plugin killed with SIGKILL anywhere inside ADD leaves nothing that DEL and GC cannot
//! clean: no address stays booked, no veth stays behind.

use jalur_tests::{require_root, require_test_hooks, CniCall, Netns, Network};
use serde_json::json;

const POINTS: [&str; 5] = [
    "after-ipam",
    "after-veth",
    "after-move",
    "after-pod-side",
    "before-result",
];

fn killed_add(net: &Network, cid: &str, pod: &Netns, point: &str) {
    let mut call = CniCall::new("jalur", "ADD", cid, &pod.path(), "eth0");
    call.extra_env
        .push((jalur_cni_plugin::testhook::VAR.into(), point.into()));
    let out = call.run(&net.node.ns.name, &net.stdin("1.1.0", None));
    assert_eq!(out.code, -1, "{point}: the plugin was not killed: {out:?}");
    assert!(
        out.stdout.is_empty(),
        "{point}: a killed plugin printed {:?}",
        out.stdout
    );
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn sigkill_inside_add_then_del_leaves_nothing() {
    require_root();
    require_test_hooks();
    let net = Network::new("kdel", 31, json!([[{"subnet": "10.244.31.0/24"}]]));
    for point in POINTS {
        let pod = Netns::new("pod");
        let cid = format!("kill-{point}");
        killed_add(&net, &cid, &pod, point);
        assert_eq!(
            net.allocations().len(),
            1,
            "{point}: the address was booked before the kill"
        );
        // The runtime saw a failed ADD and calls DEL, as podman, ctr and CRI all do.
        net.del(&cid, &pod.path(), None);
        assert_eq!(pod.links(), vec!["lo".to_owned()], "{point}: pod end left");
        net.assert_clean();
        // And the pod can be added again afterwards.
        let result = net.add(&cid, &pod.path());
        net.del(&cid, &pod.path(), Some(&result));
    }
    net.assert_clean();
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn sigkill_inside_add_then_gc_leaves_nothing_but_the_valid_pods() {
    require_root();
    require_test_hooks();
    let net = Network::new("kgc", 32, json!([[{"subnet": "10.244.32.0/24"}]]));
    let keeper = Netns::new("keep");
    let kept = net.add("keeper", &keeper.path());
    let mut pods = Vec::new();
    for point in POINTS {
        let pod = Netns::new("pod");
        killed_add(&net, &format!("gc-{point}"), &pod, point);
        pods.push(pod);
    }
    assert_eq!(net.allocations().len(), 1 + POINTS.len());
    let mut gc = net.config.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keeper", "ifname": "eth0"}]);
    CniCall::new("jalur", "GC", "", "", "")
        .run(&net.node.ns.name, &gc.to_string())
        .ok();
    let left = net.allocations();
    assert_eq!(
        left.len(),
        1,
        "only the valid pod keeps its address: {left:?}"
    );
    assert_eq!(left[0].0, "keeper");
    assert_eq!(
        net.node.host_ends(),
        vec![kept["interfaces"][0]["name"].as_str().unwrap().to_owned()]
    );
    net.del("keeper", &keeper.path(), Some(&kept));
    net.assert_clean();
}
