//! Jalur's CNI side: the protocol (config, results, errors, versions, the verb dispatcher;
//! the agent writes its conflist with these types), the pod's wiring, and the netlink engine
//! both binaries use (`net`: links, addresses, routes, neighbours, namespaces, sysctls). What
//! only the agent does to the kernel (its VXLAN device, its nftables table) lives in the
//! agent.
//!
//! The binaries `jalur` (the network plugin) and `jalur-ipam` (the IPAM plugin) are thin:
//! each is one call of [`skel::main`].

// One unsafe block, allowed where it is (net/netns.rs: an ioctl no safe API wraps).
#![deny(unsafe_code)]

pub mod attachment;
pub mod cmd;
pub mod config;
pub mod delegate;
pub mod env;
pub mod error;
pub mod ipam_local;
pub mod logging;
pub mod net;
pub mod pod;
pub mod result;
pub mod skel;
pub mod testhook;
pub mod version;

pub use error::{Error, Result};
