//! How an attachment (container ID, interface name) is recognised on the node: the host end's
//! name, its MAC, its `ifalias`, and the pod's link-local gateways.
//!
//! The name is derived, not stored, so that DEL finds the host end even when the pod's
//! namespace and every cache are gone. The name is only where to look: it is a 52-bit hash, so
//! another attachment (or anyone else) may hold it. What proves a link is this attachment's is
//! its alias, `jalur/<network>/<ifname>/<container ID>`, which the host end carries from the
//! moment it appears in the node's namespace. Jalur deletes or replaces a link only when its
//! alias names the attachment at hand ([`owns`]); a link without that alias is never touched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Prefix of every host-side interface Jalur creates.
pub const HOST_IF_PREFIX: &str = "jl";

/// MAC of every host end: the pods' gateway neighbour entry points at it. Host ends are
/// point-to-point, so one locally administered address serves them all.
pub const HOST_MAC: [u8; 6] = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee];

/// The pods' IPv4 gateway: link-local, answered by the host end (`onlink`).
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// The pods' IPv6 gateway.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

const ALIAS_PREFIX: &str = "jalur";

/// The kernel's limit on an `ifalias` (`IFALIASZ - 1` bytes).
pub const MAX_ALIAS: usize = 255;

// The longest alias the protocol lets through fits the kernel's limit.
const _: () = assert!(
    ALIAS_PREFIX.len()
        + 3
        + crate::config::MAX_NETWORK_NAME
        + crate::env::MAX_IFNAME
        + crate::env::MAX_CONTAINER_ID
        <= MAX_ALIAS
);

/// The gateway of the family of `ip`.
pub fn gateway_for(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(GATEWAY_V4),
        IpAddr::V6(_) => IpAddr::V6(GATEWAY_V6),
    }
}

/// FNV-1a, 64 bit: stable across releases and platforms. Names derived from it are
/// contracts: a host end's name with DEL, an IPv6 node's VTEP MAC with every peer.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The host end's name: `jl` and 13 hex digits of a hash of (container ID, ifname); 15 bytes,
/// the kernel's limit.
pub fn host_ifname(container_id: &str, ifname: &str) -> String {
    let hash = fnv1a(format!("{container_id}\0{ifname}").as_bytes());
    format!("{HOST_IF_PREFIX}{:013x}", hash & 0x000f_ffff_ffff_ffff)
}

/// The host end's `ifalias`: `jalur/<network>/<ifname>/<container ID>`. None of the three may
/// hold a `/` (the protocol checks), so the alias splits back unambiguously.
pub fn alias(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{ALIAS_PREFIX}/{network}/{ifname}/{container_id}")
}

/// True when `link_alias` is the alias of the attachment (network, container ID, ifname):
/// the only proof Jalur accepts that a link is its own to delete or replace.
pub fn owns(link_alias: Option<&str>, network: &str, container_id: &str, ifname: &str) -> bool {
    link_alias.is_some_and(|a| a == alias(network, container_id, ifname))
}

/// True when `host`, found under the host end's derived name inside the *pod's* namespace,
/// is the host end of a pair an ADD created there and was killed before moving to the node:
/// a veth with Jalur's host MAC, no alias, whose peer is `pod_end` (`CNI_IFNAME`) in the same
/// namespace, and the other way round. The only place an alias-less link is ever taken for
/// Jalur's: the pod's namespace was handed over for this attachment, and the pairing is
/// exact. In the node's namespace, a link without this attachment's alias is never touched.
pub fn is_unmoved_pair(host: &crate::net::Link, pod_end: Option<&crate::net::Link>) -> bool {
    let Some(pod_end) = pod_end else {
        return false;
    };
    host.kind.as_deref() == Some("veth")
        && pod_end.kind.as_deref() == Some("veth")
        && host.alias.is_none()
        && host.mac == HOST_MAC
        && host.peer_netnsid.is_none()
        && pod_end.peer_netnsid.is_none()
        && host.peer == Some(pod_end.index)
        && pod_end.peer == Some(host.index)
}

/// The (network, container ID, ifname) an alias names, if it is one of ours.
pub fn parse_alias(alias: &str) -> Option<(&str, &str, &str)> {
    let mut parts = alias.splitn(4, '/');
    if parts.next()? != ALIAS_PREFIX {
        return None;
    }
    let network = parts.next()?;
    let ifname = parts.next()?;
    let container_id = parts.next()?;
    Some((network, container_id, ifname))
}

/// Two valid 64-character container IDs whose host ends share a name. Found with
/// Pollard's rho (Brent's cycle finding) over `x -> host_ifname(PREFIX + 13 hex of x)`,
/// 52 bits, in about 10^8 steps (seconds). The kernel tests use them to show that one
/// pod's DEL leaves the other's host end alone. Test data, kept here so that the unit test
/// below pins it.
pub const COLLIDING_IDS: [&str; 2] = [
    "c011ide5c011ide5c011ide5c011ide5c011ide5c011ide5c0136127466ae903",
    "c011ide5c011ide5c011ide5c011ide5c011ide5c011ide5c01337a99afc01f2",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_stable_distinct_and_fit_the_kernel() {
        let a = host_ifname(
            "56c0390f3401ebf67b5e3388b9843f909d010cfd63ea8e63e49f52ce00969b2b",
            "eth0",
        );
        assert_eq!(a.len(), 15);
        assert!(a.starts_with(HOST_IF_PREFIX));
        // Pinned: DEL of a pod made by an older release must find its host end.
        assert_eq!(host_ifname("abc", "eth0"), host_ifname("abc", "eth0"));
        assert_eq!(
            host_ifname("abc", "eth0"),
            "jl".to_owned() + &format!("{:013x}", fnv1a(b"abc\0eth0") & 0xf_ffff_ffff_ffff)
        );
        assert_ne!(host_ifname("abc", "eth0"), host_ifname("abc", "eth1"));
        assert_ne!(host_ifname("ab", "ceth0"), host_ifname("abc", "eth0"));
    }

    #[test]
    fn the_colliding_pair_collides() {
        let [a, b] = COLLIDING_IDS;
        assert_ne!(a, b);
        assert_eq!(host_ifname(a, "eth0"), host_ifname(b, "eth0"));
        assert!(crate::env::validate_container_id(a).is_ok());
        assert!(crate::env::validate_container_id(b).is_ok());
        assert!(owns(Some(&alias("n", a, "eth0")), "n", a, "eth0"));
        assert!(!owns(Some(&alias("n", a, "eth0")), "n", b, "eth0"));
        assert!(!owns(None, "n", a, "eth0"));
    }

    #[test]
    fn alias_round_trips() {
        let a = alias("k8s-pod-network", "abc-1.2_3", "eth0");
        assert_eq!(
            parse_alias(&a),
            Some(("k8s-pod-network", "abc-1.2_3", "eth0"))
        );
        assert_eq!(parse_alias("something else"), None);
    }
}
