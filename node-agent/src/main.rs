//! `jalur-agent`: learns the cluster's nodes (Kubernetes API or a NodeList file), routes every
//! node's pod subnet to every other node (direct or VXLAN), masquerades pod traffic leaving
//! the cluster, and writes the node's CNI config once the node can serve pods.

mod cli;
mod cluster;
mod cniconf;
mod firewall;
mod metrics;
mod plan;
mod reconciler;
mod source;
mod sync;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Parser;
use tokio::sync::watch;

use cli::{Cli, Command, RunArgs, UninstallArgs};
use cniconf::CniConf;

fn cni_conf(args: &RunArgs) -> CniConf {
    let portmap = args.cni_bin_dir.join("portmap");
    let portmap_version = portmap
        .is_file()
        .then(|| CniConf::common_version(&portmap))
        .flatten();
    CniConf {
        conf_dir: args.cni_conf_dir.clone(),
        state_dir: args.state_dir.clone(),
        portmap: portmap_version.is_some(),
        cni_version: portmap_version.unwrap_or_else(|| cni_plugin::version::CURRENT.to_string()),
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JALUR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn uninstall(args: &UninstallArgs) -> Result<(), String> {
    let mut nl = cni_plugin::net::Netlink::open().map_err(|e| e.to_string())?;
    let removed = sync::remove_all(&mut nl).map_err(|e| e.to_string())?;
    let table = cni_plugin::net::nft::delete(firewall::TABLE).map_err(|e| e.to_string())?;
    let conf = CniConf {
        conf_dir: args.cni_conf_dir.clone(),
        state_dir: args.state_dir.clone(),
        portmap: false,
        cni_version: String::new(),
    };
    conf.remove()
        .map_err(|e| format!("removing the CNI config: {e}"))?;
    tracing::info!(
        routes_and_devices = removed,
        nftables_table = table,
        "uninstalled"
    );
    Ok(())
}

async fn run(args: RunArgs) -> Result<(), String> {
    let node_name = args
        .node_name
        .clone()
        .ok_or("--node-name (or NODE_NAME) is required")?;
    let (view_tx, view_rx) = watch::channel(None);
    match (&args.nodes_file, &args.kubeconfig) {
        (Some(path), _) => {
            tokio::spawn(source::file::run(path.clone(), view_tx));
        }
        (None, kubeconfig) => {
            let client = source::kube::client(kubeconfig.clone()).await?;
            tokio::spawn(source::kube::run(client, view_tx));
        }
    }
    let stats = Arc::new(Mutex::new(metrics::Stats::default()));
    let listener = metrics::bind(args.metrics_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.metrics_addr))?;
    tokio::spawn(metrics::serve(listener, stats.clone()));

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stopping; routes stay in place");
        let _ = stop_tx.send(true);
    });
    tracing::info!(node = %node_name, mode = ?args.mode, "jalur-agent starting");
    let conf = cni_conf(&args);
    reconciler::run(args, node_name, conf, view_rx, stats, stop_rx).await
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.run.log_json);
    let result = match cli.command {
        Some(Command::Uninstall(args)) => uninstall(&args),
        None => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(run(cli.run))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
