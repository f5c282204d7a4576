//! Delegation to another plugin by exec, as the spec says: found on CNI_PATH, given the same
//! stdin and the CNI_* variables (with the command it is asked to run).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use serde_json::Value;

use crate::env::Command;
use crate::error::{codes, Error, Result};
use crate::result::CniResult;
use crate::skel::{Plugin, Request};

/// Set (to `jalur`'s pid) in the environment of every plugin `jalur` runs. A `jalur` that
/// finds it set was reached through its own IPAM delegation, and refuses to go on (the loop
/// would never end).
pub const DELEGATION_MARK: &str = "JALUR_DELEGATED_BY";

/// True when `candidate` is the executable this process runs (a symlink or hard link to it
/// included): running it as a delegate would be the plugin running itself.
fn is_own_binary(candidate: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(candidate),
        std::fs::metadata("/proc/self/exe"),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A plugin run by exec (e.g. `host-local` as the IPAM of `jalur`).
pub struct Delegate {
    /// The plugin's `type`: its binary's name.
    pub plugin_type: String,
}

impl Delegate {
    fn find(&self, req: &Request) -> Result<PathBuf> {
        let bad = self.plugin_type.is_empty()
            || self.plugin_type.contains('/')
            || self.plugin_type.starts_with('.');
        if !bad {
            for dir in &req.env.path {
                let candidate = dir.join(&self.plugin_type);
                if candidate.is_file() {
                    if is_own_binary(&candidate) {
                        return Err(Error::InvalidConfig(format!(
                            "ipam.type {:?} is {}, which is jalur itself (the binary running now): it would run itself without end",
                            self.plugin_type,
                            candidate.display()
                        )));
                    }
                    return Ok(candidate);
                }
            }
        }
        Err(self.failure(
            codes::DELEGATE,
            format!(
                "plugin {:?} not found in CNI_PATH ({})",
                self.plugin_type,
                req.env
                    .path
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ),
            String::new(),
        ))
    }

    fn failure(&self, code: u32, msg: String, details: String) -> Error {
        Error::Delegate {
            plugin: self.plugin_type.clone(),
            code,
            msg,
            details,
        }
    }

    /// Runs the plugin with `command` and returns its stdout.
    pub fn exec(&self, req: &Request, command: Command) -> Result<Vec<u8>> {
        let binary = self.find(req)?;
        let mut child = Process::new(&binary)
            .envs(req.env.vars())
            .env("CNI_COMMAND", command.name())
            .env(DELEGATION_MARK, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                self.failure(
                    codes::DELEGATE,
                    format!("cannot run {}: {e}", binary.display()),
                    String::new(),
                )
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A plugin may exit before reading everything; its answer tells what happened.
            let _ = stdin.write_all(&req.stdin);
        }
        let out = child.wait_with_output().map_err(|e| {
            self.failure(
                codes::DELEGATE,
                format!("waiting for {}: {e}", binary.display()),
                String::new(),
            )
        })?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let reply: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let code = reply
            .get("code")
            .and_then(Value::as_u64)
            .map_or(codes::DELEGATE, |c| c as u32);
        let msg = reply.get("msg").and_then(Value::as_str).map_or_else(
            || {
                format!(
                    "{} {} failed ({})",
                    self.plugin_type,
                    command.name(),
                    out.status
                )
            },
            str::to_owned,
        );
        let details = reply
            .get("details")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Err(self.failure(code, msg, details.to_owned()))
    }
}

impl Plugin for Delegate {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let out = self.exec(req, Command::Add)?;
        let value: Value = serde_json::from_slice(&out).map_err(|e| {
            self.failure(
                codes::DELEGATE,
                format!("its ADD result is not JSON: {e}"),
                String::new(),
            )
        })?;
        CniResult::from_value(&value)
    }

    fn del(&self, req: &Request) -> Result<()> {
        self.exec(req, Command::Del).map(drop)
    }

    fn check(&self, req: &Request) -> Result<()> {
        self.exec(req, Command::Check).map(drop)
    }

    fn gc(&self, req: &Request) -> Result<()> {
        self.exec(req, Command::Gc).map(drop)
    }

    fn status(&self, req: &Request) -> Result<()> {
        self.exec(req, Command::Status).map(drop)
    }
}
