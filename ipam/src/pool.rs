//! Range sets (one address per set per attachment, one family each) and pools (the ordered
//! list of range sets an attachment draws from, e.g. one IPv4 and one IPv6 set for
//! dual-stack), with their overlap validation.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::range::Range;

/// One or more non-overlapping [`Range`]s of the same address family. An attachment gets
/// one address from each range set of its [`Pool`]; the ranges of a set are used in order,
/// round-robin.
///
/// Serialises as a JSON array of ranges (host-local's inner `ranges` array).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<Range>", into = "Vec<Range>")]
pub struct RangeSet {
    ranges: Vec<Range>,
}

impl TryFrom<Vec<Range>> for RangeSet {
    type Error = Error;
    fn try_from(ranges: Vec<Range>) -> Result<Self> {
        RangeSet::new(ranges)
    }
}

impl From<RangeSet> for Vec<Range> {
    fn from(s: RangeSet) -> Self {
        s.ranges
    }
}

impl RangeSet {
    /// Builds a range set. Errors: no range ([`Error::EmptyRangeSet`]), ranges of both
    /// families ([`Error::MixedFamilies`]), two ranges sharing an address ([`Error::Overlap`]).
    pub fn new(ranges: Vec<Range>) -> Result<RangeSet> {
        let first = ranges.first().ok_or(Error::EmptyRangeSet)?;
        if let Some(other) = ranges.iter().find(|r| r.is_ipv4() != first.is_ipv4()) {
            return Err(Error::MixedFamilies {
                first: first.to_string(),
                second: other.to_string(),
            });
        }
        for (i, a) in ranges.iter().enumerate() {
            if let Some(b) = ranges[i + 1..].iter().find(|b| a.overlaps(b)) {
                return Err(Error::Overlap {
                    first: a.to_string(),
                    second: b.to_string(),
                });
            }
        }
        Ok(RangeSet { ranges })
    }

    /// A set of a single range.
    pub fn single(range: Range) -> RangeSet {
        RangeSet {
            ranges: vec![range],
        }
    }

    /// The ranges, in allocation order.
    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }

    /// Whether the set is IPv4 (otherwise IPv6).
    pub fn is_ipv4(&self) -> bool {
        self.ranges[0].is_ipv4()
    }

    /// The range containing `ip` (between its start and end), if any.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.ranges.iter().find(|r| r.contains(ip))
    }

    /// Whether `ip` is in one of the ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    /// How many addresses the set can hand out in total (saturating).
    pub fn capacity(&self) -> u128 {
        self.ranges
            .iter()
            .fold(0u128, |acc, r| acc.saturating_add(r.capacity()))
    }

    /// A canonical identifier of the set: its [`Display`](fmt::Display) form, e.g.
    /// `10.1.0.0/24 (10.1.0.1-10.1.0.254), 10.2.0.0/24 (10.2.0.1-10.2.0.254)`. The store keys
    /// the round-robin cursor by it, so changing a set's ranges restarts its round-robin.
    pub fn id(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The range sets an attachment draws from, in order: one address per set.
///
/// Serialises as host-local's `ranges`: an array of arrays of ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<RangeSet>", into = "Vec<RangeSet>")]
pub struct Pool {
    sets: Vec<RangeSet>,
}

impl TryFrom<Vec<RangeSet>> for Pool {
    type Error = Error;
    fn try_from(sets: Vec<RangeSet>) -> Result<Self> {
        Pool::new(sets)
    }
}

impl From<Pool> for Vec<RangeSet> {
    fn from(p: Pool) -> Self {
        p.sets
    }
}

impl Pool {
    /// Builds a pool. Errors: no range set ([`Error::EmptyPool`]), a range of one set
    /// overlapping a range of another ([`Error::Overlap`]).
    pub fn new(sets: Vec<RangeSet>) -> Result<Pool> {
        if sets.is_empty() {
            return Err(Error::EmptyPool);
        }
        for (i, a) in sets.iter().enumerate() {
            for b in &sets[i + 1..] {
                for ra in a.ranges() {
                    if let Some(rb) = b.ranges().iter().find(|rb| ra.overlaps(rb)) {
                        return Err(Error::Overlap {
                            first: ra.to_string(),
                            second: rb.to_string(),
                        });
                    }
                }
            }
        }
        Ok(Pool { sets })
    }

    /// The range sets, in allocation order.
    pub fn range_sets(&self) -> &[RangeSet] {
        &self.sets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Range {
        Range::from_subnet(s.parse().unwrap()).unwrap()
    }

    #[test]
    fn set_validation() {
        assert!(matches!(RangeSet::new(vec![]), Err(Error::EmptyRangeSet)));
        let e = RangeSet::new(vec![r("10.0.0.0/24"), r("fd00::/64")]).unwrap_err();
        assert!(matches!(e, Error::MixedFamilies { .. }), "{e}");
        let e = RangeSet::new(vec![r("10.0.0.0/16"), r("10.0.5.0/24")]).unwrap_err();
        assert!(matches!(e, Error::Overlap { .. }), "{e}");
        // Same subnet, disjoint start/end: fine (as in host-local).
        let ip = |s: &str| Some(s.parse().unwrap());
        let subnet = "10.0.0.0/24".parse().unwrap();
        let a = Range::new(subnet, ip("10.0.0.10"), ip("10.0.0.20"), None).unwrap();
        let b = Range::new(subnet, ip("10.0.0.21"), None, None).unwrap();
        let set = RangeSet::new(vec![a, b]).unwrap();
        assert_eq!(set.capacity(), 11 + 234);
        assert_eq!(
            set.id(),
            "10.0.0.0/24 (10.0.0.10-10.0.0.20), 10.0.0.0/24 (10.0.0.21-10.0.0.254)"
        );
    }

    #[test]
    fn pool_validation() {
        assert!(matches!(Pool::new(vec![]), Err(Error::EmptyPool)));
        let e = Pool::new(vec![
            RangeSet::single(r("10.0.0.0/24")),
            RangeSet::new(vec![r("10.1.0.0/24"), r("10.0.0.0/25")]).unwrap(),
        ])
        .unwrap_err();
        assert!(matches!(e, Error::Overlap { .. }), "{e}");
        let p = Pool::new(vec![
            RangeSet::single(r("10.0.0.0/24")),
            RangeSet::single(r("fd00::/64")),
        ])
        .unwrap();
        assert_eq!(p.range_sets().len(), 2);
    }

    #[test]
    fn pool_serde() {
        let p: Pool = serde_json::from_str(
            r#"[[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00::/64","gateway":"fd00::fe"}]]"#,
        )
        .unwrap();
        assert!(p.range_sets()[0].is_ipv4());
        assert!(!p.range_sets()[1].is_ipv4());
        assert!(serde_json::from_str::<Pool>("[]").is_err());
        assert!(serde_json::from_str::<Pool>("[[]]").is_err());
    }
}
