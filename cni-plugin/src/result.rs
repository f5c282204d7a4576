//! CNI results: one canonical shape (1.1.0), written out in the format of the version asked
//! for, and read back from any supported version (prevResult, delegated IPAM output).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::version::Version;

/// DNS settings of a result (or of the config's `dns`).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// An interface of a result.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Hardware address.
    pub mac: Option<String>,
    /// MTU (1.1.0).
    pub mtu: Option<u32>,
    /// The namespace path, for interfaces inside the container.
    pub sandbox: Option<String>,
}

/// An address of a result.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with prefix length.
    pub address: IpNet,
    /// Gateway for this address.
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    pub interface: Option<usize>,
}

/// A route of a result.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteEntry {
    /// Destination.
    pub dst: IpNet,
    /// Next hop.
    pub gw: Option<IpAddr>,
}

/// A CNI result in its canonical (1.1.0) shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    /// Interfaces created.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes installed.
    #[serde(default)]
    pub routes: Vec<RouteEntry>,
    /// DNS settings.
    #[serde(default)]
    pub dns: Dns,
}

impl CniResult {
    /// Reads a result of any supported version (the 0.x `version` field of `ips` is ignored;
    /// unknown fields are tolerated).
    pub fn from_value(value: &Value) -> Result<CniResult> {
        serde_json::from_value(value.clone()).map_err(|e| {
            Error::InvalidConfig(format!("prevResult or plugin result is malformed: {e}"))
        })
    }

    /// Writes the result in the format of `version`.
    pub fn to_value(&self, version: Version) -> Value {
        let mut interfaces = Vec::new();
        for iface in &self.interfaces {
            let mut m = Map::new();
            m.insert("name".into(), json!(iface.name));
            if let Some(mac) = &iface.mac {
                m.insert("mac".into(), json!(mac));
            }
            if let (Some(mtu), true) = (iface.mtu, version.has_1_1_fields()) {
                m.insert("mtu".into(), json!(mtu));
            }
            if let Some(sandbox) = &iface.sandbox {
                m.insert("sandbox".into(), json!(sandbox));
            }
            interfaces.push(Value::Object(m));
        }
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut m = Map::new();
                if version.ips_carry_version() {
                    let family = if ip.address.addr().is_ipv4() {
                        "4"
                    } else {
                        "6"
                    };
                    m.insert("version".into(), json!(family));
                }
                if let Some(i) = ip.interface {
                    m.insert("interface".into(), json!(i));
                }
                m.insert("address".into(), json!(ip.address.to_string()));
                if let Some(gw) = ip.gateway {
                    m.insert("gateway".into(), json!(gw.to_string()));
                }
                Value::Object(m)
            })
            .collect();
        let mut out = Map::new();
        out.insert("cniVersion".into(), json!(version.to_string()));
        if !interfaces.is_empty() {
            out.insert("interfaces".into(), Value::Array(interfaces));
        }
        if !ips.is_empty() {
            out.insert("ips".into(), Value::Array(ips));
        }
        if !self.routes.is_empty() {
            out.insert("routes".into(), json!(self.routes));
        }
        out.insert("dns".into(), json!(self.dns));
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "jl0123456789abc".into(),
                    mac: Some("ee:ee:ee:ee:ee:ee".into()),
                    mtu: Some(1500),
                    sandbox: None,
                },
                Interface {
                    name: "eth0".into(),
                    mac: Some("26:0c:74:8d:09:21".into()),
                    mtu: Some(1500),
                    sandbox: Some("/run/netns/x".into()),
                },
            ],
            ips: vec![IpConfig {
                address: "10.244.0.5/32".parse().unwrap(),
                gateway: Some("169.254.1.1".parse().unwrap()),
                interface: Some(1),
            }],
            routes: vec![RouteEntry {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some("169.254.1.1".parse().unwrap()),
            }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn writes_each_version_in_its_own_format() {
        let r = sample();
        let v11 = r.to_value(Version(1, 1, 0));
        assert_eq!(v11["cniVersion"], "1.1.0");
        assert_eq!(v11["interfaces"][1]["mtu"], 1500);
        assert!(v11["ips"][0].get("version").is_none());
        let v10 = r.to_value(Version(1, 0, 0));
        assert!(v10["interfaces"][1].get("mtu").is_none(), "mtu is 1.1-only");
        assert_eq!(v10["interfaces"][1]["sandbox"], "/run/netns/x");
        for old in [Version(0, 3, 0), Version(0, 3, 1), Version(0, 4, 0)] {
            let v = r.to_value(old);
            assert_eq!(v["cniVersion"], old.to_string());
            assert_eq!(v["ips"][0]["version"], "4");
            assert_eq!(v["ips"][0]["interface"], 1);
            assert_eq!(v["ips"][0]["address"], "10.244.0.5/32");
        }
    }

    #[test]
    fn reads_the_reference_plugins_results() {
        // Captured from the reference bridge plugin (shared/cni-examples).
        for text in [
            include_str!("../tests/golden/bridge-add-1.0.0.json"),
            include_str!("../tests/golden/bridge-add-0.4.0.json"),
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            let r = CniResult::from_value(&v).unwrap();
            assert_eq!(r.interfaces.len(), 3);
            assert!(r.interfaces[2]
                .sandbox
                .as_deref()
                .unwrap()
                .starts_with("/run/netns/rtchk"));
            assert!(r.ips[0].address.to_string().starts_with("10.88.77."));
            assert_eq!(r.ips[0].address.prefix_len(), 24);
            assert_eq!(r.ips[0].interface, Some(2));
            assert_eq!(r.routes[0].dst.to_string(), "0.0.0.0/0");
        }
    }

    #[test]
    fn round_trips_through_every_version() {
        let r = sample();
        for v in crate::version::SUPPORTED {
            let back = CniResult::from_value(&r.to_value(v)).unwrap();
            assert_eq!(back.ips, r.ips);
            assert_eq!(back.routes, r.routes);
        }
    }
}
