//! Neighbour entries: the pod's permanent entry for its link-local gateway.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{format_mac, found, NetError, Netlink};

/// A permanent neighbour entry: `IP lladdr MAC dev INDEX nud permanent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// Interface index.
    pub index: u32,
    /// The neighbour's IP address.
    pub ip: IpAddr,
    /// Its MAC address.
    pub mac: Vec<u8>,
}

impl Netlink {
    /// `ip neigh replace IP lladdr MAC dev INDEX nud permanent`.
    pub fn set_permanent_neighbour(&mut self, n: &Neighbour) -> Result<(), NetError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = match n.ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.ifindex = n.index;
        msg.header.state = NeighbourState::Permanent;
        msg.attributes
            .push(NeighbourAttribute::Destination(match n.ip {
                IpAddr::V4(ip) => NeighbourAddress::Inet(ip),
                IpAddr::V6(ip) => NeighbourAddress::Inet6(ip),
            }));
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(n.mac.clone()));
        self.ack(
            &|| {
                format!(
                    "ip neigh replace {} lladdr {} dev {} nud permanent",
                    n.ip,
                    format_mac(&n.mac),
                    n.index
                )
            },
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// `ip neigh del IP dev INDEX`; `Ok(false)` when there was no such entry.
    pub fn delete_neighbour(&mut self, n: &Neighbour) -> Result<bool, NetError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = match n.ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.ifindex = n.index;
        msg.attributes
            .push(NeighbourAttribute::Destination(match n.ip {
                IpAddr::V4(ip) => NeighbourAddress::Inet(ip),
                IpAddr::V6(ip) => NeighbourAddress::Inet6(ip),
            }));
        found(self.ack(
            &|| format!("ip neigh del {} dev {}", n.ip, n.index),
            RouteNetlinkMessage::DelNeighbour(msg),
            0,
        ))
    }

    /// `ip neigh show nud permanent`: the permanent entries of one link.
    pub fn permanent_neighbours(&mut self, index: u32) -> Result<Vec<Neighbour>, NetError> {
        let replies = self.dump(
            &|| format!("ip neigh show dev {index} nud permanent"),
            RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
        )?;
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewNeighbour(m) = reply else {
                continue;
            };
            if m.header.ifindex != index || m.header.state != NeighbourState::Permanent {
                continue;
            }
            let mut ip = None;
            let mut mac = Vec::new();
            for attr in m.attributes {
                match attr {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                        ip = Some(IpAddr::V4(a))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                        ip = Some(IpAddr::V6(a))
                    }
                    NeighbourAttribute::LinkLayerAddress(m) => mac = m,
                    _ => {}
                }
            }
            if let Some(ip) = ip {
                out.push(Neighbour { index, ip, mac });
            }
        }
        Ok(out)
    }
}
