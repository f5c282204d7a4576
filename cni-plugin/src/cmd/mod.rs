//! `jalur`, the network plugin: one file per verb, and what they share.

mod add;
mod check;
mod del;
mod gc;
mod status;

use std::net::IpAddr;

use ipnet::IpNet;

use jalur_ipam::{AttachmentKey, AttachmentLock, Store};

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
        no_self_delegation(req)?;
        add::add(req)
    }
    fn del(&self, req: &Request) -> Result<()> {
        no_self_delegation(req)?;
        del::del(req)
    }
    fn check(&self, req: &Request) -> Result<()> {
        no_self_delegation(req)?;
        check::check(req)
    }
    fn gc(&self, req: &Request) -> Result<()> {
        no_self_delegation(req)?;
        gc::gc(req)
    }
    fn status(&self, req: &Request) -> Result<()> {
        no_self_delegation(req)?;
        status::status(req)
    }
}

/// The plugin's own type: an IPAM of this type would be the plugin running itself.
const OWN_TYPE: &str = "jalur";

/// Refuses (code 7, before anything runs) a config whose IPAM would run `jalur` again:
/// `ipam.type` naming this plugin, or this very call having been started by a delegate of
/// a `jalur` up the process tree (a chain of delegations leading back here). Either would
/// exec without end.
fn no_self_delegation(req: &Request) -> Result<()> {
    let Some(conf) = &req.config.ipam else {
        return Ok(());
    };
    if conf.plugin_type == OWN_TYPE || conf.plugin_type == req.config.plugin_type {
        return Err(Error::InvalidConfig(format!(
            "ipam.type {:?} is this plugin itself: it would run itself as its own IPAM without end; use \"{}\" (or another IPAM plugin)",
            conf.plugin_type,
            crate::config::IPAM_TYPE
        )));
    }
    if let Some(pid) = &req.env.delegated_by {
        return Err(Error::InvalidConfig(format!(
            "jalur was run as (or through) the IPAM of jalur (process {pid}): ipam.type {:?} leads back to jalur, which would run itself without end",
            conf.plugin_type
        )));
    }
    Ok(())
}

/// Takes the attachment's lock (under `<dataDir>/<network>/attachments/`, whatever the IPAM
/// type), held across booking and wiring so that ADD and DEL of one attachment never
/// interleave. Code 11 when it cannot be had within the store's timeout.
fn lock_attachment(req: &Request) -> Result<AttachmentLock> {
    let conf = req.config.ipam()?;
    let store = Store::open(&conf.data_dir(), &req.config.name)?;
    Ok(store.lock_attachment(&AttachmentKey::new(&req.env.container_id, &req.env.ifname))?)
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

/// The pod's namespace: `CNI_NETNS`, which must be a network namespace other than the one
/// the plugin runs in (wiring that one would rewire the node itself: its default route).
fn netns_of(req: &Request) -> Result<NetNs> {
    let path = req.env.netns.as_ref().ok_or(Error::InvalidEnv {
        var: "CNI_NETNS",
        reason: "it is missing or empty".into(),
    })?;
    let netns = NetNs::open(path)?;
    let own = netns
        .is_current()
        .map_err(|e| Error::io("cannot compare CNI_NETNS with /proc/self/ns/net", e))?;
    if own {
        return Err(Error::InvalidEnv {
            var: "CNI_NETNS",
            reason: format!(
                "{} is the network namespace jalur itself runs in (the node's), not a pod's; nothing was changed",
                path.display()
            ),
        });
    }
    Ok(netns)
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
