//! Where the cluster view comes from: the Kubernetes API or a NodeList file. Both publish
//! complete snapshots on a watch channel that the reconciler reads; a source that loses its
//! connection keeps the last snapshot, so routes stay as they were.

pub mod file;
pub mod kube;

use tokio::sync::watch;

use crate::cluster::NodeInfo;

/// The latest complete view of the cluster (None until the first one arrives).
pub type View = Option<Vec<NodeInfo>>;

/// The sending side, owned by a source.
pub type ViewSender = watch::Sender<View>;

/// Publishes `nodes` unless they equal the current view (so nothing downstream wakes up for
/// a change that changes nothing).
pub fn publish(tx: &ViewSender, mut nodes: Vec<NodeInfo>) {
    nodes.sort();
    tx.send_if_modified(|current| {
        if current.as_ref() == Some(&nodes) {
            false
        } else {
            *current = Some(nodes);
            true
        }
    });
}
