use super::*;
use crate::claims::check;
use crate::plan::{plan, Mode, Policy};
use ipnet::IpNet;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn node(name: &str, ip: &str, cidr: &str, created: i64) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        addresses: vec![ip.parse().unwrap()],
        pod_cidrs: vec![net(cidr)],
        created: Some(created),
    }
}

fn underlay() -> Underlay {
    Underlay {
        index: 2,
        name: "eth0".into(),
        mtu: 1500,
        prefixes: vec![net("192.168.10.0/24")],
    }
}

fn nodes() -> Vec<NodeInfo> {
    vec![
        node("a", "192.168.10.2", "10.244.1.0/24", 1),
        node("b", "192.168.10.3", "10.244.2.0/24", 2),
    ]
}

fn local(foreign: ForeignRoute) -> Local {
    Local {
        addresses: vec!["192.168.10.2".parse().unwrap()],
        subnets: vec![net("192.168.10.0/24")],
        foreign_routes: vec![foreign],
    }
}

fn static_route(dst: &str, metric: u32) -> ForeignRoute {
    ForeignRoute {
        dst: net(dst),
        metric,
        text: format!("{dst} via 192.168.10.1 dev eth0 proto static"),
    }
}

fn policy(replace: bool) -> Policy {
    Policy {
        mode: Mode::Auto,
        cluster_cidrs: vec![],
        replace_foreign_routes: replace,
    }
}

fn rejection(p: &crate::plan::Plan) -> &Rejection {
    match &p.peers[0].1 {
        crate::plan::PeerRoute::Rejected(r) => r,
        other => panic!("not rejected: {other:?}"),
    }
}

#[test]
fn by_default_the_rejection_names_both_routes_and_nothing_is_replaced() {
    let n = nodes();
    let l = local(static_route("10.244.2.0/24", 0));
    let p = plan(Some(&n[0]), &n, &underlay(), &l, &policy(false), None);
    let r = rejection(&p);
    assert_eq!(r.rule, Rule::ForeignRoute);
    assert!(
        r.detail
            .contains("`10.244.2.0/24 via 192.168.10.1 dev eth0 proto static`"),
        "{r}"
    );
    assert!(
        r.detail
            .contains("`10.244.2.0/24 via 192.168.10.3 dev eth0 proto 74`"),
        "{r}"
    );
    assert!(
        r.detail
            .contains("--replace-foreign-routes would replace it"),
        "{r}"
    );
    assert!(p.takeovers.is_empty());
    assert!(!p.routes.iter().any(|r| r.dst == net("10.244.2.0/24")));
}

#[test]
fn an_overlay_peer_names_the_overlay_route() {
    let mut n = nodes();
    n[1].addresses = vec!["192.168.20.3".parse().unwrap()];
    let l = local(static_route("10.244.2.0/24", 0));
    let p = plan(Some(&n[0]), &n, &underlay(), &l, &policy(false), None);
    let r = rejection(&p);
    assert!(
        r.detail
            .contains("`10.244.2.0/24 via 10.244.2.0 dev jalur.vxlan onlink proto 74`"),
        "{r}"
    );
}

#[test]
fn with_the_flag_an_exact_match_is_taken_over() {
    let n = nodes();
    let l = local(static_route("10.244.2.0/24", 0));
    let p = plan(Some(&n[0]), &n, &underlay(), &l, &policy(true), None);
    assert_eq!(p.peers[0].1, crate::plan::PeerRoute::Direct);
    assert_eq!(p.takeovers.len(), 1);
    let t = &p.takeovers[0];
    assert_eq!(
        (t.peer.as_str(), t.foreign.dst),
        ("b", net("10.244.2.0/24"))
    );
    assert_eq!(t.text, "10.244.2.0/24 via 192.168.10.3 dev eth0 proto 74");
    assert!(p.routes.contains(&t.route));
}

#[test]
fn broader_narrower_or_other_metric_routes_are_never_replaced() {
    let n = nodes();
    for foreign in [
        static_route("10.244.2.0/25", 0),
        static_route("10.244.2.0/23", 0),
        static_route("10.244.2.0/24", 100),
    ] {
        let l = local(foreign.clone());
        let p = plan(Some(&n[0]), &n, &underlay(), &l, &policy(true), None);
        let r = rejection(&p);
        assert_eq!(r.rule, Rule::ForeignRoute, "{foreign:?}");
        assert!(r.detail.ends_with("(left as it is)"), "{r}");
        assert!(p.takeovers.is_empty(), "{foreign:?}");
    }
}

#[test]
fn a_peer_rejected_for_another_rule_takes_nothing_over() {
    // b is older than c and claims the same CIDR: c is rejected, b routed and takes over.
    let mut n = nodes();
    n.push(node("c", "192.168.10.4", "10.244.2.0/24", 3));
    let l = local(static_route("10.244.2.0/24", 0));
    let (kept, taken) = exempt(&n[0], &n, &l);
    assert!(kept.foreign_routes.is_empty());
    assert_eq!(taken[0].0, "b");
    let v = check(&n[0], &n, &kept, &[]);
    assert_eq!(v.rejected["c"].rule, Rule::OlderNode);
    // Only the own node's CIDR matching: never exempted (its blackhole is not a peer's).
    let own = local(static_route("10.244.1.0/24", 0));
    assert!(exempt(&n[0], &n, &own).1.is_empty());
}

#[test]
fn ipv6_default_metric_is_1024() {
    let f = ForeignRoute::to(net("fd00:1:2::/64"));
    assert_eq!(f.metric, 1024);
    assert!(f.replaceable_by(&net("fd00:1:2::/64")));
    assert!(!f.replaceable_by(&net("fd00:1:2::/65")));
}
