//! The one home of kernel networking: netlink requests, namespace switching and sysctls.
//!
//! Callers speak in value types (`VethSpec`, `Route`, `Neighbour`, …) and never build a
//! netlink message themselves. Everything here is synchronous: the short-lived plugin needs no
//! runtime, and the agent calls it from blocking threads. No `ip` or other tool is ever run.

mod addr;
mod link;
mod neigh;
mod netns;
mod route;
mod socket;
pub mod sysctl;

use std::io;

pub use link::{Link, VethSpec};
pub use neigh::Neighbour;
pub use netns::{NetNs, NetNsError};
pub use route::{Route, RouteScope, JALUR_ROUTE_PROTOCOL};
pub use socket::Netlink;

/// A kernel networking operation that failed: what was attempted (as the `ip` command it
/// equals) and the kernel's answer.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {source}")]
pub struct NetError {
    /// The operation, spelled as the equivalent `ip` command.
    pub op: String,
    /// The errno the kernel answered with.
    #[source]
    pub source: io::Error,
}

impl NetError {
    /// An error of the operation `op` (spelled as the equivalent `ip` or `nft` command).
    pub fn new(op: impl Into<String>, source: io::Error) -> Self {
        NetError {
            op: op.into(),
            source,
        }
    }

    /// True when the kernel said the object already exists (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.source.raw_os_error() == Some(nix::errno::Errno::EEXIST as i32)
    }

    /// True when the kernel said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        socket::is_not_found(&self.source)
    }
}

/// `Ok(true)` when the request succeeded, `Ok(false)` when the kernel said its object does
/// not exist: a delete of what is already gone, a lookup of what is not there.
pub fn found(result: Result<(), NetError>) -> Result<bool, NetError> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// `msg` as it goes over the socket, read back (for the tests of the messages' code).
#[cfg(test)]
fn wire<M>(msg: &M) -> M
where
    M: netlink_packet_core::Emitable + netlink_packet_core::Parseable<[u8]>,
{
    let mut bytes = vec![0; msg.buffer_len()];
    msg.emit(&mut bytes);
    M::parse(&bytes[..]).expect("what was emitted parses")
}

/// A MAC address as the usual colon-separated lower-case hex string.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
