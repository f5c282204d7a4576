//! STATUS: succeed when an ADD could be served now (node ready, a free address in every
//! range set); code 50 otherwise.

use super::{ipam_plugin, node_ready};
use crate::error::{Error, Result};
use crate::skel::Request;

pub(super) fn status(req: &Request) -> Result<()> {
    node_ready(&req.config).map_err(Error::NotAvailable)?;
    ipam_plugin(req.config.ipam()?).status(req)
}
