//! Jalur IPAM: address pools built from one or more ranges (IPv4 and IPv6), allocation keyed
//! by (container ID, interface name), and a crash-safe on-disk store shared by concurrent
//! processes.
//!
//! Semantics follow the CNI reference `host-local` IPAM: range defaults and validation,
//! round-robin allocation from the last reserved address, one address per range set (two
//! range sets for dual-stack). Pure library: no netlink, no CNI wire format, no root needed.
//!
//! It also owns the workspace's one atomic file write ([`atomic_file`]), which the store uses
//! and the agent's CNI config and `install-cni` share.
//!
//! ```no_run
//! # fn main() -> jalur_ipam::Result<()> {
//! use jalur_ipam::{AttachmentKey, Pool, Range, RangeSet, Store};
//! let pool = Pool::new(vec![
//!     RangeSet::single(Range::from_subnet("10.1.0.0/24".parse().unwrap())?),
//!     RangeSet::single(Range::from_subnet("fd00:1::/64".parse().unwrap())?),
//! ])?;
//! let store = Store::open("/var/lib/jalur/ipam".as_ref(), "jalur")?;
//! let key = AttachmentKey::new("0123abcd", "eth0");
//! let addrs = store.allocate(&pool, &key)?; // one IPv4, one IPv6
//! store.release(&key)?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod allocator;
pub mod atomic_file;
mod attachment_lock;
mod error;
mod key;
mod lock;
mod pool;
mod range;
mod state;
mod store;

pub use attachment_lock::AttachmentLock;
pub use error::{Error, Result};
pub use key::{Allocation, AttachmentKey};
pub use pool::{Pool, RangeSet};
pub use range::Range;
pub use store::{Store, DEFAULT_LOCK_TIMEOUT, LOCK_FILE, STATE_FILE};
