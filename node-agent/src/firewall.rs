//! The agent's nftables table: masquerade for pod traffic leaving the cluster, and
//! anti-spoofing on pods' host ends (IPv4 and IPv6).

use cni_plugin::attachment::HOST_IF_PREFIX;
use cni_plugin::net::nft::{FirewallSpec, Masquerade};
use ipnet::IpNet;

use crate::cli::RunArgs;
use crate::cluster::NodeInfo;

/// The table's name (family `inet`).
pub const TABLE: &str = "jalur";

/// The desired table for this view.
pub fn spec(args: &RunArgs, nodes: &[NodeInfo]) -> FirewallSpec {
    let cluster: Vec<IpNet> = if args.cluster_cidrs.is_empty() {
        let mut all: Vec<IpNet> = nodes.iter().flat_map(|n| n.pod_cidrs.clone()).collect();
        all.sort();
        all.dedup();
        all
    } else {
        args.cluster_cidrs.clone()
    };
    let masquerade = (!args.no_masquerade && !cluster.is_empty()).then(|| Masquerade {
        sources: cluster.clone(),
        no_masquerade: cluster
            .iter()
            .chain(&args.no_masquerade_cidrs)
            .copied()
            .collect(),
    });
    FirewallSpec {
        table: TABLE.into(),
        masquerade,
        anti_spoof_ifprefix: Some(HOST_IF_PREFIX.into()),
    }
}
