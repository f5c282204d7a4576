//! CHECK: compare the kernel and the address store with the prevResult of ADD.

use std::net::IpAddr;

use super::{ipam_plugin, netns_of, sockets, wiring};
use crate::error::{Error, Result};
use crate::result::CniResult;
use crate::skel::Request;

pub(super) fn check(req: &Request) -> Result<()> {
    let conf = req.config.ipam()?;
    let prev = req
        .config
        .prev_result
        .as_ref()
        .ok_or_else(|| Error::InvalidConfig("CHECK needs the prevResult of ADD".into()))?;
    let prev = CniResult::from_value(prev)?;
    let pod_index = prev
        .interfaces
        .iter()
        .position(|i| i.name == req.env.ifname && i.sandbox.is_some())
        .ok_or_else(|| {
            Error::CheckMismatch(format!(
                "prevResult lists no interface {} inside a sandbox",
                req.env.ifname
            ))
        })?;
    let ips: Vec<IpAddr> = prev
        .ips
        .iter()
        .filter(|ip| ip.interface.is_none_or(|i| i == pod_index))
        .map(|ip| ip.address.addr())
        .collect();
    let netns = netns_of(req)?;
    let (mut host, mut pod) = sockets(&netns)?;
    let routes = prev.routes.iter().map(|r| r.dst).collect();
    wiring(req, &netns, 0, ips, routes).verify(
        &mut host,
        &mut pod,
        prev.interfaces[pod_index].mac.as_deref(),
    )?;
    ipam_plugin(conf).check(req)
}
