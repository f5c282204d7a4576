//! Notices when someone else changed Jalur's nftables table: a fingerprint of its chains and
//! rules as the kernel lists them (`nft list table inet jalur`, over the same
//! `NETLINK_NETFILTER` socket that writes the table). Taken right after the agent applies its
//! table, and compared at every resync: a flushed, deleted or edited chain or rule (even one
//! put back the same, which gets a new handle) changes it, and the agent applies its table
//! again. Reads only.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;

use jalur_cni_plugin::net::NetError;

use super::wire::{
    align4, Attrs, NfSocket, Request, NFT_MSG_GETCHAIN, NFT_MSG_GETRULE, NLM_F_DUMP,
};
use super::NFPROTO_INET;

/// `NFTA_CHAIN_TABLE` and `NFTA_RULE_TABLE` are both attribute 1.
const NFTA_TABLE: u16 = 1;

/// A fingerprint of `table`'s chains and rules (family `inet`); equal fingerprints mean
/// nothing in it changed. A missing table has a fingerprint too (that of nothing).
pub fn fingerprint(table: &str) -> Result<u64, NetError> {
    let mut socket = NfSocket::open()?;
    let mut name = table.as_bytes().to_vec();
    name.push(0);
    let mut hasher = DefaultHasher::new();
    for (kind, what) in [(NFT_MSG_GETCHAIN, "chains"), (NFT_MSG_GETRULE, "ruleset")] {
        let mut attrs = Attrs::new();
        attrs.str(NFTA_TABLE, table);
        let request = Request {
            kind,
            flags: NLM_F_DUMP,
            family: NFPROTO_INET,
            attrs: attrs.into_bytes(),
            op: format!("nft list {what} inet {table}"),
        };
        // Each message's attributes, without the netlink header and the generation id.
        socket.dump(&request, &mut |attrs| {
            if table_of(attrs) == Some(name.as_slice()) {
                hasher.write(attrs);
            }
        })?;
    }
    Ok(hasher.finish())
}

/// The value (NUL included) of the table attribute among `attrs`.
fn table_of(mut attrs: &[u8]) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let ty = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if ty == NFTA_TABLE {
            return Some(&attrs[4..len]);
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_table_attribute_among_others() {
        let mut attrs = Attrs::new();
        attrs
            .u32(2, 7)
            .str(NFTA_TABLE, "jalur")
            .str(3, "postrouting");
        let bytes = attrs.into_bytes();
        assert_eq!(table_of(&bytes), Some(&b"jalur\0"[..]));
    }

    #[test]
    fn a_truncated_attribute_stream_names_no_table() {
        let mut attrs = Attrs::new();
        attrs.str(NFTA_TABLE, "jalur");
        let bytes = attrs.into_bytes();
        assert_eq!(table_of(&bytes[..bytes.len() - 4]), None);
        assert_eq!(table_of(&[]), None);
    }
}
