//! What an allocation is keyed by (container ID + interface name) and what it yields.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Identifies one attachment: the CNI container ID and the interface name inside it.
/// Addresses are booked per key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentKey {
    /// The CNI `CNI_CONTAINERID`.
    pub container_id: String,
    /// The CNI `CNI_IFNAME`.
    pub ifname: String,
}

impl AttachmentKey {
    /// Builds a key.
    pub fn new(container_id: impl Into<String>, ifname: impl Into<String>) -> AttachmentKey {
        AttachmentKey {
            container_id: container_id.into(),
            ifname: ifname.into(),
        }
    }
}

impl fmt::Display for AttachmentKey {
    /// `<container id>/<ifname>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.container_id, self.ifname)
    }
}

/// One address handed to an attachment, with the network facts of the range it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Allocation {
    /// The address.
    pub ip: IpAddr,
    /// The subnet of the range it belongs to (its prefix length is the one to configure).
    pub subnet: IpNet,
    /// The gateway of that range. Ranges always have one (host-local defaults it to the
    /// network address + 1), so this is currently always `Some`.
    pub gateway: Option<IpAddr>,
}
