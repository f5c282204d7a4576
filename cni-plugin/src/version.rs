//! CNI specification versions: parsing, the supported set, and what each version allows.

use std::fmt;

/// A CNI specification version, `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32, pub u32);

/// The newest version this plugin speaks.
pub const CURRENT: Version = Version(1, 1, 0);

/// Every version this plugin answers, oldest first.
pub const SUPPORTED: [Version; 5] = [
    Version(0, 3, 0),
    Version(0, 3, 1),
    Version(0, 4, 0),
    Version(1, 0, 0),
    CURRENT,
];

impl Version {
    /// Parses `MAJOR.MINOR.PATCH`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = s.split('.');
        let mut next = || parts.next()?.parse::<u32>().ok();
        let v = Version(next()?, next()?, next()?);
        parts.next().is_none().then_some(v)
    }

    /// True when this plugin speaks this version.
    pub fn is_supported(self) -> bool {
        SUPPORTED.contains(&self)
    }

    /// CHECK exists from 0.4.0 on.
    pub fn allows_check(self) -> bool {
        self >= Version(0, 4, 0)
    }

    /// GC and STATUS exist from 1.1.0 on.
    pub fn allows_gc_and_status(self) -> bool {
        self >= Version(1, 1, 0)
    }

    /// Results before 1.0.0 carry `"version": "4"|"6"` in each `ips` entry.
    pub fn ips_carry_version(self) -> bool {
        self < Version(1, 0, 0)
    }

    /// Interface `mtu`, `socketPath`, `pciID` and route `mtu`, `advmss`, `priority`,
    /// `table`, `scope` exist from 1.1.0 on.
    pub fn has_1_1_fields(self) -> bool {
        self >= Version(1, 1, 0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The supported versions as strings, for VERSION answers and messages.
pub fn supported_strings() -> Vec<String> {
    SUPPORTED.iter().map(Version::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        assert_eq!(Version::parse("0.4.0"), Some(Version(0, 4, 0)));
        assert_eq!(Version::parse("1.1.0"), Some(CURRENT));
        assert_eq!(Version::parse("1.1"), None);
        assert_eq!(Version::parse("1.1.0.0"), None);
        assert_eq!(Version::parse("x.1.0"), None);
        assert!(Version(0, 3, 1) < Version(0, 4, 0));
        assert!(Version(0, 10, 0) > Version(0, 4, 0));
    }

    #[test]
    fn verbs_by_version() {
        assert!(!Version(0, 3, 1).allows_check());
        assert!(Version(0, 4, 0).allows_check());
        assert!(!Version(1, 0, 0).allows_gc_and_status());
        assert!(CURRENT.allows_gc_and_status());
        assert!(!Version(9, 9, 9).is_supported());
        assert!(!Version(0, 2, 0).is_supported());
    }
}
