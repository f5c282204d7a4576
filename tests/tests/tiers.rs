//! The test tiers. Plain `cargo test`, by any user, runs the unit tier and reports the others
//! as ignored; `sudo ./scripts/test.sh` runs them all (`--include-ignored`):
//!
//! - kernel tier: the test needs root (it calls `require_root()`, or `in_private_netns`,
//!   which does);
//! - system tier: no root, but the built binaries (`bin_dir()`) or tools that
//!   scripts/test.sh installs (anything run with `Command::new`);
//! - unit tier: neither.
//!
//! This checks the marks over every test file of this crate: each test carries the one
//! wording of its tier, right after `#[test]`.

use std::path::Path;

const KERNEL_TIER: &str =
    r#"#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]"#;
const SYSTEM_TIER: &str = r#"#[ignore = "system tier: needs the built binaries and test tools; sudo ./scripts/test.sh runs it"]"#;

/// The mark a test's text (from after its `#[test]` to the end of its body) should start
/// with, by what it uses.
fn tier(test: &str) -> Option<&'static str> {
    let uses = |what: &[&str]| what.iter().any(|w| test.contains(w));
    if uses(&["require_root()", "in_private_netns("]) {
        Some(KERNEL_TIER)
    } else if uses(&["bin_dir()", "Command::new(", "agent_help("]) {
        Some(SYSTEM_TIER)
    } else {
        None
    }
}

#[test]
fn every_test_is_marked_with_its_tier_and_only_that() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut wrong = Vec::new();
    let (mut kernel, mut system) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("tiers.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy();
        // Each test: from its #[test] to the end of its body (the next `}` in column 0).
        for test in text.split("#[test]\n").skip(1) {
            let test = test.split("\n}\n").next().unwrap();
            let name = test
                .split("fn ")
                .nth(1)
                .and_then(|s| s.split('(').next())
                .unwrap_or("?");
            let want = tier(test);
            let marked = match want {
                Some(mark) => test.starts_with(mark),
                None => !test.contains("#[ignore"),
            };
            if !marked {
                wrong.push(format!(
                    "{file}: {name} wants {}",
                    want.unwrap_or("no #[ignore]")
                ));
            }
            kernel += usize::from(want == Some(KERNEL_TIER));
            system += usize::from(want == Some(SYSTEM_TIER));
        }
    }
    assert!(
        wrong.is_empty(),
        "tests not marked with their tier: {wrong:#?}"
    );
    assert!(
        kernel > 50 && system > 0,
        "{kernel} kernel, {system} system tests found"
    );
}
