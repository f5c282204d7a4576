//! What the benchmark binaries share: their work dir and cleanup (leftover namespaces, the
//! panic hook, SIGINT/SIGTERM), where the built binaries are, the machine's description,
//! units, statistics and verdict wording.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};

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

/// Exits with a message unless the bench runs as root.
pub fn require_root(name: &str, script: &str) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("{name} needs root (it makes network namespaces): sudo {script}");
        std::process::exit(1);
    }
}

/// The directory of the built binaries (`JALUR_BIN_DIR`, else the bench's own), checked to
/// hold each of `needs`; `packages` says what builds them (`-p …`).
pub fn bin_dir(needs: &[&str], packages: &str) -> PathBuf {
    let dir = std::env::var_os("JALUR_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("own path");
            exe.parent().expect("bin dir").to_owned()
        });
    for bin in needs {
        assert!(
            dir.join(bin).is_file(),
            "no {bin} binary in {} (build with cargo build --release {packages})",
            dir.display()
        );
    }
    dir
}

/// This run's namespaces all start with this (see `crate::Netns::new`).
pub fn ns_prefix() -> String {
    format!("jt{}-", std::process::id())
}

/// Deletes whatever run `name` left: the processes inside its namespaces `jt<pid>-*`, those
/// namespaces, and its work dir. Returns how many namespaces it had to delete.
pub fn sweep(name: &str) -> usize {
    let prefix = ns_prefix();
    let own = std::process::id();
    let mut left = 0;
    if let Ok(dir) = std::fs::read_dir("/run/netns") {
        for entry in dir.flatten() {
            let ns = entry.file_name().to_string_lossy().into_owned();
            if ns.starts_with(&prefix) {
                let _ = Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "for p in $(ip netns pids {ns} 2>/dev/null); do \
                         [ $p = {own} ] || kill -9 $p; done; ip netns del {ns}"
                    ))
                    .status();
                left += 1;
            }
        }
    }
    let _ = std::fs::remove_dir_all(WorkDir::path_for(name));
    left
}

/// Sweeps (see [`sweep`]) when the bench panics: release builds abort on panic, so drop
/// guards would not run.
pub fn sweep_on_panic(name: &'static str) {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        let left = sweep(name);
        eprintln!("{name}: cleaned up after failure ({left} namespaces)");
    }));
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// From now on SIGINT and SIGTERM no longer kill the bench but are recorded for
/// [`interrupted`], which the bench polls to stop and clean up. Call it before the bench
/// starts any thread: the signals are blocked in this thread, so in every thread it starts
/// later, and a thread of their own waits for them. (Processes the bench spawns start with no
/// signal blocked: std clears the mask in the child.)
pub fn catch_interrupts() {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block().expect("block SIGINT and SIGTERM");
    std::thread::spawn(move || {
        while signals.wait().is_err() {}
        INTERRUPTED.store(true, Ordering::SeqCst);
    });
}

/// Whether SIGINT or SIGTERM arrived (see [`catch_interrupts`]).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// How many CPUs the bench may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// The running kernel's release.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The first `n` load averages (1, 5, 15 minutes): other work on the machine skews every
/// number.
pub fn load_average(n: usize) -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(n).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The nearest-rank median.
pub fn median(samples: &[f64]) -> f64 {
    percentile(samples, 50.0)
}

/// How a measured figure compares with its target.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "target met"
    } else {
        "target missed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&samples, 50.0), 3.0);
        assert_eq!(percentile(&samples, 95.0), 5.0);
        assert_eq!(percentile(&samples, 0.0), 1.0);
        assert_eq!(median(&[2.0, 1.0]), 1.0);
    }
}
