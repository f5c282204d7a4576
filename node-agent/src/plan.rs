//! The desired state: a pure function of the cluster view and the local underlay.
//!
//! It decides, per peer, direct routing (the peer's address is on a directly connected
//! subnet) or the overlay, and lists the routes, VXLAN forwarding entries and neighbours that
//! make every pod subnet reachable. Only claims that pass the rules of [`claims`] are
//! routed. Nothing here touches the kernel.

use std::net::IpAddr;

use ipnet::IpNet;
use jalur_cni_plugin::attachment::fnv1a;
use jalur_cni_plugin::net::Route;

use crate::vxlan::FdbEntry;

use crate::claims::{self, Local, Rejection};
use crate::cluster::NodeInfo;
use crate::foreign::{self, Takeover};

/// The overlay device's name.
pub const VXLAN_DEVICE: &str = "jalur.vxlan";
/// VXLAN network identifier.
pub const VNI: u32 = 4097;
/// VXLAN UDP port (IANA).
pub const VXLAN_PORT: u16 = 4789;
/// Encapsulation overhead: outer IPv4 (20) or IPv6 (40), UDP (8), VXLAN (8), inner
/// Ethernet (14).
pub fn vxlan_overhead(underlay: IpAddr) -> u32 {
    match underlay {
        IpAddr::V4(_) => 50,
        IpAddr::V6(_) => 70,
    }
}

/// How peers are routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Direct where the peer is on a connected subnet, the overlay elsewhere.
    Auto,
    /// Always a route via the peer's node address (peers must share an L2 subnet).
    Direct,
    /// Always the overlay.
    Vxlan,
}

/// What the operator decides: how peers are routed and where pods may live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// How peers are routed.
    pub mode: Mode,
    /// `--cluster-cidr`: the pod network (empty: not given; see `claims`).
    pub cluster_cidrs: Vec<IpNet>,
    /// `--replace-foreign-routes`: a foreign route exactly a peer's pod CIDR is replaced
    /// (see `foreign`); otherwise it is reported and left.
    pub replace_foreign_routes: bool,
}

/// The local side of the underlay: the interface holding the node's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Its MTU.
    pub mtu: u32,
    /// The prefixes configured on it (the subnets directly reachable).
    pub prefixes: Vec<IpNet>,
}

/// How one peer is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerRoute {
    /// Via its node address on a shared subnet.
    Direct,
    /// Through the overlay.
    Vxlan,
    /// Directly for some address families and through the overlay for the others (say, an
    /// on-link IPv4 address and a routed IPv6 one).
    Mixed,
    /// Some of its pod CIDRs are routed, the others cannot be, and why (say, `--mode direct`
    /// and only its IPv4 address on-link).
    Partial(String),
    /// Not at all, and why.
    Unroutable(String),
    /// Not at all: one of its claims broke a rule of [`claims`].
    Rejected(Rejection),
}

impl PeerRoute {
    /// The metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            PeerRoute::Direct => "direct",
            PeerRoute::Vxlan => "vxlan",
            PeerRoute::Mixed => "mixed",
            PeerRoute::Partial(_) => "partial",
            PeerRoute::Unroutable(_) => "unroutable",
            PeerRoute::Rejected(_) => "rejected",
        }
    }
}

/// A remote VXLAN endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vtep {
    /// Where frames for it go, and its MAC.
    pub fdb: FdbEntry,
    /// Its tunnel addresses (one per pod subnet), each a permanent neighbour → MAC.
    pub tunnel_ips: Vec<IpAddr>,
}

/// The overlay's desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayPlan {
    /// The local endpoint's underlay address: the node's IPv4 InternalIP, else its IPv6 one.
    /// Peers are reached at their address of the same family.
    pub local: IpAddr,
    /// Its MAC.
    pub mac: [u8; 6],
    /// Its own tunnel addresses (the network address of each local pod subnet, /32 or /128).
    pub tunnel_addrs: Vec<IpNet>,
    /// The remote endpoints.
    pub peers: Vec<Vtep>,
}

/// Everything the agent wants the kernel to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The local node's pod subnets that pass the rules (empty: the node cannot serve pods
    /// yet).
    pub own_cidrs: Vec<IpNet>,
    /// The local node's pod subnets that do not, and why.
    pub own_rejected: Vec<Rejection>,
    /// Every pod subnet believed: this node's and its peers' (routable or not).
    pub pod_network: Vec<IpNet>,
    /// Routes (proto 74): blackholes for the own subnets, and one per peer subnet.
    pub routes: Vec<Route>,
    /// The overlay, when the mode allows it.
    pub overlay: Option<OverlayPlan>,
    /// Each peer's routing decision, by node name.
    pub peers: Vec<(String, PeerRoute)>,
    /// The pods' MTU.
    pub pod_mtu: u32,
    /// Foreign routes the routes above replace (`--replace-foreign-routes`).
    pub takeovers: Vec<Takeover>,
}

/// A VTEP MAC derived from the node's underlay address, so every peer computes the same
/// one without publishing it. IPv4: `0e:4a:` + the four address bytes. IPv6: `0a:` + 40 bits
/// of the address's FNV-1a hash (two nodes of 5000 share one with a chance of about 1 in
/// 100 000). Both locally administered unicast, and the two never meet.
pub fn vtep_mac(ip: IpAddr) -> [u8; 6] {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            [0x0e, 0x4a, o[0], o[1], o[2], o[3]]
        }
        IpAddr::V6(v6) => {
            let h = fnv1a(&v6.octets()).to_be_bytes();
            [0x0a, h[3], h[4], h[5], h[6], h[7]]
        }
    }
}

/// The overlay endpoint address a node uses: its IPv4 InternalIP, else its IPv6 one.
pub fn overlay_endpoint(node: &NodeInfo) -> Option<IpAddr> {
    node.address(false).or_else(|| node.address(true))
}

/// A node's tunnel address in one of its pod subnets: the subnet's network address.
pub fn tunnel_ip(cidr: &IpNet) -> IpAddr {
    cidr.network()
}

fn blackhole(dst: IpNet) -> Route {
    Route {
        blackhole: true,
        oif: None,
        ..Route::direct(dst, 0)
    }
}

/// Computes the plan. `me` is this node (None: not in the view yet), `local` what the node
/// holds (no peer may claim it), `overlay_index` the overlay device's index when it exists
/// (routes through it need it).
pub fn plan(
    me: Option<&NodeInfo>,
    nodes: &[NodeInfo],
    underlay: &Underlay,
    local: &Local,
    policy: &Policy,
    overlay_index: Option<u32>,
) -> Plan {
    let mode = policy.mode;
    let overlay_possible = mode != Mode::Direct;
    let endpoint = me.and_then(overlay_endpoint);
    let pod_mtu = match (overlay_possible, endpoint) {
        (true, Some(ip)) => underlay.mtu.saturating_sub(vxlan_overhead(ip)),
        _ => underlay.mtu,
    };
    let mut out = Plan {
        own_cidrs: Vec::new(),
        own_rejected: Vec::new(),
        pod_network: Vec::new(),
        routes: Vec::new(),
        overlay: None,
        peers: Vec::new(),
        pod_mtu,
        takeovers: Vec::new(),
    };
    let Some(me) = me else {
        return out;
    };
    let (checked, candidates) = match policy.replace_foreign_routes {
        true => foreign::exempt(me, nodes, local),
        false => (local.clone(), Vec::new()),
    };
    let verdicts = claims::check(me, nodes, &checked, &policy.cluster_cidrs);
    out.own_cidrs = verdicts.own;
    out.own_rejected = verdicts.own_rejected;
    out.pod_network = out.own_cidrs.clone();
    out.routes
        .extend(out.own_cidrs.iter().map(|c| blackhole(*c)));
    let mut overlay = match (overlay_possible, endpoint) {
        (true, Some(endpoint)) => Some(OverlayPlan {
            local: endpoint,
            mac: vtep_mac(endpoint),
            tunnel_addrs: out
                .own_cidrs
                .iter()
                .map(|c| IpNet::from(tunnel_ip(c)))
                .collect(),
            peers: Vec::new(),
        }),
        _ => None,
    };
    for peer in nodes.iter().filter(|n| n.name != me.name) {
        if let Some(rejection) = verdicts.rejected.get(&peer.name) {
            let mut rejection = rejection.clone();
            if rejection.rule == claims::Rule::ForeignRoute {
                // The routes it would get, only to name them in the report.
                let mut would_be = Vec::new();
                let mut scratch = overlay.clone();
                let index = overlay_index.or(Some(0));
                route_peer(peer, underlay, mode, scratch.as_mut(), index, &mut would_be);
                foreign::explain(&mut rejection, &would_be, &checked, underlay);
            }
            out.peers
                .push((peer.name.clone(), PeerRoute::Rejected(rejection)));
            continue;
        }
        out.pod_network.extend(&peer.pod_cidrs);
        let decision = route_peer(
            peer,
            underlay,
            mode,
            overlay.as_mut(),
            overlay_index,
            &mut out.routes,
        );
        out.peers.push((peer.name.clone(), decision));
    }
    out.overlay = overlay;
    out.takeovers = foreign::takeovers(candidates, &out.routes, underlay);
    out
}

fn route_peer(
    peer: &NodeInfo,
    underlay: &Underlay,
    mode: Mode,
    overlay: Option<&mut OverlayPlan>,
    overlay_index: Option<u32>,
    routes: &mut Vec<Route>,
) -> PeerRoute {
    if peer.pod_cidrs.is_empty() {
        return PeerRoute::Unroutable("it has no pod CIDR yet".into());
    }
    if peer.addresses.is_empty() {
        return PeerRoute::Unroutable("it has no InternalIP address".into());
    }
    // Decided per pod CIDR, that is per address family: the peer's IPv4 address may be
    // on-link while its IPv6 one is routed (or missing).
    let on_link = |ip: IpAddr| underlay.prefixes.iter().any(|p| p.contains(&ip));
    let (mut direct, mut tunnelled, mut unroutable) = (Vec::new(), Vec::new(), Vec::new());
    for cidr in &peer.pod_cidrs {
        let gw = peer
            .address(cidr.addr().is_ipv6())
            .filter(|ip| on_link(*ip));
        match (mode, gw) {
            (Mode::Direct | Mode::Auto, Some(gw)) => direct.push((*cidr, gw)),
            (Mode::Direct, None) => unroutable.push(format!(
                "mode is direct and it has no address on a subnet of {} for {cidr}",
                underlay.name
            )),
            _ => tunnelled.push(*cidr),
        }
    }
    for (cidr, gw) in &direct {
        routes.push(Route::via(*cidr, *gw, underlay.index));
    }
    let tunnelled_ok = match tunnelled.is_empty() {
        true => false,
        false => match tunnel(peer, &tunnelled, overlay, overlay_index, routes) {
            Ok(()) => true,
            Err(why) => {
                unroutable.push(why);
                false
            }
        },
    };
    match (direct.is_empty(), tunnelled_ok, unroutable.is_empty()) {
        (false, false, true) => PeerRoute::Direct,
        (true, true, true) => PeerRoute::Vxlan,
        (false, true, true) => PeerRoute::Mixed,
        (true, false, _) => PeerRoute::Unroutable(unroutable.join("; ")),
        // Only with nothing to route at all (no CIDR: handled above).
        (false, false, false) | (false, true, false) | (true, true, false) => {
            PeerRoute::Partial(unroutable.join("; "))
        }
    }
}

/// Routes `cidrs` of `peer` through the overlay; Err: why it cannot be.
fn tunnel(
    peer: &NodeInfo,
    cidrs: &[IpNet],
    overlay: Option<&mut OverlayPlan>,
    overlay_index: Option<u32>,
    routes: &mut Vec<Route>,
) -> Result<(), String> {
    let Some(overlay) = overlay else {
        return Err(
            "it needs the overlay, and this node has no InternalIP to be its endpoint".into(),
        );
    };
    let Some(remote) = peer.address(overlay.local.is_ipv6()) else {
        return Err(format!(
            "it needs the overlay, and has no {} InternalIP to match this node's endpoint {}",
            if overlay.local.is_ipv6() {
                "IPv6"
            } else {
                "IPv4"
            },
            overlay.local
        ));
    };
    if let Some(index) = overlay_index {
        for cidr in cidrs {
            routes.push(Route::via_onlink(*cidr, tunnel_ip(cidr), index));
        }
    }
    overlay.peers.push(Vtep {
        fdb: FdbEntry {
            mac: vtep_mac(remote),
            dst: remote,
        },
        tunnel_ips: cidrs.iter().map(tunnel_ip).collect(),
    });
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A node with one InternalIP and one pod CIDR.
    pub(crate) fn node(name: &str, ip: &str, cidr: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            addresses: vec![ip.parse().unwrap()],
            pod_cidrs: vec![cidr.parse().unwrap()],
            created: None,
        }
    }

    fn policy(mode: Mode) -> Policy {
        Policy {
            replace_foreign_routes: false,
            mode,
            cluster_cidrs: vec![],
        }
    }

    fn underlay() -> Underlay {
        Underlay {
            index: 2,
            name: "eth0".into(),
            mtu: 1500,
            prefixes: vec!["192.168.49.0/24".parse().unwrap()],
        }
    }

    /// The plan of node `n[0]` with nothing local to respect; the overlay device, if there,
    /// at `overlay_index`.
    fn plan_of(n: &[NodeInfo], ul: &Underlay, mode: Mode, overlay_index: Option<u32>) -> Plan {
        plan(
            Some(&n[0]),
            n,
            ul,
            &Local::default(),
            &policy(mode),
            overlay_index,
        )
    }

    /// This node `a`; `b` on its subnet; `c` on another.
    pub(crate) fn nodes() -> Vec<NodeInfo> {
        vec![
            node("a", "192.168.49.2", "10.244.1.0/24"),
            node("b", "192.168.49.3", "10.244.2.0/24"),
            node("c", "192.168.50.4", "10.244.3.0/24"),
        ]
    }

    #[test]
    fn auto_routes_same_subnet_peers_directly_and_others_over_vxlan() {
        let n = nodes();
        let p = plan_of(&n, &underlay(), Mode::Auto, Some(9));
        assert_eq!(p.peers[0], ("b".into(), PeerRoute::Direct));
        assert_eq!(p.peers[1], ("c".into(), PeerRoute::Vxlan));
        let descr: Vec<String> = p.routes.iter().map(Route::describe).collect();
        assert_eq!(
            descr,
            [
                "blackhole 10.244.1.0/24 proto 74",
                "10.244.2.0/24 via 192.168.49.3 dev 2 proto 74",
                "10.244.3.0/24 via 10.244.3.0 dev 9 onlink proto 74",
            ]
        );
        let o = p.overlay.unwrap();
        assert_eq!(o.tunnel_addrs[0].to_string(), "10.244.1.0/32");
        assert_eq!(o.peers[0].fdb.mac, [0x0e, 0x4a, 192, 168, 50, 4]);
        assert_eq!(p.pod_mtu, 1450);
    }

    #[test]
    fn direct_mode_uses_the_full_mtu_and_reports_unreachable_peers() {
        let n = nodes();
        let p = plan_of(&n, &underlay(), Mode::Direct, None);
        assert_eq!(p.pod_mtu, 1500);
        assert!(p.overlay.is_none());
        assert!(matches!(p.peers[1].1, PeerRoute::Unroutable(_)));
        assert_eq!(p.routes.len(), 2);
    }

    #[test]
    fn vxlan_mode_tunnels_every_peer() {
        let n = nodes();
        let p = plan_of(&n, &underlay(), Mode::Vxlan, Some(9));
        assert!(p.peers.iter().all(|(_, r)| *r == PeerRoute::Vxlan));
        assert_eq!(p.overlay.unwrap().peers.len(), 2);
    }

    #[test]
    fn peers_without_cidr_or_address_are_reported_not_fatal() {
        let mut n = nodes();
        n[1].pod_cidrs.clear();
        n[2].addresses.clear();
        let p = plan_of(&n, &underlay(), Mode::Auto, Some(9));
        assert!(p
            .peers
            .iter()
            .all(|(_, r)| matches!(r, PeerRoute::Unroutable(_))));
        assert_eq!(p.routes.len(), 1, "only the blackhole");
    }

    #[test]
    fn ipv6_only_nodes_tunnel_over_ipv6_with_its_larger_overhead() {
        let n = vec![
            node("a", "fd00:49::2", "fd00:244:1::/64"),
            node("b", "fd00:49::3", "fd00:244:2::/64"),
            node("c", "fd00:50::4", "fd00:244:3::/64"),
        ];
        let ul = Underlay {
            prefixes: vec!["fd00:49::/64".parse().unwrap()],
            ..underlay()
        };
        let p = plan_of(&n, &ul, Mode::Auto, Some(9));
        assert_eq!(p.peers[0], ("b".into(), PeerRoute::Direct));
        assert_eq!(p.peers[1], ("c".into(), PeerRoute::Vxlan));
        assert_eq!(p.pod_mtu, 1430);
        let o = p.overlay.unwrap();
        assert_eq!(o.local.to_string(), "fd00:49::2");
        assert_eq!(o.tunnel_addrs[0].to_string(), "fd00:244:1::/128");
        assert_eq!(o.peers[0].fdb.dst.to_string(), "fd00:50::4");
        assert_eq!(o.peers[0].fdb.mac, vtep_mac("fd00:50::4".parse().unwrap()));
        let descr: Vec<String> = p.routes.iter().map(Route::describe).collect();
        assert_eq!(
            descr[2],
            "fd00:244:3::/64 via fd00:244:3:: dev 9 onlink proto 74"
        );
    }

    #[test]
    fn vtep_macs_are_locally_administered_unicast_and_apart_by_family() {
        let v4 = vtep_mac("10.1.2.3".parse().unwrap());
        let a = vtep_mac("fd00:1::5".parse().unwrap());
        let b = vtep_mac("fd00:2::5".parse().unwrap());
        assert_eq!(v4, [0x0e, 0x4a, 10, 1, 2, 3]);
        assert_ne!(
            a, b,
            "addresses that differ outside their last bytes get other MACs"
        );
        for mac in [v4, a, b] {
            assert_eq!(mac[0] & 0b11, 0b10, "locally administered, unicast");
        }
        assert_ne!(a[0], v4[0]);
    }

    #[test]
    fn a_peer_without_an_address_of_the_endpoints_family_is_unroutable() {
        let n = vec![
            node("a", "192.168.49.2", "10.244.1.0/24"),
            node("c", "fd00:50::4", "10.244.3.0/24"),
        ];
        let p = plan_of(&n, &underlay(), Mode::Auto, Some(9));
        let PeerRoute::Unroutable(why) = &p.peers[0].1 else {
            panic!("{:?}", p.peers[0]);
        };
        assert!(why.contains("no IPv4 InternalIP"), "{why}");
    }

    #[test]
    fn rejected_claims_get_no_route_and_stay_out_of_the_pod_network() {
        let mut n = nodes();
        n.push(node("evil", "192.168.49.9", "0.0.0.0/0"));
        n.push(node("thief", "192.168.49.8", "10.244.1.0/24"));
        let local = Local {
            addresses: vec!["192.168.49.2".parse().unwrap()],
            subnets: vec!["192.168.49.0/24".parse().unwrap()],
            foreign_routes: vec![claims::ForeignRoute::to("0.0.0.0/0".parse().unwrap())],
        };
        let p = plan(
            Some(&n[0]),
            &n,
            &underlay(),
            &local,
            &policy(Mode::Auto),
            Some(9),
        );
        let labels: Vec<(&str, &str)> = p
            .peers
            .iter()
            .map(|(name, r)| (name.as_str(), r.label()))
            .collect();
        assert_eq!(
            labels,
            [
                ("b", "direct"),
                ("c", "vxlan"),
                ("evil", "rejected"),
                ("thief", "rejected")
            ]
        );
        assert_eq!(p.routes.len(), 3, "the blackhole and the two sound peers");
        let network: Vec<String> = p.pod_network.iter().map(ToString::to_string).collect();
        assert_eq!(network, ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]);
        assert_eq!(p.overlay.unwrap().peers.len(), 1);
    }

    #[test]
    fn an_unknown_self_plans_nothing() {
        let p = plan(
            None,
            &nodes(),
            &underlay(),
            &Local::default(),
            &policy(Mode::Auto),
            None,
        );
        assert!(p.own_cidrs.is_empty() && p.routes.is_empty());
    }

    #[test]
    fn the_mode_is_chosen_per_address_family() {
        let mut n = nodes();
        n[0].pod_cidrs.push("fd00:244:1::/64".parse().unwrap());
        n[0].addresses.push("fd00:49::2".parse().unwrap());
        // b: IPv4 on-link, IPv6 on another (routed) subnet.
        n[1].pod_cidrs.push("fd00:244:2::/64".parse().unwrap());
        n[1].addresses.push("fd00:99::3".parse().unwrap());
        let ul = Underlay {
            prefixes: vec![
                "192.168.49.0/24".parse().unwrap(),
                "fd00:49::/64".parse().unwrap(),
            ],
            ..underlay()
        };
        let n = &n[..2];
        let p = plan_of(n, &ul, Mode::Auto, Some(9));
        assert_eq!(p.peers[0], ("b".into(), PeerRoute::Mixed));
        let descr: Vec<String> = p.routes.iter().map(Route::describe).collect();
        assert!(
            descr.contains(&"10.244.2.0/24 via 192.168.49.3 dev 2 proto 74".to_owned()),
            "{descr:?}"
        );
        assert!(
            descr.contains(&"fd00:244:2::/64 via fd00:244:2:: dev 9 onlink proto 74".to_owned()),
            "{descr:?}"
        );
        let o = p.overlay.unwrap();
        assert_eq!(o.peers.len(), 1);
        assert_eq!(
            o.peers[0].fdb.dst.to_string(),
            "192.168.49.3",
            "over IPv4, this node's endpoint"
        );
        assert_eq!(
            o.peers[0].tunnel_ips.len(),
            1,
            "only the IPv6 CIDR is tunnelled"
        );

        let p = plan_of(n, &ul, Mode::Direct, None);
        let PeerRoute::Partial(why) = &p.peers[0].1 else {
            panic!("{:?}", p.peers[0]);
        };
        assert!(why.contains("fd00:244:2::/64"), "{why}");
        assert_eq!(
            p.routes.len(),
            3,
            "two blackholes and the IPv4 route: {:?}",
            p.routes
        );
    }
}
