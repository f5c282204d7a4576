//! Jalur deletes or replaces a link only when its alias names the attachment at hand: a
//! foreign link holding a host end's derived name, or the host end of another attachment
//! whose name collides, is left alone by ADD (which fails, naming it) and by DEL.

use jalur_cni_plugin::attachment::{alias, host_ifname, COLLIDING_IDS};
use jalur_tests::{require_root, CniCall, Netns, Network};
use serde_json::json;

/// The node's view of one link: `ip -d link show` (kind and alias included).
fn link_details(net: &Network, name: &str) -> String {
    net.node.ns.exec(&format!("ip -d link show {name}"))
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_foreign_link_holding_the_derived_name_is_left_alone_by_add_and_del() {
    require_root();
    let net = Network::new("foreign", 51, json!([[{"subnet": "10.244.51.0/24"}]]));
    let cases = [
        ("foreign-plain", "type veth peer name fpeer2", None),
        (
            "foreign-veth",
            "type veth peer name fpeer0",
            Some("owned-by-someone-else"),
        ),
        // A Jalur-looking alias, but of another network: still not this attachment's.
        (
            "foreign-net",
            "type veth peer name fpeer1",
            Some("jalur/other-network/eth0/foreign-net"),
        ),
    ];
    for (cid, kind, owner) in cases {
        let name = host_ifname(cid, "eth0");
        net.node.ns.exec(&format!("ip link add {name} {kind}"));
        if let Some(owner) = owner {
            net.node
                .ns
                .exec(&format!("ip link set {name} alias {owner}"));
        }
        let before = link_details(&net, &name);
        let pod = Netns::new("pod");
        let msg = net
            .call("ADD", cid, &pod.path(), "eth0", &net.stdin("1.1.0", None))
            .err(106);
        assert!(msg.contains(&name), "{cid}: {msg}");
        match owner {
            Some(owner) => assert!(msg.contains(owner), "{cid}: {msg}"),
            None => assert!(msg.contains("no ifalias"), "{cid}: {msg}"),
        }
        assert_eq!(pod.links(), vec!["lo".to_owned()], "{cid}: pod touched");
        assert_eq!(net.allocations(), Vec::new(), "{cid}: address left booked");
        // The runtime follows a failed ADD with DEL; a DEL of a container never added
        // comes the same way. Neither touches the link.
        net.del(cid, &pod.path(), None);
        net.del(cid, "", None);
        assert_eq!(link_details(&net, &name), before, "{cid}: link changed");
        net.node.ns.exec(&format!("ip link del {name}"));
    }
    net.assert_clean();
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_del_of_a_colliding_attachment_leaves_the_other_pods_host_end_alone() {
    require_root();
    let [first, second] = COLLIDING_IDS;
    let name = host_ifname(first, "eth0");
    assert_eq!(name, host_ifname(second, "eth0"), "the pair must collide");
    let net = Network::new("collide", 52, json!([[{"subnet": "10.244.52.0/24"}]]));
    let (a, b) = (Netns::new("a"), Netns::new("b"));
    let ra = net.add(first, &a.path());

    // The second pod cannot have the name: a clear error naming the first pod's host end,
    // and nothing of the second left behind.
    let msg = net
        .call("ADD", second, &b.path(), "eth0", &net.stdin("1.1.0", None))
        .err(106);
    assert!(
        msg.contains(&name) && msg.contains(&alias(&net.name, first, "eth0")),
        "{msg}"
    );
    assert_eq!(b.links(), vec!["lo".to_owned()]);
    // The runtime then sends DEL for the second pod: the first keeps everything.
    net.del(second, &b.path(), None);
    net.del(second, "", None);
    assert_eq!(net.node.host_ends(), vec![name.clone()]);
    let booked = net.allocations();
    assert_eq!(booked.len(), 1, "{booked:?}");
    assert_eq!(booked[0].0, first);
    CniCall::new("jalur", "CHECK", first, &a.path(), "eth0")
        .run(&net.node.ns.name, &net.stdin("1.1.0", Some(&ra)))
        .ok();

    net.del(first, &a.path(), Some(&ra));
    net.assert_clean();
    // With the first pod gone, the second one can be added and removed.
    let rb = net.add(second, &b.path());
    net.del(second, &b.path(), Some(&rb));
    net.assert_clean();
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn gc_removes_only_host_ends_whose_alias_names_this_network() {
    require_root();
    let net = Network::new("gcown", 53, json!([[{"subnet": "10.244.53.0/24"}]]));
    let pod = Netns::new("pod");
    let kept = net.add("gc-kept", &pod.path());
    // A stale attachment whose host end is gone, its derived name now held by someone
    // else's link.
    let other = Netns::new("other");
    net.add("gc-stale", &other.path());
    let foreign = host_ifname("gc-stale", "eth0");
    net.node.ns.exec(&format!("ip link del {foreign}"));
    net.node.ns.exec(&format!(
        "ip link add {foreign} type veth peer name gcpeer0"
    ));
    let mut gc = net.config.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "gc-kept", "ifname": "eth0"}]);
    // GC releases gc-stale's address but does not remove the foreign link.
    CniCall::new("jalur", "GC", "", "", "")
        .run(&net.node.ns.name, &gc.to_string())
        .ok();
    assert!(
        net.node.ns.links().contains(&foreign),
        "{foreign} gone: {:?}",
        net.node.ns.links()
    );
    assert_eq!(net.allocations().len(), 1);
    net.node.ns.exec(&format!("ip link del {foreign}"));
    net.del("gc-kept", &pod.path(), Some(&kept));
    net.assert_clean();
}
