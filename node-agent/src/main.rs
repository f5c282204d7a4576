//! `jalur-agent`: the binary. Parses the command line, sets up logging and the runtime, and
//! runs one of the agent's commands (the agent itself is the library, `jalur_node_agent`).

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Parser;
use tokio::sync::watch;

use jalur_node_agent::cli::{Cli, Command, InstallCniArgs, RunArgs, UninstallArgs};
use jalur_node_agent::cniconf::CniConf;
use jalur_node_agent::error::{Error, UninstallError, UninstallStep};
use jalur_node_agent::install_cni::InstallError;
use jalur_node_agent::{firewall, install_cni, metrics, nft, reconciler, source, sync};

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
        cni_version: portmap_version
            .unwrap_or_else(|| jalur_cni_plugin::version::CURRENT.to_string()),
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JALUR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log file or `kubectl logs` gets plain `key=value` text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs every step even when one fails, and reports all failures together.
fn uninstall(args: &UninstallArgs) -> Result<(), UninstallError> {
    let mut errors = Vec::new();
    let removed = jalur_cni_plugin::net::Netlink::open()
        .and_then(|mut nl| sync::remove_all(&mut nl))
        .map_err(|e| errors.push(UninstallStep::Routes(e)))
        .unwrap_or(0);
    let table = nft::delete(firewall::TABLE)
        .map_err(|e| errors.push(UninstallStep::Firewall(e)))
        .unwrap_or(false);
    let conf = CniConf {
        conf_dir: args.cni_conf_dir.clone(),
        state_dir: args.state_dir.clone(),
        portmap: false,
        cni_version: String::new(),
    };
    if let Err(e) = conf.remove() {
        errors.push(UninstallStep::CniConfig(e));
    }
    // The IPAM store (the conflist's `dataDir`); the state dir itself goes only when empty.
    let ipam = args.state_dir.join("ipam");
    match std::fs::remove_dir_all(&ipam) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
            errors.push(UninstallStep::IpamStore { path: ipam, source })
        }
        _ => {}
    }
    let _ = std::fs::remove_dir(&args.state_dir);
    let mut binaries = Vec::new();
    if let Some(dir) = &args.cni_bin_dir {
        match install_cni::uninstall(dir) {
            Ok(removed) => binaries = removed,
            Err(e) => errors.push(e.into()),
        }
    }
    tracing::info!(
        routes_and_devices = removed,
        nftables_table = table,
        binaries = binaries.len(),
        "uninstalled"
    );
    if errors.is_empty() {
        Ok(())
    } else {
        Err(UninstallError(errors))
    }
}

fn install_cni(args: &InstallCniArgs) -> Result<(), InstallError> {
    for (name, outcome) in install_cni::install(&args.from, &args.to)? {
        let path = args.to.join(name);
        match outcome {
            install_cni::Outcome::Installed => tracing::info!(path = %path.display(), "installed"),
            install_cni::Outcome::Unchanged => {
                tracing::info!(path = %path.display(), "unchanged")
            }
        }
    }
    if !args.enable_forwarding.is_empty() {
        install_cni::enable_forwarding(&args.enable_forwarding)?;
        tracing::info!(families = ?args.enable_forwarding, "forwarding is on");
    }
    Ok(())
}

/// Start-up hygiene: clears what older runs or versions of the agent left (logged; a
/// failure is a warning, never a reason not to start).
fn remove_stale(args: &RunArgs) {
    for (path, result) in install_cni::remove_stale(&args.cni_conf_dir, &args.state_dir) {
        match result {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a stale file of an older run")
            }
            Err(e) => tracing::warn!(path = %path.display(), "cannot remove a stale file: {e}"),
        }
    }
}

async fn run(args: RunArgs) -> Result<(), Error> {
    let node_name = args.node_name.clone().ok_or(Error::NoNodeName)?;
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
        .map_err(|source| Error::Listen {
            addr: args.metrics_addr,
            source,
        })?;
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
    remove_stale(&args);
    let conf = cni_conf(&args);
    Ok(reconciler::run(args, node_name, conf, view_rx, stats, stop_rx).await?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.run.log_json);
    let result = match cli.command {
        Some(Command::Uninstall(args)) => uninstall(&args).map_err(Error::from),
        Some(Command::InstallCni(args)) => install_cni(&args).map_err(Error::from),
        None => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(Error::Runtime)
            .and_then(|rt| rt.block_on(run(cli.run))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once: each error's message already spells the errors under it.
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
