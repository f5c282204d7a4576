//! The network configuration a runtime passes on stdin, typed.
//!
//! One struct serves both plugins (`jalur` reads all of it, `jalur-ipam` reads the `ipam`
//! section) and the agent, which writes it. Unknown fields are tolerated, as the spec asks;
//! the raw bytes are kept for delegation.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::result::Dns;

/// The IPAM data directory when the config names none.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/jalur";

/// The `type` under which the in-process IPAM runs.
pub const IPAM_TYPE: &str = "jalur-ipam";

/// One network configuration (a single plugin's part of a conflist, as the runtime sends it).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// The spec version of this config.
    #[serde(default)]
    pub cni_version: String,
    /// The network's name, unique on the host.
    #[serde(default)]
    pub name: String,
    /// The plugin's type (`jalur`).
    #[serde(default, rename = "type")]
    pub plugin_type: String,
    /// The IPAM section.
    pub ipam: Option<IpamConf>,
    /// DNS settings to return in the result.
    pub dns: Option<Dns>,
    /// MTU of the pod interface (default: the MTU of the node's default-route interface).
    pub mtu: Option<u32>,
    /// Write logs to this file instead of stderr.
    pub log_file: Option<PathBuf>,
    /// `error`, `warn`, `info` (default) or `debug`.
    pub log_level: Option<String>,
    /// A file whose existence means the node is ready for pods (written by `jalur-agent`).
    /// When set and missing, ADD fails with code 11 and STATUS with 50.
    pub readiness_file: Option<PathBuf>,
    /// The result of the previous plugin (or of ADD, for CHECK and DEL).
    pub prev_result: Option<Value>,
    /// Attachments that are still in use (GC only).
    #[serde(rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
    /// Fields this plugin does not read, kept so that nothing is lost.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// One attachment named in `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Container ID.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name.
    pub ifname: String,
}

/// The `ipam` section, in the reference `host-local` format.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConf {
    /// `jalur-ipam` (in-process) or any other IPAM plugin (delegated by exec).
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// Range sets: one address is taken from each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<Vec<RangeConf>>,
    /// Routes to install in the pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConf>,
    /// Where allocations are stored (default `/var/lib/cni/jalur`).
    pub data_dir: Option<PathBuf>,
    /// The legacy single-range form of host-local: `subnet` (with `rangeStart`, `rangeEnd`,
    /// `gateway`) directly in the section. Typed as strictly as `ranges`.
    pub subnet: Option<String>,
    /// Legacy form: first address to hand out.
    pub range_start: Option<String>,
    /// Legacy form: last address to hand out.
    pub range_end: Option<String>,
    /// Legacy form: the subnet's gateway.
    pub gateway: Option<String>,
}

/// One range of a range set.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeConf {
    /// The subnet, e.g. `10.244.1.0/24`.
    pub subnet: String,
    /// First address to hand out (default: the subnet's first usable).
    pub range_start: Option<String>,
    /// Last address to hand out (default: the subnet's last usable).
    pub range_end: Option<String>,
    /// The subnet's gateway, never handed out (default: the subnet's first address).
    pub gateway: Option<String>,
}

/// A route for the pod, as in host-local.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteConf {
    /// Destination prefix.
    pub dst: String,
    /// Gateway (ignored by `jalur`, whose pods route everything via the link-local gateway).
    pub gw: Option<String>,
}

fn parse_net(field: &str, s: &str) -> Result<IpNet> {
    s.parse::<IpNet>().map_err(|_| {
        Error::InvalidConfig(format!("{field} {s:?} is not a CIDR (like 10.244.0.0/24)"))
    })
}

fn parse_ip(field: &str, s: &Option<String>) -> Result<Option<IpAddr>> {
    s.as_deref()
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|_| Error::InvalidConfig(format!("{field} {s:?} is not an IP address")))
        })
        .transpose()
}

impl RangeConf {
    /// The range, validated; `at` is where the fields sit (`ipam.ranges[0][1]` or `ipam`),
    /// for messages.
    fn to_range(&self, at: &str) -> Result<jalur_ipam::Range> {
        jalur_ipam::Range::new(
            parse_net(&format!("{at}.subnet"), &self.subnet)?,
            parse_ip(&format!("{at}.rangeStart"), &self.range_start)?,
            parse_ip(&format!("{at}.rangeEnd"), &self.range_end)?,
            parse_ip(&format!("{at}.gateway"), &self.gateway)?,
        )
        .map_err(|e| Error::InvalidConfig(format!("{at}: {e}")))
    }
}

impl IpamConf {
    /// The pool the config describes, validated (ranges inside their subnets, families not
    /// mixed within a set, no overlaps).
    pub fn pool(&self) -> Result<jalur_ipam::Pool> {
        // host-local puts the single-range form first.
        let mut sets: Vec<(String, Vec<RangeConf>)> = Vec::new();
        if let Some(legacy) = self.legacy()? {
            sets.push(("ipam".into(), vec![legacy]));
        }
        for (i, set) in self.ranges.iter().enumerate() {
            if set.is_empty() {
                return Err(Error::InvalidConfig(format!(
                    "ipam.ranges[{i}] is empty: a range set needs at least one range"
                )));
            }
            sets.push((format!("ipam.ranges[{i}]"), set.clone()));
        }
        if sets.is_empty() {
            return Err(Error::InvalidConfig(
                "ipam has no range: give ipam.ranges, e.g. [[{\"subnet\": \"10.244.0.0/24\"}]], or ipam.subnet"
                    .into(),
            ));
        }
        let sets = sets
            .iter()
            .map(|(at, set)| {
                let ranges = set
                    .iter()
                    .enumerate()
                    .map(|(j, r)| {
                        let at = if at == "ipam" {
                            at.clone()
                        } else {
                            format!("{at}[{j}]")
                        };
                        r.to_range(&at)
                    })
                    .collect::<Result<Vec<_>>>()?;
                jalur_ipam::RangeSet::new(ranges)
                    .map_err(|e| Error::InvalidConfig(format!("{at}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(jalur_ipam::Pool::new(sets)?)
    }

    /// The legacy single-range form, when `subnet` is given. `rangeStart`, `rangeEnd` or
    /// `gateway` without `subnet` is an error, not ignored.
    pub fn legacy(&self) -> Result<Option<RangeConf>> {
        let Some(subnet) = &self.subnet else {
            let stray = [
                ("rangeStart", &self.range_start),
                ("rangeEnd", &self.range_end),
                ("gateway", &self.gateway),
            ];
            if let Some((field, _)) = stray.iter().find(|(_, v)| v.is_some()) {
                return Err(Error::InvalidConfig(format!(
                    "ipam.{field} is set but ipam.subnet is not: the single-range form needs a subnet (or put the range in ipam.ranges)"
                )));
            }
            return Ok(None);
        };
        Ok(Some(RangeConf {
            subnet: subnet.clone(),
            range_start: self.range_start.clone(),
            range_end: self.range_end.clone(),
            gateway: self.gateway.clone(),
        }))
    }

    /// The routes, parsed.
    pub fn parsed_routes(&self) -> Result<Vec<(IpNet, Option<IpAddr>)>> {
        self.routes
            .iter()
            .map(|r| {
                Ok((
                    parse_net("ipam.routes[].dst", &r.dst)?,
                    parse_ip("ipam.routes[].gw", &r.gw)?,
                ))
            })
            .collect()
    }

    /// The data directory, defaulted.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// True when the IPAM runs inside the plugin.
    pub fn is_in_process(&self) -> bool {
        self.plugin_type == IPAM_TYPE
    }
}

/// Longest network name accepted: it is part of the host end's ifalias, which must fit the
/// kernel's 255 bytes (see [`crate::attachment::MAX_ALIAS`]).
pub const MAX_NETWORK_NAME: usize = 100;

/// True for a name the spec allows for a network: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
pub fn valid_network_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl NetConf {
    /// Decodes stdin. Malformed JSON is code 6 (whatever it starts with: the whole text is
    /// parsed before its shape is looked at); well-formed JSON of the wrong shape, code 7,
    /// naming the field (`ipam.ranges[0][0].subnet: invalid type: …`).
    pub fn parse(stdin: &[u8]) -> Result<NetConf> {
        let value: Value = serde_json::from_slice(stdin).map_err(|e| Error::Decode {
            what: "the network configuration on stdin",
            source: e,
        })?;
        if !value.is_object() {
            return Err(Error::InvalidConfig(format!(
                "the network configuration must be a JSON object, not {}",
                match value {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            )));
        }
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            Error::InvalidConfig(if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            })
        })
    }

    /// Checks the fields every command needs: `name` and a valid network name.
    pub fn validate_name(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::InvalidConfig("\"name\" is missing".into()));
        }
        if self.name.len() > MAX_NETWORK_NAME {
            return Err(Error::InvalidConfig(format!(
                "network name is {} bytes long; jalur allows at most {MAX_NETWORK_NAME} (the host end's ifalias must fit the kernel's {} bytes)",
                self.name.len(),
                crate::attachment::MAX_ALIAS
            )));
        }
        if !valid_network_name(&self.name) {
            return Err(Error::InvalidConfig(format!(
                "network name {:?} may hold only letters, digits, '_', '.' and '-', and must start with a letter or digit",
                self.name
            )));
        }
        Ok(())
    }

    /// The IPAM section, or a config error saying it is needed.
    pub fn ipam(&self) -> Result<&IpamConf> {
        self.ipam
            .as_ref()
            .ok_or_else(|| Error::InvalidConfig("\"ipam\" is missing: jalur needs an IPAM section, e.g. {\"type\": \"jalur-ipam\", \"ranges\": [[{\"subnet\": \"10.244.0.0/24\"}]]}".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_local_format_and_keeps_unknown_fields() {
        let conf = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"jalur","mtu":1450,
            "ipam":{"type":"jalur-ipam","ranges":[[{"subnet":"10.244.1.0/24","rangeStart":"10.244.1.10"}],[{"subnet":"fd00:10:244:1::/64"}]],
                    "routes":[{"dst":"0.0.0.0/0"}],"dataDir":"/tmp/x"},"someVendorField":{"a":1}}"#).unwrap();
        assert_eq!(conf.mtu, Some(1450));
        assert_eq!(conf.other["someVendorField"]["a"], 1);
        let ipam = conf.ipam().unwrap();
        assert!(ipam.is_in_process());
        assert!(
            ipam.legacy().unwrap().is_none(),
            "no legacy range without a top-level subnet"
        );
        assert_eq!(ipam.ranges.len(), 2);
        assert_eq!(
            ipam.ranges[0][0].range_start.as_deref(),
            Some("10.244.1.10")
        );
        assert_eq!(ipam.data_dir(), PathBuf::from("/tmp/x"));
        assert_eq!(ipam.parsed_routes().unwrap()[0].0.to_string(), "0.0.0.0/0");
        ipam.pool().unwrap();
    }

    #[test]
    fn legacy_subnet_form_is_a_range_set() {
        let conf = NetConf::parse(br#"{"cniVersion":"0.3.1","name":"n","type":"jalur","ipam":{"type":"jalur-ipam","subnet":"10.9.0.0/24"}}"#).unwrap();
        let ipam = conf.ipam().unwrap();
        assert_eq!(ipam.legacy().unwrap().unwrap().subnet, "10.9.0.0/24");
        assert_eq!(ipam.data_dir(), PathBuf::from(DEFAULT_DATA_DIR));
        ipam.pool().unwrap();
    }

    #[test]
    fn malformed_json_is_decode_error_and_wrong_shape_is_config_error() {
        assert_eq!(NetConf::parse(b"{not json").unwrap_err().code(), 6);
        let err = NetConf::parse(br#"{"name": 5}"#).unwrap_err();
        assert_eq!(err.code(), 7);
        assert!(err.to_string().contains("name"), "{err}");
        // Invalid JSON is 6 even when its start would fit a struct read as a sequence.
        for bad in [
            &b"[1, x"[..],
            b"[\"1.0.0\", 5 garbage",
            b"[",
            b"[]]",
            b"{} x",
        ] {
            assert_eq!(NetConf::parse(bad).unwrap_err().code(), 6, "{bad:?}");
        }
        let err = NetConf::parse(b"[\"1.0.0\", \"n\"]").unwrap_err();
        assert_eq!(err.code(), 7);
        assert!(err.to_string().contains("an array"), "{err}");
        let err =
            NetConf::parse(br#"{"ipam": {"type": "jalur-ipam", "ranges": [[{"subnet": 5}]]}}"#)
                .unwrap_err();
        assert!(
            err.to_string().contains("ipam.ranges[0][0].subnet"),
            "{err}"
        );
    }

    #[test]
    fn legacy_form_is_as_strict_as_ranges() {
        let ipam = |body: &str| {
            let text = format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"jalur","ipam":{{"type":"jalur-ipam",{body}}}}}"#
            );
            NetConf::parse(text.as_bytes()).and_then(|c| c.ipam()?.pool())
        };
        for (body, needle) in [
            (r#""subnet": 5"#, "ipam.subnet"),
            (r#""subnet": ["fd00::/64"]"#, "ipam.subnet"),
            (r#""subnet": "10.0.0.0/24", "gateway": 1"#, "ipam.gateway"),
            (
                r#""subnet": "10.0.0.0/24", "rangeStart": true"#,
                "ipam.rangeStart",
            ),
            (r#""subnet": "10.0.0.0/33""#, "ipam.subnet"),
            (
                r#""subnet": "10.0.0.0/24", "rangeStart": "10.0.1.5""#,
                "ipam",
            ),
            (
                r#""subnet": "10.0.0.0/24", "rangeEnd": "x""#,
                "ipam.rangeEnd",
            ),
            (
                r#""rangeStart": "10.0.0.5""#,
                "ipam.rangeStart is set but ipam.subnet is not",
            ),
            (r#""ranges": [[]]"#, "ipam.ranges[0] is empty"),
            (
                r#""ranges": [[{"subnet": "10.0.0.0/24", "gateway": "10.1.0.1"}]]"#,
                "ipam.ranges[0][0]",
            ),
        ] {
            let err = ipam(body).unwrap_err();
            assert_eq!(err.code(), 7, "{body}: {err}");
            assert!(err.to_string().contains(needle), "{body}: {err}");
        }
        // The legacy IPv6 range is kept beside an IPv4 `ranges` set, first (as host-local).
        let pool =
            ipam(r#""subnet": "fd00:9::/64", "ranges": [[{"subnet": "10.9.0.0/24"}]]"#).unwrap();
        assert_eq!(pool.range_sets().len(), 2);
        assert!(
            pool.range_sets()[0].to_string().contains("fd00:9::"),
            "{}",
            pool.range_sets()[0]
        );
    }

    #[test]
    fn overlong_network_names_are_config_errors_naming_the_limit() {
        let conf = NetConf {
            name: "n".repeat(MAX_NETWORK_NAME + 1),
            ..NetConf::default()
        };
        let err = conf.validate_name().unwrap_err();
        assert_eq!(err.code(), 7);
        assert!(
            err.to_string().contains("100") && err.to_string().contains("255"),
            "{err}"
        );
        let conf = NetConf {
            name: "n".repeat(MAX_NETWORK_NAME),
            ..NetConf::default()
        };
        conf.validate_name().unwrap();
    }

    #[test]
    fn bad_cidr_and_empty_ranges_are_config_errors() {
        let conf = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"jalur","ipam":{"type":"jalur-ipam","ranges":[[{"subnet":"10.0.0.0/33"}]]}}"#).unwrap();
        let err = conf.ipam().unwrap().pool().unwrap_err();
        assert_eq!(err.code(), 7);
        assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
        let conf = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"jalur","ipam":{"type":"jalur-ipam"}}"#,
        )
        .unwrap();
        assert_eq!(conf.ipam().unwrap().pool().unwrap_err().code(), 7);
    }

    #[test]
    fn network_names() {
        assert!(valid_network_name("k8s-pod-network"));
        assert!(valid_network_name("a.b_c"));
        assert!(!valid_network_name(""));
        assert!(!valid_network_name("-x"));
        assert!(!valid_network_name("a/b"));
    }
}
