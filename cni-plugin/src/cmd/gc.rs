//! GC: release the addresses and host ends of every attachment of this network that
//! `cni.dev/valid-attachments` does not list (leftovers of pods whose DEL never came).
//!
//! Host ends are found two ways: by the derived name of every attachment the address store
//! holds (this also finds one whose ADD was killed before its alias was set), and by the
//! alias that names this network.

use std::collections::BTreeSet;

use ipam::{AttachmentKey, Store};

use super::ipam_plugin;
use crate::attachment::host_ifname;
use crate::error::{Error, Result};
use crate::ipam_local::valid_attachments;
use crate::net::Netlink;
use crate::pod::owner_of;
use crate::skel::Request;

pub(super) fn gc(req: &Request) -> Result<()> {
    let valid = valid_attachments(req)?;
    let conf = req.config.ipam()?;
    let mut stale: BTreeSet<AttachmentKey> = BTreeSet::new();
    if conf.is_in_process() {
        let store = Store::open(&conf.data_dir(), &req.config.name)?;
        stale.extend(
            store
                .attachments()?
                .into_keys()
                .filter(|k| !valid.contains(k)),
        );
    }
    let mut host = Netlink::open()?;
    for link in host.links()? {
        if let Some((network, container_id, ifname)) = owner_of(&link) {
            let key = AttachmentKey::new(container_id, ifname);
            if network == req.config.name && !valid.contains(&key) {
                stale.insert(key);
            }
        }
    }
    let mut errors: Vec<Error> = Vec::new();
    for key in &stale {
        let name = host_ifname(&key.container_id, &key.ifname);
        match host.delete_link(&name) {
            Ok(true) => log::info!("GC removed {name} ({key})"),
            Ok(false) => {}
            Err(e) => errors.push(e.into()),
        }
    }
    if let Err(e) = ipam_plugin(conf).gc(req) {
        errors.push(e);
    }
    Error::all(errors)
}
