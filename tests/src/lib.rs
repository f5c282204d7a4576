//! Test fixtures: network namespaces that clean themselves up, a simulated node, and the
//! built plugins run exactly as a container runtime runs them (CNI_* variables, config on
//! stdin, inside the node's namespace).
//!
//! Everything a test makes lives in namespaces it made, named uniquely per process and test,
//! and is removed on drop, also when the test fails. The kernel tests need root; a plain
//! `cargo test` reports them as ignored (see `tests/tests/tiers.rs`).

pub mod bench;
pub mod cgroup;
pub mod cluster;
pub mod conflist;
pub mod fake_apiserver;
pub mod install;
pub mod netns;
pub mod network;
pub mod plugin;

pub use cgroup::PidsCap;
pub use netns::{Netns, Node};
pub use network::Network;
pub use plugin::{bin_dir, cni_bin_dirs, CniCall, CniOutput};

/// Fails the test with a clear message unless it runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "kernel tests need root: run `sudo ./scripts/test.sh`"
    );
}

/// Fails the test with a clear message unless the plugin and the agent were built with their
/// test-only hooks (`JALUR_TEST_CRASH_AT`, `JALUR_TEST_FAIL`), which release builds lack.
pub fn require_test_hooks() {
    #[cfg(not(feature = "test-hooks"))]
    panic!(
        "this test needs binaries built with their test-only hooks: \
         cargo test --release --features jalur-tests/test-hooks (scripts/test.sh does)"
    );
}

/// Runs a command, panicking with its output if it fails. For test set-up only: the plugins
/// themselves never run tools.
pub fn sh(cmd: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command and returns (success, stdout + stderr), never panicking.
pub fn try_sh(cmd: &str) -> (bool, String) {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("run sh");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}
