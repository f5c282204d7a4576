//! The Kubernetes source: a watch of Node objects that survives dropped connections, expired
//! resource versions (`410 Gone` → relist) and API outages (the last view is kept meanwhile).

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Config};

use super::{publish, ViewSender};
use crate::cluster::NodeInfo;

/// Why no Kubernetes client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--kubeconfig` could not be read or parsed.
    #[error("cannot read kubeconfig {}: {source}", path.display())]
    ReadKubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: kube::config::KubeconfigError,
    },
    /// `--kubeconfig` was read but does not make a configuration.
    #[error("kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: kube::config::KubeconfigError,
    },
    /// Neither in-cluster configuration nor a default kubeconfig was found.
    #[error("no Kubernetes configuration: {0}")]
    Infer(#[source] kube::config::InferConfigError),
    /// The configuration does not make a client.
    #[error("cannot build a Kubernetes client: {0}")]
    Build(#[source] kube::Error),
}

/// Builds a client from `--kubeconfig`, else in-cluster config, else the usual defaults.
pub async fn client(kubeconfig: Option<PathBuf>) -> Result<Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(&path).map_err(|source| {
                ClientError::ReadKubeconfig {
                    path: path.clone(),
                    source,
                }
            })?;
            Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|source| ClientError::Kubeconfig { path, source })?
        }
        None => Config::infer().await.map_err(ClientError::Infer)?,
    };
    Client::try_from(config).map_err(ClientError::Build)
}

/// Watches Nodes until the channel closes.
pub async fn run(client: Client, tx: ViewSender) {
    let api: Api<Node> = Api::all(client);
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut nodes: BTreeMap<String, NodeInfo> = BTreeMap::new();
    let mut relist: Option<BTreeMap<String, NodeInfo>> = None;
    while let Some(event) = stream.next().await {
        if tx.is_closed() {
            return;
        }
        match event {
            Ok(watcher::Event::Init) => relist = Some(BTreeMap::new()),
            Ok(watcher::Event::InitApply(node)) => {
                if let (Some(buffer), Some(info)) = (relist.as_mut(), NodeInfo::from_node(&node)) {
                    buffer.insert(info.name.clone(), info);
                }
            }
            Ok(watcher::Event::InitDone) => {
                nodes = relist.take().unwrap_or_default();
                tracing::info!(nodes = nodes.len(), "listed Nodes");
                publish(&tx, nodes.values().cloned().collect());
            }
            Ok(watcher::Event::Apply(node)) => {
                if let Some(info) = NodeInfo::from_node(&node) {
                    nodes.insert(info.name.clone(), info);
                    publish(&tx, nodes.values().cloned().collect());
                }
            }
            Ok(watcher::Event::Delete(node)) => {
                if let Some(name) = node.metadata.name {
                    nodes.remove(&name);
                    publish(&tx, nodes.values().cloned().collect());
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Node watch failed; retrying, routes stay as they are")
            }
        }
    }
}
