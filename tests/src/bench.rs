//! What the benchmark binaries share: their work dir, units and verdict wording.

use std::path::PathBuf;
use std::time::Duration;

/// A benchmark run's work dir (`/var/tmp/<name>-<pid>`), removed on drop.
pub struct WorkDir(pub PathBuf);

impl WorkDir {
    /// The path for this run of `name`.
    pub fn path_for(name: &str) -> PathBuf {
        PathBuf::from(format!("/var/tmp/{name}-{}", std::process::id()))
    }

    /// Creates it (it must not exist yet).
    pub fn create(name: &str) -> WorkDir {
        let dir = Self::path_for(name);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        WorkDir(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// How a measured figure compares with its target.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "target met"
    } else {
        "target missed"
    }
}
