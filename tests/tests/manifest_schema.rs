//! The cluster manifest (deploy/jalur.yaml) against the Kubernetes API's own JSON schemas.

use std::process::{Command, Stdio};

use jalur_tests::install::manifest_path;

/// `kubernetes-validate --strict`: the manifest against the API's own JSON schemas, rejecting
/// unknown fields. `pip install kubernetes-validate` (scripts/test.sh does).
#[test]
#[ignore = "system tier: needs the built binaries and test tools; sudo ./scripts/test.sh runs it"]
fn the_manifest_passes_kubernetes_validate_strict() {
    let manifest = manifest_path();
    let custom = std::env::var("KUBERNETES_VALIDATE").ok();
    let candidates: Vec<Vec<String>> = match custom {
        Some(cmd) => vec![vec![cmd]],
        None => vec![
            vec!["kubernetes-validate".into()],
            vec!["python3".into(), "-m".into(), "kubernetes_validate".into()],
        ],
    };
    let runs = |cmd: &[String]| {
        Command::new(&cmd[0])
            .args(&cmd[1..])
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let cmd = candidates.iter().find(|c| runs(c)).unwrap_or_else(|| {
        panic!(
            "kubernetes-validate is not installed: `python3 -m pip install kubernetes-validate` \
             (or set KUBERNETES_VALIDATE to its path)"
        )
    });
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .arg("--strict")
        .arg(&manifest)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kubernetes-validate --strict:\n{text}"
    );
    assert_eq!(
        text.matches(" passed ").count(),
        5,
        "every object was checked:\n{text}"
    );
}
