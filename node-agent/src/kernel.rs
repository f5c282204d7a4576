//! The kernel as the sync sees it: the few operations [`crate::sync`] diffs and applies
//! through, so that the sync can be run against an in-memory node in unit tests (no root, no
//! namespace). The agent's implementation is the plugin crate's [`Netlink`] socket; the
//! overlay's own requests come from [`VxlanNetlink`].

use std::io;
use std::net::IpAddr;

use jalur_cni_plugin::net::{sysctl, Link, Neighbour, NetError, Netlink, Route};

use crate::vxlan::VxlanNetlink;

#[cfg(test)]
pub mod fake;

/// What the sync reads and changes in one network namespace: links, addresses, routes of the
/// main table, permanent neighbours, the overlay's device and forwarding entries, and the
/// forwarding sysctls. Each method is the `Netlink` request of the same name.
pub trait Kernel: VxlanNetlink {
    /// `ip link show`.
    fn links(&mut self) -> Result<Vec<Link>, NetError>;
    /// `ip link show NAME`; `Ok(None)` when there is no such link.
    fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, NetError>;
    /// `ip link show dev INDEX`; `Ok(None)` when there is no such link.
    fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, NetError>;
    /// `ip link del NAME`; `Ok(false)` when it was already gone.
    fn delete_link(&mut self, name: &str) -> Result<bool, NetError>;
    /// `ip addr show`: every (interface index, address, prefix length).
    fn all_addresses(&mut self) -> Result<Vec<(u32, IpAddr, u8)>, NetError>;
    /// `ip addr show dev INDEX`.
    fn addresses(&mut self, index: u32) -> Result<Vec<(IpAddr, u8)>, NetError>;
    /// `ip addr add IP/PREFIX dev INDEX`.
    fn add_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> Result<(), NetError>;
    /// `ip addr del IP/PREFIX dev INDEX`.
    fn delete_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> Result<(), NetError>;
    /// `ip [-6] route show table main`.
    fn routes(&mut self, v6: bool) -> Result<Vec<Route>, NetError>;
    /// `ip route replace ROUTE`.
    fn replace_route(&mut self, route: &Route) -> Result<(), NetError>;
    /// `ip route del ROUTE`; `Ok(false)` when there was no such route.
    fn delete_route(&mut self, route: &Route) -> Result<bool, NetError>;
    /// `ip neigh show dev INDEX nud permanent`.
    fn permanent_neighbours(&mut self, index: u32) -> Result<Vec<Neighbour>, NetError>;
    /// `ip neigh replace IP lladdr MAC dev INDEX nud permanent`.
    fn set_permanent_neighbour(&mut self, n: &Neighbour) -> Result<(), NetError>;
    /// `ip neigh del IP dev INDEX`; `Ok(false)` when there was no such entry.
    fn delete_neighbour(&mut self, n: &Neighbour) -> Result<bool, NetError>;
    /// `sysctl -w KEY=VALUE` (`net/ipv4/ip_forward`), skipped when already so.
    fn set_sysctl(&mut self, key: &str, value: &str) -> io::Result<()>;
}

/// The kernel of the namespace the socket was opened in (the sysctls: of the calling thread's
/// namespace, which for the agent is the same one).
impl Kernel for Netlink {
    fn links(&mut self) -> Result<Vec<Link>, NetError> {
        Netlink::links(self)
    }
    fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, NetError> {
        Netlink::link_by_name(self, name)
    }
    fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, NetError> {
        Netlink::link_by_index(self, index)
    }
    fn delete_link(&mut self, name: &str) -> Result<bool, NetError> {
        Netlink::delete_link(self, name)
    }
    fn all_addresses(&mut self) -> Result<Vec<(u32, IpAddr, u8)>, NetError> {
        Netlink::all_addresses(self)
    }
    fn addresses(&mut self, index: u32) -> Result<Vec<(IpAddr, u8)>, NetError> {
        Netlink::addresses(self, index)
    }
    fn add_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> Result<(), NetError> {
        Netlink::add_address(self, index, ip, prefix)
    }
    fn delete_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> Result<(), NetError> {
        Netlink::delete_address(self, index, ip, prefix)
    }
    fn routes(&mut self, v6: bool) -> Result<Vec<Route>, NetError> {
        Netlink::routes(self, v6)
    }
    fn replace_route(&mut self, route: &Route) -> Result<(), NetError> {
        Netlink::replace_route(self, route)
    }
    fn delete_route(&mut self, route: &Route) -> Result<bool, NetError> {
        Netlink::delete_route(self, route)
    }
    fn permanent_neighbours(&mut self, index: u32) -> Result<Vec<Neighbour>, NetError> {
        Netlink::permanent_neighbours(self, index)
    }
    fn set_permanent_neighbour(&mut self, n: &Neighbour) -> Result<(), NetError> {
        Netlink::set_permanent_neighbour(self, n)
    }
    fn delete_neighbour(&mut self, n: &Neighbour) -> Result<bool, NetError> {
        Netlink::delete_neighbour(self, n)
    }
    fn set_sysctl(&mut self, key: &str, value: &str) -> io::Result<()> {
        sysctl::ensure(key, value)
    }
}
