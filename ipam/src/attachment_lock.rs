//! The lock of one attachment: ADD and DEL of the same (container ID, ifname) hold it from
//! before the address is booked until the wiring is done (or undone), so that whatever order
//! concurrent calls land in, a wired pod's address is booked and no address is wired twice.
//!
//! One file per attachment, `<network dir>/attachments/<16 hex of a hash of the key>.lock`.
//! Two keys that share a hash share a lock, which only makes them wait for each other. DEL
//! removes the file while holding it; a waiter that then gets the lock on the unlinked file
//! notices (the path no longer names its file) and starts again, so files do not pile up and
//! no two holders ever hold different files for one key.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::key::AttachmentKey;
use crate::lock::{self, Mode};

/// Directory of the attachment locks inside the network directory.
pub const ATTACHMENTS_DIR: &str = "attachments";

/// A held attachment lock; released on drop.
#[derive(Debug)]
pub struct AttachmentLock {
    _file: File,
    path: PathBuf,
}

/// FNV-1a, 64 bit, of `container ID \0 ifname`: a file name that is safe whatever the key
/// holds.
fn file_name(key: &AttachmentKey) -> String {
    let bytes = format!("{}\0{}", key.container_id, key.ifname);
    let hash = bytes.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}.lock")
}

fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    let held = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

impl AttachmentLock {
    /// Takes the lock of `key` under the network directory `dir`, or
    /// [`Error::LockTimeout`] after `timeout`.
    pub(crate) fn acquire(dir: &Path, key: &AttachmentKey, timeout: Duration) -> Result<Self> {
        let locks = dir.join(ATTACHMENTS_DIR);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&locks)
            .map_err(|source| Error::Io {
                op: "cannot create directory",
                path: locks.clone(),
                source,
            })?;
        let path = locks.join(file_name(key));
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let file = lock::open_lock_file(&path)?;
            let file = lock::lock_within(file, &path, Mode::Exclusive, left)?;
            // A DEL that held it before us may have removed the file: lock the new one.
            let current = same_file(&file, &path).map_err(|source| Error::Io {
                op: "cannot stat",
                path: path.clone(),
                source,
            })?;
            if current {
                return Ok(AttachmentLock { _file: file, path });
            }
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the lock file (the attachment is gone), then releases the lock.
    pub fn remove(self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Io {
                op: "cannot remove",
                path: self.path.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
        // `self._file` closes here, after the unlink: waiters see the path gone and retry.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn holders_of_one_key_exclude_each_other_even_when_the_file_is_removed() {
        let tmp = tempfile::TempDir::new().unwrap();
        let key = AttachmentKey::new("abc", "eth0");
        let inside = Arc::new(AtomicUsize::new(0));
        thread::scope(|s| {
            for i in 0..8 {
                let (dir, key, inside) = (tmp.path(), &key, inside.clone());
                s.spawn(move || {
                    for _ in 0..20 {
                        let lock =
                            AttachmentLock::acquire(dir, key, Duration::from_secs(20)).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        if i % 2 == 0 {
                            lock.remove().unwrap();
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn other_keys_do_not_wait_and_a_held_key_times_out() {
        let tmp = tempfile::TempDir::new().unwrap();
        let a = AttachmentLock::acquire(
            tmp.path(),
            &AttachmentKey::new("a", "eth0"),
            Duration::from_secs(1),
        )
        .unwrap();
        AttachmentLock::acquire(
            tmp.path(),
            &AttachmentKey::new("b", "eth0"),
            Duration::from_millis(1),
        )
        .unwrap();
        let err = AttachmentLock::acquire(
            tmp.path(),
            &AttachmentKey::new("a", "eth0"),
            Duration::from_millis(100),
        )
        .unwrap_err();
        assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
        drop(a);
    }
}
