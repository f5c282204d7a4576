//! The store's lock: an `flock` on a lock file, taken with a bounded, polling wait.
//!
//! Each acquisition opens its own file description, so two [`Store`](crate::Store) values in
//! one process (or two threads sharing one) exclude each other exactly like two processes.
//! The lock is released when the guard is dropped (closing the descriptor).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// First pause between two attempts.
const BACKOFF_START: Duration = Duration::from_micros(50);
/// Longest pause between two attempts.
const BACKOFF_MAX: Duration = Duration::from_millis(2);

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

/// Opens (creating if needed, mode 0600) the lock file.
pub(crate) fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| Error::Io {
            op: "cannot open lock file",
            path: path.to_owned(),
            source,
        })
}

/// Takes the lock on `path`, polling with `LOCK_NB` and an exponential backoff (50 µs up to
/// 2 ms) until `timeout` has passed, then [`Error::LockTimeout`].
pub(crate) fn acquire(path: &Path, mode: Mode, timeout: Duration) -> Result<LockGuard> {
    let file = open_lock_file(path)?;
    let op = match mode {
        Mode::Shared => libc::LOCK_SH,
        Mode::Exclusive => libc::LOCK_EX,
    } | libc::LOCK_NB;
    let deadline = Instant::now() + timeout;
    let mut pause = BACKOFF_START;
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(LockGuard { _file: file });
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => {}
            _ => {
                return Err(Error::Io {
                    op: "cannot lock",
                    path: path.to_owned(),
                    source: err,
                })
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::LockTimeout {
                path: path.to_owned(),
                timeout,
            });
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(BACKOFF_MAX);
    }
}
