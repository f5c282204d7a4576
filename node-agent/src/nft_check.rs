//! Notices when someone else changed Jalur's nftables table: a fingerprint of its chains and
//! rules as the kernel lists them (`nft list table inet jalur`, over `NETLINK_NETFILTER`
//! dumps). Taken right after the agent applies its table, and compared at every resync: a
//! flushed, deleted or edited chain or rule (even one put back the same, which gets a new
//! handle) changes it, and the agent applies its table again. Reads only; the table itself is
//! written by `jalur_cni_plugin::net::nft`.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_GETRULE: u16 = 7;
const NFPROTO_INET: u8 = 1;
/// `NFTA_CHAIN_TABLE` and `NFTA_RULE_TABLE` are both attribute 1.
const NFTA_TABLE: u16 = 1;

/// A fingerprint of `table`'s chains and rules (family `inet`); equal fingerprints mean
/// nothing in it changed. A missing table has a fingerprint too (that of nothing).
pub fn fingerprint(table: &str) -> io::Result<u64> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut hasher = DefaultHasher::new();
    for (seq, kind) in [(1u32, NFT_MSG_GETCHAIN), (2, NFT_MSG_GETRULE)] {
        dump(&socket, seq, kind, table, &mut hasher)?;
    }
    Ok(hasher.finish())
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Dumps one kind of object of the `inet` family and hashes those of `table`: each message's
/// attributes, without the netlink header and the generation id that precede them.
fn dump(
    socket: &Socket,
    seq: u32,
    kind: u16,
    table: &str,
    hasher: &mut impl Hasher,
) -> io::Result<()> {
    let mut name = table.as_bytes().to_vec();
    name.push(0);
    let attr_len = 4 + name.len();
    let len = NLMSG_HDRLEN + 4 + align4(attr_len);
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | kind).to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&[NFPROTO_INET, 0, 0, 0]);
    msg.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    msg.extend_from_slice(&NFTA_TABLE.to_ne_bytes());
    msg.extend_from_slice(&name);
    msg.resize(len, 0);
    socket.send(&msg, 0)?;
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, "truncated nfnetlink dump");
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = socket.recv(&mut &mut buf[..], 0)?;
        let mut bytes = &buf[..n];
        while bytes.len() >= NLMSG_HDRLEN {
            let len = u32::from_ne_bytes(bytes[0..4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(bytes[4..6].try_into().unwrap());
            if len < NLMSG_HDRLEN || len > bytes.len() {
                return Err(invalid());
            }
            match ty {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let code = bytes.get(16..20).ok_or_else(invalid)?;
                    let errno = -i32::from_ne_bytes(code.try_into().unwrap());
                    if errno == 0 || errno == nix::errno::Errno::ENOENT as i32 {
                        return Ok(());
                    }
                    return Err(io::Error::from_raw_os_error(errno));
                }
                _ => {
                    let attrs = bytes.get(NLMSG_HDRLEN + 4..len).unwrap_or_default();
                    if table_of(attrs) == Some(name.as_slice()) {
                        hasher.write(attrs);
                    }
                }
            }
            bytes = &bytes[align4(len).min(bytes.len())..];
        }
    }
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
