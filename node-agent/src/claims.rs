//! Which claims of the cluster view the agent believes: every Node's pod CIDRs and
//! InternalIPs are checked against fixed rules, this node's own addresses and routes, and
//! each other, before any of them is routed. One misconfigured or hostile Node must not be
//! able to take over this node's routing.
//!
//! Pure: the caller passes a snapshot of what the node holds ([`Local`]); nothing here
//! touches the kernel. The outcome depends only on the view and that snapshot, so a resync
//! with an unchanged view decides exactly the same (nothing flaps).
//!
//! Order of ownership: this node's own pod CIDRs first, always; then the peers from the
//! oldest Node to the newest (`creationTimestamp`, then name; a Node without a timestamp,
//! as in a NodeList file, counts as newer than any with one). A claim that breaks a rule
//! takes nothing, so a rejected Node can never push out a sound one.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::cluster::NodeInfo;

/// The shortest prefix an IPv4 pod subnet of one node may have: a /16 already holds 65 534
/// pods, hundreds of times what a kubelet runs.
pub const MIN_PREFIX_V4: u8 = 16;
/// The shortest IPv6 one: a /48 is a whole site's allocation (65 536 /64s).
pub const MIN_PREFIX_V6: u8 = 48;

/// Ranges that are never pod addresses.
const RESERVED: [(&str, &str); 10] = [
    ("0.0.0.0/8", "\"this network\""),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved and broadcast"),
    ("::/127", "unspecified and loopback"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
];

/// What this node holds, which no peer may claim: a snapshot taken before each plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Local {
    /// Every address on the node's interfaces (the overlay device's tunnel addresses aside:
    /// they are the agent's own).
    pub addresses: Vec<IpAddr>,
    /// The subnets of those addresses (the underlay and any other attached network).
    pub subnets: Vec<IpNet>,
    /// The main table's routes that do not carry protocol 74.
    pub foreign_routes: Vec<ForeignRoute>,
}

/// A route of the node that is not Jalur's, as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ForeignRoute {
    /// Its destination.
    pub dst: IpNet,
    /// Its metric (the kernel's priority: IPv4 default 0, IPv6 1024).
    pub metric: u32,
    /// The route as `ip route` spells it: `10.244.2.0/24 via 192.168.10.1 dev eth0 proto static`.
    pub text: String,
}

impl ForeignRoute {
    /// A route to `dst` with the default metric, described only by its destination.
    #[cfg(test)]
    pub fn to(dst: IpNet) -> ForeignRoute {
        ForeignRoute {
            dst,
            metric: default_metric(&dst),
            text: dst.to_string(),
        }
    }

    /// True when a route of Jalur's to the same destination would replace this one in the
    /// kernel (`ip route replace`): the same prefix and the metric Jalur's routes get.
    pub fn replaceable_by(&self, cidr: &IpNet) -> bool {
        self.dst == *cidr && self.metric == default_metric(cidr)
    }
}

/// The metric the kernel gives a route added without one: 0 (IPv4), 1024 (IPv6).
pub fn default_metric(dst: &IpNet) -> u32 {
    match dst {
        IpNet::V4(_) => 0,
        IpNet::V6(_) => 1024,
    }
}

/// A rule a claim can break. Its [`name`](Rule::name) is the `rule` of logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// A default route, or a prefix shorter than [`MIN_PREFIX_V4`] / [`MIN_PREFIX_V6`].
    TooBroad,
    /// Loopback, link-local, multicast and the like.
    ReservedRange,
    /// Contains one of this node's addresses.
    NodeAddress,
    /// Overlaps a subnet this node is attached to.
    NodeSubnet,
    /// Overlaps a route of this node that is not Jalur's.
    ForeignRoute,
    /// Not inside `--cluster-cidr`.
    OutsideClusterCidr,
    /// Overlaps this node's own pod CIDR.
    OwnPodCidr,
    /// Overlaps the pod CIDR of an older Node.
    OlderNode,
    /// Contains the InternalIP of an older Node.
    NodeInternalIp,
    /// An InternalIP that is unspecified, loopback, multicast, broadcast or link-local.
    BadAddress,
    /// An InternalIP that is one of this node's own addresses.
    LocalAddress,
    /// An InternalIP inside the pod network (`--cluster-cidr`, or a pod CIDR).
    AddressInPodNetwork,
    /// An InternalIP an older Node already has.
    DuplicateAddress,
}

impl Rule {
    /// The rule's name in logs, metrics and the README.
    pub fn name(self) -> &'static str {
        match self {
            Rule::TooBroad => "too-broad",
            Rule::ReservedRange => "reserved-range",
            Rule::NodeAddress => "overlaps-node-address",
            Rule::NodeSubnet => "overlaps-node-subnet",
            Rule::ForeignRoute => "overlaps-foreign-route",
            Rule::OutsideClusterCidr => "outside-cluster-cidr",
            Rule::OwnPodCidr => "overlaps-own-pod-cidr",
            Rule::OlderNode => "overlaps-older-node",
            Rule::NodeInternalIp => "contains-node-address",
            Rule::BadAddress => "bad-address",
            Rule::LocalAddress => "address-is-local",
            Rule::AddressInPodNetwork => "address-in-pod-network",
            Rule::DuplicateAddress => "duplicate-address",
        }
    }
}

/// Why a claim is not believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The rule it broke.
    pub rule: Rule,
    /// The claim: `podCIDR 0.0.0.0/0` or `InternalIP 192.168.49.2`.
    pub claim: String,
    /// What it collides with, for a person.
    pub detail: String,
    /// The pod CIDR claimed (None: an InternalIP claim).
    pub cidr: Option<IpNet>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} [{}]", self.claim, self.detail, self.rule.name())
    }
}

/// The outcome for a whole view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdicts {
    /// This node's own pod CIDRs that pass the rules (the ones to serve pods from).
    pub own: Vec<IpNet>,
    /// This node's own pod CIDRs that do not.
    pub own_rejected: Vec<Rejection>,
    /// Peers whose claims are rejected, by name (a peer not here is believed).
    pub rejected: BTreeMap<String, Rejection>,
}

/// Checks every claim of the view. `cluster` is `--cluster-cidr` (may be empty).
pub fn check(me: &NodeInfo, nodes: &[NodeInfo], local: &Local, cluster: &[IpNet]) -> Verdicts {
    let rules = Rules { local, cluster };
    let mut taken = Taken::default();
    let mut out = Verdicts::default();
    for cidr in &me.pod_cidrs {
        let verdict = rules.cidr(cidr).and_then(|()| {
            taken.cidr_owner(cidr).map_or(Ok(()), |(net, _)| {
                Err(reject(Rule::OwnPodCidr, cidr, format!("overlaps {net}")))
            })
        });
        match verdict {
            Ok(()) => {
                taken.take_cidr(*cidr, 0);
                out.own.push(*cidr);
            }
            Err(r) => out.own_rejected.push(r),
        }
    }
    let mut names = vec![me.name.clone()];
    let mut peers: Vec<&NodeInfo> = nodes.iter().filter(|n| n.name != me.name).collect();
    peers.sort_by(|a, b| {
        let age = |n: &NodeInfo| (n.created.unwrap_or(i64::MAX), n.name.clone());
        age(a).cmp(&age(b))
    });
    for peer in peers {
        match rules.peer(peer, &taken, &names) {
            Ok(()) => {
                let owner = names.len();
                names.push(peer.name.clone());
                for cidr in &peer.pod_cidrs {
                    taken.take_cidr(*cidr, owner);
                }
                for ip in &peer.addresses {
                    taken.addresses.insert(key(*ip), owner);
                }
            }
            Err(r) => {
                out.rejected.insert(peer.name.clone(), r);
            }
        }
    }
    out
}

fn reject(rule: Rule, cidr: &IpNet, detail: String) -> Rejection {
    Rejection {
        rule,
        claim: format!("podCIDR {cidr}"),
        detail,
        cidr: Some(*cidr),
    }
}

fn reject_ip(rule: Rule, ip: &IpAddr, detail: String) -> Rejection {
    Rejection {
        rule,
        claim: format!("InternalIP {ip}"),
        detail,
        cidr: None,
    }
}

/// The shortest prefix a pod subnet of this family may have.
pub fn min_prefix(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(_) => MIN_PREFIX_V4,
        IpNet::V6(_) => MIN_PREFIX_V6,
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

struct Rules<'a> {
    local: &'a Local,
    cluster: &'a [IpNet],
}

impl Rules<'_> {
    /// `--cluster-cidr` of the claim's family; empty: that family has none given.
    fn cluster_of(&self, cidr: &IpNet) -> Vec<&IpNet> {
        let v6 = cidr.addr().is_ipv6();
        self.cluster
            .iter()
            .filter(|c| c.addr().is_ipv6() == v6)
            .collect()
    }

    /// The rules one pod CIDR must pass on its own, whoever claims it.
    fn cidr(&self, cidr: &IpNet) -> Result<(), Rejection> {
        if cidr.prefix_len() == 0 {
            let detail = "is a default route, never a pod subnet".into();
            return Err(reject(Rule::TooBroad, cidr, detail));
        }
        if cidr.prefix_len() < min_prefix(cidr) {
            let detail = format!(
                "is shorter than /{}, the shortest prefix one node's pod subnet may have",
                min_prefix(cidr)
            );
            return Err(reject(Rule::TooBroad, cidr, detail));
        }
        for (range, what) in RESERVED {
            let range: IpNet = range.parse().expect("a valid constant");
            if overlaps(&range, cidr) {
                let detail = format!("overlaps {range} ({what})");
                return Err(reject(Rule::ReservedRange, cidr, detail));
            }
        }
        if let Some(ip) = self.local.addresses.iter().find(|ip| cidr.contains(*ip)) {
            let detail = format!("contains this node's address {ip}");
            return Err(reject(Rule::NodeAddress, cidr, detail));
        }
        if let Some(net) = self.local.subnets.iter().find(|n| overlaps(n, cidr)) {
            let detail = format!("overlaps this node's subnet {net}");
            return Err(reject(Rule::NodeSubnet, cidr, detail));
        }
        let cluster = self.cluster_of(cidr);
        let network = cluster.iter().find(|c| c.contains(cidr));
        // A route that covers the whole pod network (the default route, a summary route) is
        // meant to be overridden by pod subnets; any other overlap takes someone's traffic.
        // Without --cluster-cidr, "covers the whole pod network" means "shorter than any pod
        // subnet may be".
        let covers_pod_network = |route: &IpNet| match network {
            Some(network) => route.contains(*network),
            None => route.prefix_len() < min_prefix(cidr),
        };
        if let Some(route) = self
            .local
            .foreign_routes
            .iter()
            .find(|r| overlaps(&r.dst, cidr) && (r.dst == *cidr || !covers_pod_network(&r.dst)))
        {
            let detail = format!(
                "overlaps this node's route `{}`, which is not Jalur's",
                route.text
            );
            return Err(reject(Rule::ForeignRoute, cidr, detail));
        }
        if !cluster.is_empty() && network.is_none() {
            let list: Vec<String> = cluster.iter().map(ToString::to_string).collect();
            let detail = format!("is outside --cluster-cidr {}", list.join(", "));
            return Err(reject(Rule::OutsideClusterCidr, cidr, detail));
        }
        Ok(())
    }

    /// The rules one InternalIP must pass on its own.
    fn address(&self, ip: &IpAddr) -> Result<(), Rejection> {
        let bad = unusable(ip);
        if let Some(what) = bad {
            let detail = format!("is {what}, never a node's address");
            return Err(reject_ip(Rule::BadAddress, ip, detail));
        }
        if self.local.addresses.contains(ip) {
            let detail = "is this node's own address".into();
            return Err(reject_ip(Rule::LocalAddress, ip, detail));
        }
        if let Some(net) = self.cluster.iter().find(|c| c.contains(ip)) {
            let detail = format!("is inside the pod network {net} (--cluster-cidr)");
            return Err(reject_ip(Rule::AddressInPodNetwork, ip, detail));
        }
        Ok(())
    }

    /// Every rule for one peer, against what older Nodes (and this node) hold.
    fn peer(&self, peer: &NodeInfo, taken: &Taken, names: &[String]) -> Result<(), Rejection> {
        let whose = |owner: usize| match owner {
            0 => "this node's".to_owned(),
            n => format!("node {}'s", names[n]),
        };
        for cidr in &peer.pod_cidrs {
            self.cidr(cidr)?;
        }
        for ip in &peer.addresses {
            self.address(ip)?;
            if let Some(cidr) = peer.pod_cidrs.iter().find(|c| c.contains(ip)) {
                let detail = format!("is inside its own pod CIDR {cidr}");
                return Err(reject_ip(Rule::AddressInPodNetwork, ip, detail));
            }
        }
        for cidr in &peer.pod_cidrs {
            if let Some((net, owner)) = taken.cidr_owner(cidr) {
                let rule = if owner == 0 {
                    Rule::OwnPodCidr
                } else {
                    Rule::OlderNode
                };
                let detail = format!("overlaps {} pod CIDR {net}", whose(owner));
                return Err(reject(rule, cidr, detail));
            }
            if let Some((ip, owner)) = taken.address_within(cidr) {
                let detail = format!("contains {} InternalIP {ip}", whose(owner));
                return Err(reject(Rule::NodeInternalIp, cidr, detail));
            }
        }
        for ip in &peer.addresses {
            let net = IpNet::from(*ip);
            if let Some((cidr, owner)) = taken.cidr_owner(&net) {
                let detail = format!("is inside {} pod CIDR {cidr}", whose(owner));
                return Err(reject_ip(Rule::AddressInPodNetwork, ip, detail));
            }
            if let Some(owner) = taken.addresses.get(&key(*ip)) {
                let detail = format!("is already {} InternalIP", whose(*owner));
                return Err(reject_ip(Rule::DuplicateAddress, ip, detail));
            }
        }
        Ok(())
    }
}

/// Why an address can never be a node's, if it cannot.
fn unusable(ip: &IpAddr) -> Option<&'static str> {
    let kinds = match ip {
        IpAddr::V4(v4) => [
            (v4.is_unspecified() || v4.octets()[0] == 0, "unspecified"),
            (v4.is_loopback(), "loopback"),
            (v4.is_multicast(), "multicast"),
            (v4.is_broadcast(), "broadcast"),
            (v4.is_link_local(), "link-local"),
        ],
        IpAddr::V6(v6) => [
            (v6.is_unspecified(), "unspecified"),
            (v6.is_loopback(), "loopback"),
            (v6.is_multicast(), "multicast"),
            (v6.to_ipv4_mapped().is_some(), "IPv4-mapped"),
            ((v6.segments()[0] & 0xffc0) == 0xfe80, "link-local"),
        ],
    };
    kinds.into_iter().find(|(is, _)| *is).map(|(_, what)| what)
}

/// An address as a sortable key: (is IPv6, value).
fn key(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (true, u128::from(v6)),
    }
}

/// What is taken so far, by owner (0 is this node). Accepted CIDRs never overlap, so each
/// lookup is one ordered-map step: 5000 peers are checked in milliseconds.
#[derive(Default)]
struct Taken {
    /// First address → (last address, the CIDR, owner).
    cidrs: BTreeMap<(bool, u128), (u128, IpNet, usize)>,
    /// InternalIPs → owner.
    addresses: BTreeMap<(bool, u128), usize>,
}

impl Taken {
    fn take_cidr(&mut self, cidr: IpNet, owner: usize) {
        let (v6, first) = key(cidr.network());
        let last = key(cidr.broadcast()).1;
        self.cidrs.insert((v6, first), (last, cidr, owner));
    }

    /// The taken CIDR that overlaps `cidr`, if any.
    fn cidr_owner(&self, cidr: &IpNet) -> Option<(IpNet, usize)> {
        let (v6, first) = key(cidr.network());
        let last = key(cidr.broadcast()).1;
        let (start, (end, net, owner)) = self.cidrs.range(..=(v6, last)).next_back()?;
        (start.0 == v6 && *end >= first).then_some((*net, *owner))
    }

    /// A taken InternalIP inside `cidr`, if any.
    fn address_within(&self, cidr: &IpNet) -> Option<(IpAddr, usize)> {
        let (v6, first) = key(cidr.network());
        let last = key(cidr.broadcast()).1;
        let ((_, value), owner) = self.addresses.range((v6, first)..=(v6, last)).next()?;
        let ip = if v6 {
            IpAddr::V6((*value).into())
        } else {
            IpAddr::V4((*value as u32).into())
        };
        Some((ip, *owner))
    }
}

#[cfg(test)]
#[path = "claims_tests.rs"]
mod tests;
