//! A config cannot make `jalur` run itself as its IPAM, directly or through a chain of
//! delegations: code 7 before anything runs. Every call runs under a cap of 32 processes, so
//! that a regression into the loop fails here instead of exhausting the machine.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use jalur_tests::{bin_dir, cni_bin_dirs, require_root, CniCall, Netns, Network, PidsCap};
use serde_json::{json, Value};

fn capped(
    net: &Network,
    cap: &PidsCap,
    command: &str,
    pod: &Netns,
    stdin: &Value,
) -> jalur_tests::CniOutput {
    let mut call = CniCall::new("jalur", command, "loop", &pod.path(), "eth0");
    call.cgroup_procs = Some(cap.procs());
    call.timeout = Some(Duration::from_secs(10));
    call.run(&net.node.ns.name, &stdin.to_string())
}

fn with_ipam_type(net: &Network, ty: &str) -> Value {
    let mut c = net.config.clone();
    c["cniVersion"] = json!("1.1.0");
    c["ipam"]["type"] = json!(ty);
    c
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn ipam_type_jalur_is_refused_before_anything_runs() {
    require_root();
    let net = Network::new("selfipam", 55, json!([[{"subnet": "10.244.55.0/24"}]]));
    let pod = Netns::new("pod");
    let cap = PidsCap::new("selfipam", 32);
    for command in ["ADD", "DEL", "STATUS"] {
        let out = capped(&net, &cap, command, &pod, &with_ipam_type(&net, "jalur"));
        let msg = out.err(7);
        assert!(
            msg.contains("ipam.type") && msg.contains("itself"),
            "{command}: {msg}"
        );
    }
    assert_eq!(
        cap.refused_forks(),
        0,
        "the plugin tried to fork past the cap"
    );
    assert_eq!(pod.links(), vec!["lo".to_owned()]);
    net.assert_clean();
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_delegation_chain_leading_back_to_jalur_is_refused() {
    require_root();
    let net = Network::new("chain", 56, json!([[{"subnet": "10.244.56.0/24"}]]));
    let pod = Netns::new("pod");
    // An IPAM "plugin" that hands the call straight back to jalur, as a wrapper might,
    // and one that is a symlink to jalur under another name.
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("loopy-ipam");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec {}\n", bin_dir().join("jalur").display()),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(bin_dir().join("jalur"), dir.path().join("alias-ipam")).unwrap();
    let cni_path = format!("{}:{}", dir.path().display(), cni_bin_dirs());
    let cap = PidsCap::new("chain", 32);
    for ty in ["loopy-ipam", "alias-ipam"] {
        let mut call = CniCall::new("jalur", "ADD", "loop", &pod.path(), "eth0");
        call.cgroup_procs = Some(cap.procs());
        call.timeout = Some(Duration::from_secs(10));
        call.extra_env.push(("CNI_PATH".into(), cni_path.clone()));
        let out = call.run(&net.node.ns.name, &with_ipam_type(&net, ty).to_string());
        let msg = out.err(7);
        assert!(msg.contains("jalur") && msg.contains(ty), "{ty}: {msg}");
        assert_eq!(pod.links(), vec!["lo".to_owned()], "{ty}");
        net.assert_clean();
    }
    assert_eq!(
        cap.refused_forks(),
        0,
        "the plugin tried to fork past the cap"
    );
}
