//! DEL: remove the host end (the pod end goes with it) and release the addresses.
//!
//! Best-effort and idempotent: every step runs, "already gone" is success, and the failures
//! are reported together. It needs neither the pod's namespace nor a prevResult. It removes a
//! link only when its alias names this attachment: a link of another attachment whose name
//! collides, or anyone else's, is left alone.

use super::{host_end, ipam_plugin, lock_attachment};
use crate::attachment;
use crate::error::{Error, Result};
use crate::net::{NetNs, Netlink};
use crate::skel::Request;

pub(super) fn del(req: &Request) -> Result<()> {
    let mut errors: Vec<Error> = Vec::new();
    let lock = match lock_attachment(req) {
        Ok(lock) => Some(lock),
        // Held by a call that does not let go: the runtime retries DEL.
        Err(e) if e.code() == 11 => return Err(e),
        // No ipam section (reported below) or no usable lock directory: DEL is best-effort
        // and still removes what is provably this attachment's.
        Err(e) => {
            if req.config.ipam.is_some() {
                log::warn!("DEL without the attachment's lock: {e}");
            }
            None
        }
    };
    if let Err(e) = remove_host_end(req) {
        errors.push(e);
    }
    remove_unmoved_pair(req);
    match req.config.ipam() {
        Ok(conf) => {
            if let Err(e) = ipam_plugin(conf).del(req) {
                errors.push(e);
            }
        }
        Err(e) => errors.push(e),
    }
    if let Some(lock) = lock {
        if errors.is_empty() {
            lock.remove()?;
        }
    }
    Error::all(errors)
}

fn owned(req: &Request, alias: Option<&str>) -> bool {
    attachment::owns(
        alias,
        &req.config.name,
        &req.env.container_id,
        &req.env.ifname,
    )
}

/// The host end in the node, when its alias names this attachment.
fn remove_host_end(req: &Request) -> Result<()> {
    let (name, _) = host_end(req);
    let mut nl = Netlink::open()?;
    let Some(link) = nl.link_by_name(&name)? else {
        return Ok(());
    };
    if !owned(req, link.alias.as_deref()) {
        log::warn!(
            "DEL {} {}: left {name} alone: it is not this attachment's (ifalias {:?})",
            req.env.container_id,
            req.env.ifname,
            link.alias
        );
        return Ok(());
    }
    if nl.delete_link_index(link.index, &name)? {
        log::info!(
            "DEL {} {}: removed {name}",
            req.env.container_id,
            req.env.ifname
        );
    }
    Ok(())
}

/// A pair an ADD killed before its move left inside the pod's namespace. Only when
/// `CNI_NETNS` is still a pod's namespace; anything else (gone, empty, not a namespace)
/// means there is nothing to find (the pair goes with the namespace).
fn remove_unmoved_pair(req: &Request) {
    let Some(path) = &req.env.netns else { return };
    let Ok(netns) = NetNs::open(path) else { return };
    if netns.is_current().unwrap_or(true) {
        return;
    }
    let (name, _) = host_end(req);
    let removed = netns.run(|| -> Result<bool> {
        let mut nl = Netlink::open()?;
        let Some(link) = nl.link_by_name(&name)? else {
            return Ok(false);
        };
        let peer = nl.link_by_name(&req.env.ifname)?;
        if !attachment::is_unmoved_pair(&link, peer.as_ref()) {
            log::warn!(
                "DEL: left {name} in {} alone: it is not an unfinished pair of jalur's",
                path.display()
            );
            return Ok(false);
        }
        Ok(nl.delete_link_index(link.index, &name)?)
    });
    match removed {
        Ok(Ok(true)) => log::info!(
            "DEL: removed an unfinished pair {name} in {}",
            path.display()
        ),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => log::warn!(
            "DEL: looking for an unfinished pair in {}: {e}",
            path.display()
        ),
        Err(e) => log::warn!("DEL: {e}"),
    }
}
