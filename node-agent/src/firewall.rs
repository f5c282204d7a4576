//! The agent's nftables table: masquerade for pod traffic leaving the cluster, and
//! anti-spoofing on pods' host ends (IPv4 and IPv6).

use crate::nft::{FirewallSpec, Masquerade};
use ipnet::IpNet;
use jalur_cni_plugin::attachment::HOST_IF_PREFIX;

use crate::cli::RunArgs;

/// The table's name (family `inet`).
pub const TABLE: &str = "jalur";

/// The desired table. `pod_network` is every pod subnet the plan believes (a rejected claim
/// such as `0.0.0.0/0` must not turn masquerade off).
pub fn spec(args: &RunArgs, pod_network: &[IpNet]) -> FirewallSpec {
    // Without --cluster-cidr, the pod network is every node's pod subnets, merged into as few
    // prefixes as cover exactly them (5000 /24s side by side are a handful of rules, not 5000).
    let cluster: Vec<IpNet> = if args.cluster_cidrs.is_empty() {
        IpNet::aggregate(&pod_network.to_vec())
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn node(i: u32) -> IpNet {
        format!("10.{}.{}.0/24", 100 + i / 256, i % 256)
            .parse()
            .unwrap()
    }

    #[test]
    fn derived_cluster_cidrs_are_merged_into_few_rules() {
        let args = crate::cli::Cli::parse_from(["jalur-agent"]).run;
        let nodes: Vec<IpNet> = (0..512).map(node).collect();
        let spec = spec(&args, &nodes);
        let masq = spec.masquerade.unwrap();
        let merged: Vec<String> = masq.sources.iter().map(ToString::to_string).collect();
        assert_eq!(merged, ["10.100.0.0/15"]);
        assert_eq!(spec.anti_spoof_ifprefix.as_deref(), Some("jl"));
    }

    #[test]
    fn no_masquerade_and_extra_cidrs_are_honoured() {
        let args = crate::cli::Cli::parse_from([
            "jalur-agent",
            "--cluster-cidr=10.244.0.0/16",
            "--no-masquerade-cidr=10.96.0.0/12",
        ])
        .run;
        let masq = spec(&args, &[node(1)]).masquerade.unwrap();
        assert_eq!(
            masq.sources,
            vec!["10.244.0.0/16".parse::<IpNet>().unwrap()]
        );
        assert_eq!(masq.no_masquerade.len(), 2);
        let off = crate::cli::Cli::parse_from(["jalur-agent", "--no-masquerade"]).run;
        assert!(spec(&off, &[node(1)]).masquerade.is_none());
    }
}
