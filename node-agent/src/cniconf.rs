//! The CNI config list the agent writes for its node, and the readiness mark the plugin
//! checks. Written atomically (temp file, fsync, rename) and only when the content changes.

use std::fs;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde_json::json;

/// The conflist's file name.
pub const CONFLIST: &str = "10-jalur.conflist";
/// The network name in it.
pub const NETWORK: &str = "jalur";

/// Where the agent writes and what it writes there.
#[derive(Debug, Clone)]
pub struct CniConf {
    /// `--cni-conf-dir`.
    pub conf_dir: PathBuf,
    /// `--state-dir`: holds the IPAM store and the readiness mark.
    pub state_dir: PathBuf,
    /// Chain `portmap` after `jalur` (when the node has it).
    pub portmap: bool,
    /// The conflist's `cniVersion`: the newest version every plugin of the list speaks.
    pub cni_version: String,
}

impl CniConf {
    /// The conflist's path.
    pub fn path(&self) -> PathBuf {
        self.conf_dir.join(CONFLIST)
    }

    /// The readiness mark's path: while it is missing, the plugin's ADD answers 11 and its
    /// STATUS 50.
    pub fn ready_path(&self) -> PathBuf {
        self.state_dir.join("ready")
    }

    /// The list's version for a chained plugin at `path`: the newest version that both it
    /// (asked with the CNI VERSION command) and `jalur` speak, or None when it cannot be run.
    pub fn common_version(path: &Path) -> Option<String> {
        let out = std::process::Command::new(path)
            .env("CNI_COMMAND", "VERSION")
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        let reply: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let theirs: Vec<&str> = reply["supportedVersions"]
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        jalur_cni_plugin::version::SUPPORTED
            .iter()
            .rev()
            .map(ToString::to_string)
            .find(|v| theirs.contains(&v.as_str()))
    }

    /// The conflist for a node with these pod subnets and pod MTU.
    pub fn render(&self, cidrs: &[IpNet], mtu: u32) -> String {
        let ranges: Vec<_> = cidrs
            .iter()
            .map(|c| json!([{"subnet": c.to_string()}]))
            .collect();
        let mut plugins = vec![json!({
            "type": "jalur",
            "mtu": mtu,
            "readinessFile": self.ready_path(),
            "ipam": {
                "type": "jalur-ipam",
                "ranges": ranges,
                "dataDir": self.state_dir.join("ipam"),
            }
        })];
        if self.portmap {
            plugins.push(json!({"type": "portmap", "capabilities": {"portMappings": true}}));
        }
        let list = json!({
            "cniVersion": self.cni_version,
            "name": NETWORK,
            "plugins": plugins,
        });
        serde_json::to_string_pretty(&list).expect("conflist serialises") + "\n"
    }

    /// Writes the conflist if its content differs; returns true when it wrote.
    pub fn write(&self, cidrs: &[IpNet], mtu: u32) -> std::io::Result<bool> {
        let text = self.render(cidrs, mtu);
        if fs::read_to_string(self.path()).ok().as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        write_atomic(&self.path(), text.as_bytes())?;
        Ok(true)
    }

    /// Sets the readiness mark.
    pub fn mark_ready(&self) -> std::io::Result<()> {
        if !self.ready_path().exists() {
            write_atomic(&self.ready_path(), b"ready\n")?;
        }
        Ok(())
    }

    /// Removes the readiness mark (the node cannot serve pods).
    pub fn mark_not_ready(&self) -> std::io::Result<()> {
        remove_if_present(&self.ready_path())
    }

    /// Removes the conflist and the readiness mark (uninstall).
    pub fn remove(&self) -> std::io::Result<()> {
        remove_if_present(&self.path())?;
        self.mark_not_ready()
    }
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes `data` to `path` (mode 0644, creating its directory) by temp file, fsync and
/// rename ([`jalur_ipam::atomic_file`]), so that a reader sees the old content or the new,
/// never a part.
fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    Ok(jalur_ipam::atomic_file::write(path, data, 0o644)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_when_the_content_changes_and_the_plugin_can_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let conf = CniConf {
            conf_dir: dir.path().join("net.d"),
            state_dir: dir.path().join("state"),
            portmap: true,
            cni_version: "1.0.0".into(),
        };
        let cidrs: Vec<IpNet> = vec!["10.244.1.0/24".parse().unwrap()];
        assert!(conf.write(&cidrs, 1450).unwrap());
        assert!(
            !conf.write(&cidrs, 1450).unwrap(),
            "same content: no rewrite"
        );
        assert!(conf.write(&cidrs, 1500).unwrap());
        let list: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(conf.path()).unwrap()).unwrap();
        // The plugin's own config type reads what the agent wrote.
        let mut plugin = list["plugins"][0].clone();
        plugin["cniVersion"] = list["cniVersion"].clone();
        plugin["name"] = list["name"].clone();
        let parsed =
            jalur_cni_plugin::config::NetConf::parse(plugin.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.mtu, Some(1500));
        assert_eq!(parsed.readiness_file, Some(conf.ready_path()));
        let ipam = parsed.ipam().unwrap();
        assert_eq!(ipam.data_dir(), dir.path().join("state/ipam"));
        ipam.pool().unwrap();
        assert_eq!(list["plugins"][1]["type"], "portmap");
        let leftovers: Vec<_> = fs::read_dir(&conf.conf_dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left");
    }
}
