//! The store's lock: an `flock` on a lock file (std's [`File::lock`] and friends), taken with
//! a bounded wait.
//!
//! Each acquisition opens its own file description, so two [`Store`](crate::Store) values in
//! one process (or two threads sharing one) exclude each other exactly like two processes.
//! The lock is released when the guard is dropped (closing the descriptor).

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use nix::fcntl::OFlag;

use crate::error::{Error, Result};

/// Shared (readers) or exclusive (read-modify-write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Shared,
    Exclusive,
}

/// A held lock; released on drop.
#[derive(Debug)]
pub(crate) struct LockGuard {
    _file: File,
}

/// Opens (creating if needed, mode 0600) the lock file. It must be a regular file: the open
/// never blocks (`O_NONBLOCK`) and a FIFO, device or symlink is refused.
pub(crate) fn open_lock_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW).bits())
        .open(path)
        .map_err(|source| Error::Io {
            op: "cannot open lock file",
            path: path.to_owned(),
            source,
        })?;
    crate::store::require_regular(&file, path, "lock file")?;
    Ok(file)
}

/// Takes the lock, waiting as long as it takes. std does not retry `flock` when a signal
/// interrupts the wait (`EINTR`); this does.
fn lock_blocking(file: &File, mode: Mode) -> io::Result<()> {
    loop {
        let locked = match mode {
            Mode::Shared => file.lock_shared(),
            Mode::Exclusive => file.lock(),
        };
        match locked {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            locked => return locked,
        }
    }
}

/// Takes the lock if no other holder prevents it: `Ok(false)` if one does.
fn try_lock(file: &File, mode: Mode) -> io::Result<bool> {
    loop {
        let tried = match mode {
            Mode::Shared => file.try_lock_shared(),
            Mode::Exclusive => file.try_lock(),
        };
        match tried {
            Ok(()) => return Ok(true),
            Err(TryLockError::WouldBlock) => return Ok(false),
            Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Takes the lock on `path`, or [`Error::LockTimeout`] after `timeout`.
///
/// An uncontended lock is taken at once. A contended one is waited for with a *blocking*
/// `flock` on a helper thread, so the kernel hands the lock over the moment it is released
/// (polling would leave it idle between tries while a queue of plugins sleeps). If the wait
/// times out, the helper thread releases the lock as soon as it gets it.
pub(crate) fn acquire(path: &Path, mode: Mode, timeout: Duration) -> Result<LockGuard> {
    let file = lock_within(open_lock_file(path)?, path, mode, timeout)?;
    Ok(LockGuard { _file: file })
}

/// Takes the lock on the open `file` (at `path`, for messages), waiting at most `timeout`.
pub(crate) fn lock_within(file: File, path: &Path, mode: Mode, timeout: Duration) -> Result<File> {
    let io_err = |source| Error::Io {
        op: "cannot lock",
        path: path.to_owned(),
        source,
    };
    if try_lock(&file, mode).map_err(io_err)? {
        return Ok(file);
    }
    let (tx, rx) = mpsc::sync_channel(1);
    thread::spawn(move || {
        let result = lock_blocking(&file, mode).map(|()| file);
        // If the waiter gave up, the send fails and the file (and lock) is dropped here.
        let _ = tx.send(result);
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(file)) => Ok(file),
        Ok(Err(e)) => Err(io_err(e)),
        Err(_) => Err(Error::LockTimeout {
            path: path.to_owned(),
            timeout,
        }),
    }
}
