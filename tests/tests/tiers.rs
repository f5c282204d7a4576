//! The test tiers: plain `cargo test` (any user) runs the unit tests and reports every test
//! that needs root as ignored; `sudo ./scripts/test.sh` runs those too (`--include-ignored`).
//! This checks the marking over every test file of this crate: a test that calls
//! `require_root()` (or `in_private_netns`, which does) is ignored, and every ignore says the
//! one same thing.

use std::path::Path;

const KERNEL_TIER: &str =
    r#"#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]"#;

#[test]
fn every_root_test_is_ignored_as_kernel_tier_and_nothing_else_is_ignored() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut wrong = Vec::new();
    let mut kernel = 0;
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
            let ignored = test.starts_with(KERNEL_TIER);
            let needs_root = test.contains("require_root()") || test.contains("in_private_netns(");
            if ignored != needs_root || (!ignored && test.contains("#[ignore")) {
                wrong.push(format!("{file}: {name}"));
            }
            kernel += usize::from(ignored);
        }
    }
    assert!(
        wrong.is_empty(),
        "tests whose marking does not match their needs (a test needing root starts with \
         #[test] then {KERNEL_TIER}; no other test is ignored): {wrong:#?}"
    );
    assert!(kernel > 50, "only {kernel} kernel-tier tests found");
}
