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

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

/// `NS_GET_NSTYPE` from `linux/nsfs.h`: `_IO(0xb7, 0x3)`, which answers the `CLONE_NEW*` type
/// of a namespace file. Neither std nor nix wraps it, so [`nix::ioctl_none!`] declares it
/// (as an `unsafe fn`: the macro cannot know what the request does with memory).
#[allow(unsafe_code)]
mod nsfs {
    nix::ioctl_none!(ns_get_nstype, 0xb7, 0x3);
}

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
            .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
            .open(path)
            .map_err(open_err)?;
        if !fstatfs(&file).is_ok_and(|st| st.filesystem_type() == NSFS_MAGIC) {
            return Err(not_netns());
        }
        // An nsfs file of another type (say `/proc/<pid>/ns/mnt`) would only be refused by
        // `setns` much later, after the plugin did work for it: ask its type now.
        // SAFETY: NS_GET_NSTYPE passes no argument (the kernel reads and writes no memory of
        // ours) and `file` keeps the descriptor open for the call. No safe API covers it:
        // neither std nor nix wraps this ioctl, and `/proc/self/fd/N` names a bind-mounted
        // namespace by its mount path rather than by `net:[…]`.
        #[allow(unsafe_code)]
        let kind = unsafe { nsfs::ns_get_nstype(file.as_raw_fd()) };
        if kind != Ok(CloneFlags::CLONE_NEWNET.bits()) {
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
                    // setns(2) moves this thread only.
                    if let Err(errno) = nix::sched::setns(&self.file, CloneFlags::CLONE_NEWNET) {
                        return Err(NetNsError::Enter {
                            path: self.path.clone(),
                            source: errno.into(),
                        });
                    }
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_accepts_a_network_namespace_and_refuses_everything_else() {
        let ours = NetNs::current().unwrap();
        assert!(ours.is_current().unwrap());
        // Another nsfs file (passes the NSFS_MAGIC check, fails NS_GET_NSTYPE), a file of
        // procfs, a directory, a missing path.
        for path in ["/proc/self/ns/uts", "/proc/self/status", "/proc/self"] {
            match NetNs::open(Path::new(path)) {
                Err(NetNsError::NotNetns { path: p }) => assert_eq!(p, Path::new(path)),
                other => panic!("{path}: {other:?}"),
            }
        }
        assert!(matches!(
            NetNs::open(Path::new("/proc/self/no-such-file")),
            Err(NetNsError::Open { .. })
        ));
    }
}
