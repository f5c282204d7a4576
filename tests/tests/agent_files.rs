//! The agent's own files on a node: stale ones cleared at start (others' kept), and
//! `jalur-agent uninstall` removing what is Jalur's and nothing else. Both run the agent in a
//! network namespace of their own: root.

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use jalur_tests::cluster::wait_until;
use jalur_tests::{bin_dir, require_root, Netns};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn the_agent_clears_stale_files_of_its_own_at_start_and_keeps_the_rest() {
    require_root();
    let ns = Netns::new("hyg");
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("net.d");
    let state = tmp.path().join("state");
    fs::create_dir_all(&conf).unwrap();
    fs::create_dir_all(&state).unwrap();
    let ours = r#"{"cniVersion":"1.0.0","name":"jalur","plugins":[{"type":"jalur"}]}"#;
    let other = r#"{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"bridge"}]}"#;
    fs::write(conf.join(".10-jalur.conflist.tmp.4242"), "{").unwrap();
    fs::write(conf.join("05-jalur.conflist"), ours).unwrap();
    fs::write(conf.join("99-other.conflist"), other).unwrap();
    fs::write(state.join(".ready.tmp.4242"), "rea").unwrap();
    let nodes = tmp.path().join("nodes.json");
    fs::write(
        &nodes,
        r#"{"apiVersion":"v1","kind":"NodeList","items":[]}"#,
    )
    .unwrap();
    let log_path = tmp.path().join("agent.log");

    let mut agent = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(bin_dir().join("jalur-agent"))
        .args(["--node-name", "node1", "--nodes-file"])
        .arg(&nodes)
        .arg("--cni-conf-dir")
        .arg(&conf)
        .arg("--state-dir")
        .arg(&state)
        .args(["--cni-bin-dir", "/nonexistent"])
        .args(["--metrics-addr", "127.0.0.1:9644"])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let cleared = wait_until(Duration::from_secs(10), || {
        !conf.join("05-jalur.conflist").exists()
            && !conf.join(".10-jalur.conflist.tmp.4242").exists()
            && !state.join(".ready.tmp.4242").exists()
    });
    let pid = Pid::from_raw(i32::try_from(agent.id()).unwrap());
    let _ = kill(pid, Signal::SIGTERM);
    let _ = wait_until(Duration::from_secs(5), || {
        agent.try_wait().ok().flatten().is_some()
    });
    let _ = agent.kill();
    let _ = agent.wait();
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    assert!(cleared, "stale files left:\n{log}");
    assert_eq!(
        fs::read_to_string(conf.join("99-other.conflist")).unwrap(),
        other
    );
    assert_eq!(
        log.matches("removed a stale file").count(),
        3,
        "each removal is logged:\n{log}"
    );
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn uninstall_removes_the_plugins_and_the_ipam_store_and_leaves_the_rest() {
    require_root();
    // In a namespace of its own: uninstall also deletes routes and the nftables table of the
    // namespace it runs in.
    let ns = Netns::new("unin");
    let tmp = tempfile::tempdir().unwrap();
    let (conf, state, bin) = (
        tmp.path().join("net.d"),
        tmp.path().join("state"),
        tmp.path().join("bin"),
    );
    for d in [&conf, &state.join("ipam/jalur"), &bin] {
        fs::create_dir_all(d).unwrap();
    }
    let files = [
        (conf.join("10-jalur.conflist"), false),
        (conf.join("99-other.conflist"), true),
        (state.join("ready"), false),
        (state.join("ipam/jalur/allocations.json"), false),
        (state.join("notes.txt"), true),
        (bin.join("jalur"), false),
        (bin.join("jalur-ipam"), false),
        (bin.join("portmap"), true),
    ];
    for (path, _) in &files {
        fs::write(path, "x").unwrap();
    }
    let agent = bin_dir().join("jalur-agent").display().to_string();
    let uninstall = |extra: &str| {
        ns.try_exec(&format!(
            "{agent} uninstall --cni-conf-dir {} --state-dir {} {extra}",
            conf.display(),
            state.display()
        ))
    };
    // Without --cni-bin-dir the plugins stay.
    let (ok, log) = uninstall("");
    assert!(ok, "{log}");
    assert!(bin.join("jalur").exists() && bin.join("jalur-ipam").exists());
    let (ok, log) = uninstall(&format!("--cni-bin-dir {}", bin.display()));
    assert!(ok, "{log}");
    for (path, kept) in &files {
        assert_eq!(path.exists(), *kept, "{}", path.display());
    }
    assert!(!state.join("ipam").exists(), "the IPAM store is gone");
    // Twice is fine.
    let (ok, log) = uninstall(&format!("--cni-bin-dir {}", bin.display()));
    assert!(ok, "{log}");
}
