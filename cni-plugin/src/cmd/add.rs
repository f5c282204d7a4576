//! ADD: validate everything, book the addresses, wire the pod; undo on any failure.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{ipam_plugin, lock_attachment, netns_of, node_ready, pod_routes, sockets, wiring};
use crate::attachment::{gateway_for, HOST_MAC};
use crate::error::{Error, Result};
use crate::net::format_mac;
use crate::result::{CniResult, Interface, IpConfig, RouteEntry};
use crate::skel::Request;
use crate::testhook::crash_point;

const FALLBACK_MTU: u32 = 1500;

pub(super) fn add(req: &Request) -> Result<CniResult> {
    node_ready(&req.config).map_err(Error::TryAgain)?;
    // Everything that can be checked is checked before the kernel or the store is touched.
    let conf = req.config.ipam()?;
    if conf.is_in_process() {
        conf.pool()?;
        conf.parsed_routes()?;
    }
    if req.config.prev_result.is_some() {
        return Err(Error::InvalidConfig(
            "jalur creates the pod's interface, so it must come first in a plugin list (it was given a prevResult)".into(),
        ));
    }
    let netns = netns_of(req)?;
    // Held until the answer: a DEL of this attachment waits for the wiring (or its undo).
    let _lock = lock_attachment(req)?;
    let (mut host, mut pod) = sockets(&netns)?;
    if pod.link_by_name(&req.env.ifname)?.is_some() {
        return Err(Error::InterfaceExists {
            ifname: req.env.ifname.clone(),
            netns: netns.path().display().to_string(),
        });
    }
    let mtu = match req.config.mtu {
        Some(mtu) => mtu,
        None => host.default_route_mtu()?.unwrap_or(FALLBACK_MTU),
    };

    let ipam = ipam_plugin(conf);
    let booked = ipam.add(req)?;
    crash_point("after-ipam");
    let undo_ipam = |err: Error| {
        if let Err(e) = ipam.del(req) {
            log::error!("undoing a failed ADD, the address release failed too: {e}");
        }
        err
    };
    let ips: Vec<IpAddr> = booked.ips.iter().map(|ip| ip.address.addr()).collect();
    if ips.is_empty() {
        return Err(undo_ipam(Error::InvalidConfig(format!(
            "IPAM plugin {} returned no address",
            conf.plugin_type
        ))));
    }
    let ipam_routes: Vec<IpNet> = booked.routes.iter().map(|r| r.dst).collect();
    let routes = pod_routes(&ips, &ipam_routes);
    let wiring = wiring(req, &netns, mtu, ips, routes);
    let wired = wiring.apply(&mut host, &mut pod).map_err(undo_ipam)?;
    crash_point("before-result");
    log::info!(
        "ADD {} {}: {:?} on {} (host end {})",
        req.env.container_id,
        req.env.ifname,
        wiring.ips,
        netns.path().display(),
        wiring.host_ifname
    );

    let dns = match &req.config.dns {
        Some(dns) if *dns != Default::default() => dns.clone(),
        _ => booked.dns,
    };
    Ok(CniResult {
        interfaces: vec![
            Interface {
                name: wired.host.name,
                mac: Some(format_mac(&HOST_MAC)),
                mtu: Some(mtu),
                sandbox: None,
            },
            Interface {
                name: wired.pod.name,
                mac: Some(format_mac(&wired.pod.mac)),
                mtu: Some(mtu),
                sandbox: Some(netns.path().display().to_string()),
            },
        ],
        ips: wiring
            .ips
            .iter()
            .map(|ip| IpConfig {
                address: IpNet::from(*ip),
                gateway: Some(gateway_for(*ip)),
                interface: Some(1),
            })
            .collect(),
        routes: wiring
            .routes
            .iter()
            .map(|dst| RouteEntry {
                dst: *dst,
                gw: Some(gateway_for(dst.addr())),
            })
            .collect(),
        dns,
    })
}
