//! The crash-safe on-disk store of one network: `<data_dir>/<network>/allocations.json`
//! guarded by an `flock` on `<data_dir>/<network>/lock`.
//!
//! Every read-modify-write holds the exclusive lock for its whole duration; read-only
//! operations hold it shared. A change is written to `allocations.json.tmp.<pid>` in the same
//! directory, fsynced, renamed over `allocations.json`, and the directory is fsynced
//! ([`atomic_file`]): a process killed at any instant leaves the old or the new state, never a
//! torn file. Leftover
//! temp files of killed writers are removed under the exclusive lock before the state is read.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::OFlag;

use crate::atomic_file;
use crate::attachment_lock::AttachmentLock;
use crate::error::{Error, Result};
use crate::key::{Allocation, AttachmentKey};
use crate::lock::{self, Mode};
use crate::pool::Pool;
use crate::state::State;

/// Name of the state file inside the network directory.
pub const STATE_FILE: &str = "allocations.json";
/// Name of the lock file inside the network directory.
pub const LOCK_FILE: &str = "lock";
/// Prefix of temp files (`allocations.json.tmp.<pid>`).
const TMP_PREFIX: &str = "allocations.json.tmp.";
/// How long an operation waits for the lock by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(20);

/// The allocation store of one network. Cheap to open; every operation locks, reads and
/// (if it changes anything) persists on its own, so any number of `Store` values, threads
/// and processes may use the same directory concurrently.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    state_path: PathBuf,
    lock_path: PathBuf,
    lock_timeout: Duration,
}

impl Store {
    /// Opens (creating with mode 0700 as needed) `<data_dir>/<network>/` and its lock file.
    ///
    /// `network` must be a plain directory name: not empty, `.` or `..`, without `/` or NUL,
    /// at most 255 bytes ([`Error::InvalidNetworkName`]). The lock timeout is
    /// [`DEFAULT_LOCK_TIMEOUT`]; see [`Store::with_lock_timeout`].
    pub fn open(data_dir: &Path, network: &str) -> Result<Store> {
        validate_network_name(network)?;
        let dir = data_dir.join(network);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| Error::Io {
                op: "cannot create directory",
                path: dir.clone(),
                source,
            })?;
        let lock_path = dir.join(LOCK_FILE);
        lock::open_lock_file(&lock_path)?;
        Ok(Store {
            state_path: dir.join(STATE_FILE),
            lock_path,
            dir,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        })
    }

    /// The same store with a different bound on the wait for the lock (past it, operations
    /// fail with [`Error::LockTimeout`]).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Store {
        self.lock_timeout = timeout;
        self
    }

    /// The network directory (`<data_dir>/<network>`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state file (`<dir>/allocations.json`).
    pub fn state_path(&self) -> &Path {
        &self.state_path
    }

    /// The lock file (`<dir>/lock`).
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    /// The current bound on the wait for the lock.
    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    /// Gives `key` one address per range set of `pool`, in range-set order.
    ///
    /// Idempotent: addresses `key` already holds inside a range set are returned again and
    /// only the sets where it holds none get a new one. Addresses it holds outside every
    /// range set are ignored but stay booked (until [`release`](Self::release) or
    /// [`gc`](Self::gc)). New addresses are chosen round-robin after the set's last handed-out
    /// address, skipping booked ones and gateways. All or nothing: if one set is exhausted
    /// ([`Error::Exhausted`]), nothing is booked.
    pub fn allocate(&self, pool: &Pool, key: &AttachmentKey) -> Result<Vec<Allocation>> {
        self.modify(|state| state.allocate(pool, key))
    }

    /// Unbooks every address of `key` and returns them. Releasing a key that holds nothing is
    /// `Ok(vec![])` and does not rewrite the state file.
    pub fn release(&self, key: &AttachmentKey) -> Result<Vec<IpAddr>> {
        self.modify(|state| {
            let released = state.release(key);
            let changed = !released.is_empty();
            Ok((released, changed))
        })
    }

    /// The addresses booked for `key` (empty if none), in booking order.
    pub fn lookup(&self, key: &AttachmentKey) -> Result<Vec<IpAddr>> {
        self.read(|state| state.lookup(key))
    }

    /// Unbooks every address whose key is not in `valid`; returns what it unbooked.
    pub fn gc(&self, valid: &HashSet<AttachmentKey>) -> Result<Vec<(AttachmentKey, IpAddr)>> {
        self.modify(|state| {
            let released = state.gc(valid);
            let changed = !released.is_empty();
            Ok((released, changed))
        })
    }

    /// Every key holding addresses, with its addresses in booking order.
    pub fn attachments(&self) -> Result<BTreeMap<AttachmentKey, Vec<IpAddr>>> {
        self.read(State::attachments)
    }

    /// For each range set of `pool`, in order: how many addresses are free now (capacity
    /// minus booked, saturating; computed without walking the ranges). An allocation can be
    /// served if every entry for a set the key holds nothing in is non-zero.
    pub fn free_addresses(&self, pool: &Pool) -> Result<Vec<u128>> {
        self.read(|state| state.free(pool))
    }

    /// Serialises every operation on `key` (the plugin holds it across booking and wiring):
    /// an exclusive lock on `<dir>/attachments/<hash of key>.lock`, waited for at most the
    /// lock timeout. Independent of the store's own lock, and always taken before it.
    pub fn lock_attachment(&self, key: &AttachmentKey) -> Result<AttachmentLock> {
        AttachmentLock::acquire(&self.dir, key, self.lock_timeout)
    }

    /// Runs `f` on the state under the shared lock.
    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Result<T> {
        let _guard = lock::acquire(&self.lock_path, Mode::Shared, self.lock_timeout)?;
        let state = self.load()?;
        Ok(f(&state))
    }

    /// Runs `f` on the state under the exclusive lock and persists the state if `f` says it
    /// changed it.
    fn modify<T>(&self, f: impl FnOnce(&mut State) -> Result<(T, bool)>) -> Result<T> {
        let _guard = lock::acquire(&self.lock_path, Mode::Exclusive, self.lock_timeout)?;
        self.remove_temp_files()?;
        let mut state = self.load()?;
        let (out, changed) = f(&mut state)?;
        if changed {
            self.persist(&state)?;
        }
        Ok(out)
    }

    /// Reads the state file; missing means empty. Caller holds the lock. The open never
    /// blocks (`O_NONBLOCK`) and anything but a regular file is refused, so a FIFO put in its
    /// place cannot hang every plugin of the node behind the lock.
    fn load(&self) -> Result<State> {
        let read_err = |source| Error::Io {
            op: "cannot read state file",
            path: self.state_path.clone(),
            source,
        };
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW).bits())
            .open(&self.state_path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(read_err(e)),
        };
        require_regular(&file, &self.state_path, "state file")?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(read_err)?;
        let state: State = serde_json::from_slice(&bytes).map_err(|source| Error::Corrupt {
            path: self.state_path.clone(),
            source,
        })?;
        state.validate().map_err(|reason| Error::InvalidState {
            path: self.state_path.clone(),
            reason,
        })?;
        Ok(state)
    }

    /// Removes temp files left by writers killed mid-write. Caller holds the exclusive lock,
    /// so no live writer owns one.
    fn remove_temp_files(&self) -> Result<()> {
        let io_err = |op, path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { op, path, source }
        };
        let entries = fs::read_dir(&self.dir).map_err(io_err("cannot list", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(io_err("cannot list", &self.dir))?;
            if entry
                .file_name()
                .as_encoded_bytes()
                .starts_with(TMP_PREFIX.as_bytes())
            {
                let path = entry.path();
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(io_err("cannot remove stale temp file", &path)(e))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Atomically replaces the state file. Caller holds the exclusive lock.
    fn persist(&self, state: &State) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|source| Error::Serialize {
            path: self.state_path.clone(),
            source,
        })?;
        bytes.push(b'\n');
        let tmp = format!("{TMP_PREFIX}{}", std::process::id());
        atomic_file::write_via_temp(&self.state_path, tmp.as_ref(), &bytes, 0o600)?;
        Ok(())
    }
}

/// Refuses an open file that is not a regular file (a FIFO, a device, a directory).
pub(crate) fn require_regular(file: &File, path: &Path, what: &'static str) -> Result<()> {
    let meta = file.metadata().map_err(|source| Error::Io {
        op: "cannot stat",
        path: path.to_owned(),
        source,
    })?;
    if meta.file_type().is_file() {
        return Ok(());
    }
    Err(Error::NotRegularFile {
        what,
        path: path.to_owned(),
    })
}

/// Rejects network names that are not a single, plain path component.
fn validate_network_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name == "." || name == ".." {
        "not a directory name"
    } else if name.contains('/') {
        "contains '/'"
    } else if name.contains('\0') {
        "contains NUL"
    } else if name.len() > 255 {
        "longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidNetworkName {
        name: name.to_owned(),
        reason,
    })
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
