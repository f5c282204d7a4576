//! The file source: a Kubernetes NodeList (JSON or YAML) re-read when it changes. For the
//! demo, the tests, and hosts without Kubernetes.
//!
//! How the file may be written:
//! - **By rename** (write a temp file in the same directory, then `rename` it over the old
//!   one): always safe, the agent sees the old or the new file, whole. This is the way.
//! - **In place** (truncate and write, as `>` in a shell or many editors do): the agent reads
//!   the file only once its inode, size and modification time held still for one [`POLL`],
//!   and keeps what it read only if they did not move while it read. A torn JSON file never
//!   parses; a torn YAML file can, so a writer that pauses longer than [`POLL`] between its
//!   pieces can still be read half-written: use a rename. An empty file is never a view.
//!
//! A file that is missing, unreadable or does not parse is logged when that starts and when
//! it ends (with how many reads failed), never per poll; the last good view stays.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{publish, ViewSender};
use crate::cluster::{parse_node_list, NodeInfo, ParseError};
use crate::repeat::{Failed, Repeated};

/// How often the file's metadata is checked for changes (a `stat`; the file is read only
/// when its inode, size or modification time moved, and then held still for one poll).
pub const POLL: Duration = Duration::from_millis(20);

/// What identifies a version of the file without reading it (None: it cannot be stat'ed).
type Stamp = Option<(u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// Why a read of the nodes file gave no view.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It could not be read.
    #[error("cannot read the nodes file: {0}")]
    Read(#[source] std::io::Error),
    /// It is empty (perhaps truncated by an in-place writer).
    #[error("the nodes file is empty")]
    Empty,
    /// It does not parse as a NodeList.
    #[error("the nodes file does not parse: {0}")]
    Parse(#[source] ParseError),
}

/// One read: the text and the nodes in it, or why there are none. `Ok(None)`: the file
/// changed while it was read (read again at the next poll).
async fn read(path: &Path, before: Stamp) -> Result<Option<(String, Vec<NodeInfo>)>, FileError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(FileError::Read)?;
    if stamp(path) != before {
        return Ok(None);
    }
    if text.trim().is_empty() {
        return Err(FileError::Empty);
    }
    let nodes = parse_node_list(&text).map_err(FileError::Parse)?;
    Ok(Some((text, nodes)))
}

/// Watches `path` until the channel closes.
pub async fn run(path: PathBuf, tx: ViewSender) {
    let file = path.display().to_string();
    let mut last_text: Option<String> = None;
    // The stamp last seen, and the one last read to the end (good or bad).
    let mut seen: Option<Stamp> = None;
    let mut done: Option<Stamp> = None;
    let mut failure = Repeated::default();
    let mut interval = tokio::time::interval(POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !tx.is_closed() {
        interval.tick().await;
        let now = stamp(&path);
        let settled = seen == Some(now);
        seen = Some(now);
        if done == Some(now) {
            // Nothing moved since the last read: a failure goes on without a new read.
            if let Some(e) = failure.error().map(str::to_owned) {
                note_failure(&file, &mut failure, &e);
            }
            continue;
        }
        if !settled && now.is_some() {
            continue; // it just changed: wait one poll for the writer to finish
        }
        match read(&path, now).await {
            Ok(None) => continue,
            Ok(Some((text, nodes))) => {
                done = Some(now);
                if let Some(ended) = failure.succeeded() {
                    tracing::info!(file, failed_reads = ended.count, seconds = ended.seconds,
                        was = %ended.error, "the nodes file is readable again");
                }
                if last_text.as_deref() != Some(text.as_str()) {
                    tracing::info!(file, nodes = nodes.len(), "nodes file read");
                    publish(&tx, nodes);
                    last_text = Some(text);
                }
            }
            Err(e) => {
                done = Some(now);
                let quiet_start = last_text.is_none()
                    && matches!(&e, FileError::Read(io) if io.kind() == std::io::ErrorKind::NotFound);
                let error = e.to_string();
                if quiet_start {
                    // Not written yet at start-up: told once as a wait, not as a failure.
                    if failure.failed(&error) == Failed::Started {
                        tracing::info!(file, "waiting for the nodes file");
                    }
                } else {
                    note_failure(&file, &mut failure, &error);
                }
            }
        }
    }
}

fn note_failure(file: &str, failure: &mut Repeated, error: &str) {
    match failure.failed(error) {
        Failed::Started => tracing::warn!(file, error, "keeping the last view"),
        Failed::Still { count } => {
            tracing::warn!(
                file,
                error,
                failed_reads = count,
                "still failing; keeping the last view"
            )
        }
        Failed::Quiet => {}
    }
}
