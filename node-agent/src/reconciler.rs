//! The reconcile loop: whenever the view changes, and every resync period, compute the
//! desired state and make the kernel, the firewall and the CNI config match it.
//!
//! The kernel work runs on a blocking thread with a netlink socket opened once, in the
//! agent's own namespace. A failed sync is logged and counted, and the next one retries.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::nft::{self, FirewallSpec};
use jalur_cni_plugin::net::{NetError, Netlink};
use tokio::sync::watch;

use crate::claims::Rejection;
use crate::cli::RunArgs;
use crate::cniconf::CniConf;
use crate::firewall;
use crate::metrics::SharedStats;
use crate::parts::{self, Part, PartErrors};
use crate::plan::{PeerRoute, Policy};
use crate::repeat::{Failed, Repeated};
use crate::source::View;
use crate::sync;
use crate::testhook::{self, Injected};

/// Why Jalur's nftables table could not be made as it should be.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// Injected by the test-only hook (`crate::testhook`).
    #[error(transparent)]
    Injected(#[from] Injected),
    /// The table cannot be listed (to tell whether someone changed it).
    #[error("listing table inet {table}: {source}")]
    List {
        /// The table's name.
        table: String,
        /// Why.
        source: NetError,
    },
    /// The table cannot be applied, or read back once applied.
    #[error(transparent)]
    Nft(#[from] NetError),
}

/// What persists between syncs.
struct State {
    nl: Netlink,
    firewall: Option<FirewallSpec>,
    /// Each peer's last reported decision (so each is logged once, not per resync).
    peers: BTreeMap<String, PeerRoute>,
    /// This node's own pod CIDRs last reported as rejected.
    own_rejected: Vec<Rejection>,
    /// The fingerprint of the nftables table right after the agent last applied it.
    firewall_print: Option<u64>,
    /// Failures going on, per part (None: the sync as a whole), each logged once.
    failures: BTreeMap<Option<Part>, Repeated>,
}

/// Runs until `shutdown` fires. Routes are left in place on the way out.
pub async fn run(
    args: RunArgs,
    node_name: String,
    conf: CniConf,
    mut view: watch::Receiver<View>,
    stats: SharedStats,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), NetError> {
    let nl = Netlink::open()?;
    let state = Arc::new(Mutex::new(State {
        nl,
        firewall: None,
        peers: BTreeMap::new(),
        own_rejected: Vec::new(),
        firewall_print: None,
        failures: BTreeMap::new(),
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
        replace_foreign_routes: args.replace_foreign_routes,
    };
    let synced = match sync::sync(&mut state.nl, me, nodes, &policy) {
        Ok(synced) => synced,
        Err(e) => {
            let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
            s.sync_errors += 1;
            s.last_sync_seconds = started.elapsed().as_secs_f64();
            note(&mut state.failures, None, &e.to_string());
            return;
        }
    };
    if let Some(ended) = state.failures.entry(None).or_default().succeeded() {
        tracing::info!(failed_syncs = ended.count, was = %ended.error, "the node can be looked at again");
    }
    let mut parts = PartErrors::new();
    parts.insert(
        Part::Overlay,
        synced.overlay.as_ref().err().map(ToString::to_string),
    );
    let failing: Vec<String> = synced
        .forwarding
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().map(ToString::to_string))
        .collect();
    parts.insert(
        Part::Forwarding,
        (!failing.is_empty()).then(|| failing.join("; ")),
    );
    parts.insert(
        Part::Routes,
        synced.routes.as_ref().err().map(ToString::to_string),
    );
    let plan = &synced.plan;
    let fw = firewall::spec(args, &plan.pod_network);
    let masquerade = fw.masquerade.is_some();
    parts.insert(
        Part::Firewall,
        sync_firewall(fw, state).err().map(|e| e.to_string()),
    );
    let served = synced.served();
    let cni = if served.is_empty() {
        Ok(())
    } else {
        conf.write(&served, plan.pod_mtu).map(|written| {
            if written {
                tracing::info!(path = %conf.path().display(), mtu = plan.pod_mtu, cidrs = ?served, "wrote the CNI config");
            }
        })
    };
    parts.insert(Part::CniConfig, cni.err().map(|e| e.to_string()));
    let ready = parts::readiness(!served.is_empty(), &parts, masquerade);
    let mark = if ready {
        conf.mark_ready()
    } else {
        conf.mark_not_ready()
    };
    if let Err(e) = mark {
        parts.insert(Part::CniConfig, Some(e.to_string()));
    }
    let ready = ready && matches!(parts.get(&Part::CniConfig), Some(None));
    for (part, error) in &parts {
        match error {
            Some(e) => note(&mut state.failures, Some(*part), e),
            None => {
                if let Some(ended) = state.failures.entry(Some(*part)).or_default().succeeded() {
                    tracing::info!(part = part.name(), failed_syncs = ended.count, seconds = ended.seconds,
                        was = %ended.error, "part of the node's state in place again");
                }
            }
        }
    }
    let changes = &synced.changes;
    let elapsed = started.elapsed().as_secs_f64();
    let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
    s.last_sync_seconds = elapsed;
    s.syncs += 1;
    if parts.values().any(Option::is_some) {
        s.sync_errors += 1;
    }
    for (part, error) in &parts {
        if error.is_some() {
            *s.part_errors.entry(part.name()).or_default() += 1;
        }
    }
    s.parts = parts.iter().map(|(p, e)| (p.name(), e.clone())).collect();
    s.ready = ready;
    s.routes = plan.routes.len();
    s.route_changes += (changes.routes_added + changes.routes_removed) as u64;
    s.foreign_routes_replaced += changes.replaced.len() as u64;
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
    drop(s);
    if *changes != Default::default() {
        tracing::info!(
            added = changes.routes_added,
            removed = changes.routes_removed,
            overlay = changes.overlay_changes,
            seconds = elapsed,
            "synced"
        );
    }
    for t in &changes.replaced {
        tracing::warn!(
            peer = %t.peer,
            foreign = %t.foreign.text,
            jalur = %t.text,
            "replaced a route that was not Jalur's with Jalur's own (--replace-foreign-routes): `{}` is now `{}`",
            t.foreign.text,
            t.text
        );
    }
    report_peers(&plan.peers, &mut state.peers);
    report_own(node_name, &plan.own_rejected, &mut state.own_rejected);
}

/// Makes Jalur's nftables table as `fw` says: applied when it differs from the last one
/// applied, and again when someone else changed the table (a flushed or edited chain, a
/// deleted table), which its fingerprint tells.
fn sync_firewall(fw: FirewallSpec, state: &mut State) -> Result<(), FirewallError> {
    testhook::injected(Part::Firewall)?;
    let print = nft::fingerprint(&fw.table).map_err(|source| FirewallError::List {
        table: fw.table.clone(),
        source,
    })?;
    let same_spec = state.firewall.as_ref() == Some(&fw);
    if same_spec && state.firewall_print == Some(print) {
        return Ok(());
    }
    nft::apply(&fw)?;
    if same_spec {
        tracing::warn!(table = %fw.table, "the nftables table was changed by someone else; put back as it should be");
    }
    state.firewall_print = Some(nft::fingerprint(&fw.table)?);
    state.firewall = Some(fw);
    Ok(())
}

/// Logs a failure of one part (None: the whole sync) when it starts, and at most once per
/// [`crate::repeat::REMIND`] while it lasts.
fn note(failures: &mut BTreeMap<Option<Part>, Repeated>, part: Option<Part>, error: &str) {
    let name = part.map_or("sync", Part::name);
    match failures.entry(part).or_default().failed(error) {
        Failed::Started => tracing::error!(part = name, error, "part of the node's state is not in place; the others go on, and it is retried at every sync"),
        Failed::Still { count } => tracing::error!(part = name, error, failed_syncs = count, "still not in place"),
        Failed::Quiet => {}
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
            PeerRoute::Partial(why) => {
                tracing::warn!(peer = %name, reason = %why, "peer routed in part; some of its pod CIDRs cannot be")
            }
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
