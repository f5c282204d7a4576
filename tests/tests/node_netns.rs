//! `CNI_NETNS` naming the namespace the plugin runs in (the node's) is refused: code 4, and
//! the node's links, addresses and routes are exactly as before. The "node" here is a
//! namespace the test made; the real root namespace is never touched.

use jalur_tests::{require_root, Network};
use serde_json::json;

fn node_state(net: &Network) -> String {
    let ns = &net.node.ns;
    [
        "ip -o link show",
        "ip -o addr show",
        "ip route show",
        "ip -6 route show",
    ]
    .iter()
    .map(|c| ns.exec(c))
    .collect::<Vec<_>>()
    .join("\n")
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn add_into_the_plugins_own_namespace_is_refused_and_changes_nothing() {
    require_root();
    let net = Network::new("self", 54, json!([[{"subnet": "10.244.54.0/24"}]]));
    let before = node_state(&net);
    // The same namespace, by its /run/netns name and by a /proc path.
    for netns in [net.node.ns.path(), "/proc/self/ns/net".to_owned()] {
        let out = net.call("ADD", "selfish", &netns, "eth0", &net.stdin("1.1.0", None));
        let msg = out.err(4);
        assert!(
            msg.contains("CNI_NETNS") && msg.contains("jalur itself runs in"),
            "{msg}"
        );
        assert_eq!(node_state(&net), before, "{netns}: the node changed");
        net.assert_clean();
        // DEL succeeds and still changes nothing.
        net.del("selfish", &netns, None);
        assert_eq!(node_state(&net), before, "{netns}: DEL changed the node");
    }
}
