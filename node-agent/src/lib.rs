//! The node agent: learns the cluster's nodes (Kubernetes API or a NodeList file), routes every
//! node's pod subnet to every other node (direct or over VXLAN), masquerades pod traffic
//! leaving the cluster, and writes the node's CNI config once the node can serve pods.
//!
//! It owns what only the agent does to a node: the pure decisions (`cluster`, `claims`,
//! `foreign`, `plan`, `firewall`), their application to the kernel (`sync`, and the
//! agent-only kernel objects `vxlan` and `nft`, Jalur's nftables table), the sources of the
//! cluster's view (`source`), and the node's CNI config (`cniconf`, `install_cni`). Links,
//! addresses, routes, neighbours, namespaces and sysctls go through the plugin crate's netlink
//! engine (`jalur_cni_plugin::net`).

#![forbid(unsafe_code)]

pub mod claims;
pub mod cli;
pub mod cluster;
pub mod cniconf;
pub mod error;
pub mod firewall;
pub mod foreign;
pub mod install_cni;
pub mod kernel;
pub mod metrics;
pub mod nft;
pub mod parts;
pub mod plan;
pub mod reconciler;
pub mod repeat;
pub mod source;
pub mod sync;
pub mod testhook;
pub mod vxlan;
