//! Applies a plan to the kernel: diff what is there against what should be, change only the
//! difference, and touch only what carries Jalur's marks (route protocol 74 not pointing at a
//! pod's host end, the `jalur.vxlan` device, the `jalur` nftables table).
//!
//! Blocking: the agent runs it on a blocking thread. Safe to run again at any time: a run on a
//! node that is already right changes nothing.

use std::collections::HashMap;
use std::net::IpAddr;

use cni_plugin::attachment::HOST_IF_PREFIX;
use cni_plugin::net::{
    sysctl, Neighbour, NetError, Netlink, Route, VxlanSpec, JALUR_ROUTE_PROTOCOL,
};
use ipnet::IpNet;

use crate::claims::Local;
use crate::cluster::NodeInfo;
use crate::plan::{
    self, vxlan_overhead, Mode, OverlayPlan, Plan, Policy, Underlay, VNI, VXLAN_DEVICE, VXLAN_PORT,
};

/// What one sync changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Routes added or replaced.
    pub routes_added: usize,
    /// Routes removed.
    pub routes_removed: usize,
    /// Overlay entries (device, addresses, forwarding, neighbours) changed.
    pub overlay_changes: usize,
}

/// Errors of a sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A kernel operation failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A sysctl could not be set.
    #[error("{0}")]
    Sysctl(std::io::Error),
    /// The node's own address is on no local interface.
    #[error("{0}")]
    NoUnderlay(String),
}

/// Finds the interface that holds the node's address (its first InternalIP found locally),
/// or, when the node is not known yet, the one holding the IPv4 default route.
pub fn discover_underlay(nl: &mut Netlink, me: Option<&NodeInfo>) -> Result<Underlay, SyncError> {
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
pub fn local_snapshot(nl: &mut Netlink) -> Result<Local, NetError> {
    let ours: Vec<u32> = nl
        .links()?
        .into_iter()
        .filter(|l| l.name == VXLAN_DEVICE || l.name.starts_with(HOST_IF_PREFIX))
        .map(|l| l.index)
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
                .map(|r| r.dst),
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
fn ensure_vxlan(nl: &mut Netlink, spec: &VxlanSpec) -> Result<(u32, bool), SyncError> {
    if let Some(link) = nl.link_by_name(&spec.name)? {
        if link.alias.as_deref() == Some(spec.alias.as_str()) && link.up {
            return Ok((link.index, false));
        }
        tracing::info!(device = %spec.name, "recreating the overlay device (its settings changed)");
        nl.delete_link(&spec.name)?;
    }
    Ok((nl.create_vxlan(spec)?, true))
}

fn sync_overlay(nl: &mut Netlink, index: u32, overlay: &OverlayPlan) -> Result<usize, SyncError> {
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
pub fn owned_routes(nl: &mut Netlink) -> Result<Vec<Route>, NetError> {
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

fn sync_routes(nl: &mut Netlink, want: &[Route]) -> Result<(usize, usize), SyncError> {
    let have = owned_routes(nl)?;
    let mut added = 0;
    for r in want {
        if !have.iter().any(|h| h.same_as(r)) {
            nl.replace_route(r)?;
            added += 1;
        }
    }
    let mut removed = 0;
    for r in &have {
        if !want.iter().any(|w| w.same_as(r)) {
            nl.delete_route(r)?;
            removed += 1;
        }
    }
    Ok((added, removed))
}

fn enable_forwarding(plan: &Plan) -> Result<(), SyncError> {
    sysctl::ensure("net/ipv4/ip_forward", "1").map_err(SyncError::Sysctl)?;
    if plan
        .own_cidrs
        .iter()
        .any(|c| matches!(c.addr(), IpAddr::V6(_)))
    {
        sysctl::ensure("net/ipv6/conf/all/forwarding", "1").map_err(SyncError::Sysctl)?;
    }
    Ok(())
}

/// One full sync: plan from the view, then make the kernel match. Returns the plan applied.
pub fn sync(
    nl: &mut Netlink,
    me: Option<&NodeInfo>,
    nodes: &[NodeInfo],
    policy: &Policy,
) -> Result<(Plan, Changes), SyncError> {
    let mode = policy.mode;
    let underlay = discover_underlay(nl, me)?;
    let local = local_snapshot(nl)?;
    let draft = plan::plan(me, nodes, &underlay, &local, policy, None);
    let mut changes = Changes::default();
    let overlay_index = match &draft.overlay {
        Some(overlay) if !overlay.peers.is_empty() || mode == Mode::Vxlan => {
            let (index, created) = ensure_vxlan(nl, &vxlan_spec(overlay, &underlay))?;
            changes.overlay_changes += usize::from(created);
            changes.overlay_changes += sync_overlay(nl, index, overlay)?;
            Some(index)
        }
        _ => {
            if nl.delete_link(VXLAN_DEVICE)? {
                changes.overlay_changes += 1;
            }
            None
        }
    };
    let plan = plan::plan(me, nodes, &underlay, &local, policy, overlay_index);
    if me.is_some() {
        enable_forwarding(&plan)?;
    }
    let (added, removed) = sync_routes(nl, &plan.routes)?;
    changes.routes_added = added;
    changes.routes_removed = removed;
    Ok((plan, changes))
}

/// Removes every route and device the agent made (for `jalur-agent uninstall`).
pub fn remove_all(nl: &mut Netlink) -> Result<usize, NetError> {
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
