//! The node scripts, scripts/install.sh and scripts/uninstall.sh, against a temp prefix (the
//! real system's paths are checked untouched), and shellcheck over them. No root.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use jalur_tests::bin_dir;
use jalur_tests::install::{mode, mtime, names, repo, run};

/// Real paths install.sh would use without --prefix: they must look the same after the
/// tests as before.
fn real_paths_state() -> Vec<(PathBuf, Option<SystemTime>)> {
    [
        "/opt/cni/bin/jalur",
        "/opt/cni/bin/jalur-ipam",
        "/usr/local/bin/jalur-agent",
        "/etc/systemd/system/jalur-agent.service",
    ]
    .iter()
    .map(|p| {
        let p = PathBuf::from(p);
        let t = fs::metadata(&p).ok().and_then(|m| m.modified().ok());
        (p, t)
    })
    .collect()
}

#[test]
#[ignore = "system tier: needs the built binaries and test tools; sudo ./scripts/test.sh runs it"]
fn install_sh_installs_under_a_prefix_once_and_uninstall_sh_removes_only_its_own_files() {
    let real_before = real_paths_state();
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("root");
    let bin = prefix.join("opt/cni/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::write(bin.join("portmap"), "someone else's").unwrap();
    let unit_dir = prefix.join("etc/systemd/system");
    fs::create_dir_all(&unit_dir).unwrap();
    fs::write(unit_dir.join("other.service"), "[Unit]\n").unwrap();
    let install = || {
        run(Command::new(repo().join("scripts/install.sh"))
            .arg("--prefix")
            .arg(&prefix)
            .arg("--bin-dir")
            .arg(bin_dir())
            .args(["--with-agent", "--node-name", "node1"])
            .args(["--nodes-file", "/etc/jalur/nodes.yaml"])
            .arg("--agent-arg=--cluster-cidr=10.244.0.0/16"))
    };
    let (ok, log) = install();
    assert!(ok, "{log}");
    let agent = prefix.join("usr/local/bin/jalur-agent");
    let unit = unit_dir.join("jalur-agent.service");
    for (path, built, want) in [
        (bin.join("jalur"), "jalur", 0o755),
        (bin.join("jalur-ipam"), "jalur-ipam", 0o755),
        (agent.clone(), "jalur-agent", 0o755),
    ] {
        assert_eq!(mode(&path), want, "{}", path.display());
        assert!(
            fs::read(&path).unwrap() == fs::read(bin_dir().join(built)).unwrap(),
            "{} is a copy",
            path.display()
        );
    }
    assert_eq!(mode(&unit), 0o644);
    let text = fs::read_to_string(&unit).unwrap();
    let exec = text
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("ExecStart");
    for want in [
        "ExecStart=/usr/local/bin/jalur-agent ",
        "--node-name=node1",
        "--nodes-file=/etc/jalur/nodes.yaml",
        "--cni-bin-dir=/opt/cni/bin",
        "--cni-conf-dir=/etc/cni/net.d",
        "--state-dir=/var/lib/jalur",
        "--cluster-cidr=10.244.0.0/16",
    ] {
        assert!(exec.contains(want), "{exec} lacks {want}");
    }
    assert!(
        !exec.contains(&prefix.display().to_string()),
        "the unit names real paths, not the prefix"
    );
    assert_eq!(
        names(&bin),
        BTreeSet::from(["jalur".into(), "jalur-ipam".into(), "portmap".into()]),
        "no temp files"
    );

    let stamps: Vec<SystemTime> = [&bin.join("jalur"), &agent, &unit]
        .iter()
        .map(|p| mtime(p))
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    let (ok, log) = install();
    assert!(ok, "{log}");
    assert!(log.contains("nothing changed"), "second run: {log}");
    let again: Vec<SystemTime> = [&bin.join("jalur"), &agent, &unit]
        .iter()
        .map(|p| mtime(p))
        .collect();
    assert_eq!(stamps, again, "second run rewrote files");

    // CNI_BIN_DIR moves the plugins.
    let (ok, log) = run(Command::new(repo().join("scripts/install.sh"))
        .env("CNI_BIN_DIR", "/usr/libexec/cni")
        .arg("--prefix")
        .arg(&prefix)
        .arg("--bin-dir")
        .arg(bin_dir()));
    assert!(ok, "{log}");
    assert_eq!(mode(&prefix.join("usr/libexec/cni/jalur")), 0o755);
    let (ok, log) = run(Command::new(repo().join("scripts/uninstall.sh"))
        .args(["--cni-bin-dir", "/usr/libexec/cni", "--prefix"])
        .arg(&prefix));
    assert!(ok, "{log}");
    assert!(names(&prefix.join("usr/libexec/cni")).is_empty());

    let (ok, log) = run(Command::new(repo().join("scripts/uninstall.sh"))
        .arg("--prefix")
        .arg(&prefix));
    assert!(ok, "{log}");
    assert_eq!(names(&bin), BTreeSet::from(["portmap".into()]));
    assert_eq!(names(&unit_dir), BTreeSet::from(["other.service".into()]));
    assert!(!agent.exists());
    assert_eq!(fs::read(bin.join("portmap")).unwrap(), b"someone else's");
    let (ok, log) = run(Command::new(repo().join("scripts/uninstall.sh"))
        .arg("--prefix")
        .arg(&prefix));
    assert!(ok && log.contains("nothing to remove"), "{log}");

    // Missing agent settings are refused before anything is written.
    let (ok, log) = run(Command::new(repo().join("scripts/install.sh"))
        .arg("--prefix")
        .arg(tmp.path().join("other"))
        .arg("--bin-dir")
        .arg(bin_dir())
        .arg("--with-agent"));
    assert!(!ok && log.contains("--node-name"), "{log}");
    assert!(!tmp.path().join("other/opt").exists());

    assert_eq!(
        real_paths_state(),
        real_before,
        "the real system was touched"
    );
}

/// The install scripts parse, and shellcheck (`apt-get install shellcheck`) finds nothing in
/// them. scripts/minikube.sh cannot run here (no docker engine, no minikube): this is the
/// check it gets.
#[test]
#[ignore = "system tier: needs the built binaries and test tools; sudo ./scripts/test.sh runs it"]
fn the_install_scripts_parse_and_pass_shellcheck() {
    let scripts =
        ["install.sh", "uninstall.sh", "minikube.sh"].map(|s| repo().join("scripts").join(s));
    for s in &scripts {
        let (ok, log) = run(Command::new("bash").arg("-n").arg(s));
        assert!(ok, "bash -n {}: {log}", s.display());
        assert!(mode(s) & 0o111 != 0, "{} is executable", s.display());
    }
    let present = Command::new("shellcheck")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        present,
        "shellcheck is not installed: `apt-get install shellcheck`"
    );
    let (ok, log) = run(Command::new("shellcheck").args(&scripts));
    assert!(ok, "shellcheck:\n{log}");
}
