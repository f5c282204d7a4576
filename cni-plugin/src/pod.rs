//! The pod's wire: a routed veth pair, no bridge.
//!
//! Pod side: `CNI_IFNAME` holding the pod's addresses as host routes (/32, /128), a permanent
//! neighbour entry for the link-local gateway pointing at the host end's MAC, and routes via
//! that gateway `onlink`. Host side: the derived name, and a route to each pod address through
//! it. Applying undoes itself on failure; checking reports the first difference.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::attachment::{self, gateway_for, HOST_MAC};
use crate::error::{Error, Result};
use crate::net::{self, sysctl, Link, Neighbour, NetNs, Netlink, Route, VethSpec};
use crate::testhook::crash_point;

/// What to build for one attachment.
#[derive(Debug)]
pub struct PodWiring<'a> {
    /// The pod's network namespace.
    pub netns: &'a NetNs,
    /// The pod-side interface name (`CNI_IFNAME`).
    pub ifname: &'a str,
    /// The host end's name (derived from the attachment).
    pub host_ifname: String,
    /// The host end's `ifalias`.
    pub alias: String,
    /// MTU of both ends.
    pub mtu: u32,
    /// The pod's addresses.
    pub ips: Vec<IpAddr>,
    /// Destinations the pod routes via its gateway.
    pub routes: Vec<IpNet>,
}

/// The two ends, as built.
#[derive(Debug, Clone)]
pub struct Wired {
    /// The host end.
    pub host: Link,
    /// The pod end.
    pub pod: Link,
}

fn host_prefix(ip: IpAddr) -> IpNet {
    IpNet::new(ip, if ip.is_ipv4() { 32 } else { 128 }).expect("full-length prefix")
}

fn io_err(e: std::io::Error) -> Error {
    Error::io("setting a sysctl", e)
}

impl PodWiring<'_> {
    fn veth(&self) -> VethSpec {
        VethSpec {
            host_name: self.host_ifname.clone(),
            host_mac: Some(HOST_MAC),
            host_up: false,
            peer_name: self.ifname.to_owned(),
            mtu: self.mtu,
        }
    }

    /// Builds the wire. `host` is a socket in the node's namespace, `pod` one in the pod's. On
    /// failure the veth pair is removed again, so nothing is left half-made.
    ///
    /// The pair is born inside the pod's namespace and the host end is then moved to the
    /// node together with its alias, in one request: every Jalur host end in the node carries
    /// its alias from the moment it appears there. A plugin killed before the move leaves
    /// the pair inside the pod's namespace (DEL removes it there, see
    /// [`attachment::is_unmoved_pair`], and it goes with the namespace), never an unmarked
    /// link in the node.
    pub fn apply(&self, host: &mut Netlink, pod: &mut Netlink) -> Result<Wired> {
        self.enable_forwarding()?;
        self.clear_host_name(host)?;
        pod.create_veth_here(&self.veth())?;
        crash_point("after-veth");
        self.move_host_end(host, pod)?;
        crash_point("after-move");
        self.finish(host, pod).inspect_err(|_| {
            if let Err(e) = host.delete_link(&self.host_ifname) {
                log::error!("undoing a failed ADD: {e}");
            }
        })
    }

    fn enable_forwarding(&self) -> Result<()> {
        if self.ips.iter().any(IpAddr::is_ipv4) {
            sysctl::ensure("net/ipv4/ip_forward", "1").map_err(io_err)?;
        }
        if self.ips.iter().any(IpAddr::is_ipv6) {
            sysctl::ensure("net/ipv6/conf/all/forwarding", "1").map_err(io_err)?;
        }
        Ok(())
    }

    /// Frees the host end's name in the node: a leftover host end of this very attachment
    /// (an ADD that never answered, and no DEL since) is replaced; a link of anyone else,
    /// with another alias or none, is left alone and the ADD fails naming it.
    fn clear_host_name(&self, host: &mut Netlink) -> Result<()> {
        let Some(link) = host.link_by_name(&self.host_ifname)? else {
            return Ok(());
        };
        if link.alias.as_deref() != Some(self.alias.as_str()) {
            return Err(self.name_taken(link.alias));
        }
        log::warn!(
            "replacing leftover host interface {} ({})",
            self.host_ifname,
            self.alias
        );
        host.delete_link_index(link.index, &self.host_ifname)?;
        Ok(())
    }

    fn name_taken(&self, owner: Option<String>) -> Error {
        Error::HostNameTaken {
            name: self.host_ifname.clone(),
            owner,
            wanted: self.alias.clone(),
        }
    }

    /// Moves the host end from the pod's namespace to the node's with its alias; on failure
    /// removes the pair from the pod again.
    fn move_host_end(&self, host: &mut Netlink, pod: &mut Netlink) -> Result<()> {
        let moved = (|| -> Result<()> {
            let link = pod.link_by_name(&self.host_ifname)?.ok_or_else(|| {
                Error::CheckMismatch(format!("{} vanished from the pod", self.host_ifname))
            })?;
            let node = NetNs::current()?;
            match pod.move_with_alias(link.index, &self.host_ifname, &self.alias, &node) {
                Err(e) if e.is_exists() => {
                    // Someone took the name in the node since it was checked.
                    let owner = host.link_by_name(&self.host_ifname)?.and_then(|l| l.alias);
                    Err(self.name_taken(owner))
                }
                other => Ok(other?),
            }
        })();
        moved.inspect_err(|_| {
            if let Err(e) = pod.delete_link(&self.host_ifname) {
                log::error!("undoing a failed ADD: {e}");
            }
        })
    }

    fn finish(&self, host: &mut Netlink, pod: &mut Netlink) -> Result<Wired> {
        let name = &self.host_ifname;
        if self.ips.iter().any(IpAddr::is_ipv4) {
            // Strict reverse-path filter: a pod may only send from its own addresses.
            sysctl::ensure(&format!("net/ipv4/conf/{name}/rp_filter"), "1").map_err(io_err)?;
        }
        if self.ips.iter().any(IpAddr::is_ipv6) {
            // The host end's link-local address is usable at once, so the node can reach
            // the pod over IPv6 without waiting a second for duplicate detection.
            sysctl::ensure(&format!("net/ipv6/conf/{name}/accept_dad"), "0").map_err(io_err)?;
        }
        let host_link = host
            .link_by_name(name)?
            .ok_or_else(|| Error::CheckMismatch(format!("host interface {name} vanished")))?;
        host.set_up(host_link.index, None)?;
        let pod_link = pod.link_by_name(self.ifname)?.ok_or_else(|| {
            Error::CheckMismatch(format!("{} vanished from the pod", self.ifname))
        })?;
        pod.set_up(pod_link.index, None)?;
        for ip in &self.ips {
            let prefix = host_prefix(*ip);
            pod.add_address(pod_link.index, *ip, prefix.prefix_len())?;
            pod.set_permanent_neighbour(&Neighbour {
                index: pod_link.index,
                ip: gateway_for(*ip),
                mac: HOST_MAC.to_vec(),
            })?;
        }
        for dst in &self.routes {
            let gw = gateway_for(dst.addr());
            pod.replace_route(&Route::via_onlink(*dst, gw, pod_link.index))?;
        }
        crash_point("after-pod-side");
        for ip in &self.ips {
            host.replace_route(&Route::direct(host_prefix(*ip), host_link.index))?;
        }
        Ok(Wired {
            host: Link {
                up: true,
                ..host_link
            },
            pod: Link {
                up: true,
                ..pod_link
            },
        })
    }

    /// Compares the kernel with what [`apply`](Self::apply) builds; the first difference is
    /// an error naming it. `pod_mac` is the pod end's MAC as reported by ADD, if known.
    pub fn verify(
        &self,
        host: &mut Netlink,
        pod: &mut Netlink,
        pod_mac: Option<&str>,
    ) -> Result<()> {
        let mismatch = |what: String| Err(Error::CheckMismatch(what));
        let Some(host_link) = host.link_by_name(&self.host_ifname)? else {
            return mismatch(format!("host interface {} is missing", self.host_ifname));
        };
        if host_link.alias.as_deref() != Some(self.alias.as_str()) {
            return mismatch(format!(
                "host interface {} is not this attachment's: its ifalias is {:?}, not {:?}",
                self.host_ifname, host_link.alias, self.alias
            ));
        }
        if host_link.kind.as_deref() != Some("veth") || !host_link.up {
            return mismatch(format!(
                "host interface {} is not an up veth",
                self.host_ifname
            ));
        }
        let Some(pod_link) = pod.link_by_name(self.ifname)? else {
            return mismatch(format!(
                "{} is missing in {}",
                self.ifname,
                self.netns.path().display()
            ));
        };
        if !pod_link.up {
            return mismatch(format!("{} is down in the pod", self.ifname));
        }
        if let Some(mac) = pod_mac {
            if !mac.eq_ignore_ascii_case(&net::format_mac(&pod_link.mac)) {
                return mismatch(format!(
                    "{} has MAC {}, ADD reported {mac}",
                    self.ifname,
                    net::format_mac(&pod_link.mac)
                ));
            }
        }
        let addrs = pod.addresses(pod_link.index)?;
        let neighbours = pod.permanent_neighbours(pod_link.index)?;
        let host_routes: Vec<Route> = [false, true]
            .into_iter()
            .filter(|v6| self.ips.iter().any(|ip| ip.is_ipv6() == *v6))
            .map(|v6| host.routes(v6))
            .collect::<Result<Vec<_>, _>>()?
            .concat();
        for ip in &self.ips {
            let prefix = host_prefix(*ip);
            if !addrs.contains(&(*ip, prefix.prefix_len())) {
                return mismatch(format!("{} does not hold {prefix}", self.ifname));
            }
            let gw = gateway_for(*ip);
            if !neighbours.iter().any(|n| n.ip == gw && n.mac == HOST_MAC) {
                return mismatch(format!("the pod has no permanent neighbour entry for {gw}"));
            }
            if !host_routes
                .iter()
                .any(|r| r.dst == prefix && r.oif == Some(host_link.index))
            {
                return mismatch(format!(
                    "the node has no route {prefix} dev {}",
                    self.host_ifname
                ));
            }
        }
        let pod_routes: Vec<Route> = [false, true]
            .into_iter()
            .filter(|v6| self.routes.iter().any(|r| r.addr().is_ipv6() == *v6))
            .map(|v6| pod.routes(v6))
            .collect::<Result<Vec<_>, _>>()?
            .concat();
        for dst in &self.routes {
            let gw = gateway_for(dst.addr());
            if !pod_routes
                .iter()
                .any(|r| r.dst == *dst && r.gateway == Some(gw) && r.oif == Some(pod_link.index))
            {
                return mismatch(format!(
                    "the pod has no route {dst} via {gw} dev {}",
                    self.ifname
                ));
            }
        }
        Ok(())
    }
}

/// The (network, container ID, ifname) of a Jalur host end, read from its alias.
pub fn owner_of(link: &Link) -> Option<(&str, &str, &str)> {
    if !link.name.starts_with(attachment::HOST_IF_PREFIX) {
        return None;
    }
    attachment::parse_alias(link.alias.as_deref()?)
}
