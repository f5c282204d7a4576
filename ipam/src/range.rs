//! One address range inside one subnet (host-local's `range`): its defaults, its validation,
//! and the address arithmetic the allocator needs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A validated range of assignable addresses inside one subnet.
///
/// Defaults follow the CNI `host-local` IPAM: `gateway` is the network address + 1,
/// `range_start` is the network address + 1 and `range_end` is the last usable address
/// (IPv4: broadcast − 1; IPv6: the all-ones address − 1). The network address, the IPv4
/// broadcast address, the IPv6 all-ones address and the gateway are never handed out.
///
/// Serialises as `{"subnet": "...", "rangeStart": "...", "rangeEnd": "...", "gateway": "..."}`
/// (all but `subnet` optional when deserialising; deserialising validates like [`Range::new`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RangeSpec", into = "RangeSpec")]
pub struct Range {
    subnet: IpNet,
    start: IpAddr,
    end: IpAddr,
    gateway: IpAddr,
}

/// The serde shape of a [`Range`], host-local style.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RangeSpec {
    subnet: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    range_start: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    range_end: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
}

impl TryFrom<RangeSpec> for Range {
    type Error = Error;
    fn try_from(s: RangeSpec) -> Result<Self> {
        Range::new(s.subnet, s.range_start, s.range_end, s.gateway)
    }
}

impl From<Range> for RangeSpec {
    fn from(r: Range) -> Self {
        RangeSpec {
            subnet: r.subnet,
            range_start: Some(r.start),
            range_end: Some(r.end),
            gateway: Some(r.gateway),
        }
    }
}

impl Range {
    /// Builds a range, filling in host-local's defaults for the missing parts.
    ///
    /// Errors: the subnet has host bits set ([`Error::HostBitsSet`]); it has no usable
    /// address ([`Error::SubnetTooSmall`]: IPv4 /31, /32, IPv6 /127, /128); `range_start`,
    /// `range_end` or `gateway` is not a usable address of the subnet
    /// ([`Error::AddressNotInSubnet`]); `range_start > range_end` ([`Error::StartAfterEnd`]).
    pub fn new(
        subnet: IpNet,
        range_start: Option<IpAddr>,
        range_end: Option<IpAddr>,
        gateway: Option<IpAddr>,
    ) -> Result<Range> {
        let trunc = subnet.trunc();
        if trunc != subnet {
            return Err(Error::HostBitsSet {
                subnet,
                network: trunc.addr(),
            });
        }
        if subnet.prefix_len() + 1 >= subnet.max_prefix_len() {
            return Err(Error::SubnetTooSmall { subnet });
        }
        let v4 = is_v4(subnet.addr());
        let network = to_u128(subnet.network());
        let last = to_u128(subnet.broadcast());
        // Both bounds exclude the network address and the last (broadcast / all-ones) address.
        let (lo, hi) = (network + 1, last - 1);
        let check = |what: &'static str, addr: IpAddr| -> Result<u128> {
            let n = to_u128(addr);
            if is_v4(addr) != v4 || n < lo || n > hi {
                return Err(Error::AddressNotInSubnet { what, addr, subnet });
            }
            Ok(n)
        };
        let start = range_start.map_or(Ok(lo), |a| check("range start", a))?;
        let end = range_end.map_or(Ok(hi), |a| check("range end", a))?;
        let gateway = gateway.map_or(Ok(network + 1), |a| check("gateway", a))?;
        if start > end {
            return Err(Error::StartAfterEnd {
                subnet,
                start: from_u128(start, v4),
                end: from_u128(end, v4),
            });
        }
        Ok(Range {
            subnet,
            start: from_u128(start, v4),
            end: from_u128(end, v4),
            gateway: from_u128(gateway, v4),
        })
    }

    /// A range covering the whole subnet with default start, end and gateway.
    pub fn from_subnet(subnet: IpNet) -> Result<Range> {
        Range::new(subnet, None, None, None)
    }

    /// The subnet this range lives in.
    pub fn subnet(&self) -> IpNet {
        self.subnet
    }

    /// The first address of the range (inclusive).
    pub fn range_start(&self) -> IpAddr {
        self.start
    }

    /// The last address of the range (inclusive).
    pub fn range_end(&self) -> IpAddr {
        self.end
    }

    /// The gateway of the subnet; never handed out.
    pub fn gateway(&self) -> IpAddr {
        self.gateway
    }

    /// Whether this is an IPv4 range.
    pub fn is_ipv4(&self) -> bool {
        is_v4(self.start)
    }

    /// Whether `ip` lies between [`range_start`](Self::range_start) and
    /// [`range_end`](Self::range_end) inclusive (the gateway counts as contained).
    pub fn contains(&self, ip: IpAddr) -> bool {
        is_v4(ip) == self.is_ipv4()
            && self.start_u128() <= to_u128(ip)
            && to_u128(ip) <= self.end_u128()
    }

    /// How many addresses of this range can be handed out (all of it except the gateway).
    /// Never overflows: a range never spans the whole address space.
    pub fn capacity(&self) -> u128 {
        let size = self.end_u128() - self.start_u128() + 1;
        if self.contains(self.gateway) {
            size - 1
        } else {
            size
        }
    }

    /// Whether the `[start, end]` intervals of the two ranges share an address.
    pub fn overlaps(&self, other: &Range) -> bool {
        self.is_ipv4() == other.is_ipv4()
            && self.start_u128() <= other.end_u128()
            && other.start_u128() <= self.end_u128()
    }

    pub(crate) fn start_u128(&self) -> u128 {
        to_u128(self.start)
    }

    pub(crate) fn end_u128(&self) -> u128 {
        to_u128(self.end)
    }
}

impl fmt::Display for Range {
    /// `10.1.0.0/30 (10.1.0.1-10.1.0.2)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}-{})", self.subnet, self.start, self.end)
    }
}

pub(crate) fn is_v4(ip: IpAddr) -> bool {
    ip.is_ipv4()
}

/// The address as an integer (IPv4 in the low 32 bits).
pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Inverse of [`to_u128`]; `n` must fit 32 bits when `v4`.
pub(crate) fn from_u128(n: u128, v4: bool) -> IpAddr {
    if v4 {
        // Callers only pass values derived from IPv4 addresses.
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4_defaults() {
        let r = Range::from_subnet(net("10.1.0.0/24")).unwrap();
        assert_eq!(r.range_start(), ip("10.1.0.1"));
        assert_eq!(r.range_end(), ip("10.1.0.254"));
        assert_eq!(r.gateway(), ip("10.1.0.1"));
        assert_eq!(r.capacity(), 253);
        assert_eq!(r.to_string(), "10.1.0.0/24 (10.1.0.1-10.1.0.254)");
    }

    #[test]
    fn v6_defaults() {
        let r = Range::from_subnet(net("fd00:1::/64")).unwrap();
        assert_eq!(r.range_start(), ip("fd00:1::1"));
        assert_eq!(r.range_end(), ip("fd00:1::ffff:ffff:ffff:fffe"));
        assert_eq!(r.gateway(), ip("fd00:1::1"));
        assert_eq!(r.capacity(), (1u128 << 64) - 3);
        assert!(!r.is_ipv4());
    }

    #[test]
    fn explicit_bounds_and_gateway() {
        let r = Range::new(
            net("10.2.0.0/16"),
            Some(ip("10.2.1.0")),
            Some(ip("10.2.1.255")),
            Some(ip("10.2.255.254")),
        )
        .unwrap();
        assert_eq!(r.capacity(), 256);
        assert!(r.contains(ip("10.2.1.0")));
        assert!(!r.contains(ip("10.2.2.0")));
        assert!(!r.contains(ip("fd00::1")));
    }

    #[test]
    fn host_bits_rejected() {
        let e = Range::from_subnet(net("10.0.0.5/24")).unwrap_err();
        assert!(matches!(e, Error::HostBitsSet { .. }), "{e}");
        assert!(e.to_string().contains("10.0.0.0"), "{e}");
        let e = Range::from_subnet(net("fd00::5/64")).unwrap_err();
        assert!(matches!(e, Error::HostBitsSet { .. }), "{e}");
    }

    #[test]
    fn too_small_rejected() {
        for s in ["10.0.0.1/32", "10.0.0.0/31", "fd00::1/128", "fd00::/127"] {
            let e = Range::from_subnet(net(s)).unwrap_err();
            assert!(matches!(e, Error::SubnetTooSmall { .. }), "{s}: {e}");
        }
        assert_eq!(
            Range::from_subnet(net("10.0.0.0/30")).unwrap().capacity(),
            1
        );
        assert_eq!(Range::from_subnet(net("fd00::/126")).unwrap().capacity(), 1);
    }

    #[test]
    fn bounds_outside_subnet_rejected() {
        let s = net("10.0.0.0/24");
        let cases = [
            (Some(ip("10.0.1.1")), None, None, "range start"),
            (Some(ip("10.0.0.0")), None, None, "range start"),
            (None, Some(ip("10.0.0.255")), None, "range end"),
            (None, Some(ip("fd00::1")), None, "range end"),
            (None, None, Some(ip("10.0.1.1")), "gateway"),
        ];
        for (start, end, gw, what) in cases {
            let e = Range::new(s, start, end, gw).unwrap_err();
            match e {
                Error::AddressNotInSubnet { what: w, .. } => assert_eq!(w, what),
                other => panic!("unexpected {other}"),
            }
        }
        let e = Range::new(net("fd00::/64"), Some(ip("fd01::1")), None, None).unwrap_err();
        assert!(matches!(e, Error::AddressNotInSubnet { .. }), "{e}");
        let e = Range::new(
            net("fd00::/64"),
            None,
            Some(ip("fd00::ffff:ffff:ffff:ffff")),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, Error::AddressNotInSubnet { .. }), "{e}");
    }

    #[test]
    fn start_after_end_rejected() {
        let e = Range::new(
            net("10.0.0.0/24"),
            Some(ip("10.0.0.9")),
            Some(ip("10.0.0.8")),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, Error::StartAfterEnd { .. }), "{e}");
    }

    #[test]
    fn serde_roundtrip_validates() {
        let r: Range =
            serde_json::from_str(r#"{"subnet":"10.3.0.0/24","rangeStart":"10.3.0.10"}"#).unwrap();
        assert_eq!(r.range_start(), ip("10.3.0.10"));
        assert_eq!(r.gateway(), ip("10.3.0.1"));
        let back: Range = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        assert!(serde_json::from_str::<Range>(r#"{"subnet":"10.3.0.7/24"}"#).is_err());
    }
}
