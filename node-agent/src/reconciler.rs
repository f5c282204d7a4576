//! The reconcile loop: whenever the view changes, and every resync period, compute the
//! desired state and make the kernel, the firewall and the CNI config match it.
//!
//! The kernel work runs on a blocking thread with a netlink socket opened once, in the
//! agent's own namespace. A failed sync is logged and counted, and the next one retries.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cni_plugin::net::nft::{self, FirewallSpec};
use cni_plugin::net::Netlink;
use tokio::sync::watch;

use crate::claims::Rejection;
use crate::cli::RunArgs;
use crate::cniconf::CniConf;
use crate::firewall;
use crate::metrics::SharedStats;
use crate::plan::{PeerRoute, Policy};
use crate::source::View;
use crate::sync;

/// What persists between syncs.
struct State {
    nl: Netlink,
    firewall: Option<FirewallSpec>,
    /// Each peer's last reported decision (so each is logged once, not per resync).
    peers: BTreeMap<String, PeerRoute>,
    /// This node's own pod CIDRs last reported as rejected.
    own_rejected: Vec<Rejection>,
}

/// Runs until `shutdown` fires. Routes are left in place on the way out.
pub async fn run(
    args: RunArgs,
    node_name: String,
    conf: CniConf,
    mut view: watch::Receiver<View>,
    stats: SharedStats,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let nl = Netlink::open().map_err(|e| e.to_string())?;
    let state = Arc::new(Mutex::new(State {
        nl,
        firewall: None,
        peers: BTreeMap::new(),
        own_rejected: Vec::new(),
    }));
    let mut resync = tokio::time::interval(Duration::from_secs(args.resync_seconds.max(1)));
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = view.changed() => if changed.is_err() { return Ok(()) },
            _ = resync.tick() => {}
            _ = shutdown.changed() => return Ok(()),
        }
        let Some(nodes) = view.borrow_and_update().clone() else {
            continue; // no view yet
        };
        let (args, name, conf, state, stats) = (
            args.clone(),
            node_name.clone(),
            conf.clone(),
            state.clone(),
            stats.clone(),
        );
        let _ = tokio::task::spawn_blocking(move || {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            sync_once(&args, &name, &conf, &nodes, &mut state, &stats);
        })
        .await;
    }
}

fn sync_once(
    args: &RunArgs,
    node_name: &str,
    conf: &CniConf,
    nodes: &[crate::cluster::NodeInfo],
    state: &mut State,
    stats: &SharedStats,
) {
    let started = Instant::now();
    let me = nodes.iter().find(|n| n.name == node_name);
    if me.is_none() {
        // Without its own Node the agent cannot tell right from wrong: it changes nothing in
        // the kernel (a node briefly missing from the view must not tear down its pods'
        // routes). But it serves no new pod: a Node deleted and registered again may come
        // back with another pod CIDR, and a pod wired meanwhile from the old one would get
        // an address no peer routes any more (seen on the real cluster). ADD answers "try
        // again later" (11) until the Node is back.
        tracing::warn!(
            node = node_name,
            "this node is not in the cluster view; leaving the kernel as it is and serving no new pod"
        );
        if let Err(e) = conf.mark_not_ready() {
            tracing::warn!(error = %e, "could not withdraw the readiness mark");
        }
        stats.lock().unwrap_or_else(|e| e.into_inner()).ready = false;
        return;
    }
    let policy = Policy {
        mode: args.mode,
        cluster_cidrs: args.cluster_cidrs.clone(),
    };
    let result = sync::sync(&mut state.nl, me, nodes, &policy).map_err(|e| e.to_string());
    let result = result.and_then(|(plan, changes)| {
        let fw = firewall::spec(args, &plan.pod_network);
        let table_there = nft::exists(&fw.table).map_err(|e| e.to_string())?;
        if state.firewall.as_ref() != Some(&fw) || !table_there {
            nft::apply(&fw).map_err(|e| e.to_string())?;
            state.firewall = Some(fw);
        }
        let ready = !plan.own_cidrs.is_empty();
        if ready {
            if conf.write(&plan.own_cidrs, plan.pod_mtu).map_err(|e| e.to_string())? {
                tracing::info!(path = %conf.path().display(), mtu = plan.pod_mtu, "wrote the CNI config");
            }
            conf.mark_ready().map_err(|e| e.to_string())?;
        } else {
            conf.mark_not_ready().map_err(|e| e.to_string())?;
        }
        Ok((plan, changes, ready))
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
    s.last_sync_seconds = elapsed;
    match result {
        Ok((plan, changes, ready)) => {
            s.syncs += 1;
            s.ready = ready;
            s.routes = plan.routes.len();
            s.route_changes += (changes.routes_added + changes.routes_removed) as u64;
            let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
            for (_, route) in &plan.peers {
                *counts.entry(route.label()).or_default() += 1;
            }
            s.peers = counts.into_iter().collect();
            s.rejected = plan
                .peers
                .iter()
                .filter_map(|(name, route)| match route {
                    PeerRoute::Rejected(r) => Some((name.clone(), r.rule.name())),
                    _ => None,
                })
                .chain(
                    plan.own_rejected
                        .iter()
                        .map(|r| (node_name.to_owned(), r.rule.name())),
                )
                .collect();
            if changes != Default::default() {
                tracing::info!(
                    added = changes.routes_added,
                    removed = changes.routes_removed,
                    overlay = changes.overlay_changes,
                    seconds = elapsed,
                    "synced"
                );
            }
            report_peers(&plan.peers, &mut state.peers);
            report_own(node_name, &plan.own_rejected, &mut state.own_rejected);
        }
        Err(e) => {
            s.sync_errors += 1;
            tracing::error!(error = %e, "sync failed; retrying at the next change or resync");
        }
    }
}

/// Logs each peer's routing decision when it changes (an unroutable peer as a warning, a
/// rejected claim with the rule it broke): once, not at every resync.
fn report_peers(peers: &[(String, PeerRoute)], last: &mut BTreeMap<String, PeerRoute>) {
    let now: BTreeMap<String, PeerRoute> = peers.iter().cloned().collect();
    for (name, route) in peers {
        if last.get(name) == Some(route) {
            continue;
        }
        match route {
            PeerRoute::Unroutable(why) => {
                tracing::warn!(peer = %name, reason = %why, "peer cannot be routed")
            }
            PeerRoute::Rejected(r) => tracing::warn!(
                peer = %name,
                claim = %r.claim,
                rule = r.rule.name(),
                reason = %r.detail,
                "peer claim rejected; the peer is not routed"
            ),
            r => tracing::info!(peer = %name, mode = r.label(), "peer routed"),
        }
    }
    for name in last.keys().filter(|n| !now.contains_key(*n)) {
        tracing::info!(peer = %name, "peer gone; its routes are removed");
    }
    *last = now;
}

/// Logs this node's own pod CIDRs that break a rule (they serve no pods), when that changes.
fn report_own(node: &str, rejected: &[Rejection], last: &mut Vec<Rejection>) {
    if rejected == last.as_slice() {
        return;
    }
    for r in rejected {
        tracing::error!(
            node,
            claim = %r.claim,
            rule = r.rule.name(),
            reason = %r.detail,
            "this node's own pod CIDR is rejected; no pod is served from it"
        );
    }
    *last = rejected.to_vec();
}
