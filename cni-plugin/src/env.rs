//! The CNI_* environment of one call, read through an injected lookup so that the protocol can
//! be tested in-process.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The CNI verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach a container.
    Add,
    /// Detach it.
    Del,
    /// Verify an attachment.
    Check,
    /// Release what no valid attachment uses.
    Gc,
    /// Can ADD be served now?
    Status,
    /// Which versions are spoken?
    Version,
}

impl Command {
    /// The command's name as in `CNI_COMMAND`.
    pub fn name(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }
}

/// The variables of one call, checked for what its command needs.
#[derive(Debug, Clone)]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (empty for GC, STATUS, VERSION).
    pub container_id: String,
    /// `CNI_NETNS` (None when empty, as DEL may have it).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`, unparsed (Jalur reads none of its keys).
    pub args: String,
    /// `CNI_PATH`, split.
    pub path: Vec<PathBuf>,
    /// `JALUR_DELEGATED_BY`: set when a `jalur` up the process tree ran this call as (or
    /// through) its IPAM delegate.
    pub delegated_by: Option<String>,
}

/// Longest interface name the kernel accepts (`IFNAMSIZ - 1`).
pub const MAX_IFNAME: usize = 15;

/// Longest container ID accepted: the host end's ifalias `jalur/<network>/<ifname>/<ID>`
/// must fit the kernel's 255 bytes (see [`crate::attachment::MAX_ALIAS`]).
pub const MAX_CONTAINER_ID: usize = 128;

/// Interface names the kernel gives a meaning of its own: `all` and `default` are the
/// sysctl directories `net/ipv{4,6}/conf/{all,default}`, not interfaces.
const RESERVED_IFNAMES: [&str; 2] = ["all", "default"];

fn required(get: &dyn Fn(&str) -> Option<String>, var: &'static str) -> Result<String> {
    match get(var) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Error::InvalidEnv {
            var,
            reason: "it is missing or empty".into(),
        }),
    }
}

/// Checks an interface name the way the kernel and the spec want it.
pub fn validate_ifname(name: &str) -> std::result::Result<(), String> {
    if name.len() > MAX_IFNAME {
        return Err(format!(
            "interface name {name:?} is {} bytes long; the kernel allows at most {MAX_IFNAME}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("interface name {name:?} is not allowed"));
    }
    if RESERVED_IFNAMES.contains(&name) {
        return Err(format!(
            "interface name {name:?} is reserved: the kernel uses it for the sysctls of all interfaces"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | ':' | '%' | '"' | '\\') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "interface name {name:?} contains {c:?} (not allowed: '/', ':', '%', quotes, backslash, whitespace, control characters)"
        ));
    }
    Ok(())
}

/// Checks a container ID as the spec does: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
pub fn validate_container_id(id: &str) -> std::result::Result<(), String> {
    if id.len() > MAX_CONTAINER_ID {
        return Err(format!(
            "container ID is {} bytes long; jalur allows at most {MAX_CONTAINER_ID} (the host end's ifalias must fit the kernel's {} bytes)",
            id.len(),
            crate::attachment::MAX_ALIAS
        ));
    }
    if crate::config::valid_network_name(id) {
        Ok(())
    } else {
        Err(format!(
            "container ID {id:?} may hold only letters, digits, '_', '.' and '-', starting with a letter or digit"
        ))
    }
}

impl CniEnv {
    /// Reads and checks the variables `command` needs (spec section "Parameters").
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<CniEnv> {
        let command = match required(get, "CNI_COMMAND")?.as_str() {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            other => {
                return Err(Error::InvalidEnv {
                    var: "CNI_COMMAND",
                    reason: format!(
                        "unknown command {other:?} (known: ADD, DEL, CHECK, GC, STATUS, VERSION)"
                    ),
                })
            }
        };
        let mut env = CniEnv {
            command,
            container_id: String::new(),
            netns: None,
            ifname: String::new(),
            args: get("CNI_ARGS").unwrap_or_default(),
            path: Vec::new(),
            delegated_by: get(crate::delegate::DELEGATION_MARK).filter(|v| !v.is_empty()),
        };
        if command == Command::Version {
            return Ok(env);
        }
        env.path = std::env::split_paths(&required(get, "CNI_PATH")?).collect();
        if matches!(command, Command::Gc | Command::Status) {
            return Ok(env);
        }
        env.container_id = required(get, "CNI_CONTAINERID")?;
        validate_container_id(&env.container_id).map_err(|reason| Error::InvalidEnv {
            var: "CNI_CONTAINERID",
            reason,
        })?;
        env.ifname = required(get, "CNI_IFNAME")?;
        validate_ifname(&env.ifname).map_err(|reason| Error::InvalidEnv {
            var: "CNI_IFNAME",
            reason,
        })?;
        env.netns = match command {
            Command::Del => get("CNI_NETNS")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            _ => Some(PathBuf::from(required(get, "CNI_NETNS")?)),
        };
        Ok(env)
    }

    /// The variables as `(name, value)` pairs, for passing on to a delegated plugin.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        let path = std::env::join_paths(&self.path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        vec![
            ("CNI_COMMAND", self.command.name().to_owned()),
            ("CNI_CONTAINERID", self.container_id.clone()),
            (
                "CNI_NETNS",
                self.netns
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("CNI_IFNAME", self.ifname.clone()),
            ("CNI_ARGS", self.args.clone()),
            ("CNI_PATH", path),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> Result<CniEnv> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CniEnv::from_lookup(&|k| map.get(k).cloned())
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
    ];

    #[test]
    fn add_needs_every_variable_and_names_the_missing_one() {
        assert_eq!(env_of(ADD).unwrap().path.len(), 2);
        for skip in ADD {
            let rest: Vec<_> = ADD.iter().filter(|p| p.0 != skip.0).cloned().collect();
            let err = env_of(&rest).unwrap_err();
            assert_eq!(err.code(), 4);
            assert!(err.to_string().contains(skip.0), "{err}");
        }
    }

    #[test]
    fn del_accepts_an_empty_netns() {
        let env = env_of(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_NETNS", ""),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ])
        .unwrap();
        assert_eq!(env.netns, None);
    }

    #[test]
    fn version_needs_only_the_command_and_unknown_commands_are_code_4() {
        assert_eq!(
            env_of(&[("CNI_COMMAND", "VERSION")]).unwrap().command,
            Command::Version
        );
        let err = env_of(&[("CNI_COMMAND", "FROB")]).unwrap_err();
        assert_eq!(err.code(), 4);
        assert!(err.to_string().contains("FROB"));
    }

    #[test]
    fn bad_ifnames_and_container_ids_are_rejected() {
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("a23456789012345").is_ok());
        assert!(validate_ifname("a234567890123456").is_err());
        assert!(validate_ifname("a/b").is_err());
        assert!(validate_ifname("..").is_err());
        assert!(validate_ifname(".").is_err());
        for bad in [
            "all", "default", "eth%d", "a b", "a\tb", "a\u{1}b", "a:b", "",
        ] {
            if !bad.is_empty() {
                assert!(validate_ifname(bad).is_err(), "{bad:?}");
            }
        }
        assert!(validate_ifname("all0").is_ok());
        assert!(validate_container_id(&"a".repeat(MAX_CONTAINER_ID)).is_ok());
        let long = validate_container_id(&"a".repeat(MAX_CONTAINER_ID + 1)).unwrap_err();
        assert!(long.contains("128") && long.contains("255"), "{long}");
        assert!(validate_container_id("k8s_pod-1.2").is_ok());
        assert!(validate_container_id("-x").is_err());
        assert!(validate_container_id("a b").is_err());
    }
}
