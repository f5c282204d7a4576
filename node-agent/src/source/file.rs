//! The file source: a Kubernetes NodeList (JSON or YAML) re-read when it changes. For the
//! demo, the tests, and hosts without Kubernetes.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use super::{publish, ViewSender};
use crate::cluster::parse_node_list;

/// How often the file's metadata is checked for changes (a `stat`; the file is read only
/// when its inode, size or modification time moved).
pub const POLL: Duration = Duration::from_millis(20);

/// What identifies a version of the file without reading it.
fn stamp(path: &std::path::Path) -> Option<(u64, u64, i64, i64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// Watches `path` until the channel closes. A file that is missing or does not parse is
/// logged and the last good view kept.
pub async fn run(path: PathBuf, tx: ViewSender) {
    let mut last: Option<String> = None;
    let mut last_stamp = None;
    let mut interval = tokio::time::interval(POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !tx.is_closed() {
        interval.tick().await;
        let now = stamp(&path);
        if now.is_some() && now == last_stamp {
            continue;
        }
        last_stamp = now;
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(e) => {
                if last.is_some() || e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(file = %path.display(), error = %e, "cannot read the nodes file; keeping the last view");
                }
                last = Some(String::new());
                continue;
            }
        };
        if last.as_deref() == Some(text.as_str()) {
            continue;
        }
        match parse_node_list(&text) {
            Ok(nodes) => {
                tracing::info!(file = %path.display(), nodes = nodes.len(), "nodes file read");
                publish(&tx, nodes);
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "the nodes file does not parse; keeping the last view")
            }
        }
        last = Some(text);
    }
}
