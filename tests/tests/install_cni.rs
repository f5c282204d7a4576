//! `jalur-agent install-cni`: copies the plugins onto the node atomically and only when they
//! differ, names a missing source, and turns forwarding on when asked (in a namespace of its
//! own: the one test that needs root).

use std::collections::BTreeSet;
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use jalur_tests::install::{mode, mtime, names, run};
use jalur_tests::{bin_dir, require_root, Netns};

#[test]
#[ignore = "system tier: needs the built binaries and test tools; sudo ./scripts/test.sh runs it"]
fn install_cni_copies_atomically_with_mode_0755_and_a_second_run_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let to = tmp.path().join("host/opt/cni/bin"); // missing: created
    let agent = bin_dir().join("jalur-agent");
    let install = || {
        run(Command::new(&agent)
            .args(["install-cni", "--from"])
            .arg(bin_dir())
            .arg("--to")
            .arg(&to))
    };
    let (ok, log) = install();
    assert!(ok, "{log}");
    assert_eq!(
        names(&to),
        BTreeSet::from(["jalur".into(), "jalur-ipam".into()])
    );
    for p in ["jalur", "jalur-ipam"] {
        assert_eq!(mode(&to.join(p)), 0o755, "{p}");
        assert!(
            fs::read(to.join(p)).unwrap() == fs::read(bin_dir().join(p)).unwrap(),
            "{p} is a copy"
        );
    }
    // The copy runs: the node's runtime would exec it like this.
    let version = run(Command::new(to.join("jalur"))
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::null()));
    assert!(version.1.contains("supportedVersions"), "{}", version.1);

    let before = mtime(&to.join("jalur"));
    std::thread::sleep(Duration::from_millis(20));
    let (ok, log) = install();
    assert!(ok, "{log}");
    assert!(
        log.contains("unchanged") && !log.contains("installed"),
        "{log}"
    );
    assert_eq!(mtime(&to.join("jalur")), before, "not rewritten");
    assert_eq!(names(&to).len(), 2, "no temp files");
}

#[test]
#[ignore = "system tier: needs the built binaries and test tools; sudo ./scripts/test.sh runs it"]
fn install_cni_names_a_missing_source_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let from = tmp.path().join("from");
    fs::create_dir(&from).unwrap();
    fs::copy(bin_dir().join("jalur"), from.join("jalur")).unwrap();
    let to = tmp.path().join("to");
    let (ok, log) = run(Command::new(bin_dir().join("jalur-agent"))
        .args(["install-cni", "--from"])
        .arg(&from)
        .arg("--to")
        .arg(&to));
    assert!(!ok, "must fail: {log}");
    assert!(
        log.contains(&from.join("jalur-ipam").display().to_string()),
        "names the missing file: {log}"
    );
    assert!(!to.exists() || names(&to).is_empty());
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn install_cni_turns_forwarding_on_when_asked() {
    require_root();
    let ns = Netns::new("fwd");
    let tmp = tempfile::tempdir().unwrap();
    let to = tmp.path().join("bin");
    assert_eq!(ns.exec("cat /proc/sys/net/ipv4/ip_forward").trim(), "0");
    ns.exec(&format!(
        "{} install-cni --from {} --to {} --enable-forwarding ipv4",
        bin_dir().join("jalur-agent").display(),
        bin_dir().display(),
        to.display()
    ));
    assert_eq!(ns.exec("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    assert_eq!(
        ns.exec("cat /proc/sys/net/ipv6/conf/all/forwarding").trim(),
        "0",
        "IPv6 only when asked"
    );
    assert_eq!(names(&to).len(), 2);
}
