//! Applies a plan to the kernel: diff what is there against what should be, change only the
//! difference, and touch only what carries Jalur's marks (route protocol 74 not pointing at a
//! pod's host end, the `jalur.vxlan` device, the `jalur` nftables table).
//!
//! It works through [`Kernel`] (the agent's netlink socket; an in-memory node in the unit
//! tests). Blocking: the agent runs it on a blocking thread. Safe to run again at any time: a
//! run on a node that is already right changes nothing.

use ipnet::IpNet;
use jalur_cni_plugin::attachment::HOST_IF_PREFIX;
use jalur_cni_plugin::net::{Neighbour, NetError, Route, JALUR_ROUTE_PROTOCOL};
use std::collections::HashMap;
use std::net::IpAddr;

use crate::claims::{ForeignRoute, Local};
use crate::cluster::NodeInfo;
use crate::foreign::Takeover;
use crate::kernel::Kernel;
use crate::parts::Part;
use crate::plan::{
    self, vxlan_overhead, Mode, OverlayPlan, Plan, Policy, Underlay, VNI, VXLAN_DEVICE, VXLAN_PORT,
};
use crate::testhook::{self, Injected};
use crate::vxlan::VxlanSpec;

/// What one sync changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Routes added or replaced.
    pub routes_added: usize,
    /// Routes removed.
    pub routes_removed: usize,
    /// Overlay entries (device, addresses, forwarding, neighbours) changed.
    pub overlay_changes: usize,
    /// Foreign routes replaced by Jalur's (`--replace-foreign-routes`).
    pub replaced: Vec<Takeover>,
}

/// Errors of a sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A kernel operation failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A sysctl could not be set.
    #[error("cannot set {key} to 1: {source}")]
    Sysctl {
        /// The sysctl, as a path under /proc/sys.
        key: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The node's own address is on no local interface.
    #[error("{0}")]
    NoUnderlay(String),
    /// Some routes could not be changed (the others were).
    #[error("{failed} route change(s) failed, the first: {first}")]
    Routes {
        /// How many failed.
        failed: usize,
        /// The first failure.
        first: NetError,
    },
    /// Injected by the test-only hook (`crate::testhook`).
    #[error(transparent)]
    Injected(#[from] Injected),
}

/// The test-only failure hook for `part` (always `Ok` in builds without `test-hooks`).
fn hook(part: Part) -> Result<(), SyncError> {
    Ok(testhook::injected(part)?)
}

/// Finds the interface that holds the node's address (its first InternalIP found locally),
/// or, when the node is not known yet, the one holding the IPv4 default route.
pub fn discover_underlay(
    nl: &mut dyn Kernel,
    me: Option<&NodeInfo>,
) -> Result<Underlay, SyncError> {
    let addrs = nl.all_addresses()?;
    let index = match me {
        Some(me) => me
            .addresses
            .iter()
            .find_map(|ip| addrs.iter().find(|(_, a, _)| a == ip).map(|(i, _, _)| *i))
            .ok_or_else(|| {
                SyncError::NoUnderlay(format!(
                    "none of node {}'s addresses {:?} is on a local interface",
                    me.name, me.addresses
                ))
            })?,
        None => nl
            .routes(false)?
            .into_iter()
            .find(|r| r.dst.prefix_len() == 0 && !r.blackhole)
            .and_then(|r| r.oif)
            .ok_or_else(|| {
                SyncError::NoUnderlay("no default route to find the underlay by".into())
            })?,
    };
    let link = nl
        .link_by_index(index)?
        .ok_or_else(|| SyncError::NoUnderlay(format!("interface {index} vanished")))?;
    let prefixes = addrs
        .iter()
        .filter(|(i, _, _)| *i == index)
        .filter_map(|(_, ip, len)| IpNet::new(*ip, *len).ok().map(|n| n.trunc()))
        .collect();
    Ok(Underlay {
        index,
        name: link.name,
        mtu: link.mtu,
        prefixes,
    })
}

/// What the node holds that no peer may claim: its addresses and their subnets (those of
/// the overlay device aside, which are the agent's), and the main table's routes that are
/// not Jalur's: not protocol 74, and not through the overlay device or a pod's host end (the
/// kernel's own routes for addresses there, such as an IPv6 tunnel address's /128).
pub fn local_snapshot(nl: &mut dyn Kernel) -> Result<Local, NetError> {
    let names: HashMap<u32, String> = nl.links()?.into_iter().map(|l| (l.index, l.name)).collect();
    let ours: Vec<u32> = names
        .iter()
        .filter(|(_, n)| *n == VXLAN_DEVICE || n.starts_with(HOST_IF_PREFIX))
        .map(|(i, _)| *i)
        .collect();
    let overlay = nl.link_by_name(VXLAN_DEVICE)?.map(|l| l.index);
    let mut local = Local::default();
    for (index, ip, len) in nl.all_addresses()? {
        if Some(index) == overlay {
            continue;
        }
        local.addresses.push(ip);
        if let Ok(net) = IpNet::new(ip, len) {
            local.subnets.push(net.trunc());
        }
    }
    for v6 in [false, true] {
        local.foreign_routes.extend(
            nl.routes(v6)?
                .into_iter()
                .filter(|r| r.protocol != JALUR_ROUTE_PROTOCOL)
                .filter(|r| !r.oif.is_some_and(|i| ours.contains(&i)))
                .map(|r| ForeignRoute {
                    dst: r.dst,
                    metric: r.metric,
                    text: r.describe_with(|i| names.get(&i).cloned()),
                }),
        );
    }
    local.subnets.sort();
    local.subnets.dedup();
    local.foreign_routes.sort();
    local.foreign_routes.dedup();
    Ok(local)
}

fn vxlan_spec(overlay: &OverlayPlan, underlay: &Underlay) -> VxlanSpec {
    let mtu = underlay.mtu.saturating_sub(vxlan_overhead(overlay.local));
    VxlanSpec {
        name: VXLAN_DEVICE.into(),
        vni: VNI,
        port: VXLAN_PORT,
        local: overlay.local,
        underlay_index: underlay.index,
        mtu,
        mac: overlay.mac,
        alias: format!(
            "jalur vni={VNI} port={VXLAN_PORT} local={} dev={} mtu={mtu}",
            overlay.local, underlay.name
        ),
    }
}

/// Makes sure the overlay device exists as `spec` says; returns its index and whether it
/// was (re)created.
fn ensure_vxlan(nl: &mut dyn Kernel, spec: &VxlanSpec) -> Result<(u32, bool), SyncError> {
    if let Some(link) = nl.link_by_name(&spec.name)? {
        if link.alias.as_deref() == Some(spec.alias.as_str()) && link.up {
            return Ok((link.index, false));
        }
        tracing::info!(device = %spec.name, "recreating the overlay device (its settings changed)");
        nl.delete_link(&spec.name)?;
    }
    Ok((nl.create_vxlan(spec)?, true))
}

fn sync_overlay(
    nl: &mut dyn Kernel,
    index: u32,
    overlay: &OverlayPlan,
) -> Result<usize, SyncError> {
    let mut changes = 0;
    let have = nl.addresses(index)?;
    for net in &overlay.tunnel_addrs {
        if !have.contains(&(net.addr(), net.prefix_len())) {
            tracing::debug!(address = %net, "adding tunnel address");
            nl.add_address(index, net.addr(), net.prefix_len())?;
            changes += 1;
        }
    }
    // The device is Jalur's own: a tunnel address of a pod subnet this node no longer has
    // (its Node was deleted and registered again with another) goes. Left in place, it
    // stays the device's first address, the source of every packet the node itself sends
    // over the overlay, and peers have no route back to it. (IPv6 link-local addresses are
    // the kernel's.)
    for (ip, prefix) in have {
        let link_local = matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local());
        if !link_local
            && !overlay
                .tunnel_addrs
                .iter()
                .any(|n| n.addr() == ip && n.prefix_len() == prefix)
        {
            tracing::info!(address = %ip, "removing a stale tunnel address");
            nl.delete_address(index, ip, prefix)?;
            changes += 1;
        }
    }
    let fdb_have = nl.fdb_entries(index)?;
    for vtep in &overlay.peers {
        if !fdb_have.contains(&vtep.fdb) {
            tracing::debug!(dst = %vtep.fdb.dst, "adding forwarding entry");
            nl.add_fdb(index, &vtep.fdb)?;
            changes += 1;
        }
    }
    for entry in fdb_have {
        if !overlay.peers.iter().any(|v| v.fdb == entry) {
            tracing::debug!(dst = %entry.dst, "removing forwarding entry");
            nl.delete_fdb(index, &entry)?;
            changes += 1;
        }
    }
    let want: Vec<Neighbour> = overlay
        .peers
        .iter()
        .flat_map(|v| {
            v.tunnel_ips.iter().map(|ip| Neighbour {
                index,
                ip: *ip,
                mac: v.fdb.mac.to_vec(),
            })
        })
        .collect();
    let neigh_have = nl.permanent_neighbours(index)?;
    for n in &want {
        if !neigh_have.contains(n) {
            tracing::debug!(ip = %n.ip, "setting tunnel neighbour");
            nl.set_permanent_neighbour(n)?;
            changes += 1;
        }
    }
    for n in neigh_have {
        if !want.iter().any(|w| w.ip == n.ip) {
            tracing::debug!(ip = %n.ip, "removing tunnel neighbour");
            nl.delete_neighbour(&n)?;
            changes += 1;
        }
    }
    Ok(changes)
}

/// The routes the agent owns now: protocol 74, not through a pod's host end.
pub fn owned_routes(nl: &mut dyn Kernel) -> Result<Vec<Route>, NetError> {
    let names: HashMap<u32, String> = nl.links()?.into_iter().map(|l| (l.index, l.name)).collect();
    let mut out = Vec::new();
    for v6 in [false, true] {
        for r in nl.routes(v6)? {
            let pod_route = r
                .oif
                .and_then(|i| names.get(&i))
                .is_some_and(|n| n.starts_with(HOST_IF_PREFIX));
            if r.protocol == JALUR_ROUTE_PROTOCOL && !pod_route {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// Changes the routes the agent owns to `want`. Every change is tried: one that fails (a
/// route the kernel refuses) does not keep the others from being made.
/// A route that replaces one of `takeovers` is recorded in `replaced`.
fn sync_routes(
    nl: &mut dyn Kernel,
    want: &[Route],
    takeovers: &[Takeover],
    replaced: &mut Vec<Takeover>,
) -> Result<(usize, usize), SyncError> {
    let have = owned_routes(nl)?;
    let (mut added, mut removed) = (0, 0);
    let mut failures = Vec::new();
    for r in want {
        if !have.iter().any(|h| h.same_as(r)) {
            match nl.replace_route(r) {
                Ok(_) => {
                    added += 1;
                    replaced.extend(takeovers.iter().filter(|t| t.route == *r).cloned());
                }
                Err(e) => failures.push(e),
            }
        }
    }
    for r in &have {
        if !want.iter().any(|w| w.same_as(r)) {
            match nl.delete_route(r) {
                Ok(_) => removed += 1,
                Err(e) => failures.push(e),
            }
        }
    }
    let failed = failures.len();
    match failures.into_iter().next() {
        Some(first) => Err(SyncError::Routes { failed, first }),
        None => Ok((added, removed)),
    }
}

/// The forwarding sysctl of a family.
fn forwarding_key(v6: bool) -> &'static str {
    if v6 {
        "net/ipv6/conf/all/forwarding"
    } else {
        "net/ipv4/ip_forward"
    }
}

/// Turns forwarding on for each family of the node's own pod CIDRs; returns, per family
/// (false: IPv4), whether it is on.
fn enable_forwarding(nl: &mut dyn Kernel, plan: &Plan) -> Vec<(bool, Result<(), SyncError>)> {
    let mut families: Vec<bool> = plan.own_cidrs.iter().map(|c| c.addr().is_ipv6()).collect();
    families.sort();
    families.dedup();
    families
        .into_iter()
        .map(|v6| {
            let key = forwarding_key(v6);
            let result = hook(Part::Forwarding).and_then(|()| {
                nl.set_sysctl(key, "1")
                    .map_err(|source| SyncError::Sysctl { key, source })
            });
            (v6, result)
        })
        .collect()
}

/// What one sync did: the plan, what changed, and each kernel part's outcome.
pub struct Synced {
    /// The plan applied.
    pub plan: Plan,
    /// What changed.
    pub changes: Changes,
    /// The overlay's outcome (Ok when it is not needed).
    pub overlay: Result<(), SyncError>,
    /// Forwarding, per family of the own pod CIDRs (false: IPv4).
    pub forwarding: Vec<(bool, Result<(), SyncError>)>,
    /// The routes' outcome.
    pub routes: Result<(), SyncError>,
}

impl Synced {
    /// The own pod CIDRs pods can be served from: those whose family forwards.
    pub fn served(&self) -> Vec<IpNet> {
        self.plan
            .own_cidrs
            .iter()
            .filter(|c| {
                self.forwarding
                    .iter()
                    .any(|(v6, r)| *v6 == c.addr().is_ipv6() && r.is_ok())
            })
            .copied()
            .collect()
    }
}

fn overlay_part(
    nl: &mut dyn Kernel,
    draft: &Plan,
    underlay: &Underlay,
    mode: Mode,
    changes: &mut Changes,
) -> (Option<u32>, Result<(), SyncError>) {
    let result = hook(Part::Overlay).and_then(|()| match &draft.overlay {
        Some(overlay) if !overlay.peers.is_empty() || mode == Mode::Vxlan => {
            let (index, created) = ensure_vxlan(nl, &vxlan_spec(overlay, underlay))?;
            changes.overlay_changes += usize::from(created);
            changes.overlay_changes += sync_overlay(nl, index, overlay)?;
            Ok(Some(index))
        }
        _ => {
            if nl.delete_link(VXLAN_DEVICE)? {
                changes.overlay_changes += 1;
            }
            Ok(None)
        }
    });
    match result {
        Ok(index) => (index, Ok(())),
        // A half-made overlay still carries what it can: routes through it stay planned.
        Err(e) => {
            let index = nl
                .link_by_name(VXLAN_DEVICE)
                .ok()
                .flatten()
                .map(|l| l.index);
            (index, Err(e))
        }
    }
}

/// One full sync: plan from the view, then make the kernel match, part by part. `Err` only
/// when the node itself cannot be looked at (its underlay, its addresses and routes).
pub fn sync(
    nl: &mut dyn Kernel,
    me: Option<&NodeInfo>,
    nodes: &[NodeInfo],
    policy: &Policy,
) -> Result<Synced, SyncError> {
    let underlay = discover_underlay(nl, me)?;
    let local = local_snapshot(nl)?;
    let draft = plan::plan(me, nodes, &underlay, &local, policy, None);
    let mut changes = Changes::default();
    let (overlay_index, overlay) = overlay_part(nl, &draft, &underlay, policy.mode, &mut changes);
    let plan = plan::plan(me, nodes, &underlay, &local, policy, overlay_index);
    let forwarding = if me.is_some() {
        enable_forwarding(nl, &plan)
    } else {
        Vec::new()
    };
    let routes = hook(Part::Routes)
        .and_then(|()| sync_routes(nl, &plan.routes, &plan.takeovers, &mut changes.replaced))
        .map(|(added, removed)| {
            changes.routes_added = added;
            changes.routes_removed = removed;
        });
    Ok(Synced {
        plan,
        changes,
        overlay,
        forwarding,
        routes,
    })
}

/// Removes every route and device the agent made (for `jalur-agent uninstall`).
pub fn remove_all(nl: &mut dyn Kernel) -> Result<usize, NetError> {
    let mut removed = 0;
    for r in owned_routes(nl)? {
        if nl.delete_route(&r)? {
            removed += 1;
        }
    }
    if nl.delete_link(VXLAN_DEVICE)? {
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
