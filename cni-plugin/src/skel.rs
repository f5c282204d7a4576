//! The CNI protocol: read the environment and stdin, decode, negotiate the version, dispatch
//! to the plugin's verbs, and render the result or the spec's error JSON.
//!
//! Stdout is the protocol and nothing else writes to it; logs go to stderr or a file. The
//! environment and stdin are injected, so the whole protocol is tested in-process.

use std::io::{Read, Write};

use serde_json::{json, Value};

use crate::config::NetConf;
use crate::env::{CniEnv, Command};
use crate::error::{Error, Result};
use crate::result::CniResult;
use crate::version::{self, Version, CURRENT};

/// One decoded, version-checked call.
#[derive(Debug, Clone)]
pub struct Request {
    /// The CNI_* variables.
    pub env: CniEnv,
    /// The network configuration.
    pub config: NetConf,
    /// Its `cniVersion`, parsed and supported.
    pub version: Version,
    /// Stdin as received, for delegated plugins.
    pub stdin: Vec<u8>,
}

/// The verbs a plugin implements; VERSION is answered here.
pub trait Plugin {
    /// ADD: attach and return the result.
    fn add(&self, req: &Request) -> Result<CniResult>;
    /// DEL: detach; idempotent.
    fn del(&self, req: &Request) -> Result<()>;
    /// CHECK: verify the attachment matches `prevResult`.
    fn check(&self, req: &Request) -> Result<()>;
    /// GC: release whatever `cni.dev/valid-attachments` does not list.
    fn gc(&self, req: &Request) -> Result<()>;
    /// STATUS: succeed when an ADD could be served now.
    fn status(&self, req: &Request) -> Result<()>;
}

/// What the process prints on stdout and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Stdout (empty for verbs that print nothing on success).
    pub stdout: String,
    /// Exit code: 0 on success, 1 on error.
    pub exit_code: i32,
}

/// Runs one call of `plugin`.
pub fn run(plugin: &dyn Plugin, get: &dyn Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    match dispatch(plugin, get, stdin) {
        Ok(stdout) => Outcome {
            stdout,
            exit_code: 0,
        },
        Err(err) => {
            log::error!("{err}");
            Outcome {
                stdout: error_json(&err, reply_version(stdin)),
                exit_code: 1,
            }
        }
    }
}

/// The spec's error JSON for `err`.
pub fn error_json(err: &Error, version: Version) -> String {
    let mut v = json!({
        "cniVersion": version.to_string(),
        "code": err.code(),
        "msg": err.to_string(),
    });
    let details = err.details();
    if !details.is_empty() {
        v["details"] = json!(details);
    }
    serde_json::to_string(&v).expect("error JSON serialises")
}

/// The version to answer errors in: the config's, when it is one we speak.
fn reply_version(stdin: &[u8]) -> Version {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().and_then(Version::parse))
        .filter(|v| v.is_supported())
        .unwrap_or(CURRENT)
}

fn dispatch(
    plugin: &dyn Plugin,
    get: &dyn Fn(&str) -> Option<String>,
    stdin: &[u8],
) -> Result<String> {
    let env = CniEnv::from_lookup(get)?;
    if env.command == Command::Version {
        let supported = version::supported_strings();
        return Ok(json!({
            "cniVersion": reply_version(stdin).to_string(),
            "supportedVersions": supported,
        })
        .to_string());
    }
    let config = NetConf::parse(stdin)?;
    if config.cni_version.is_empty() {
        return Err(Error::InvalidConfig("\"cniVersion\" is missing".into()));
    }
    let version = Version::parse(&config.cni_version)
        .filter(|v| v.is_supported())
        .ok_or_else(|| Error::IncompatibleVersion {
            version: config.cni_version.clone(),
        })?;
    let needs = match env.command {
        Command::Check if !version.allows_check() => Some("0.4.0"),
        Command::Gc | Command::Status if !version.allows_gc_and_status() => Some("1.1.0"),
        _ => None,
    };
    if let Some(needs) = needs {
        return Err(Error::VerbNotInVersion {
            command: env.command.name(),
            version: version.to_string(),
            needs,
        });
    }
    config.validate_name()?;
    let req = Request {
        env,
        config,
        version,
        stdin: stdin.to_vec(),
    };
    log::debug!(
        "{} container={} ifname={} netns={:?} network={}",
        req.env.command.name(),
        req.env.container_id,
        req.env.ifname,
        req.env.netns,
        req.config.name
    );
    match req.env.command {
        Command::Add => Ok(plugin.add(&req)?.to_value(version).to_string()),
        Command::Del => plugin.del(&req).map(|()| String::new()),
        Command::Check => plugin.check(&req).map(|()| String::new()),
        Command::Gc => plugin.gc(&req).map(|()| String::new()),
        Command::Status => plugin.status(&req).map(|()| String::new()),
        Command::Version => unreachable!("answered above"),
    }
}

/// The binary's `main`: runs one call with the process's environment and stdin, prints, exits.
pub fn main(plugin: &dyn Plugin) -> ! {
    let mut stdin = Vec::new();
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => {
            crate::logging::init(&stdin);
            run(plugin, &|k| std::env::var(k).ok(), &stdin)
        }
        Err(e) => Outcome {
            stdout: error_json(&Error::io("cannot read stdin", e), CURRENT),
            exit_code: 1,
        },
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(outcome.stdout.as_bytes());
    let _ = out.flush();
    std::process::exit(outcome.exit_code)
}
