//! A test-only crash hook, compiled in only with the `test-hooks` feature (the kernel tests'
//! build turns it on; release builds for nodes do not): when `JALUR_TEST_CRASH_AT` names a
//! point the plugin reaches, the process kills itself with SIGKILL there. The kernel tests use
//! it to prove that a plugin killed mid-ADD leaves nothing that DEL and GC cannot clean.
//! Without the feature, [`crash_point`] is an empty function and the variable is never read.

/// The variable that arms the hook.
pub const VAR: &str = "JALUR_TEST_CRASH_AT";

/// Dies here, without unwinding or cleanup, if the hook names `point`.
#[cfg(feature = "test-hooks")]
pub fn crash_point(point: &str) {
    if std::env::var_os(VAR).is_some_and(|v| v == point) {
        use nix::sys::signal::{kill, Signal};
        let _ = kill(nix::unistd::getpid(), Signal::SIGKILL);
    }
}

/// Without the `test-hooks` feature: nothing.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn crash_point(_point: &str) {}
