//! A test-only failure hook, compiled in only with the `test-hooks` feature (the kernel tests'
//! build turns it on; release builds for nodes do not): `JALUR_TEST_FAIL=firewall,overlay`
//! makes those parts fail, as a kernel without the feature would. Without the feature,
//! [`injected`] always succeeds and the variable is never read.

use crate::parts::Part;

/// The variable that arms the hook.
pub const VAR: &str = "JALUR_TEST_FAIL";

/// A failure the hook injected.
#[derive(Debug, thiserror::Error)]
#[error("injected failure of {0} ({VAR})")]
pub struct Injected(pub &'static str);

/// `Err` when the hook names `part`.
#[cfg(feature = "test-hooks")]
pub fn injected(part: Part) -> Result<(), Injected> {
    let failing = std::env::var(VAR).unwrap_or_default();
    if failing.split(',').any(|p| p == part.name()) {
        return Err(Injected(part.name()));
    }
    Ok(())
}

/// Without the `test-hooks` feature: never fails.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn injected(_part: Part) -> Result<(), Injected> {
    Ok(())
}
