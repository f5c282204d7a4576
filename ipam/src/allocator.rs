//! Choosing the next address of a range set: round-robin from the last address handed out,
//! wrapping across the set's ranges in order, skipping booked addresses and gateways.
//!
//! The walk starts right after the cursor and stops at the first free address, so its cost
//! is bounded by the number of booked addresses (plus gateways), never by the size of the
//! range: a /64 costs the same as a /24.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::pool::RangeSet;
use crate::range::{from_u128, to_u128, Range};

/// The next free address of `set` after `cursor` (the last address handed out for this set)
/// with the range it belongs to, or `None` if every address is booked or a gateway.
///
/// Order: the rest of the cursor's range after the cursor, then the following ranges of the
/// set, wrapping around to the first, and finally the cursor's range from its start up to and
/// including the cursor itself, so a just-released address is reused only when nothing else is
/// free. A cursor outside every range (none yet, or the configuration changed) starts at the
/// beginning of the first range.
pub(crate) fn next_free<'a>(
    set: &'a RangeSet,
    cursor: Option<IpAddr>,
    booked: &HashSet<IpAddr>,
) -> Option<(IpAddr, &'a Range)> {
    let ranges = set.ranges();
    let at = cursor.and_then(|c| {
        ranges
            .iter()
            .position(|r| r.contains(c))
            .map(|i| (i, to_u128(c)))
    });
    let mut segments: Vec<(&'a Range, u128, u128)> = Vec::with_capacity(ranges.len() + 1);
    match at {
        None => segments.extend(ranges.iter().map(|r| (r, r.start_u128(), r.end_u128()))),
        Some((i, c)) => {
            let r = &ranges[i];
            if c < r.end_u128() {
                segments.push((r, c + 1, r.end_u128()));
            }
            for j in 1..ranges.len() {
                let r = &ranges[(i + j) % ranges.len()];
                segments.push((r, r.start_u128(), r.end_u128()));
            }
            segments.push((r, r.start_u128(), c));
        }
    }
    let v4 = set.is_ipv4();
    for (range, lo, hi) in segments {
        let gateway = range.gateway();
        let mut n = lo;
        loop {
            let ip = from_u128(n, v4);
            if ip != gateway && !booked.contains(&ip) {
                return Some((ip, range));
            }
            if n == hi {
                break;
            }
            n += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    /// The address only, checking it lies in the range returned with it.
    fn nf(s: &RangeSet, cursor: Option<IpAddr>, booked: &HashSet<IpAddr>) -> Option<IpAddr> {
        next_free(s, cursor, booked).map(|(ip, range)| {
            assert!(range.contains(ip) && ip != range.gateway());
            ip
        })
    }
    fn set(subnets: &[&str]) -> RangeSet {
        RangeSet::new(
            subnets
                .iter()
                .map(|s| Range::from_subnet(s.parse().unwrap()).unwrap())
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn starts_after_gateway_without_cursor() {
        let s = set(&["10.0.0.0/24"]);
        assert_eq!(nf(&s, None, &HashSet::new()), Some(ip("10.0.0.2")));
    }

    #[test]
    fn continues_after_cursor_and_wraps_across_ranges() {
        let s = set(&["10.0.0.0/29", "10.0.1.0/29"]);
        let none = HashSet::new();
        assert_eq!(nf(&s, Some(ip("10.0.0.3")), &none), Some(ip("10.0.0.4")));
        // End of first range -> second range (skipping its gateway .1).
        assert_eq!(nf(&s, Some(ip("10.0.0.6")), &none), Some(ip("10.0.1.2")));
        // End of last range -> back to the first.
        assert_eq!(nf(&s, Some(ip("10.0.1.6")), &none), Some(ip("10.0.0.2")));
        // Cursor outside the set -> from the beginning.
        assert_eq!(nf(&s, Some(ip("192.168.0.1")), &none), Some(ip("10.0.0.2")));
    }

    #[test]
    fn skips_booked_and_reuses_cursor_last() {
        let s = set(&["10.0.0.0/29"]); // .2-.6 allocatable
        let booked: HashSet<IpAddr> = ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3"]
            .iter()
            .map(|s| ip(s))
            .collect();
        assert_eq!(nf(&s, Some(ip("10.0.0.4")), &booked), Some(ip("10.0.0.4")));
        let mut all = booked.clone();
        all.insert(ip("10.0.0.4"));
        assert_eq!(nf(&s, Some(ip("10.0.0.4")), &all), None);
        assert_eq!(nf(&s, None, &all), None);
    }

    #[test]
    fn huge_v6_range_is_cheap() {
        let s = set(&["fd00::/64"]);
        let none = HashSet::new();
        assert_eq!(nf(&s, None, &none), Some(ip("fd00::2")));
        assert_eq!(
            nf(&s, Some(ip("fd00::ffff:ffff:ffff:fffe")), &none),
            Some(ip("fd00::2"))
        );
        assert_eq!(nf(&s, Some(ip("fd00::1:0")), &none), Some(ip("fd00::1:1")));
    }
}
