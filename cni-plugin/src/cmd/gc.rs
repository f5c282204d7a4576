//! GC: release the addresses and host ends of every attachment of this network that
//! `cni.dev/valid-attachments` does not list (leftovers of pods whose DEL never came).
//!
//! Host ends are found by their alias, which names the network and the attachment: a link
//! whose alias does not name this network is never touched. (A host end is never in the node
//! without its alias: see [`crate::pod::PodWiring::apply`].)

use jalur_ipam::AttachmentKey;

use super::ipam_plugin;
use crate::error::{Error, Result};
use crate::ipam_local::valid_attachments;
use crate::net::Netlink;
use crate::pod::owner_of;
use crate::skel::Request;

pub(super) fn gc(req: &Request) -> Result<()> {
    let valid = valid_attachments(req)?;
    let conf = req.config.ipam()?;
    let mut host = Netlink::open()?;
    let mut errors: Vec<Error> = Vec::new();
    for link in host.links()? {
        let Some((network, container_id, ifname)) = owner_of(&link) else {
            continue;
        };
        let key = AttachmentKey::new(container_id, ifname);
        if network != req.config.name || valid.contains(&key) {
            continue;
        }
        match host.delete_link_index(link.index, &link.name) {
            Ok(true) => log::info!("GC removed {} ({key})", link.name),
            Ok(false) => {}
            Err(e) => errors.push(e.into()),
        }
    }
    if let Err(e) = ipam_plugin(conf).gc(req) {
        errors.push(e);
    }
    Error::all(errors)
}
