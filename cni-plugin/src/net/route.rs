//! Routes of the main table: add, replace, delete, list, look up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol,
    RouteScope as NlScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{found, NetError, Netlink};

/// The route protocol number that marks every route Jalur adds (`ip route … proto 74`), so that
/// its routes can be found, checked and removed without touching anyone else's.
pub const JALUR_ROUTE_PROTOCOL: u8 = 74;

const RT_TABLE_MAIN: u8 = 254;

/// The route protocols `ip route` prints by name: iproute2's `rt_protos` table. Any other
/// (Jalur's 74 among them) it prints as its number.
const PROTOCOL_NAMES: [(u8, &str); 22] = [
    (0, "unspec"),
    (1, "redirect"),
    (2, "kernel"),
    (3, "boot"),
    (4, "static"),
    (8, "gated"),
    (9, "ra"),
    (10, "mrt"),
    (11, "zebra"),
    (12, "bird"),
    (13, "dnrouted"),
    (14, "xorp"),
    (15, "ntk"),
    (16, "dhcp"),
    (18, "keepalived"),
    (42, "babel"),
    (99, "openr"),
    (186, "bgp"),
    (187, "isis"),
    (188, "ospf"),
    (189, "rip"),
    (192, "eigrp"),
];

/// The scope of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteScope {
    /// `scope global`: through a gateway.
    Universe,
    /// `scope link`: the destination is directly on the link.
    Link,
}

/// A route of the main table, as Jalur uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix (`0.0.0.0/0` for the default route).
    pub dst: IpNet,
    /// Next hop, if any.
    pub gateway: Option<IpAddr>,
    /// Output interface index, if any.
    pub oif: Option<u32>,
    /// `onlink`: the gateway is on the link even without a covering prefix.
    pub onlink: bool,
    /// `blackhole`: drop silently.
    pub blackhole: bool,
    /// Route scope.
    pub scope: RouteScope,
    /// Route protocol number (`proto`).
    pub protocol: u8,
    /// `metric` (the kernel's priority); 0: none given (IPv6 routes read back show 1024).
    pub metric: u32,
}

impl Route {
    /// `DST dev OIF scope link proto jalur`: a prefix reached directly through a link.
    pub fn direct(dst: IpNet, oif: u32) -> Route {
        Route {
            dst,
            gateway: None,
            oif: Some(oif),
            onlink: false,
            blackhole: false,
            scope: RouteScope::Link,
            protocol: JALUR_ROUTE_PROTOCOL,
            metric: 0,
        }
    }

    /// `DST via GW dev OIF proto jalur`: through a gateway on a connected subnet.
    pub fn via(dst: IpNet, gateway: IpAddr, oif: u32) -> Route {
        Route {
            onlink: false,
            ..Route::via_onlink(dst, gateway, oif)
        }
    }

    /// True when `other` is the same route as far as the kernel's answers tell: destination,
    /// kind, gateway, and the interface (which the kernel reports on IPv6 blackholes as `lo`).
    pub fn same_as(&self, other: &Route) -> bool {
        self.dst == other.dst
            && self.blackhole == other.blackhole
            && self.gateway == other.gateway
            && (self.blackhole || self.oif == other.oif)
    }

    /// `DST via GW dev OIF onlink proto jalur`.
    pub fn via_onlink(dst: IpNet, gateway: IpAddr, oif: u32) -> Route {
        Route {
            dst,
            gateway: Some(gateway),
            oif: Some(oif),
            onlink: true,
            blackhole: false,
            scope: RouteScope::Universe,
            protocol: JALUR_ROUTE_PROTOCOL,
            metric: 0,
        }
    }

    /// `ip route` spelling of this route, for messages (interfaces by index).
    pub fn describe(&self) -> String {
        self.describe_with(|_| None)
    }

    /// `ip route` spelling of this route, with interface names where `name` knows them
    /// (`10.244.2.0/24 via 192.168.10.3 dev eth0 proto 74`) and the protocol by the name
    /// `ip route` gives it (`proto static`), else by its number.
    pub fn describe_with(&self, name: impl Fn(u32) -> Option<String>) -> String {
        let mut s = if self.blackhole {
            format!("blackhole {}", self.dst)
        } else {
            self.dst.to_string()
        };
        if let Some(gw) = self.gateway {
            s.push_str(&format!(" via {gw}"));
        }
        if let Some(oif) = self.oif {
            let dev = name(oif).unwrap_or_else(|| oif.to_string());
            s.push_str(&format!(" dev {dev}"));
        }
        if self.onlink {
            s.push_str(" onlink");
        }
        match PROTOCOL_NAMES.iter().find(|(p, _)| *p == self.protocol) {
            Some((_, name)) => s.push_str(&format!(" proto {name}")),
            None => s.push_str(&format!(" proto {}", self.protocol)),
        }
        if self.metric != 0 {
            s.push_str(&format!(" metric {}", self.metric));
        }
        s
    }

    fn to_message(&self) -> RouteMessage {
        let mut msg = RouteMessage::default();
        let header: &mut RouteHeader = &mut msg.header;
        header.address_family = family_of(&self.dst);
        header.destination_prefix_length = self.dst.prefix_len();
        header.table = RT_TABLE_MAIN;
        header.protocol = RouteProtocol::from(self.protocol);
        header.scope = match self.scope {
            RouteScope::Universe => NlScope::Universe,
            RouteScope::Link => NlScope::Link,
        };
        header.kind = if self.blackhole {
            RouteType::BlackHole
        } else {
            RouteType::Unicast
        };
        if self.onlink {
            header.flags |= RouteFlags::Onlink;
        }
        if self.dst.prefix_len() > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(self.dst.network().into()));
        }
        if let Some(gw) = self.gateway {
            msg.attributes.push(RouteAttribute::Gateway(gw.into()));
        }
        if let Some(oif) = self.oif {
            msg.attributes.push(RouteAttribute::Oif(oif));
        }
        if self.metric != 0 {
            msg.attributes.push(RouteAttribute::Priority(self.metric));
        }
        msg
    }

    fn from_message(msg: &RouteMessage) -> Option<Route> {
        let family = msg.header.address_family;
        let mut dst_addr = match family {
            AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => return None,
        };
        let mut route = Route {
            dst: IpNet::new(dst_addr, 0).ok()?,
            gateway: None,
            oif: None,
            onlink: msg.header.flags.contains(RouteFlags::Onlink),
            blackhole: msg.header.kind == RouteType::BlackHole,
            scope: if msg.header.scope == NlScope::Link {
                RouteScope::Link
            } else {
                RouteScope::Universe
            },
            protocol: msg.header.protocol.into(),
            metric: 0,
        };
        let mut table = u32::from(msg.header.table);
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(a) => dst_addr = ip_of(a)?,
                RouteAttribute::Gateway(a) => route.gateway = ip_of(a),
                RouteAttribute::Oif(i) => route.oif = Some(*i),
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Priority(p) => route.metric = *p,
                _ => {}
            }
        }
        if table != u32::from(RT_TABLE_MAIN) || msg.header.kind == RouteType::Local {
            return None;
        }
        route.dst = IpNet::new(dst_addr, msg.header.destination_prefix_length).ok()?;
        Some(route)
    }
}

fn family_of(net: &IpNet) -> AddressFamily {
    match net {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    }
}

/// The dump request for the main table's routes of one family, of one protocol if given.
fn dump_request(v6: bool, protocol: Option<u8>) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    msg.header.table = RT_TABLE_MAIN;
    if let Some(p) = protocol {
        msg.header.protocol = RouteProtocol::from(p);
    }
    msg
}

/// The request of `ip route get fibmatch ADDR`. The kernel's strict checking wants the
/// header's table, protocol, scope and type left zero and the prefix a full host's.
fn fib_match_request(addr: IpAddr) -> RouteMessage {
    let host = IpNet::from(addr);
    let mut msg = RouteMessage::default();
    msg.header.address_family = family_of(&host);
    msg.header.destination_prefix_length = host.prefix_len();
    msg.header.flags = RouteFlags::FibMatch;
    msg.attributes
        .push(RouteAttribute::Destination(addr.into()));
    msg
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

impl Netlink {
    /// `ip route add ROUTE`.
    pub fn add_route(&mut self, route: &Route) -> Result<(), NetError> {
        self.ack(
            &|| format!("ip route add {}", route.describe()),
            RouteNetlinkMessage::NewRoute(route.to_message()),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// `ip route replace ROUTE`.
    pub fn replace_route(&mut self, route: &Route) -> Result<(), NetError> {
        self.ack(
            &|| format!("ip route replace {}", route.describe()),
            RouteNetlinkMessage::NewRoute(route.to_message()),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// `ip route del ROUTE`; `Ok(false)` when there was no such route.
    pub fn delete_route(&mut self, route: &Route) -> Result<bool, NetError> {
        found(self.ack(
            &|| format!("ip route del {}", route.describe()),
            RouteNetlinkMessage::DelRoute(route.to_message()),
            0,
        ))
    }

    /// `ip [-6] route show table main`: the routes of one family (IPv4 when `v6` is false).
    pub fn routes(&mut self, v6: bool) -> Result<Vec<Route>, NetError> {
        self.dump_routes(v6, None)
    }

    /// `ip [-6] route show table main proto PROTOCOL`: the routes of one family that carry
    /// `protocol`. The kernel sends only those (it honours a dump's filters under the strict
    /// checking [`Netlink::open`] asks for), so this costs little beside a full dump when the
    /// protocol's routes are few; the answer is filtered here too, for kernels that ignore it.
    pub fn routes_of_protocol(&mut self, v6: bool, protocol: u8) -> Result<Vec<Route>, NetError> {
        self.dump_routes(v6, Some(protocol))
    }

    fn dump_routes(&mut self, v6: bool, protocol: Option<u8>) -> Result<Vec<Route>, NetError> {
        let replies = self.dump(
            &|| {
                let proto = protocol.map_or_else(String::new, |p| format!(" proto {p}"));
                format!("ip -{} route show{proto}", if v6 { 6 } else { 4 })
            },
            RouteNetlinkMessage::GetRoute(dump_request(v6, protocol)),
        )?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(m) => Route::from_message(m),
                _ => None,
            })
            .filter(|r| protocol.is_none_or(|p| r.protocol == p))
            .collect())
    }

    /// `ip route get fibmatch ADDR`: the route of the main table the kernel picks for `addr`,
    /// as the table holds it (destination prefix, gateway, protocol), not the resolved path.
    /// `Ok(None)` when no route matches (`ENETUNREACH`) or the match is in another table.
    pub fn route_for(&mut self, addr: IpAddr) -> Result<Option<Route>, NetError> {
        let op = || format!("ip route get fibmatch {addr}");
        match self.get(&op, RouteNetlinkMessage::GetRoute(fib_match_request(addr))) {
            Ok(Some(RouteNetlinkMessage::NewRoute(m))) => Ok(Route::from_message(&m)),
            Ok(_) => Ok(None),
            Err(e) if e.source.raw_os_error() == Some(nix::errno::Errno::ENETUNREACH as i32) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The MTU of the interface that holds the IPv4 default route (else the IPv6 one), if any:
    /// what `ip route get` would pick for traffic leaving the node.
    pub fn default_route_mtu(&mut self) -> Result<Option<u32>, NetError> {
        for v6 in [false, true] {
            let oif = self
                .routes(v6)?
                .into_iter()
                .find(|r| r.dst.prefix_len() == 0 && !r.blackhole)
                .and_then(|r| r.oif);
            if let Some(oif) = oif {
                return Ok(self.link_by_index(oif)?.map(|l| l.mtu));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::wire;

    #[test]
    fn a_dump_by_protocol_asks_the_kernel_for_that_protocol_of_the_main_table() {
        let msg = dump_request(false, Some(JALUR_ROUTE_PROTOCOL));
        assert_eq!(msg.header.address_family, AddressFamily::Inet);
        assert_eq!(msg.header.table, RT_TABLE_MAIN);
        assert_eq!(u8::from(msg.header.protocol), JALUR_ROUTE_PROTOCOL);
        assert!(msg.attributes.is_empty());

        let all = dump_request(true, None);
        assert_eq!(all.header.address_family, AddressFamily::Inet6);
        assert_eq!(all.header.protocol, RouteProtocol::Unspec);
    }

    #[test]
    fn a_fib_match_lookup_names_one_host_and_leaves_the_header_zero() {
        for (addr, len) in [("10.0.3.1", 32), ("fd00::1", 128)] {
            let addr: IpAddr = addr.parse().unwrap();
            let msg = fib_match_request(addr);
            let h = &msg.header;
            assert_eq!(h.destination_prefix_length, len);
            assert_eq!(h.flags, RouteFlags::FibMatch);
            assert_eq!(
                (h.table, h.protocol, h.scope, h.kind),
                (
                    0,
                    RouteProtocol::Unspec,
                    NlScope::Universe,
                    RouteType::Unspec
                )
            );
            assert_eq!(msg.attributes, [RouteAttribute::Destination(addr.into())]);
        }
    }

    #[test]
    fn the_kernels_fib_match_answer_reads_as_the_table_entry() {
        let mut entry = Route::via(
            "10.0.3.0/24".parse().unwrap(),
            "192.168.1.3".parse().unwrap(),
            2,
        );
        entry.scope = RouteScope::Universe;
        let mut answer = entry.to_message();
        answer.header.flags = RouteFlags::FibMatch;
        answer
            .attributes
            .push(RouteAttribute::Table(u32::from(RT_TABLE_MAIN)));
        assert_eq!(Route::from_message(&answer), Some(entry));

        answer.header.table = 255; // local
        answer.attributes.pop();
        assert_eq!(Route::from_message(&answer), None);
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn every_kind_of_route_reads_back_from_its_message() {
        let v4_gw: IpAddr = "192.168.49.3".parse().unwrap();
        let v6_gw: IpAddr = "fd00:244:3::".parse().unwrap();
        let routes = [
            Route::direct(net("10.244.1.5/32"), 7),
            Route::via(net("10.244.2.0/24"), v4_gw, 2),
            Route::via_onlink(net("fd00:244:3::/64"), v6_gw, 9),
            Route {
                blackhole: true,
                oif: None,
                ..Route::direct(net("10.244.1.0/24"), 0)
            },
            Route {
                protocol: 4,
                metric: 100,
                scope: RouteScope::Universe,
                ..Route::via(net("0.0.0.0/0"), "192.168.49.1".parse().unwrap(), 2)
            },
        ];
        for route in routes {
            let back = Route::from_message(&wire(&route.to_message()));
            assert_eq!(back.as_ref(), Some(&route), "{}", route.describe());
        }
    }

    #[test]
    fn the_message_says_what_the_kernel_needs() {
        let msg =
            Route::via_onlink(net("10.244.3.0/24"), "10.244.3.0".parse().unwrap(), 9).to_message();
        assert_eq!(msg.header.address_family, AddressFamily::Inet);
        assert_eq!(msg.header.table, RT_TABLE_MAIN);
        assert_eq!(
            msg.header.protocol,
            RouteProtocol::from(JALUR_ROUTE_PROTOCOL)
        );
        assert_eq!(msg.header.destination_prefix_length, 24);
        assert!(msg.header.flags.contains(RouteFlags::Onlink));
        assert!(msg.attributes.contains(&RouteAttribute::Oif(9)));
        // No metric given: none sent, the kernel's default applies.
        assert!(!msg
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Priority(_))));
        // A default route carries no destination at all.
        let default = Route::via(net("0.0.0.0/0"), "192.168.49.1".parse().unwrap(), 2);
        assert!(!default
            .to_message()
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Destination(_))));
    }

    #[test]
    fn routes_outside_the_main_table_and_local_routes_are_not_read() {
        let route = Route::via(net("10.244.2.0/24"), "192.168.49.3".parse().unwrap(), 2);
        let mut other_table = route.to_message();
        other_table.header.table = 255;
        assert_eq!(Route::from_message(&wire(&other_table)), None);
        // Tables above 255 are told only by the attribute.
        let mut large_table = route.to_message();
        large_table.attributes.push(RouteAttribute::Table(1000));
        assert_eq!(Route::from_message(&wire(&large_table)), None);
        let mut local = route.to_message();
        local.header.kind = RouteType::Local;
        assert_eq!(Route::from_message(&wire(&local)), None);
        let mut bridge = route.to_message();
        bridge.header.address_family = AddressFamily::Bridge;
        assert_eq!(Route::from_message(&bridge), None);
    }

    #[test]
    fn describe_spells_a_route_as_ip_route_does() {
        let via = Route::via(net("10.244.2.0/24"), "192.168.49.3".parse().unwrap(), 2);
        assert_eq!(
            via.describe(),
            "10.244.2.0/24 via 192.168.49.3 dev 2 proto 74"
        );
        let named = via.describe_with(|i| (i == 2).then(|| "eth0".to_owned()));
        assert_eq!(named, "10.244.2.0/24 via 192.168.49.3 dev eth0 proto 74");
        let hole = Route {
            blackhole: true,
            oif: None,
            metric: 1024,
            ..Route::direct(net("fd00:244:1::/64"), 0)
        };
        assert_eq!(
            hole.describe(),
            "blackhole fd00:244:1::/64 proto 74 metric 1024"
        );
    }

    #[test]
    fn protocols_are_spelled_as_ip_route_spells_them() {
        let proto = |protocol| {
            Route {
                protocol,
                ..Route::direct(net("192.168.49.0/24"), 2)
            }
            .describe()
        };
        assert_eq!(proto(2), "192.168.49.0/24 dev 2 proto kernel");
        assert_eq!(proto(3), "192.168.49.0/24 dev 2 proto boot");
        assert_eq!(proto(4), "192.168.49.0/24 dev 2 proto static");
        assert_eq!(proto(12), "192.168.49.0/24 dev 2 proto bird");
        assert_eq!(proto(16), "192.168.49.0/24 dev 2 proto dhcp");
        assert_eq!(proto(186), "192.168.49.0/24 dev 2 proto bgp");
        assert_eq!(
            proto(JALUR_ROUTE_PROTOCOL),
            "192.168.49.0/24 dev 2 proto 74"
        );
        assert_eq!(proto(200), "192.168.49.0/24 dev 2 proto 200");
    }
}
