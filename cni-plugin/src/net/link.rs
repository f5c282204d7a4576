//! Links: create the veth pair, look links up, bring them up, delete them.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use std::os::fd::{AsRawFd, RawFd};

use super::{found, NetError, NetNs, Netlink};

/// A veth pair whose peer is created directly inside another namespace.
#[derive(Debug, Clone)]
pub struct VethSpec {
    /// Name of the end that stays in the calling namespace.
    pub host_name: String,
    /// MAC of the host end (None: the kernel picks one).
    pub host_mac: Option<[u8; 6]>,
    /// Bring the host end up at creation.
    pub host_up: bool,
    /// Name of the end created inside the peer namespace.
    pub peer_name: String,
    /// MTU of both ends.
    pub mtu: u32,
}

/// What the kernel reports of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address.
    pub mac: Vec<u8>,
    /// MTU.
    pub mtu: u32,
    /// `IFF_UP` is set.
    pub up: bool,
    /// `IFLA_INFO_KIND`, e.g. `veth`.
    pub kind: Option<String>,
    /// `ifalias`, if set.
    pub alias: Option<String>,
    /// `IFLA_LINK`: for a veth, its peer's index (in the namespace of `peer_netnsid`).
    pub peer: Option<u32>,
    /// `IFLA_LINK_NETNSID`: set when the peer is in another namespace.
    pub peer_netnsid: Option<i32>,
}

impl Link {
    fn from_message(msg: LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            mac: Vec::new(),
            mtu: 0,
            up: msg.header.flags.contains(LinkFlags::Up),
            kind: None,
            alias: None,
            peer: None,
            peer_netnsid: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name = name,
                LinkAttribute::Address(mac) => link.mac = mac,
                LinkAttribute::Mtu(mtu) => link.mtu = mtu,
                LinkAttribute::IfAlias(alias) => link.alias = Some(alias),
                LinkAttribute::Link(peer) => link.peer = Some(peer),
                LinkAttribute::LinkNetNsId(id) => link.peer_netnsid = Some(id),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            link.kind = Some(kind.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// The request that makes a veth pair as `spec` says: the peer born in the namespace of
/// `peer_ns_fd` (or beside the host end), the host end up when `up`.
fn veth_message(spec: &VethSpec, peer_ns_fd: Option<RawFd>, up: bool) -> LinkMessage {
    let mut peer = LinkMessage::default();
    peer.attributes
        .push(LinkAttribute::IfName(spec.peer_name.clone()));
    peer.attributes.push(LinkAttribute::Mtu(spec.mtu));
    if let Some(fd) = peer_ns_fd {
        peer.attributes.push(LinkAttribute::NetNsFd(fd));
    }
    let mut msg = LinkMessage::default();
    if up {
        up_flags(&mut msg.header);
    }
    msg.attributes
        .push(LinkAttribute::IfName(spec.host_name.clone()));
    msg.attributes.push(LinkAttribute::Mtu(spec.mtu));
    if let Some(mac) = spec.host_mac {
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    msg
}

fn up_flags(header: &mut netlink_packet_route::link::LinkHeader) {
    header.flags |= LinkFlags::Up;
    header.change_mask |= LinkFlags::Up;
}

impl Netlink {
    /// `ip link add HOST [address MAC] mtu M [up] type veth peer name PEER netns NS
    /// mtu M` — the peer is born inside `peer_ns`, down (the kernel cannot bring a veth end up
    /// before its pair is complete: `ENOTCONN`).
    pub fn create_veth(&mut self, spec: &VethSpec, peer_ns: &NetNs) -> Result<(), NetError> {
        let msg = veth_message(spec, Some(peer_ns.fd().as_raw_fd()), spec.host_up);
        self.ack(
            &|| {
                format!(
                    "ip link add {} mtu {} type veth peer name {} netns {}",
                    spec.host_name,
                    spec.mtu,
                    spec.peer_name,
                    peer_ns.path().display()
                )
            },
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// `ip link add HOST [address MAC] mtu M type veth peer name PEER mtu M` — both ends in
    /// this socket's namespace, down.
    pub fn create_veth_here(&mut self, spec: &VethSpec) -> Result<(), NetError> {
        let msg = veth_message(spec, None, false);
        self.ack(
            &|| {
                format!(
                    "ip link add {} mtu {} type veth peer name {}",
                    spec.host_name, spec.mtu, spec.peer_name
                )
            },
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// `ip link set dev NAME alias ALIAS netns NS` in one request: the link arrives in `ns`
    /// already carrying its alias (the kernel moves it first, then sets the alias), so it is
    /// never seen there without one. `EEXIST` when `ns` has a link of that name.
    pub fn move_with_alias(
        &mut self,
        index: u32,
        name: &str,
        alias: &str,
        ns: &NetNs,
    ) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes
            .push(LinkAttribute::NetNsFd(ns.fd().as_raw_fd()));
        msg.attributes
            .push(LinkAttribute::IfAlias(alias.to_owned()));
        self.ack(
            &|| {
                format!(
                    "ip link set dev {name} alias {alias} netns {}",
                    ns.path().display()
                )
            },
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
    }

    /// `ip link show NAME`; `Ok(None)` when there is no such link.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, NetError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        let reply = self.get(
            &|| format!("ip link show {name}"),
            RouteNetlinkMessage::GetLink(msg),
        )?;
        Ok(match reply {
            Some(RouteNetlinkMessage::NewLink(m)) => Some(Link::from_message(m)),
            _ => None,
        })
    }

    /// `ip link show dev INDEX`; `Ok(None)` when there is no such link.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        let reply = self.get(
            &|| format!("ip link show dev {index}"),
            RouteNetlinkMessage::GetLink(msg),
        )?;
        Ok(match reply {
            Some(RouteNetlinkMessage::NewLink(m)) => Some(Link::from_message(m)),
            _ => None,
        })
    }

    /// `ip link show` (every link of the namespace).
    pub fn links(&mut self) -> Result<Vec<Link>, NetError> {
        let replies = self.dump(
            &|| "ip link show".to_owned(),
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(m) => Some(Link::from_message(m)),
                _ => None,
            })
            .collect())
    }

    /// `ip link set dev INDEX up [alias ALIAS]` (the kernel ignores an alias given at
    /// creation, so it is set here).
    pub fn set_up(&mut self, index: u32, alias: Option<&str>) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        up_flags(&mut msg.header);
        if let Some(alias) = alias {
            msg.attributes
                .push(LinkAttribute::IfAlias(alias.to_owned()));
        }
        self.ack(
            &|| format!("ip link set dev {index} up"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
    }

    /// `ip link del dev INDEX` (`NAME` for messages); `Ok(false)` when it was already gone.
    /// Deleting by index deletes the link that was looked at, not whatever holds the name now.
    pub fn delete_link_index(&mut self, index: u32, name: &str) -> Result<bool, NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.delete_link_message(msg, name)
    }

    /// `ip link del NAME`; `Ok(false)` when it was already gone.
    pub fn delete_link(&mut self, name: &str) -> Result<bool, NetError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        self.delete_link_message(msg, name)
    }

    fn delete_link_message(&mut self, msg: LinkMessage, name: &str) -> Result<bool, NetError> {
        found(self.ack(
            &|| format!("ip link del {name}"),
            RouteNetlinkMessage::DelLink(msg),
            0,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::wire;

    #[test]
    fn a_link_reads_from_what_the_kernel_reports() {
        let mut msg = LinkMessage::default();
        msg.header.index = 7;
        msg.header.flags = LinkFlags::Up | LinkFlags::Broadcast;
        msg.attributes.extend([
            LinkAttribute::IfName("jl0123456789abc".into()),
            LinkAttribute::Address(vec![0xee; 6]),
            LinkAttribute::Mtu(1450),
            LinkAttribute::IfAlias("pod".into()),
            LinkAttribute::Link(2),
            LinkAttribute::LinkNetNsId(3),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
        ]);
        let link = Link::from_message(wire(&msg));
        assert_eq!(
            link,
            Link {
                index: 7,
                name: "jl0123456789abc".into(),
                mac: vec![0xee; 6],
                mtu: 1450,
                up: true,
                kind: Some("veth".into()),
                alias: Some("pod".into()),
                peer: Some(2),
                peer_netnsid: Some(3),
            }
        );
        let down = Link::from_message(LinkMessage::default());
        assert!(!down.up && down.kind.is_none() && down.alias.is_none());
    }

    #[test]
    fn the_veth_request_carries_both_ends() {
        let spec = VethSpec {
            host_name: "jl0123456789abc".into(),
            host_mac: Some([0xee; 6]),
            host_up: true,
            peer_name: "eth0".into(),
            mtu: 1450,
        };
        let msg = wire(&veth_message(&spec, Some(42), true));
        assert_eq!(msg.header.change_mask, LinkFlags::Up);
        let host = Link::from_message(msg.clone());
        assert_eq!(
            (host.name.as_str(), host.mtu, host.up, host.mac.as_slice()),
            ("jl0123456789abc", 1450, true, &[0xee; 6][..])
        );
        assert_eq!(host.kind.as_deref(), Some("veth"));
        let peer = msg
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                    LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) => Some(p.clone()),
                    _ => None,
                }),
                _ => None,
            })
            .expect("the peer's request");
        assert!(peer.attributes.contains(&LinkAttribute::NetNsFd(42)));
        let peer = Link::from_message(peer);
        assert_eq!(
            (peer.name.as_str(), peer.mtu, peer.up),
            ("eth0", 1450, false)
        );

        let here = veth_message(&spec, None, false);
        assert!(!here.header.flags.contains(LinkFlags::Up));
        assert!(!format!("{here:?}").contains("NetNsFd"));
    }
}
