//! Network namespaces: open one by path, check it is one, and run code inside it.
//!
//! A namespace is entered only on a short-lived thread made for the purpose, never on the
//! caller's thread, so the caller (and any async runtime) never changes namespace. A netlink
//! socket opened inside stays bound to that namespace after the thread ends.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// `NSFS_MAGIC` from `linux/magic.h`: the filesystem of namespace files.
const NSFS_MAGIC: u64 = 0x6e73_6673;
/// `NS_GET_NSTYPE` from `linux/nsfs.h`: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Why a path cannot be used as a network namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetNsError {
    /// The path cannot be opened (missing, no permission, …).
    #[error("cannot open network namespace {path}: {source}")]
    Open {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The path exists but is not a network namespace.
    #[error("{path} is not a network namespace")]
    NotNetns {
        /// The path given.
        path: PathBuf,
    },
    /// `setns(2)` into it failed.
    #[error("cannot enter network namespace {path}: {source}")]
    Enter {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// An open handle on a network namespace.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

impl NetNs {
    /// Opens `path` (e.g. `/var/run/netns/cni-…` or `/proc/<pid>/ns/net`) and checks that it is
    /// a network namespace. Never blocks: anything but a regular file (namespace files are
    /// regular files of nsfs) is refused before it is opened, and the open itself is
    /// `O_NONBLOCK`, so a FIFO swapped in between cannot hang the plugin either.
    pub fn open(path: &Path) -> Result<NetNs, NetNsError> {
        let open_err = |source| NetNsError::Open {
            path: path.to_owned(),
            source,
        };
        let not_netns = || NetNsError::NotNetns {
            path: path.to_owned(),
        };
        if !std::fs::metadata(path).map_err(open_err)?.is_file() {
            return Err(not_netns());
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(open_err)?;
        // SAFETY: fstatfs fills a plain-old-data struct we own; the fd is valid.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0
            || st.f_type as u64 != NSFS_MAGIC
        {
            return Err(not_netns());
        }
        // SAFETY: NS_GET_NSTYPE takes no argument and returns the namespace type.
        let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
        if kind != libc::CLONE_NEWNET {
            return Err(not_netns());
        }
        Ok(NetNs {
            file,
            path: path.to_owned(),
        })
    }

    /// True when this is the namespace the calling process runs in (the node's, for the
    /// plugin): the same nsfs inode as `/proc/self/ns/net`.
    pub fn is_current(&self) -> io::Result<bool> {
        let ours = std::fs::metadata("/proc/self/ns/net")?;
        let this = self.file.metadata()?;
        Ok(ours.dev() == this.dev() && ours.ino() == this.ino())
    }

    /// The namespace the calling process runs in (`/proc/self/ns/net`).
    pub fn current() -> Result<NetNs, NetNsError> {
        NetNs::open(Path::new("/proc/self/ns/net"))
    }

    /// The path this handle was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace's file descriptor (for `IFLA_NET_NS_FD`).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Runs `f` on a fresh thread that has entered this namespace (`ip netns exec`).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetNsError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: setns on this thread only; the fd is valid for the call.
                    if unsafe { libc::setns(self.file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(NetNsError::Enter {
                            path: self.path.clone(),
                            source: io::Error::last_os_error(),
                        });
                    }
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}
