//! The overlay's kernel objects: a VXLAN device and its forwarding (FDB) entries, as netlink
//! requests sent through the plugin crate's [`Netlink`] socket (only the agent makes them).

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use jalur_cni_plugin::net::{format_mac, found, NetError, Netlink};

/// A VXLAN device over an IPv4 or IPv6 underlay, learning off: every remote endpoint is
/// programmed (with an address of the local one's family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    /// Device name.
    pub name: String,
    /// VXLAN network identifier.
    pub vni: u32,
    /// UDP destination port.
    pub port: u16,
    /// The local underlay address (source of encapsulated packets).
    pub local: IpAddr,
    /// Index of the underlay interface.
    pub underlay_index: u32,
    /// MTU of the device (the underlay's less the encapsulation overhead).
    pub mtu: u32,
    /// The device's MAC (derived from the node address, so peers can compute it).
    pub mac: [u8; 6],
    /// `ifalias`: a fingerprint of this spec, to detect a device built differently.
    pub alias: String,
}

/// A forwarding entry: frames for `mac` are sent to the endpoint `dst`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FdbEntry {
    /// The remote endpoint's MAC.
    pub mac: [u8; 6],
    /// The remote endpoint's underlay address.
    pub dst: IpAddr,
}

/// The overlay's requests, on the one rtnetlink socket type the whole project uses.
pub trait VxlanNetlink {
    /// `ip link add NAME address MAC mtu M type vxlan id VNI local IP dev UL dstport PORT
    /// nolearning` then `ip link set NAME alias A up`; returns the device's index.
    fn create_vxlan(&mut self, spec: &VxlanSpec) -> Result<u32, NetError>;
    /// `bridge fdb show dev INDEX`: the permanent entries with a remote destination.
    fn fdb_entries(&mut self, index: u32) -> Result<Vec<FdbEntry>, NetError>;
    /// `bridge fdb append MAC dev INDEX dst IP self permanent`.
    fn add_fdb(&mut self, index: u32, entry: &FdbEntry) -> Result<(), NetError>;
    /// `bridge fdb del MAC dev INDEX dst IP self`; `Ok(false)` when it was not there.
    fn delete_fdb(&mut self, index: u32, entry: &FdbEntry) -> Result<bool, NetError>;
}

impl VxlanNetlink for Netlink {
    fn create_vxlan(&mut self, spec: &VxlanSpec) -> Result<u32, NetError> {
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::IfName(spec.name.clone()));
        msg.attributes.push(LinkAttribute::Mtu(spec.mtu));
        msg.attributes
            .push(LinkAttribute::Address(spec.mac.to_vec()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(vec![
                InfoVxlan::Id(spec.vni),
                match spec.local {
                    IpAddr::V4(a) => InfoVxlan::Local(a),
                    IpAddr::V6(a) => InfoVxlan::Local6(a),
                },
                InfoVxlan::Link(spec.underlay_index),
                InfoVxlan::Port(spec.port),
                InfoVxlan::Learning(false),
            ])),
        ]));
        self.ack(
            &|| {
                format!(
                    "ip link add {} type vxlan id {} local {} dev {} dstport {} nolearning",
                    spec.name, spec.vni, spec.local, spec.underlay_index, spec.port
                )
            },
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        let link = self.link_by_name(&spec.name)?.ok_or_else(|| {
            NetError::new(
                format!("ip link show {}", spec.name),
                std::io::Error::from(nix::errno::Errno::ENODEV),
            )
        })?;
        self.set_up(link.index, Some(&spec.alias))?;
        Ok(link.index)
    }

    fn fdb_entries(&mut self, index: u32) -> Result<Vec<FdbEntry>, NetError> {
        let mut req = NeighbourMessage::default();
        req.header.family = AddressFamily::Bridge;
        let replies = self.dump(
            &|| format!("bridge fdb show dev {index}"),
            RouteNetlinkMessage::GetNeighbour(req),
        )?;
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewNeighbour(m) = reply else {
                continue;
            };
            if m.header.ifindex != index {
                continue;
            }
            let mut mac = None;
            let mut dst = None;
            for attr in m.attributes {
                match attr {
                    NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                        mac = <[u8; 6]>::try_from(l.as_slice()).ok()
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                        dst = Some(IpAddr::V4(a))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                        dst = Some(IpAddr::V6(a))
                    }
                    // In bridge-family messages the address family is not known to the
                    // parser, so the destination arrives as raw bytes.
                    NeighbourAttribute::Destination(NeighbourAddress::Other(bytes)) => {
                        dst = match bytes.len() {
                            4 => <[u8; 4]>::try_from(bytes.as_slice()).ok().map(IpAddr::from),
                            16 => <[u8; 16]>::try_from(bytes.as_slice())
                                .ok()
                                .map(IpAddr::from),
                            _ => None,
                        }
                    }
                    _ => {}
                }
            }
            if let (Some(mac), Some(dst)) = (mac, dst) {
                out.push(FdbEntry { mac, dst });
            }
        }
        Ok(out)
    }

    fn add_fdb(&mut self, index: u32, entry: &FdbEntry) -> Result<(), NetError> {
        self.ack(
            &|| fdb_op("append", index, entry),
            RouteNetlinkMessage::NewNeighbour(fdb_message(index, entry)),
            NLM_F_CREATE | NLM_F_APPEND,
        )
    }

    fn delete_fdb(&mut self, index: u32, entry: &FdbEntry) -> Result<bool, NetError> {
        found(self.ack(
            &|| fdb_op("del", index, entry),
            RouteNetlinkMessage::DelNeighbour(fdb_message(index, entry)),
            0,
        ))
    }
}

/// `bridge fdb append|del MAC dev INDEX dst IP self [permanent]`: a forwarding entry's
/// request as the `bridge` command it equals.
pub(crate) fn fdb_op(verb: &str, index: u32, entry: &FdbEntry) -> String {
    let permanent = if verb == "append" { " permanent" } else { "" };
    format!(
        "bridge fdb {verb} {} dev {index} dst {} self{permanent}",
        format_mac(&entry.mac),
        entry.dst
    )
}

fn fdb_message(index: u32, entry: &FdbEntry) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(entry.mac.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Destination(match entry.dst {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
    msg
}
