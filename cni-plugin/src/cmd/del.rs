//! DEL: remove the host end (the pod end goes with it) and release the addresses.
//!
//! Best-effort and idempotent: every step runs, "already gone" is success, and the failures
//! are reported together. It needs neither the pod's namespace nor a prevResult.

use super::{host_end, ipam_plugin};
use crate::error::{Error, Result};
use crate::net::Netlink;
use crate::skel::Request;

pub(super) fn del(req: &Request) -> Result<()> {
    let mut errors: Vec<Error> = Vec::new();
    let (host_ifname, _) = host_end(req);
    match Netlink::open().and_then(|mut nl| nl.delete_link(&host_ifname)) {
        Ok(true) => log::info!(
            "DEL {} {}: removed {host_ifname}",
            req.env.container_id,
            req.env.ifname
        ),
        Ok(false) => {}
        Err(e) => errors.push(e.into()),
    }
    match req.config.ipam() {
        Ok(conf) => {
            if let Err(e) = ipam_plugin(conf).del(req) {
                errors.push(e);
            }
        }
        Err(e) => errors.push(e),
    }
    Error::all(errors)
}
