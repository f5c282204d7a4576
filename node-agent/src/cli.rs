//! The command line. The flags below are a contract (the demo, the tests and the manifest
//! use them): keep them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::install_cni::Family;
use crate::plan::Mode;

/// Jalur's node agent: routes every node's pod subnet to every other node.
#[derive(Debug, Parser)]
#[command(name = "jalur-agent", version, about)]
pub struct Cli {
    /// What to do (default: run the agent).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Agent settings.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Remove everything the agent made on this node: its routes, the overlay device, the
    /// nftables table, the CNI config, the readiness mark and the IPAM store (and, with
    /// `--cni-bin-dir`, the plugin binaries). Pods' own interfaces stay.
    Uninstall(UninstallArgs),
    /// Copy the plugin binaries (`jalur`, `jalur-ipam`) into the node's CNI bin dir, each by
    /// temp file and rename; files already identical are left alone.
    InstallCni(InstallCniArgs),
}

/// Where `install-cni` copies from and to.
#[derive(Debug, Clone, Args)]
pub struct InstallCniArgs {
    /// The dir holding `jalur` and `jalur-ipam` (in the image: /usr/local/lib/jalur/cni).
    #[arg(long)]
    pub from: PathBuf,
    /// The node's CNI bin dir (created if missing).
    #[arg(long)]
    pub to: PathBuf,
    /// Also turn on forwarding for these address families (needs a writable /proc/sys).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub enable_forwarding: Vec<Family>,
}

/// Where `uninstall` looks for the agent's files.
#[derive(Debug, Clone, Args)]
pub struct UninstallArgs {
    /// The CNI config dir the agent wrote to.
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// The agent's state dir.
    #[arg(long, default_value = "/var/lib/jalur")]
    pub state_dir: PathBuf,
    /// Also remove the plugin binaries (`jalur`, `jalur-ipam`) from this dir (none by
    /// default: other files there always stay).
    #[arg(long)]
    pub cni_bin_dir: Option<PathBuf>,
}

/// The agent's settings.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// This node's name (as in the Node object).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Read the cluster from this NodeList file (JSON or YAML) instead of the Kubernetes API;
    /// it is re-read when it changes.
    #[arg(long, conflicts_with = "kubeconfig")]
    pub nodes_file: Option<PathBuf>,
    /// Kubeconfig for the API (default: in-cluster configuration).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Where the CNI config list is written.
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// Where the CNI plugins are (to decide whether `portmap` can be chained).
    #[arg(long, default_value = "/opt/cni/bin")]
    pub cni_bin_dir: PathBuf,
    /// The agent's own files: the node's IPAM store and the readiness mark.
    #[arg(long, default_value = "/var/lib/jalur")]
    pub state_dir: PathBuf,
    /// How peers are routed: direct where possible and VXLAN elsewhere (auto), or one for all.
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: Mode,
    /// The cluster's pod network (repeat for several; default: every node's pod CIDRs).
    #[arg(long = "cluster-cidr")]
    pub cluster_cidrs: Vec<IpNet>,
    /// Do not masquerade traffic from pods to destinations outside the cluster.
    #[arg(long)]
    pub no_masquerade: bool,
    /// Destinations never masqueraded, besides the cluster's pod network (repeatable).
    #[arg(long = "no-masquerade-cidr")]
    pub no_masquerade_cidrs: Vec<IpNet>,
    /// Replace a route that is not Jalur's (not protocol 74) when its destination is exactly
    /// a peer's pod CIDR with the default metric, with a warning each time. Off: such a
    /// route is left, and the peer is reported and not routed. Broader or narrower routes
    /// are never replaced.
    #[arg(long)]
    pub replace_foreign_routes: bool,
    /// Serve /healthz, /readyz and /metrics here.
    #[arg(long, default_value = "0.0.0.0:9644")]
    pub metrics_addr: SocketAddr,
    /// Re-check the kernel this often (seconds), repairing what someone else changed.
    #[arg(long, default_value_t = 10)]
    pub resync_seconds: u64,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
}
