//! Routes of this node that are not Jalur's (no protocol 74) and collide with a peer's pod
//! CIDR: what the agent does about them, and how it names them.
//!
//! Policy: by default such a route is reported and left alone (the peer's claim is rejected
//! with `overlaps-foreign-route`, and the log line names both the kernel's route and the one
//! Jalur would have made). With `--replace-foreign-routes`, a foreign route whose
//! destination is exactly a peer's pod CIDR, with the metric Jalur's route gets (so that
//! `ip route replace` takes its place in the kernel), is replaced, loudly. A broader or
//! narrower foreign route, or one with another metric, is never replaced.
//!
//! Pure: nothing here touches the kernel.

use jalur_cni_plugin::net::Route;

use crate::claims::{ForeignRoute, Local, Rejection, Rule};
use crate::cluster::NodeInfo;
use crate::plan::{Underlay, VXLAN_DEVICE};

/// A foreign route the agent replaces with its own (`--replace-foreign-routes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    /// The peer whose pod CIDR it is.
    pub peer: String,
    /// The route as the kernel holds it now.
    pub foreign: ForeignRoute,
    /// Jalur's route that replaces it.
    pub route: Route,
    /// Jalur's route as `ip route` spells it.
    pub text: String,
}

/// The foreign routes a peer's pod CIDR exactly matches (replaceable), by peer; and `local`
/// without them, so that the claims' rules let those peers through.
pub fn exempt(
    me: &NodeInfo,
    nodes: &[NodeInfo],
    local: &Local,
) -> (Local, Vec<(String, ForeignRoute)>) {
    let mut kept = local.clone();
    let mut taken = Vec::new();
    kept.foreign_routes.retain(|r| {
        let owner = nodes
            .iter()
            .filter(|n| n.name != me.name)
            .find(|n| n.pod_cidrs.iter().any(|c| r.replaceable_by(c)));
        match owner {
            Some(peer) => {
                taken.push((peer.name.clone(), r.clone()));
                false
            }
            None => true,
        }
    });
    (kept, taken)
}

/// The takeovers among `candidates` that the plan does route (a peer rejected for another
/// reason, or unroutable, takes nothing over).
pub fn takeovers(
    candidates: Vec<(String, ForeignRoute)>,
    routes: &[Route],
    underlay: &Underlay,
) -> Vec<Takeover> {
    candidates
        .into_iter()
        .filter_map(|(peer, foreign)| {
            let route = routes
                .iter()
                .find(|r| r.dst == foreign.dst && !r.blackhole)?;
            Some(Takeover {
                peer,
                text: spell(route, underlay),
                route: route.clone(),
                foreign,
            })
        })
        .collect()
}

/// A route of Jalur's as `ip route` spells it: `10.244.2.0/24 via 192.168.10.3 dev eth0
/// proto 74`, or `… dev jalur.vxlan onlink proto 74` (any interface but the underlay is the
/// overlay device).
pub fn spell(route: &Route, underlay: &Underlay) -> String {
    route.describe_with(|i| {
        Some(if i == underlay.index {
            underlay.name.clone()
        } else {
            VXLAN_DEVICE.to_owned()
        })
    })
}

/// Adds to a foreign-route rejection the route Jalur would have made (`would_be`, among the
/// routes the peer would get), so its log line names both; says when
/// `--replace-foreign-routes` would replace it.
pub fn explain(r: &mut Rejection, would_be: &[Route], local: &Local, underlay: &Underlay) {
    let Some(cidr) = r.cidr.filter(|_| r.rule == Rule::ForeignRoute) else {
        return;
    };
    match would_be.iter().find(|w| w.dst == cidr) {
        Some(route) => r.detail.push_str(&format!(
            "; Jalur's route would be `{}`",
            spell(route, underlay)
        )),
        None => r.detail.push_str("; Jalur would make no route for it"),
    }
    if local.foreign_routes.iter().any(|f| f.replaceable_by(&cidr)) {
        r.detail
            .push_str(" (left as it is; --replace-foreign-routes would replace it)");
    } else {
        r.detail.push_str(" (left as it is)");
    }
}

#[cfg(test)]
#[path = "foreign_tests.rs"]
mod tests;
