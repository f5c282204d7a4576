//! `jalur`, the network plugin: one file per verb, and what they share.

mod add;
mod check;
mod del;
mod gc;
mod status;

use std::net::IpAddr;

use ipnet::IpNet;

use crate::attachment;
use crate::config::{IpamConf, NetConf};
use crate::delegate::Delegate;
use crate::error::{Error, Result};
use crate::ipam_local::LocalIpam;
use crate::net::{NetNs, Netlink};
use crate::pod::PodWiring;
use crate::result::CniResult;
use crate::skel::{Plugin, Request};

/// The `jalur` network plugin.
pub struct Jalur;

impl Plugin for Jalur {
    fn add(&self, req: &Request) -> Result<CniResult> {
        add::add(req)
    }
    fn del(&self, req: &Request) -> Result<()> {
        del::del(req)
    }
    fn check(&self, req: &Request) -> Result<()> {
        check::check(req)
    }
    fn gc(&self, req: &Request) -> Result<()> {
        gc::gc(req)
    }
    fn status(&self, req: &Request) -> Result<()> {
        status::status(req)
    }
}

/// The IPAM a config names: in-process for `jalur-ipam`, by exec for anything else.
fn ipam_plugin(conf: &IpamConf) -> Box<dyn Plugin> {
    if conf.is_in_process() {
        Box::new(LocalIpam)
    } else {
        Box::new(Delegate {
            plugin_type: conf.plugin_type.clone(),
        })
    }
}

/// The host end's name and alias for this request's attachment.
fn host_end(req: &Request) -> (String, String) {
    (
        attachment::host_ifname(&req.env.container_id, &req.env.ifname),
        attachment::alias(&req.config.name, &req.env.container_id, &req.env.ifname),
    )
}

/// The wiring of this request's attachment: its derived host end, in `netns`.
fn wiring<'a>(
    req: &'a Request,
    netns: &'a NetNs,
    mtu: u32,
    ips: Vec<IpAddr>,
    routes: Vec<IpNet>,
) -> PodWiring<'a> {
    let (host_ifname, alias) = host_end(req);
    PodWiring {
        netns,
        ifname: &req.env.ifname,
        host_ifname,
        alias,
        mtu,
        ips,
        routes,
    }
}

/// The node is ready for pods unless the config names a readiness file that is missing.
fn node_ready(conf: &NetConf) -> std::result::Result<(), String> {
    match &conf.readiness_file {
        Some(path) if !path.exists() => Err(format!(
            "the node is not ready for pods yet: {} does not exist (jalur-agent writes it once routes are in place)",
            path.display()
        )),
        _ => Ok(()),
    }
}

/// Opens netlink sockets in the node's namespace (the caller's) and in the pod's.
fn sockets(netns: &NetNs) -> Result<(Netlink, Netlink)> {
    let host = Netlink::open()?;
    let pod = netns.run(Netlink::open)??;
    Ok((host, pod))
}

/// The destinations a pod routes via its gateway: the IPAM's routes of the families it has
/// addresses in, or a default route per family when the IPAM gives none.
fn pod_routes(ips: &[IpAddr], ipam_routes: &[IpNet]) -> Vec<IpNet> {
    let has = |v6: bool| ips.iter().any(|ip| ip.is_ipv6() == v6);
    if ipam_routes.is_empty() {
        return [false, true]
            .into_iter()
            .filter(|v6| has(*v6))
            .map(|v6| {
                if v6 { "::/0" } else { "0.0.0.0/0" }
                    .parse()
                    .expect("default route")
            })
            .collect();
    }
    ipam_routes
        .iter()
        .filter(|r| has(r.addr().is_ipv6()))
        .copied()
        .collect()
}

fn netns_of(req: &Request) -> Result<NetNs> {
    let path = req.env.netns.as_ref().ok_or(Error::InvalidEnv {
        var: "CNI_NETNS",
        reason: "it is missing or empty".into(),
    })?;
    Ok(NetNs::open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_routes_follow_the_pod_families() {
        let v4: IpAddr = "10.1.0.5".parse().unwrap();
        let v6: IpAddr = "fd00::5".parse().unwrap();
        let s = |v: Vec<IpNet>| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(s(pod_routes(&[v4], &[])), ["0.0.0.0/0"]);
        assert_eq!(s(pod_routes(&[v4, v6], &[])), ["0.0.0.0/0", "::/0"]);
        let given: Vec<IpNet> = vec![
            "10.96.0.0/12".parse().unwrap(),
            "fd01::/64".parse().unwrap(),
        ];
        assert_eq!(s(pod_routes(&[v4], &given)), ["10.96.0.0/12"]);
    }
}
