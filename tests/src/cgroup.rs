//! A cap on how many processes a plugin call may make: a cgroup with `pids.max`, so that a
//! regression into a fork loop fails inside the test instead of taking the machine down.
//! (`prlimit --nproc` does not bind root.) Removed on drop, with whatever is left in it
//! killed first.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A pids cgroup made by a test.
pub struct PidsCap {
    dir: PathBuf,
}

impl PidsCap {
    /// A cgroup `jt<pid>-<tag>` allowing at most `max` processes at once (cgroup v1's pids
    /// hierarchy, or v2's root when it delegates the pids controller).
    pub fn new(tag: &str, max: u32) -> PidsCap {
        let name = format!("jt{}-{tag}", std::process::id());
        let v1 = PathBuf::from("/sys/fs/cgroup/pids");
        let root = if v1.join("cgroup.procs").exists() {
            v1
        } else {
            let v2 = PathBuf::from("/sys/fs/cgroup");
            let controllers =
                std::fs::read_to_string(v2.join("cgroup.subtree_control")).unwrap_or_default();
            assert!(
                controllers.split_whitespace().any(|c| c == "pids"),
                "no pids cgroup controller to cap the plugin's processes with"
            );
            v2
        };
        let dir = root.join(name);
        std::fs::create_dir(&dir).expect("create pids cgroup");
        std::fs::write(dir.join("pids.max"), max.to_string()).expect("set pids.max");
        PidsCap { dir }
    }

    /// Its `cgroup.procs`, for [`crate::CniCall::cgroup_procs`].
    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// How often a fork was refused because the cap was reached (`max` of `pids.events`).
    pub fn refused_forks(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("pids.events"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("max "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for PidsCap {
    fn drop(&mut self) {
        for _ in 0..100 {
            let procs = std::fs::read_to_string(self.procs()).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // A process of our own test's cgroup.
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
