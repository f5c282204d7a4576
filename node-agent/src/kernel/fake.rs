//! An in-memory node for unit tests of the sync: links, addresses, the main table's routes,
//! permanent neighbours, forwarding entries and sysctls, changed the way the kernel changes
//! them (a replaced route takes the place of the one with its destination and metric, a
//! deleted link takes its addresses, routes, neighbours and entries with it). Every change is
//! recorded as the `ip` command it equals, and any request can be made to fail.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;

use jalur_cni_plugin::net::{format_mac, Link, Neighbour, NetError, Route};

use super::Kernel;
use crate::vxlan::{fdb_op, FdbEntry, VxlanNetlink, VxlanSpec};

/// The node. Index 1 is `lo`, 2 the underlay `eth0` (see [`FakeKernel::node`]).
#[derive(Debug, Default)]
pub struct FakeKernel {
    /// The links.
    pub links: Vec<Link>,
    /// (interface index, address, prefix length).
    pub addresses: Vec<(u32, IpAddr, u8)>,
    /// The main table.
    pub routes: Vec<Route>,
    /// Permanent neighbours.
    pub neighbours: Vec<Neighbour>,
    /// Forwarding entries, by interface index.
    pub fdb: Vec<(u32, FdbEntry)>,
    /// Sysctls, by key (`net/ipv4/ip_forward`).
    pub sysctls: BTreeMap<String, String>,
    /// Every change made, as the `ip` (or `bridge`, `sysctl`) command it equals.
    pub changes: Vec<String>,
    /// Requests whose command holds one of these fail (`EPERM`).
    failing: Vec<String>,
}

/// The underlay's index.
pub const ETH0: u32 = 2;

fn link(index: u32, name: &str, mtu: u32) -> Link {
    Link {
        index,
        name: name.into(),
        mac: vec![0x02, 0, 0, 0, 0, index as u8],
        mtu,
        up: true,
        kind: None,
        alias: None,
        peer: None,
        peer_netnsid: None,
    }
}

fn errno(op: String, errno: i32) -> NetError {
    NetError::new(op, io::Error::from_raw_os_error(errno))
}

impl FakeKernel {
    /// A node whose `eth0` (MTU 1500) holds `addr` (`192.168.49.2/24`), with the kernel's
    /// route to that subnet, a default route through `.1` and forwarding off.
    pub fn node(addr: &str) -> FakeKernel {
        let net: ipnet::IpNet = addr.parse().expect("an address with its prefix");
        let gateway = net.hosts().next().expect("a subnet with hosts");
        let mut k = FakeKernel {
            links: vec![link(1, "lo", 65536), link(ETH0, "eth0", 1500)],
            addresses: vec![(ETH0, net.addr(), net.prefix_len())],
            ..FakeKernel::default()
        };
        let connected = Route {
            protocol: 2, // kernel
            ..Route::direct(net.trunc(), ETH0)
        };
        let default = Route {
            protocol: 3, // boot
            ..Route::via(
                ipnet::IpNet::new(gateway, 0).expect("prefix 0").trunc(),
                gateway,
                ETH0,
            )
        };
        k.routes = vec![default, connected];
        for key in ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"] {
            k.sysctls.insert(key.into(), "0".into());
        }
        k
    }

    /// Makes every request whose command (`ip route replace 10.244.2.0/24 …`) holds `what`
    /// fail with `EPERM`, until [`FakeKernel::heal`].
    pub fn fail(&mut self, what: &str) {
        self.failing.push(what.into());
    }

    /// Lets every request succeed again.
    pub fn heal(&mut self) {
        self.failing.clear();
    }

    /// The routes of the main table, as `ip route` spells them (interfaces by name).
    pub fn route_texts(&self) -> Vec<String> {
        self.routes
            .iter()
            .map(|r| r.describe_with(|i| self.name(i)))
            .collect()
    }

    /// Adds a link (a pod's host end, say) and returns its index.
    pub fn add_link(&mut self, name: &str) -> u32 {
        let index = self.links.iter().map(|l| l.index).max().unwrap_or(0) + 1;
        self.links.push(link(index, name, 1500));
        index
    }

    /// The link called `name`.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    fn name(&self, index: u32) -> Option<String> {
        self.links
            .iter()
            .find(|l| l.index == index)
            .map(|l| l.name.clone())
    }

    /// `Err` when `op` is made to fail.
    fn check(&self, op: &str) -> Result<(), NetError> {
        match self.failing.iter().any(|f| op.contains(f.as_str())) {
            true => Err(errno(op.to_owned(), nix::errno::Errno::EPERM as i32)),
            false => Ok(()),
        }
    }

    /// Deletes, as the kernel would for `op`, the first entry of the list `of` picks that
    /// `found` matches; `Ok(false)` when none does.
    fn delete<T>(
        &mut self,
        op: String,
        of: fn(&mut FakeKernel) -> &mut Vec<T>,
        found: impl Fn(&T) -> bool,
    ) -> Result<bool, NetError> {
        let Some(at) = of(self).iter().position(found) else {
            self.check(&op)?;
            return Ok(false);
        };
        self.change(op)?;
        of(self).remove(at);
        Ok(true)
    }

    /// Checks `op` and, when it may go on, records it as a change.
    fn change(&mut self, op: String) -> Result<(), NetError> {
        self.check(&op)?;
        self.changes.push(op);
        Ok(())
    }
}

impl Kernel for FakeKernel {
    fn links(&mut self) -> Result<Vec<Link>, NetError> {
        self.check("ip link show")?;
        Ok(self.links.clone())
    }

    fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, NetError> {
        self.check(&format!("ip link show {name}"))?;
        Ok(self.link(name).cloned())
    }

    fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, NetError> {
        self.check(&format!("ip link show dev {index}"))?;
        Ok(self.links.iter().find(|l| l.index == index).cloned())
    }

    fn delete_link(&mut self, name: &str) -> Result<bool, NetError> {
        let Some(index) = self.link(name).map(|l| l.index) else {
            self.check(&format!("ip link del {name}"))?;
            return Ok(false);
        };
        self.change(format!("ip link del {name}"))?;
        self.links.retain(|l| l.index != index);
        self.addresses.retain(|(i, _, _)| *i != index);
        self.routes.retain(|r| r.oif != Some(index));
        self.neighbours.retain(|n| n.index != index);
        self.fdb.retain(|(i, _)| *i != index);
        Ok(true)
    }

    fn all_addresses(&mut self) -> Result<Vec<(u32, IpAddr, u8)>, NetError> {
        self.check("ip addr show")?;
        Ok(self.addresses.clone())
    }

    fn addresses(&mut self, index: u32) -> Result<Vec<(IpAddr, u8)>, NetError> {
        self.check(&format!("ip addr show dev {index}"))?;
        Ok(self
            .addresses
            .iter()
            .filter(|(i, _, _)| *i == index)
            .map(|(_, ip, len)| (*ip, *len))
            .collect())
    }

    fn add_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> Result<(), NetError> {
        let op = format!("ip addr add {ip}/{prefix} dev {index}");
        if self.addresses.contains(&(index, ip, prefix)) {
            return Err(errno(op, nix::errno::Errno::EEXIST as i32));
        }
        self.change(op)?;
        self.addresses.push((index, ip, prefix));
        Ok(())
    }

    fn delete_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> Result<(), NetError> {
        let op = format!("ip addr del {ip}/{prefix} dev {index}");
        let Some(at) = self
            .addresses
            .iter()
            .position(|a| *a == (index, ip, prefix))
        else {
            return Err(errno(op, nix::errno::Errno::EADDRNOTAVAIL as i32));
        };
        self.change(op)?;
        self.addresses.remove(at);
        Ok(())
    }

    fn routes(&mut self, v6: bool) -> Result<Vec<Route>, NetError> {
        self.check(&format!("ip -{} route show", if v6 { 6 } else { 4 }))?;
        Ok(self
            .routes
            .iter()
            .filter(|r| r.dst.addr().is_ipv6() == v6)
            .cloned()
            .collect())
    }

    /// As the kernel: the route takes the place of the one with its destination and metric,
    /// whoever's it was.
    fn replace_route(&mut self, route: &Route) -> Result<(), NetError> {
        self.change(format!("ip route replace {}", route.describe()))?;
        match self
            .routes
            .iter_mut()
            .find(|r| r.dst == route.dst && r.metric == route.metric)
        {
            Some(old) => *old = route.clone(),
            None => self.routes.push(route.clone()),
        }
        Ok(())
    }

    /// As the kernel: only a route that matches in destination, gateway, interface and
    /// protocol goes.
    fn delete_route(&mut self, route: &Route) -> Result<bool, NetError> {
        self.delete(
            format!("ip route del {}", route.describe()),
            |k| &mut k.routes,
            |r| r.same_as(route) && r.protocol == route.protocol,
        )
    }

    fn permanent_neighbours(&mut self, index: u32) -> Result<Vec<Neighbour>, NetError> {
        self.check(&format!("ip neigh show dev {index} nud permanent"))?;
        Ok(self
            .neighbours
            .iter()
            .filter(|n| n.index == index)
            .cloned()
            .collect())
    }

    fn set_permanent_neighbour(&mut self, n: &Neighbour) -> Result<(), NetError> {
        self.change(format!(
            "ip neigh replace {} lladdr {} dev {} nud permanent",
            n.ip,
            format_mac(&n.mac),
            n.index
        ))?;
        self.neighbours
            .retain(|have| (have.index, have.ip) != (n.index, n.ip));
        self.neighbours.push(n.clone());
        Ok(())
    }

    fn delete_neighbour(&mut self, n: &Neighbour) -> Result<bool, NetError> {
        self.delete(
            format!("ip neigh del {} dev {}", n.ip, n.index),
            |k| &mut k.neighbours,
            |have| (have.index, have.ip) == (n.index, n.ip),
        )
    }

    fn set_sysctl(&mut self, key: &str, value: &str) -> io::Result<()> {
        if self.sysctls.get(key).map(String::as_str) == Some(value) {
            return Ok(());
        }
        // Spelled as `sysctl::ensure` spells its failures.
        self.change(format!("sysctl -w {key}={value}"))
            .map_err(|e| io::Error::new(e.source.kind(), e.to_string()))?;
        self.sysctls.insert(key.into(), value.into());
        Ok(())
    }
}

impl VxlanNetlink for FakeKernel {
    /// The device comes up with the spec's settings, and the IPv6 link-local address the
    /// kernel gives it.
    fn create_vxlan(&mut self, spec: &VxlanSpec) -> Result<u32, NetError> {
        let op = format!(
            "ip link add {} type vxlan id {} local {} dev {} dstport {} nolearning",
            spec.name, spec.vni, spec.local, spec.underlay_index, spec.port
        );
        if self.link(&spec.name).is_some() {
            return Err(errno(op, nix::errno::Errno::EEXIST as i32));
        }
        self.change(op)?;
        let index = self.add_link(&spec.name);
        let device = self.links.last_mut().expect("just added");
        device.mac = spec.mac.to_vec();
        device.mtu = spec.mtu;
        device.kind = Some("vxlan".into());
        device.alias = Some(spec.alias.clone());
        let link_local = IpAddr::from([0xfe80, 0, 0, 0, 0, 0, 0, index as u16]);
        self.addresses.push((index, link_local, 64));
        Ok(index)
    }

    fn fdb_entries(&mut self, index: u32) -> Result<Vec<FdbEntry>, NetError> {
        self.check(&format!("bridge fdb show dev {index}"))?;
        Ok(self
            .fdb
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn add_fdb(&mut self, index: u32, entry: &FdbEntry) -> Result<(), NetError> {
        self.change(fdb_op("append", index, entry))?;
        self.fdb.push((index, entry.clone()));
        Ok(())
    }

    fn delete_fdb(&mut self, index: u32, entry: &FdbEntry) -> Result<bool, NetError> {
        let op = fdb_op("del", index, entry);
        self.delete(op, |k| &mut k.fdb, |(i, e)| *i == index && e == entry)
    }
}
