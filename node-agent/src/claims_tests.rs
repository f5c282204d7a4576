//! Unit tests of the claim rules (no root, no kernel): each case of issue 13 and the
//! ordering between Nodes.

use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn node(name: &str, ips: &[&str], cidrs: &[&str], created: Option<i64>) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        addresses: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
        pod_cidrs: cidrs.iter().map(|c| net(c)).collect(),
        created,
    }
}

/// Node `a`: pod CIDR 10.250.1.0/24, underlay 192.168.77.0/24 (address .2), the default
/// route via .1, and a foreign route 10.200.0.0/16 — the set-up of the issue.
fn me() -> NodeInfo {
    node("a", &["192.168.77.2"], &["10.250.1.0/24"], Some(100))
}

fn local() -> Local {
    Local {
        addresses: vec![
            "192.168.77.2".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        ],
        subnets: vec![net("192.168.77.0/24"), net("127.0.0.0/8")],
        foreign_routes: ["0.0.0.0/0", "::/0", "192.168.77.0/24", "10.200.0.0/16"]
            .into_iter()
            .map(|r| ForeignRoute::to(net(r)))
            .collect(),
    }
}

fn cluster() -> Vec<IpNet> {
    vec![net("10.250.0.0/16")]
}

/// The rule a lone peer `p` (claiming `cidr` from `ip`) breaks, if any.
fn rule_of(ip: &str, cidr: &str, cluster: &[IpNet]) -> Option<Rule> {
    let nodes = vec![me(), node("p", &[ip], &[cidr], Some(200))];
    let v = check(&nodes[0], &nodes, &local(), cluster);
    v.rejected.get("p").map(|r| r.rule)
}

#[test]
fn a_sound_peer_is_believed() {
    assert_eq!(rule_of("192.168.77.3", "10.250.2.0/24", &cluster()), None);
    assert_eq!(rule_of("192.168.78.3", "10.250.2.0/24", &[]), None);
}

#[test]
fn a_default_route_or_an_over_broad_prefix_is_never_a_pod_subnet() {
    for c in [cluster(), vec![]] {
        assert_eq!(
            rule_of("192.168.77.3", "0.0.0.0/0", &c),
            Some(Rule::TooBroad)
        );
        assert_eq!(rule_of("192.168.77.3", "::/0", &c), Some(Rule::TooBroad));
        assert_eq!(
            rule_of("192.168.77.3", "10.0.0.0/8", &c),
            Some(Rule::TooBroad)
        );
        assert_eq!(
            rule_of("192.168.77.3", "fd00::/47", &c),
            Some(Rule::TooBroad)
        );
    }
    assert_eq!(rule_of("192.168.77.3", "10.251.0.0/16", &[]), None);
    assert_eq!(rule_of("192.168.77.3", "fd00:1::/48", &[]), None);
}

#[test]
fn reserved_ranges_are_never_pod_subnets() {
    for cidr in [
        "127.0.0.0/16",
        "169.254.1.0/24",
        "224.1.0.0/16",
        "fe80::/64",
        "ff02::/64",
    ] {
        assert_eq!(
            rule_of("192.168.77.3", cidr, &[]),
            Some(Rule::ReservedRange),
            "{cidr}"
        );
    }
}

#[test]
fn a_slice_of_the_underlay_or_a_prefix_holding_a_node_address_is_rejected() {
    let slice = rule_of("192.168.77.3", "192.168.77.0/25", &[]);
    assert_eq!(slice, Some(Rule::NodeAddress), "holds 192.168.77.2");
    let upper = rule_of("192.168.77.3", "192.168.77.128/25", &cluster());
    assert_eq!(upper, Some(Rule::NodeSubnet));
    let wider = rule_of("192.168.77.3", "192.168.0.0/16", &[]);
    assert_eq!(wider, Some(Rule::NodeAddress));
}

#[test]
fn a_prefix_outside_the_cluster_cidr_is_rejected_per_family() {
    let outside = rule_of("192.168.77.3", "172.31.9.0/24", &cluster());
    assert_eq!(outside, Some(Rule::OutsideClusterCidr));
    // Without --cluster-cidr (or none of that family), the other rules decide.
    assert_eq!(rule_of("192.168.77.3", "172.31.9.0/24", &[]), None);
    assert_eq!(rule_of("192.168.77.3", "fd00:9:1::/64", &cluster()), None);
}

#[test]
fn routes_that_are_not_jalurs_are_not_taken_over() {
    // Inside a foreign /16: its traffic would be stolen.
    let inside = rule_of("192.168.77.3", "10.200.1.0/24", &[]);
    assert_eq!(inside, Some(Rule::ForeignRoute));
    // Exactly a foreign route: a replace would overwrite it.
    let equal = rule_of("192.168.77.3", "10.200.0.0/16", &[]);
    assert_eq!(equal, Some(Rule::ForeignRoute));
    // A route that covers the whole pod network (default, summary) is meant to be overridden.
    let mut l = local();
    l.foreign_routes.push(ForeignRoute::to(net("10.0.0.0/8")));
    l.foreign_routes
        .push(ForeignRoute::to(net("10.250.0.0/16")));
    let nodes = vec![me(), node("p", &["192.168.77.3"], &["10.250.2.0/24"], None)];
    let with_cluster = check(&nodes[0], &nodes, &l, &cluster());
    assert!(with_cluster.rejected.is_empty(), "{with_cluster:?}");
    // Without --cluster-cidr a /16 summary cannot be told from a foreign network.
    let without = check(&nodes[0], &nodes, &l, &[]);
    assert_eq!(without.rejected["p"].rule, Rule::ForeignRoute);
}

#[test]
fn this_node_always_keeps_its_own_pod_cidr() {
    // Even against an older Node, and a claim that merely overlaps it.
    for cidr in ["10.250.1.0/24", "10.250.1.128/25", "10.250.0.0/23"] {
        let nodes = vec![me(), node("old", &["192.168.77.3"], &[cidr], Some(1))];
        let v = check(&nodes[0], &nodes, &local(), &cluster());
        assert_eq!(v.own, vec![net("10.250.1.0/24")]);
        let r = &v.rejected["old"];
        assert_eq!(r.rule, Rule::OwnPodCidr, "{cidr}");
        assert!(
            r.to_string().contains("this node's pod CIDR 10.250.1.0/24"),
            "{r}"
        );
    }
}

#[test]
fn of_two_overlapping_peers_the_older_keeps_the_claim_whatever_the_order() {
    let old = node("zeta", &["192.168.77.5"], &["10.250.5.0/24"], Some(10));
    let new = node("alpha", &["192.168.77.6"], &["10.250.5.0/25"], Some(20));
    let mut nodes = vec![me(), new.clone(), old.clone()];
    let v = check(&nodes[0], &nodes, &local(), &cluster());
    nodes.reverse();
    let again = check(&me(), &nodes, &local(), &cluster());
    assert_eq!(v, again, "the outcome depends on the view, not its order");
    let r = &v.rejected["alpha"];
    assert_eq!(r.rule, Rule::OlderNode);
    assert_eq!(
        r.to_string(),
        "podCIDR 10.250.5.0/25 overlaps node zeta's pod CIDR 10.250.5.0/24 [overlaps-older-node]"
    );
    assert!(!v.rejected.contains_key("zeta"));
}

#[test]
fn without_timestamps_the_name_decides_and_a_timestamp_beats_none() {
    let b = node("b", &["192.168.77.5"], &["10.250.5.0/24"], None);
    let c = node("c", &["192.168.77.6"], &["10.250.5.0/24"], None);
    let nodes = vec![me(), c.clone(), b.clone()];
    let v = check(&nodes[0], &nodes, &local(), &cluster());
    assert_eq!(v.rejected.keys().collect::<Vec<_>>(), ["c"]);
    let dated = NodeInfo {
        created: Some(5),
        ..c
    };
    let nodes = vec![me(), b, dated];
    let v = check(&nodes[0], &nodes, &local(), &cluster());
    assert_eq!(v.rejected.keys().collect::<Vec<_>>(), ["b"]);
}

#[test]
fn a_rejected_claim_takes_nothing_from_sound_younger_ones() {
    // The oldest Node claims all of 10.250/16 (and so this node's own /24): rejected, and the
    // younger peers inside it keep their subnets.
    let nodes = vec![
        me(),
        node("greedy", &["192.168.77.9"], &["10.250.0.0/16"], Some(1)),
        node("b", &["192.168.77.3"], &["10.250.2.0/24"], Some(50)),
        node("default", &["192.168.77.8"], &["0.0.0.0/0"], Some(2)),
    ];
    let v = check(&nodes[0], &nodes, &local(), &cluster());
    assert_eq!(v.rejected["greedy"].rule, Rule::OwnPodCidr);
    assert_eq!(v.rejected["default"].rule, Rule::TooBroad);
    assert!(!v.rejected.contains_key("b"));
}

#[test]
fn an_internal_ip_must_be_a_plausible_node_address() {
    let cases = [
        ("192.168.77.2", Rule::LocalAddress),
        ("127.0.0.1", Rule::BadAddress),
        ("0.0.0.0", Rule::BadAddress),
        ("224.0.0.5", Rule::BadAddress),
        ("255.255.255.255", Rule::BadAddress),
        ("169.254.1.1", Rule::BadAddress),
        ("::", Rule::BadAddress),
        ("ff02::1", Rule::BadAddress),
        ("fe80::1", Rule::BadAddress),
        ("10.250.9.1", Rule::AddressInPodNetwork),
        ("10.250.1.7", Rule::AddressInPodNetwork),
        ("10.250.2.1", Rule::AddressInPodNetwork),
    ];
    for (ip, rule) in cases {
        assert_eq!(rule_of(ip, "10.250.2.0/24", &cluster()), Some(rule), "{ip}");
    }
    // Inside this node's pod CIDR even without --cluster-cidr; inside its own claim too.
    let own = rule_of("10.250.1.7", "10.250.2.0/24", &[]);
    assert_eq!(own, Some(Rule::AddressInPodNetwork));
    let its_own = rule_of("10.250.2.1", "10.250.2.0/24", &[]);
    assert_eq!(its_own, Some(Rule::AddressInPodNetwork));
}

#[test]
fn internal_ips_and_pod_cidrs_of_two_peers_are_settled_by_age() {
    let old = node("old", &["192.168.78.5"], &["10.250.5.0/24"], Some(10));
    let same_ip = node("twin", &["192.168.78.5"], &["10.250.6.0/24"], Some(20));
    let covers_ip = node("cover", &["192.168.77.7"], &["192.168.78.0/24"], Some(30));
    let in_cidr = node("inside", &["10.250.5.9"], &["10.250.7.0/24"], Some(40));
    let nodes = vec![me(), old, same_ip, covers_ip, in_cidr];
    let v = check(&nodes[0], &nodes, &local(), &[]);
    assert_eq!(v.rejected["twin"].rule, Rule::DuplicateAddress);
    assert_eq!(v.rejected["cover"].rule, Rule::NodeInternalIp);
    assert_eq!(v.rejected["inside"].rule, Rule::AddressInPodNetwork);
    assert!(!v.rejected.contains_key("old"));
}

#[test]
fn an_own_pod_cidr_that_breaks_a_rule_is_not_served() {
    let me = node(
        "a",
        &["192.168.77.2"],
        &["0.0.0.0/0", "fd00:250:1::/64"],
        None,
    );
    let v = check(&me, std::slice::from_ref(&me), &local(), &[]);
    assert_eq!(v.own, vec![net("fd00:250:1::/64")]);
    assert_eq!(v.own_rejected[0].rule, Rule::TooBroad);
}

#[test]
fn five_thousand_adjacent_peers_are_all_believed() {
    let mut nodes = vec![me()];
    for i in 0..5000u32 {
        let (hi, lo) = (i / 250, i % 250 + 2);
        nodes.push(node(
            &format!("n{i}"),
            &[&format!("192.168.{}.{lo}", 100 + hi)],
            &[&format!("10.{}.{}.0/24", 100 + i / 256, i % 256)],
            Some(i64::from(i)),
        ));
    }
    let started = std::time::Instant::now();
    let v = check(&nodes[0], &nodes, &local(), &[]);
    assert!(v.rejected.is_empty(), "{:?}", v.rejected.iter().next());
    assert!(started.elapsed().as_secs_f64() < 1.0);
}
