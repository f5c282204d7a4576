//! Addresses: add and delete a host address (/32, /128) and list a link's addresses.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{NetError, Netlink};

fn family(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

impl Netlink {
    /// `ip addr add IP/PREFIX dev INDEX` (IPv6 with `nodad`: a pod's own address is unique by
    /// construction, and duplicate detection would hold it back for a second).
    pub fn add_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> Result<(), NetError> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(&ip);
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.header.scope = AddressScope::Universe;
        msg.attributes.push(AddressAttribute::Local(ip));
        msg.attributes.push(AddressAttribute::Address(ip));
        if ip.is_ipv6() {
            msg.header.flags = AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.ack(
            &|| format!("ip addr add {ip}/{prefix} dev {index}"),
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// `ip addr del IP/PREFIX dev INDEX`.
    pub fn delete_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> Result<(), NetError> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(&ip);
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(ip));
        msg.attributes.push(AddressAttribute::Address(ip));
        self.ack(
            &|| format!("ip addr del {ip}/{prefix} dev {index}"),
            RouteNetlinkMessage::DelAddress(msg),
            0,
        )
    }

    /// `ip addr show dev INDEX`: the (address, prefix length) pairs of one link.
    pub fn addresses(&mut self, index: u32) -> Result<Vec<(IpAddr, u8)>, NetError> {
        Ok(self
            .all_addresses()?
            .into_iter()
            .filter(|(i, _, _)| *i == index)
            .map(|(_, ip, prefix)| (ip, prefix))
            .collect())
    }

    /// `ip addr show`: every (interface index, address, prefix length) of the namespace.
    pub fn all_addresses(&mut self) -> Result<Vec<(u32, IpAddr, u8)>, NetError> {
        let replies = self.dump(
            &|| "ip addr show".to_owned(),
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        )?;
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewAddress(m) = reply else {
                continue;
            };
            let local = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let addr = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = local.or(addr) {
                out.push((m.header.index, ip, m.header.prefix_len));
            }
        }
        Ok(out)
    }
}
