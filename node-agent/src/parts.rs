//! The parts of a node's state the agent reconciles, each on its own: a failure in one is
//! reported (log, `/readyz`, `jalur_part_ok{part}`) and does not stop the others.
//!
//! What pods need, and so what readiness waits for (see [`readiness`]): this node's own pod
//! CIDR (believed), forwarding on for at least one of its families (a family whose
//! forwarding cannot be turned on is left out of the CNI config: its pods would get
//! addresses that go nowhere), the CNI config written, and, when masquerade is on, the
//! nftables table (without it, pods' traffic would leave the node with pod addresses).
//! Routes to peers and the overlay are not: a node that cannot reach one peer still serves
//! pods, as with an unroutable peer; their failures are reported and retried.

use std::collections::BTreeMap;

/// One part of the node's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// Routes (protocol 74): the blackhole of the own pod CIDRs and one per peer CIDR.
    Routes,
    /// The `jalur.vxlan` device, its addresses, forwarding entries and neighbours.
    Overlay,
    /// The forwarding sysctls (`net.ipv4.ip_forward`, `net.ipv6.conf.all.forwarding`).
    Forwarding,
    /// The nftables table `inet jalur`.
    Firewall,
    /// The CNI config list and the readiness mark.
    CniConfig,
}

impl Part {
    /// The `part` label of logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Part::Routes => "routes",
            Part::Overlay => "overlay",
            Part::Forwarding => "forwarding",
            Part::Firewall => "firewall",
            Part::CniConfig => "cni-config",
        }
    }
}

/// Each part's outcome in the last sync: `None` in place, `Some(error)` not.
pub type PartErrors = BTreeMap<Part, Option<String>>;

/// Whether the node can serve pods: it has a pod CIDR it can serve (`served`), its CNI config
/// is written, and its firewall is in place if masquerade is on.
pub fn readiness(served: bool, parts: &PartErrors, masquerade: bool) -> bool {
    let ok = |p: Part| matches!(parts.get(&p), Some(None));
    served && ok(Part::CniConfig) && (!masquerade || ok(Part::Firewall))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_pods_need_decides_readiness() {
        let all = [
            Part::Overlay,
            Part::Forwarding,
            Part::Routes,
            Part::Firewall,
            Part::CniConfig,
        ];
        let mut parts: PartErrors = all.iter().map(|p| (*p, None)).collect();
        assert!(readiness(true, &parts, true));
        assert!(!readiness(false, &parts, true), "no pod CIDR to serve");
        parts.insert(Part::Routes, Some("peer route failed".into()));
        parts.insert(Part::Overlay, Some("no vxlan".into()));
        assert!(
            readiness(true, &parts, true),
            "peers are not what pods need"
        );
        parts.insert(Part::Firewall, Some("no inet nat".into()));
        assert!(
            !readiness(true, &parts, true),
            "masquerade on needs the table"
        );
        assert!(readiness(true, &parts, false), "masquerade off does not");
        parts.insert(Part::CniConfig, Some("read-only".into()));
        assert!(!readiness(true, &parts, false));
    }
}
