//! `jalur-ipam`: the IPAM plugin's verbs over the `ipam` store. The `jalur-ipam` binary runs
//! this, and `jalur` calls the same code in-process when its `ipam.type` is `jalur-ipam`.

use std::collections::HashSet;

use ipnet::IpNet;
use jalur_ipam::{AttachmentKey, Store};

use crate::config::IpamConf;
use crate::error::{Error, Result};
use crate::result::{CniResult, IpConfig, RouteEntry};
use crate::skel::{Plugin, Request};

/// The IPAM plugin.
pub struct LocalIpam;

fn store_of(req: &Request, conf: &IpamConf) -> Result<Store> {
    Ok(Store::open(&conf.data_dir(), &req.config.name)?)
}

fn key_of(req: &Request) -> AttachmentKey {
    AttachmentKey::new(&req.env.container_id, &req.env.ifname)
}

impl Plugin for LocalIpam {
    /// Books one address per range set and returns them with their subnet's prefix length,
    /// the range's gateway and the configured routes (the IPAM result format).
    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = req.config.ipam()?;
        let pool = conf.pool()?;
        let routes = conf.parsed_routes()?;
        let store = store_of(req, conf)?;
        let allocations = store.allocate(&pool, &key_of(req))?;
        let ips = allocations
            .iter()
            .map(|a| IpConfig {
                address: IpNet::new(a.ip, a.subnet.prefix_len()).expect("prefix of a subnet"),
                gateway: a.gateway,
                interface: None,
            })
            .collect();
        Ok(CniResult {
            ips,
            routes: routes
                .into_iter()
                .map(|(dst, gw)| RouteEntry { dst, gw })
                .collect(),
            dns: req.config.dns.clone().unwrap_or_default(),
            ..CniResult::default()
        })
    }

    /// Releases the attachment's addresses; succeeds when there are none.
    fn del(&self, req: &Request) -> Result<()> {
        let conf = req.config.ipam()?;
        let released = store_of(req, conf)?.release(&key_of(req))?;
        if !released.is_empty() {
            log::info!("released {released:?} of {}", key_of(req));
        }
        Ok(())
    }

    /// Verifies that the attachment still holds every address of `prevResult`.
    fn check(&self, req: &Request) -> Result<()> {
        let conf = req.config.ipam()?;
        let held = store_of(req, conf)?.lookup(&key_of(req))?;
        if held.is_empty() {
            return Err(Error::CheckMismatch(format!(
                "no address is booked for {} in network {}",
                key_of(req),
                req.config.name
            )));
        }
        if let Some(prev) = &req.config.prev_result {
            for ip in CniResult::from_value(prev)?.ips {
                if !held.contains(&ip.address.addr()) {
                    return Err(Error::CheckMismatch(format!(
                        "{} is not booked for {} (it holds {held:?})",
                        ip.address.addr(),
                        key_of(req)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Releases the addresses of every attachment not listed as valid.
    fn gc(&self, req: &Request) -> Result<()> {
        let conf = req.config.ipam()?;
        let valid = valid_attachments(req)?;
        for (key, ip) in store_of(req, conf)?.gc(&valid)? {
            log::info!("GC released {ip} of {key}");
        }
        Ok(())
    }

    /// Succeeds when every range set has a free address (code 50 otherwise).
    fn status(&self, req: &Request) -> Result<()> {
        let conf = req.config.ipam()?;
        let pool = conf.pool()?;
        let free = store_of(req, conf)?.free_addresses(&pool)?;
        for (set, free) in pool.range_sets().iter().zip(free) {
            if free == 0 {
                return Err(Error::NotAvailable(format!(
                    "no free address left in {set}: pods cannot be added until some are deleted"
                )));
            }
        }
        Ok(())
    }
}

/// The `cni.dev/valid-attachments` of a GC request, as keys. Missing is an error: treating it
/// as empty would release every address of the network.
pub fn valid_attachments(req: &Request) -> Result<HashSet<AttachmentKey>> {
    let list = req.config.valid_attachments.as_ref().ok_or_else(|| {
        Error::InvalidConfig(
            "GC needs \"cni.dev/valid-attachments\" (an empty list releases everything)".into(),
        )
    })?;
    Ok(list
        .iter()
        .map(|a| AttachmentKey::new(&a.container_id, &a.ifname))
        .collect())
}
