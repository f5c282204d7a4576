//! Putting Jalur's files on a node and clearing old ones of its own.
//!
//! - [`install`] (`jalur-agent install-cni --from DIR --to DIR`): copies the plugin binaries
//!   into the node's CNI bin dir, each by temp file in the target dir, fsync and rename, so
//!   that a kubelet never executes a half-written file. A file whose content (and mode 0755)
//!   is already right is left alone, so a second run changes nothing.
//! - [`enable_forwarding`]: IP forwarding on, for the DaemonSet's privileged init step (the
//!   long-running agent container has a read-only `/proc/sys`).
//! - [`remove_stale`]: the agent's start-up hygiene: temp files and conflists of older
//!   versions of itself, found by their names and their `"name"`/`"type"`; nothing else.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::cniconf::{CONFLIST, NETWORK};

/// The binaries `install-cni` copies (and `uninstall --cni-bin-dir` removes).
pub const PLUGINS: [&str; 2] = ["jalur", "jalur-ipam"];

/// The mode the plugins are installed with.
const MODE: u32 = 0o755;

/// What happened to one plugin binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written (it was missing or different).
    Installed,
    /// Already identical: not touched.
    Unchanged,
}

/// Why `install-cni` (or the removal of the plugins, or turning forwarding on) failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A plugin's source cannot be looked at.
    #[error("cannot install {name}: source {} is missing or unreadable: {source}", path.display())]
    Missing {
        /// The plugin.
        name: &'static str,
        /// Its source.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A plugin's source is a directory, a device, ….
    #[error("cannot install {name}: source {} is not a regular file", path.display())]
    NotAFile {
        /// The plugin.
        name: &'static str,
        /// Its source.
        path: PathBuf,
    },
    /// The target dir cannot be created.
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        /// The dir.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A source cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The source.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A plugin cannot be written in place.
    #[error("cannot install {}: {source}", path.display())]
    Write {
        /// The target.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A plugin cannot be removed.
    #[error("cannot remove {}: {source}", path.display())]
    Remove {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A forwarding sysctl cannot be set (the error names the `sysctl -w`).
    #[error(transparent)]
    Forwarding(io::Error),
}

/// Whether `file` is a temp file left by a writer of `name` (`.<name>.tmp.<anything>`, the
/// names of [`jalur_ipam::atomic_file::temp_path`]).
fn is_temp_of(file: &OsStr, name: &str) -> bool {
    file.to_str()
        .and_then(|f| f.strip_prefix('.'))
        .and_then(|f| f.strip_prefix(name))
        .is_some_and(|rest| rest.starts_with(".tmp."))
}

/// Copies [`PLUGINS`] from `from` into `to` (created if missing). Every source is checked
/// before anything is written, so a missing one changes nothing. Returns each plugin's
/// outcome, in [`PLUGINS`] order.
pub fn install(from: &Path, to: &Path) -> Result<Vec<(&'static str, Outcome)>, InstallError> {
    let mut sources = Vec::new();
    for name in PLUGINS {
        let path = from.join(name);
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => sources.push((name, path)),
            Ok(_) => return Err(InstallError::NotAFile { name, path }),
            Err(source) => return Err(InstallError::Missing { name, path, source }),
        }
    }
    fs::create_dir_all(to).map_err(|source| InstallError::CreateDir {
        path: to.to_owned(),
        source,
    })?;
    remove_temps(to, &PLUGINS);
    let mut outcomes = Vec::new();
    for (name, src) in sources {
        let data = fs::read(&src).map_err(|source| InstallError::Read { path: src, source })?;
        let dst = to.join(name);
        let outcome = if is_same(&dst, &data) {
            Outcome::Unchanged
        } else {
            write_executable(&dst, &data)
                .map_err(|source| InstallError::Write { path: dst, source })?;
            Outcome::Installed
        };
        outcomes.push((name, outcome));
    }
    Ok(outcomes)
}

/// True when `dst` is a regular file with exactly `data` and mode 0755.
fn is_same(dst: &Path, data: &[u8]) -> bool {
    match fs::symlink_metadata(dst) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o7777 == MODE => {
            meta.len() == data.len() as u64 && fs::read(dst).is_ok_and(|have| have == data)
        }
        _ => false,
    }
}

/// Writes `data` to `dst` with mode 0755 by temp file in the same dir, fsync and rename
/// ([`jalur_ipam::atomic_file`]); the temp file is removed if any step fails.
fn write_executable(dst: &Path, data: &[u8]) -> io::Result<()> {
    Ok(jalur_ipam::atomic_file::write(dst, data, MODE)?)
}

/// Removes [`PLUGINS`] (and leftover temp files of them) from `dir`; returns what it
/// removed. Other files in `dir` stay; a missing file or dir is not an error.
pub fn uninstall(dir: &Path) -> Result<Vec<PathBuf>, InstallError> {
    let mut removed = remove_temps(dir, &PLUGINS);
    for name in PLUGINS {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(InstallError::Remove { path, source }),
        }
    }
    Ok(removed)
}

/// Removes leftover temp files of `names` in `dir` (from a writer killed mid-copy).
fn remove_temps(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        if names.iter().any(|n| is_temp_of(&file, n)) && fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// An address family whose forwarding `install-cni --enable-forwarding` turns on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Family {
    /// `net.ipv4.ip_forward=1`.
    Ipv4,
    /// `net.ipv6.conf.all.forwarding=1` (this also stops the node accepting router
    /// advertisements: ask for it only on IPv6 pod networks).
    Ipv6,
}

/// Turns forwarding on for each family (a no-op where it is already on).
pub fn enable_forwarding(families: &[Family]) -> Result<(), InstallError> {
    for family in families {
        let key = match family {
            Family::Ipv4 => "net/ipv4/ip_forward",
            Family::Ipv6 => "net/ipv6/conf/all/forwarding",
        };
        jalur_cni_plugin::net::sysctl::ensure(key, "1").map_err(InstallError::Forwarding)?;
    }
    Ok(())
}

/// Start-up hygiene: removes what older runs or versions of the agent left behind, and returns
/// what it removed (errors are returned per path and never stop the rest):
///
/// - in `conf_dir`: temp files of conflist writes (`.<name>.tmp.<pid>` where the name holds
///   `jalur`), and CNI configs (`*.conflist`, `*.conf`, `*.json`) other than [`CONFLIST`]
///   whose `"name"` is `jalur` and that run the `jalur` plugin;
/// - in `state_dir`: temp files of its own writes there (`.<file>.tmp.<pid>`).
///
/// The IPAM store under `<state_dir>/ipam` clears its own temp files under its lock, so it is
/// not touched here (a plugin may be writing there right now).
pub fn remove_stale(conf_dir: &Path, state_dir: &Path) -> Vec<(PathBuf, io::Result<()>)> {
    let mut done = Vec::new();
    let mut remove = |path: PathBuf| {
        let result = fs::remove_file(&path);
        done.push((path, result));
    };
    if let Ok(entries) = fs::read_dir(conf_dir) {
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(name) = file.to_str() else { continue };
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if !is_file || name == CONFLIST {
                continue;
            }
            if let Some(rest) = name.strip_prefix('.') {
                if rest.contains(".tmp.") && rest.contains(NETWORK) {
                    remove(entry.path());
                }
            } else if is_cni_config_name(name) && is_ours(&entry.path()) {
                remove(entry.path());
            }
        }
    }
    if let Ok(entries) = fs::read_dir(state_dir) {
        for entry in entries.flatten() {
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            let file = entry.file_name();
            let temp = file
                .to_str()
                .and_then(|n| n.strip_prefix('.'))
                .is_some_and(|rest| rest.contains(".tmp."));
            if is_file && temp {
                remove(entry.path());
            }
        }
    }
    done
}

/// The names libcni loads from a conf dir.
fn is_cni_config_name(name: &str) -> bool {
    [".conflist", ".conf", ".json"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// A config of ours: `"name": "jalur"` and the `jalur` plugin (first in a list, or the
/// single plugin of a `.conf`).
fn is_ours(path: &Path) -> bool {
    let Ok(text) = fs::read_to_string(path) else {
        return false;
    };
    let Ok(conf) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    let runs_jalur = conf["type"] == NETWORK
        || conf["plugins"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["type"] == NETWORK));
    conf["name"] == NETWORK && runs_jalur
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn sources(dir: &Path) {
        for name in PLUGINS {
            fs::write(dir.join(name), format!("#!/bin/sh\necho {name}\n")).unwrap();
        }
    }

    const ALL_INSTALLED: [(&str, Outcome); 2] = [
        ("jalur", Outcome::Installed),
        ("jalur-ipam", Outcome::Installed),
    ];

    #[test]
    fn installs_atomically_with_mode_0755_and_only_when_different() {
        let from = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let to = root.path().join("opt/cni/bin");
        sources(from.path());
        // A temp file left by a copy that was killed, and a stranger's file.
        fs::create_dir_all(&to).unwrap();
        fs::write(to.join(".jalur.tmp.4242"), "half").unwrap();
        fs::write(to.join("portmap"), "other").unwrap();

        let first = install(from.path(), &to).unwrap();
        assert_eq!(first, ALL_INSTALLED);
        for name in PLUGINS {
            let meta = fs::metadata(to.join(name)).unwrap();
            assert_eq!(meta.mode() & 0o7777, 0o755, "{name}");
            assert_eq!(
                fs::read(to.join(name)).unwrap(),
                fs::read(from.path().join(name)).unwrap()
            );
        }
        let mut names: Vec<String> = fs::read_dir(&to)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["jalur", "jalur-ipam", "portmap"], "no temp files");

        let mtime = fs::metadata(to.join("jalur")).unwrap().modified().unwrap();
        let second = install(from.path(), &to).unwrap();
        assert!(second.iter().all(|(_, o)| *o == Outcome::Unchanged));
        assert_eq!(
            fs::metadata(to.join("jalur")).unwrap().modified().unwrap(),
            mtime
        );

        // A changed source, or a wrong mode, is written again.
        fs::write(from.path().join("jalur"), "#!/bin/sh\necho v2\n").unwrap();
        fs::set_permissions(to.join("jalur-ipam"), fs::Permissions::from_mode(0o644)).unwrap();
        let third = install(from.path(), &to).unwrap();
        assert_eq!(third, ALL_INSTALLED);
        assert_eq!(
            fs::metadata(to.join("jalur-ipam")).unwrap().mode() & 0o7777,
            0o755
        );
        assert_eq!(fs::read(to.join("portmap")).unwrap(), b"other");
    }

    #[test]
    fn a_missing_source_is_named_and_nothing_is_written() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        fs::write(from.path().join("jalur"), "x").unwrap();
        let err = install(from.path(), to.path()).unwrap_err().to_string();
        assert!(err.contains("jalur-ipam"), "{err}");
        assert!(err.contains(&from.path().display().to_string()), "{err}");
        assert_eq!(fs::read_dir(to.path()).unwrap().count(), 0);
    }

    #[test]
    fn start_up_hygiene_removes_only_stale_files_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("net.d");
        let state = dir.path().join("state");
        fs::create_dir_all(&conf).unwrap();
        fs::create_dir_all(state.join("ipam/jalur")).unwrap();
        let ours = r#"{"cniVersion":"1.0.0","name":"jalur","plugins":[{"type":"jalur"}]}"#;
        let write = |p: PathBuf, s: &str| fs::write(p, s).unwrap();
        write(conf.join(CONFLIST), ours);
        write(conf.join(".10-jalur.conflist.tmp.777"), "{");
        write(conf.join("05-jalur.conflist"), ours);
        write(
            conf.join("10-jalur.conf"),
            r#"{"cniVersion":"0.4.0","name":"jalur","type":"jalur"}"#,
        );
        // Not ours: another network, a config named jalur that runs something else, a
        // stranger's temp file, a file that is not JSON.
        write(
            conf.join("99-other.conflist"),
            r#"{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"jalur"}]}"#,
        );
        write(
            conf.join("20-bridge.conflist"),
            r#"{"cniVersion":"1.0.0","name":"jalur","plugins":[{"type":"bridge"}]}"#,
        );
        write(conf.join(".87-podman.conflist.tmp.1"), "{");
        write(conf.join("junk.conf"), "not json");
        write(state.join("ready"), "ready\n");
        write(state.join(".ready.tmp.999"), "rea");
        write(state.join("ipam/jalur/allocations.json.tmp.5"), "{");

        let removed = remove_stale(&conf, &state);
        assert!(removed.iter().all(|(_, r)| r.is_ok()), "{removed:?}");
        let mut removed: Vec<PathBuf> = removed.into_iter().map(|(p, _)| p).collect();
        removed.sort();
        let mut want = vec![
            conf.join(".10-jalur.conflist.tmp.777"),
            conf.join("05-jalur.conflist"),
            conf.join("10-jalur.conf"),
            state.join(".ready.tmp.999"),
        ];
        want.sort();
        assert_eq!(removed, want);
        for kept in [
            conf.join(CONFLIST),
            conf.join("99-other.conflist"),
            conf.join("20-bridge.conflist"),
            conf.join(".87-podman.conflist.tmp.1"),
            conf.join("junk.conf"),
            state.join("ready"),
            state.join("ipam/jalur/allocations.json.tmp.5"),
        ] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
        // Missing dirs are not an error.
        assert!(remove_stale(&dir.path().join("nope"), &dir.path().join("nope2")).is_empty());
    }
}
