//! The sync against an in-memory node ([`FakeKernel`]): what it changes, what it leaves, and
//! how the kernel's failures are reported, part by part. No root, no namespace.

use super::*;
use crate::kernel::fake::{FakeKernel, ETH0};
use crate::plan::tests::{node, nodes};
use crate::plan::PeerRoute;

fn policy(mode: Mode, replace_foreign_routes: bool) -> Policy {
    Policy {
        mode,
        cluster_cidrs: vec![],
        replace_foreign_routes,
    }
}

/// Node `a` as the fake kernel holds it before the agent's first sync.
fn kernel() -> FakeKernel {
    FakeKernel::node("192.168.49.2/24")
}

fn sync_with(k: &mut FakeKernel, nodes: &[NodeInfo], policy: &Policy) -> Synced {
    sync(k, Some(&nodes[0]), nodes, policy).expect("the node can be looked at")
}

fn sync_auto(k: &mut FakeKernel, nodes: &[NodeInfo]) -> Synced {
    sync_with(k, nodes, &policy(Mode::Auto, false))
}

fn has_route(k: &FakeKernel, text: &str) -> bool {
    k.route_texts().iter().any(|r| r == text)
}

/// The routes of the main table to `dst`.
fn routes_to(k: &FakeKernel, dst: &str) -> Vec<String> {
    let dst: IpNet = dst.parse().unwrap();
    k.routes
        .iter()
        .zip(k.route_texts())
        .filter(|(r, _)| r.dst == dst)
        .map(|(_, t)| t)
        .collect()
}

fn all_ok(s: &Synced) -> bool {
    s.overlay.is_ok() && s.routes.is_ok() && s.forwarding.iter().all(|(_, r)| r.is_ok())
}

/// `DST via GW dev eth0 proto static`: a route someone else made.
fn static_route(dst: &str, gateway: &str) -> Route {
    Route {
        protocol: 4,
        ..Route::via(dst.parse().unwrap(), gateway.parse().unwrap(), ETH0)
    }
}

const BLACKHOLE: &str = "blackhole 10.244.1.0/24 proto 74";
const TO_B: &str = "10.244.2.0/24 via 192.168.49.3 dev eth0 proto 74";
const TO_C: &str = "10.244.3.0/24 via 10.244.3.0 dev jalur.vxlan onlink proto 74";

#[test]
fn a_node_already_right_changes_nothing() {
    // This node `a`; `b` on its subnet (routed directly); `c` on another (over the overlay).
    let mut k = kernel();
    let n = nodes();
    let first = sync_auto(&mut k, &n);
    assert!(all_ok(&first));
    assert_eq!(first.changes.routes_added, 3, "{:?}", k.changes);
    assert!(first.changes.overlay_changes > 0);
    for route in [BLACKHOLE, TO_B, TO_C] {
        assert!(has_route(&k, route), "{route}: {:?}", k.route_texts());
    }
    assert_eq!(k.sysctls["net/ipv4/ip_forward"], "1");
    assert_eq!(
        k.sysctls["net/ipv6/conf/all/forwarding"], "0",
        "no IPv6 pod CIDR"
    );
    assert_eq!(first.served(), [n[0].pod_cidrs[0]]);
    let device = k.link(VXLAN_DEVICE).expect("the overlay device").clone();
    assert_eq!(device.mtu, 1450);
    assert_eq!(
        k.addresses
            .iter()
            .filter(|(i, _, _)| *i == device.index)
            .count(),
        2,
        "the tunnel address and the kernel's link-local one: {:?}",
        k.addresses
    );
    assert_eq!(k.fdb.len(), 1);
    assert_eq!(k.neighbours.len(), 1);

    k.changes.clear();
    let second = sync_auto(&mut k, &n);
    assert!(all_ok(&second));
    assert_eq!(second.changes, Changes::default());
    assert!(k.changes.is_empty(), "{:?}", k.changes);
}

#[test]
fn a_stale_jalur_route_goes_and_foreign_and_pod_routes_stay() {
    let mut k = kernel();
    let host_end = k.add_link("jl0123456789abc");
    let pod = Route::direct("10.244.1.5/32".parse().unwrap(), host_end);
    let stale = Route::via(
        "10.244.9.0/24".parse().unwrap(),
        "192.168.49.9".parse().unwrap(),
        ETH0,
    );
    let foreign = static_route("10.99.0.0/16", "192.168.49.1");
    k.routes
        .extend([pod.clone(), stale.clone(), foreign.clone()]);
    let s = sync_auto(&mut k, &nodes());
    assert!(all_ok(&s));
    assert_eq!(s.changes.routes_removed, 1);
    assert!(!k.routes.contains(&stale), "{:?}", k.route_texts());
    assert!(k.routes.contains(&pod), "a pod's route is the plugin's");
    assert!(
        k.routes.contains(&foreign),
        "a route not Jalur's is left alone"
    );
    let deleted: Vec<&String> = k
        .changes
        .iter()
        .filter(|c| c.starts_with("ip route del"))
        .collect();
    assert_eq!(
        deleted,
        ["ip route del 10.244.9.0/24 via 192.168.49.9 dev 2 proto 74"]
    );
}

#[test]
fn a_changed_peer_route_is_replaced_in_place() {
    let mut k = kernel();
    let mut n = nodes();
    sync_auto(&mut k, &n);
    n[1].addresses = vec!["192.168.49.4".parse().unwrap()];
    k.changes.clear();
    let s = sync_auto(&mut k, &n);
    assert!(all_ok(&s));
    assert_eq!(s.changes.routes_added, 1);
    assert_eq!(
        routes_to(&k, "10.244.2.0/24"),
        ["10.244.2.0/24 via 192.168.49.4 dev eth0 proto 74"]
    );
    // Replaced, never deleted and added again: the peer's pods stay reachable throughout.
    assert_eq!(
        k.changes,
        ["ip route replace 10.244.2.0/24 via 192.168.49.4 dev 2 proto 74"]
    );

    // Moved off this node's subnet: now through the overlay, with its forwarding entry.
    n[1].addresses = vec!["192.168.50.5".parse().unwrap()];
    let s = sync_auto(&mut k, &n);
    assert!(all_ok(&s));
    assert_eq!(
        routes_to(&k, "10.244.2.0/24"),
        ["10.244.2.0/24 via 10.244.2.0 dev jalur.vxlan onlink proto 74"]
    );
    assert_eq!(k.fdb.len(), 2);
}

#[test]
fn forwarding_entries_and_neighbours_follow_the_peers() {
    let vxlan = policy(Mode::Vxlan, false);
    let mut k = kernel();
    let mut n = nodes();
    sync_with(&mut k, &n, &vxlan);
    let dsts = |k: &FakeKernel| -> Vec<String> {
        let mut d: Vec<String> = k.fdb.iter().map(|(_, e)| e.dst.to_string()).collect();
        d.sort();
        d
    };
    let neighbours = |k: &FakeKernel| -> Vec<String> {
        let mut d: Vec<String> = k.neighbours.iter().map(|n| n.ip.to_string()).collect();
        d.sort();
        d
    };
    assert_eq!(dsts(&k), ["192.168.49.3", "192.168.50.4"]);
    assert_eq!(neighbours(&k), ["10.244.2.0", "10.244.3.0"]);
    let index = k.link(VXLAN_DEVICE).unwrap().index;

    // c leaves, d joins.
    n[2] = node("d", "192.168.50.6", "10.244.4.0/24");
    k.changes.clear();
    let s = sync_with(&mut k, &n, &vxlan);
    assert!(all_ok(&s));
    assert_eq!(dsts(&k), ["192.168.49.3", "192.168.50.6"]);
    assert_eq!(neighbours(&k), ["10.244.2.0", "10.244.4.0"]);
    assert!(k.changes.contains(&format!(
        "bridge fdb del 0e:4a:c0:a8:32:04 dev {index} dst 192.168.50.4 self"
    )));
    assert!(k.changes.contains(&format!(
        "bridge fdb append 0e:4a:c0:a8:32:06 dev {index} dst 192.168.50.6 self permanent"
    )));
    assert!(routes_to(&k, "10.244.3.0/24").is_empty());
    assert_eq!(routes_to(&k, "10.244.4.0/24").len(), 1);
    assert_eq!(s.changes.routes_added, 1);
    assert_eq!(s.changes.routes_removed, 1);
    assert_eq!(
        s.changes.overlay_changes, 4,
        "an entry and a neighbour each way"
    );

    // In auto mode with no peer beyond the subnet, the overlay goes, with all it held.
    let s = sync_auto(&mut k, &n[..2]);
    assert!(all_ok(&s));
    assert!(k.link(VXLAN_DEVICE).is_none());
    assert!(k.fdb.is_empty() && k.neighbours.is_empty());
    assert_eq!(routes_to(&k, "10.244.2.0/24"), [TO_B]);
}

#[test]
fn the_kernels_failures_are_reported_per_part_and_the_other_parts_go_on() {
    let n = nodes();

    // No overlay device: the overlay fails, the rest is made (c gets no route without it).
    let mut k = kernel();
    k.fail("ip link add jalur.vxlan");
    let s = sync_auto(&mut k, &n);
    let err = s.overlay.as_ref().unwrap_err().to_string();
    assert!(
        err.starts_with("ip link add jalur.vxlan type vxlan id 4097 local 192.168.49.2 dev 2")
            && err.contains("Operation not permitted"),
        "{err}"
    );
    assert!(s.routes.is_ok() && s.forwarding.iter().all(|(_, r)| r.is_ok()));
    assert!(has_route(&k, BLACKHOLE) && has_route(&k, TO_B));
    assert!(routes_to(&k, "10.244.3.0/24").is_empty());
    assert!(!s.served().is_empty(), "the overlay is not what pods need");
    k.heal();
    let s = sync_auto(&mut k, &n);
    assert!(all_ok(&s));
    assert!(has_route(&k, TO_C), "retried at the next sync");

    // One route refused: counted and reported with the first failure; the others are made.
    let mut k = kernel();
    k.fail("ip route replace 10.244.2.0/24");
    let s = sync_auto(&mut k, &n);
    assert_eq!(
        s.routes.as_ref().unwrap_err().to_string(),
        format!(
            "1 route change(s) failed, the first: ip route replace 10.244.2.0/24 via \
             192.168.49.3 dev 2 proto 74: {}",
            std::io::Error::from_raw_os_error(nix::errno::Errno::EPERM as i32)
        )
    );
    assert!(s.overlay.is_ok());
    assert!(has_route(&k, BLACKHOLE) && has_route(&k, TO_C));
    assert!(routes_to(&k, "10.244.2.0/24").is_empty());

    // Forwarding cannot be turned on: that family serves no pods.
    let mut k = kernel();
    k.fail("sysctl -w net/ipv4/ip_forward");
    let s = sync_auto(&mut k, &n);
    let [(false, Err(e))] = s.forwarding.as_slice() else {
        panic!("{:?}", s.forwarding);
    };
    assert!(
        e.to_string()
            .starts_with("cannot set net/ipv4/ip_forward to 1: sysctl -w net/ipv4/ip_forward=1"),
        "{e}"
    );
    assert!(s.served().is_empty());
    assert!(s.routes.is_ok() && s.overlay.is_ok());

    // The node cannot be looked at: the whole sync fails, and nothing is changed.
    let mut k = kernel();
    k.fail("ip addr show");
    let err = sync(&mut k, Some(&n[0]), &n, &policy(Mode::Auto, false)).err();
    assert!(
        matches!(err, Some(SyncError::Net(ref e)) if e.op == "ip addr show"),
        "{err:?}"
    );
    assert!(k.changes.is_empty(), "{:?}", k.changes);
}

#[test]
fn a_foreign_route_to_a_peer_is_left_or_replaced_as_the_policy_says() {
    let foreign = static_route("10.244.2.0/24", "192.168.49.1");
    let n = nodes();

    let mut k = kernel();
    k.routes.push(foreign.clone());
    let s = sync_auto(&mut k, &n);
    assert!(matches!(&s.plan.peers[0], (b, PeerRoute::Rejected(_)) if b == "b"));
    assert!(s.changes.replaced.is_empty());
    assert_eq!(routes_to(&k, "10.244.2.0/24").len(), 1);
    assert!(k.routes.contains(&foreign), "left as it is");

    let replace = policy(Mode::Auto, true);
    let s = sync_with(&mut k, &n, &replace);
    assert_eq!(routes_to(&k, "10.244.2.0/24"), [TO_B]);
    let [t] = s.changes.replaced.as_slice() else {
        panic!("{:?}", s.changes.replaced);
    };
    assert_eq!(t.peer, "b");
    assert_eq!(t.text, TO_B);
    assert_eq!(
        t.foreign.text,
        "10.244.2.0/24 via 192.168.49.1 dev eth0 proto static"
    );
    let s = sync_with(&mut k, &n, &replace);
    assert!(s.changes.replaced.is_empty(), "replaced once");
}

#[test]
fn remove_all_takes_only_what_is_jalurs() {
    let mut k = kernel();
    let host_end = k.add_link("jl0123456789abc");
    let pod = Route::direct("10.244.1.5/32".parse().unwrap(), host_end);
    k.routes.push(pod.clone());
    sync_auto(&mut k, &nodes());
    let before = k.route_texts().len();
    assert_eq!(
        remove_all(&mut k).unwrap(),
        4,
        "three routes and the device"
    );
    assert_eq!(k.route_texts().len(), before - 3);
    assert!(k.link(VXLAN_DEVICE).is_none());
    assert!(k.routes.contains(&pod));
    assert!(owned_routes(&mut k).unwrap().is_empty());
    assert_eq!(remove_all(&mut k).unwrap(), 0, "nothing left to remove");
}
