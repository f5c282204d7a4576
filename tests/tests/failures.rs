//! Bad input gets the spec's error JSON with the right code, and leaves nothing behind.

use jalur_tests::{require_root, CniCall, Netns, Network};
use serde_json::json;

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn add_when_ifname_exists_fails_with_101_and_leaks_nothing() {
    require_root();
    let net = Network::new("exists", 21, json!([[{"subnet": "10.244.21.0/24"}]]));
    let pod = Netns::new("pod");
    pod.exec("ip link add eth0 type veth peer name other0");
    let msg = net
        .call(
            "ADD",
            "exists",
            &pod.path(),
            "eth0",
            &net.stdin("1.1.0", None),
        )
        .err(101);
    assert!(msg.contains("eth0") && msg.contains(&pod.path()), "{msg}");
    net.assert_clean();
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn an_exhausted_range_fails_with_100_naming_it_and_leaves_no_half_made_veth() {
    require_root();
    // A /30 has two usable addresses; the gateway (.1) is never handed out, so one pod fits.
    let net = Network::new("full", 22, json!([[{"subnet": "10.244.22.0/30"}]]));
    let (a, b) = (Netns::new("a"), Netns::new("b"));
    let ra = net.add("full-a", &a.path());
    let out = net.call(
        "ADD",
        "full-b",
        &b.path(),
        "eth0",
        &net.stdin("1.1.0", None),
    );
    let msg = out.err(100);
    assert!(msg.contains("10.244.22.0/30"), "{msg}");
    assert_eq!(
        b.links(),
        vec!["lo".to_owned()],
        "no half-made interface in the pod"
    );
    assert_eq!(
        net.node.host_ends().len(),
        1,
        "only the first pod's host end"
    );
    // STATUS says so too (code 50), and recovers once the address is free.
    let status = CniCall::new("jalur", "STATUS", "", "", "")
        .run(&net.node.ns.name, &net.stdin("1.1.0", None));
    assert!(status.err(50).contains("no free address"));
    net.del("full-a", &a.path(), Some(&ra));
    CniCall::new("jalur", "STATUS", "", "", "")
        .run(&net.node.ns.name, &net.stdin("1.1.0", None))
        .ok();
    net.assert_clean();
}

/// One bad input: how to break the call, the code expected, and a word the message must hold.
struct Bad {
    what: &'static str,
    code: u64,
    needle: &'static str,
}

/// Changes a good call into a bad one and returns the stdin to send.
type Breaker<'a> = Box<dyn Fn(&mut CniCall) -> String + 'a>;

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn bad_inputs_get_the_right_code_and_create_nothing() {
    require_root();
    let net = Network::new("bad", 23, json!([[{"subnet": "10.244.23.0/24"}]]));
    let pod = Netns::new("pod");
    let plain = tempfile::NamedTempFile::new().unwrap();
    let good = net.stdin("1.1.0", None);
    let cases: Vec<(Bad, Breaker)> = vec![
        (
            Bad {
                what: "CNI_COMMAND missing",
                code: 4,
                needle: "CNI_COMMAND",
            },
            Box::new(|c| {
                c.unset.push("CNI_COMMAND".into());
                good.clone()
            }),
        ),
        (
            Bad {
                what: "CNI_CONTAINERID missing",
                code: 4,
                needle: "CNI_CONTAINERID",
            },
            Box::new(|c| {
                c.unset.push("CNI_CONTAINERID".into());
                good.clone()
            }),
        ),
        (
            Bad {
                what: "CNI_NETNS missing",
                code: 4,
                needle: "CNI_NETNS",
            },
            Box::new(|c| {
                c.unset.push("CNI_NETNS".into());
                good.clone()
            }),
        ),
        (
            Bad {
                what: "CNI_IFNAME missing",
                code: 4,
                needle: "CNI_IFNAME",
            },
            Box::new(|c| {
                c.unset.push("CNI_IFNAME".into());
                good.clone()
            }),
        ),
        (
            Bad {
                what: "CNI_PATH missing",
                code: 4,
                needle: "CNI_PATH",
            },
            Box::new(|c| {
                c.unset.push("CNI_PATH".into());
                good.clone()
            }),
        ),
        (
            Bad {
                what: "unknown command",
                code: 4,
                needle: "FROB",
            },
            Box::new(|c| {
                c.command = "FROB".into();
                good.clone()
            }),
        ),
        (
            Bad {
                what: "malformed JSON",
                code: 6,
                needle: "decode",
            },
            Box::new(|_| "{\"cniVersion\": \"1.1.0\", \"name\":".into()),
        ),
        (
            Bad {
                what: "version 9.9.9",
                code: 1,
                needle: "9.9.9",
            },
            Box::new(|_| net.stdin("9.9.9", None)),
        ),
        (
            Bad {
                what: "a bad CIDR",
                code: 7,
                needle: "10.244.0.0/33",
            },
            Box::new(|_| {
                let mut c: serde_json::Value = serde_json::from_str(&good).unwrap();
                c["ipam"]["ranges"] = json!([[{"subnet": "10.244.0.0/33"}]]);
                c.to_string()
            }),
        ),
        (
            Bad {
                what: "CNI_NETNS a plain file",
                code: 4,
                needle: "not a network namespace",
            },
            Box::new(|c| {
                c.netns = plain.path().display().to_string();
                good.clone()
            }),
        ),
        (
            Bad {
                what: "CNI_NETNS missing on disk",
                code: 4,
                needle: "CNI_NETNS",
            },
            Box::new(|c| {
                c.netns = "/run/netns/jalur-test-no-such-netns".into();
                good.clone()
            }),
        ),
        (
            Bad {
                what: "ifname over 15 bytes",
                code: 4,
                needle: "15",
            },
            Box::new(|c| {
                c.ifname = "eth0123456789abc".into();
                good.clone()
            }),
        ),
        (
            Bad {
                what: "no ipam section",
                code: 7,
                needle: "ipam",
            },
            Box::new(|_| json!({"cniVersion": "1.1.0", "name": "x", "type": "jalur"}).to_string()),
        ),
        (
            Bad {
                what: "IPAM plugin not on CNI_PATH",
                code: 103,
                needle: "not found",
            },
            Box::new(|_| {
                let mut c: serde_json::Value = serde_json::from_str(&good).unwrap();
                c["ipam"]["type"] = json!("no-such-ipam");
                c.to_string()
            }),
        ),
        (
            Bad {
                what: "invalid JSON starting with [",
                code: 6,
                needle: "decode",
            },
            Box::new(|_| "[\"1.1.0\", 5 garbage".into()),
        ),
        (
            Bad {
                what: "a JSON array",
                code: 7,
                needle: "JSON object",
            },
            Box::new(|_| "[\"1.1.0\", \"x\"]".into()),
        ),
        (
            Bad {
                what: "a container ID over 128 bytes",
                code: 4,
                needle: "128",
            },
            Box::new(|c| {
                c.container_id = "c".repeat(240);
                good.clone()
            }),
        ),
        (
            Bad {
                what: "a network name over 100 bytes",
                code: 7,
                needle: "100",
            },
            Box::new(|_| {
                let mut c: serde_json::Value = serde_json::from_str(&good).unwrap();
                c["name"] = json!("n".repeat(255));
                c.to_string()
            }),
        ),
        (
            Bad {
                what: "a legacy subnet of the wrong type",
                code: 7,
                needle: "ipam.subnet",
            },
            Box::new(|_| {
                let mut c: serde_json::Value = serde_json::from_str(&good).unwrap();
                c["ipam"]["subnet"] = json!(["fd00:23::/64"]);
                c.to_string()
            }),
        ),
        (
            Bad {
                what: "a legacy rangeStart without subnet",
                code: 7,
                needle: "ipam.rangeStart",
            },
            Box::new(|_| {
                let mut c: serde_json::Value = serde_json::from_str(&good).unwrap();
                c["ipam"]["rangeStart"] = json!("10.244.23.9");
                c.to_string()
            }),
        ),
        (
            Bad {
                what: "ifname all",
                code: 4,
                needle: "CNI_IFNAME",
            },
            Box::new(|c| {
                c.ifname = "all".into();
                good.clone()
            }),
        ),
        (
            Bad {
                what: "ifname default",
                code: 4,
                needle: "CNI_IFNAME",
            },
            Box::new(|c| {
                c.ifname = "default".into();
                good.clone()
            }),
        ),
        (
            Bad {
                what: "ifname eth%d",
                code: 4,
                needle: "CNI_IFNAME",
            },
            Box::new(|c| {
                c.ifname = "eth%d".into();
                good.clone()
            }),
        ),
        (
            Bad {
                what: "ifname .",
                code: 4,
                needle: "CNI_IFNAME",
            },
            Box::new(|c| {
                c.ifname = ".".into();
                good.clone()
            }),
        ),
        (
            Bad {
                what: "ifname ..",
                code: 4,
                needle: "CNI_IFNAME",
            },
            Box::new(|c| {
                c.ifname = "..".into();
                good.clone()
            }),
        ),
        (
            Bad {
                what: "ifname a/b",
                code: 4,
                needle: "CNI_IFNAME",
            },
            Box::new(|c| {
                c.ifname = "a/b".into();
                good.clone()
            }),
        ),
        (
            Bad {
                what: "ifname a b",
                code: 4,
                needle: "CNI_IFNAME",
            },
            Box::new(|c| {
                c.ifname = "a b".into();
                good.clone()
            }),
        ),
        (
            Bad {
                what: "ifname a\\tb",
                code: 4,
                needle: "CNI_IFNAME",
            },
            Box::new(|c| {
                c.ifname = "a\tb".into();
                good.clone()
            }),
        ),
        (
            Bad {
                what: "GC in a 1.0.0 config",
                code: 1,
                needle: "GC",
            },
            Box::new(|c| {
                c.command = "GC".into();
                net.stdin("1.0.0", None)
            }),
        ),
    ];
    for (bad, breaker) in &cases {
        let mut call = CniCall::new("jalur", "ADD", "bad", &pod.path(), "eth0");
        let stdin = breaker(&mut call);
        let out = call.run(&net.node.ns.name, &stdin);
        assert_ne!(out.code, 0, "{}: succeeded", bad.what);
        let v = out.json();
        assert_eq!(v["code"].as_u64(), Some(bad.code), "{}: {out:?}", bad.what);
        let msg = v["msg"].as_str().unwrap();
        assert!(
            msg.contains(bad.needle),
            "{}: message {msg:?} lacks {:?}",
            bad.what,
            bad.needle
        );
        assert!(
            out.stdout.trim_end().ends_with('}'),
            "{}: stdout holds only the error",
            bad.what
        );
        assert_eq!(
            pod.links(),
            vec!["lo".to_owned()],
            "{}: pod touched",
            bad.what
        );
        net.assert_clean();
    }
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn version_answers_the_supported_versions() {
    require_root();
    let node = jalur_tests::Node::new("ver", 24);
    for plugin in ["jalur", "jalur-ipam"] {
        // As podman sends it: dummy variables, a 1.0.0 stdin.
        let mut call = CniCall::new(plugin, "VERSION", "", "dummy", "dummy");
        call.extra_env.push(("CNI_PATH".into(), "dummy".into()));
        let v = call.run(&node.ns.name, "{\"cniVersion\":\"1.0.0\"}").ok();
        assert_eq!(v["cniVersion"], "1.0.0");
        let supported: Vec<&str> = v["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(supported, ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
    }
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn before_the_node_is_ready_add_says_try_again_and_status_says_unavailable() {
    require_root();
    let mut net = Network::new("ready", 25, json!([[{"subnet": "10.244.25.0/24"}]]));
    let mark = net.data_dir.path().join("ready");
    net.config["readinessFile"] = json!(mark);
    let pod = Netns::new("pod");
    let msg = net
        .call(
            "ADD",
            "ready",
            &pod.path(),
            "eth0",
            &net.stdin("1.1.0", None),
        )
        .err(11);
    assert!(msg.contains("not ready"), "{msg}");
    let status = || {
        CniCall::new("jalur", "STATUS", "", "", "")
            .run(&net.node.ns.name, &net.stdin("1.1.0", None))
    };
    status().err(50);
    net.assert_clean();
    std::fs::write(&mark, "ready\n").unwrap();
    status().ok();
    let r = net.add("ready", &pod.path());
    net.del("ready", &pod.path(), Some(&r));
    net.assert_clean();
}
