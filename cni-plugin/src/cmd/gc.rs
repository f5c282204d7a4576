//! GC: release the addresses and host ends of every attachment of this network that
//! `cni.dev/valid-attachments` does not list (leftovers of pods whose DEL never came).

use super::ipam_plugin;
use crate::error::{Error, Result};
use crate::ipam_local::valid_attachments;
use crate::net::Netlink;
use crate::pod::owner_of;
use crate::skel::Request;
use ipam::AttachmentKey;

pub(super) fn gc(req: &Request) -> Result<()> {
    let valid = valid_attachments(req)?;
    let mut errors: Vec<Error> = Vec::new();
    let mut host = Netlink::open()?;
    for link in host.links()? {
        let Some((network, container_id, ifname)) = owner_of(&link) else {
            continue;
        };
        if network != req.config.name || valid.contains(&AttachmentKey::new(container_id, ifname)) {
            continue;
        }
        match host.delete_link(&link.name) {
            Ok(_) => log::info!("GC removed {} ({container_id} {ifname})", link.name),
            Err(e) => errors.push(e.into()),
        }
    }
    match req.config.ipam() {
        Ok(conf) => {
            if let Err(e) = ipam_plugin(conf).gc(req) {
                errors.push(e);
            }
        }
        Err(e) => errors.push(e),
    }
    Error::all(errors)
}
