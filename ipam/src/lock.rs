//! The store's lock: an `flock` on a lock file, taken with a bounded wait.
//!
//! Each acquisition opens its own file description, so two [`Store`](crate::Store) values in
//! one process (or two threads sharing one) exclude each other exactly like two processes.
//! The lock is released when the guard is dropped (closing the descriptor).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

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
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| Error::Io {
            op: "cannot open lock file",
            path: path.to_owned(),
            source,
        })?;
    crate::store::require_regular(&file, path, "lock file")?;
    Ok(file)
}

fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
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
    let op = match mode {
        Mode::Shared => libc::LOCK_SH,
        Mode::Exclusive => libc::LOCK_EX,
    };
    let io_err = |source| Error::Io {
        op: "cannot lock",
        path: path.to_owned(),
        source,
    };
    match flock(&file, op | libc::LOCK_NB) {
        Ok(()) => return Ok(file),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {}
        Err(e) => return Err(io_err(e)),
    }
    let (tx, rx) = mpsc::sync_channel(1);
    thread::spawn(move || {
        let result = flock(&file, op).map(|()| file);
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
