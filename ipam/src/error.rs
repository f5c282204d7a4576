//! The crate's single error type: every failure of range validation, allocation and the
//! on-disk store, carrying the context (path, range, address) an operator needs.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `ipam`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configured subnet has bits set beyond its prefix (host-local rejects these too).
    #[error("invalid subnet {subnet}: host bits set (the network address for /{} is {network})", subnet.prefix_len())]
    HostBitsSet {
        /// The subnet as configured.
        subnet: IpNet,
        /// The network address the prefix length implies.
        network: IpAddr,
    },

    /// The subnet has no usable host address (IPv4 /31 or /32, IPv6 /127 or /128).
    #[error("subnet {subnet} is too small to allocate from")]
    SubnetTooSmall {
        /// The subnet as configured.
        subnet: IpNet,
    },

    /// `rangeStart`, `rangeEnd` or `gateway` is not a usable host address of the subnet
    /// (outside it, of the other family, its network address, or its last address).
    #[error("{what} {addr} is not a usable address of subnet {subnet}")]
    AddressNotInSubnet {
        /// Which setting: "range start", "range end" or "gateway".
        what: &'static str,
        /// The offending address.
        addr: IpAddr,
        /// The subnet it should belong to.
        subnet: IpNet,
    },

    /// `rangeStart` is after `rangeEnd`.
    #[error("range start {start} is after range end {end} in subnet {subnet}")]
    StartAfterEnd {
        /// The configured subnet.
        subnet: IpNet,
        /// The first address of the range.
        start: IpAddr,
        /// The last address of the range.
        end: IpAddr,
    },

    /// A range set was given no range.
    #[error("a range set needs at least one range")]
    EmptyRangeSet,

    /// A pool was given no range set.
    #[error("a pool needs at least one range set")]
    EmptyPool,

    /// A range set mixes IPv4 and IPv6 ranges.
    #[error("range set mixes address families: {first} and {second}")]
    MixedFamilies {
        /// The first range (as displayed).
        first: String,
        /// The range of the other family (as displayed).
        second: String,
    },

    /// Two ranges (in one range set or across range sets of a pool) overlap.
    #[error("range {first} overlaps range {second}")]
    Overlap {
        /// One range (as displayed).
        first: String,
        /// The other range (as displayed).
        second: String,
    },

    /// Every address of a range set is booked (or is the gateway).
    #[error("no free address left in range {ranges}")]
    Exhausted {
        /// The range set, displayed as its ranges, e.g. `10.1.0.0/30 (10.1.0.1-10.1.0.2)`.
        ranges: String,
    },

    /// The network name cannot be used as a directory name.
    #[error("invalid network name {name:?}: {reason}")]
    InvalidNetworkName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// An I/O operation on the store failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done, e.g. "cannot create directory".
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A file of the store is not a regular file (a FIFO, a device, a directory, a symlink).
    #[error("{what} {} is not a regular file", path.display())]
    NotRegularFile {
        /// Which file: "state file", "lock file", …
        what: &'static str,
        /// Its path.
        path: PathBuf,
    },

    /// The store's lock could not be taken within the configured timeout.
    #[error("timed out after {timeout:?} waiting for lock {}", path.display())]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        timeout: Duration,
    },

    /// The state file exists but does not parse. It is never treated as empty, since that
    /// could hand out addresses that are in use.
    #[error("state file {} is corrupt", path.display())]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// The state file parses but is not something this version can use safely.
    #[error("state file {} is invalid: {reason}", path.display())]
    InvalidState {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The state could not be serialised (should not happen).
    #[error("cannot serialise state for {}", path.display())]
    Serialize {
        /// The state file that was to be written.
        path: PathBuf,
        /// The serialisation error.
        #[source]
        source: serde_json::Error,
    },
}
