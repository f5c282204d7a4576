//! A bounded fuzz target for the config and environment parsers, as a property test: for any
//! stdin and any CNI_* environment, the protocol answers (never panics), an error is the
//! spec's JSON with a code the README lists, and whatever it lets through to a verb fits the
//! kernel's limits (interface name, ifalias).
//!
//! `cargo test` runs a bounded number of cases (a few seconds). Inputs that once failed are
//! kept: proptest's own seeds in `fuzz-regressions/parsers_prop.txt`, and hand-kept inputs
//! (from the adversarial run of issue 12, and any crash found later) in
//! `fuzz-regressions/stdin.txt`, one JSON string per line, replayed by the last test.

use std::collections::HashMap;

use jalur_cni_plugin::attachment;
use jalur_cni_plugin::config::NetConf;
use jalur_cni_plugin::env::CniEnv;
use jalur_cni_plugin::error::Result;
use jalur_cni_plugin::result::CniResult;
use jalur_cni_plugin::skel::{run, Plugin, Request};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use serde_json::{json, Value};

/// The codes the README lists.
const CODES: [u64; 17] = [
    1, 2, 3, 4, 5, 6, 7, 11, 50, 100, 101, 102, 103, 104, 105, 106, 999,
];

/// A plugin that checks what reaches it and does nothing else.
struct Probe;

fn fits(req: &Request) {
    assert!(req.env.ifname.len() <= jalur_cni_plugin::env::MAX_IFNAME || req.env.ifname.is_empty());
    let alias = attachment::alias(&req.config.name, &req.env.container_id, &req.env.ifname);
    assert!(alias.len() <= attachment::MAX_ALIAS, "{alias}");
    if let Some(ipam) = &req.config.ipam {
        // The IPAM section either yields a pool or a config error: never a panic.
        if let Err(e) = ipam.pool() {
            assert_eq!(e.code(), 7, "{e}");
        }
    }
}

impl Plugin for Probe {
    fn add(&self, req: &Request) -> Result<CniResult> {
        fits(req);
        Ok(CniResult::default())
    }
    fn del(&self, req: &Request) -> Result<()> {
        fits(req);
        Ok(())
    }
    fn check(&self, req: &Request) -> Result<()> {
        fits(req);
        Ok(())
    }
    fn gc(&self, req: &Request) -> Result<()> {
        fits(req);
        Ok(())
    }
    fn status(&self, req: &Request) -> Result<()> {
        fits(req);
        Ok(())
    }
}

fn answer(env: &HashMap<String, String>, stdin: &[u8]) {
    let out = run(&Probe, &|k| env.get(k).cloned(), stdin);
    if out.exit_code == 0 {
        if !out.stdout.is_empty() {
            serde_json::from_str::<Value>(&out.stdout).expect("a result is JSON");
        }
        return;
    }
    let v: Value = serde_json::from_str(&out.stdout).expect("an error is JSON");
    let code = v["code"].as_u64().expect("an error has a code");
    assert!(CODES.contains(&code), "code {code}: {}", out.stdout);
    assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(v["cniVersion"].is_string());
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("eth0".to_owned()),
        Just("all".to_owned()),
        Just("..".to_owned()),
        Just("10.244.0.0/24".to_owned()),
        Just("fd00::/64".to_owned()),
        Just("10.244.0.5".to_owned()),
        Just("jalur".to_owned()),
        Just("jalur-ipam".to_owned()),
        Just("1.1.0".to_owned()),
        Just("0.3.1".to_owned()),
        "[a-z0-9%./: -]{0,20}",
        "[a-zA-Z0-9_.-]{90,300}",
        any::<String>(),
    ]
}

/// JSON values shaped like configs: objects keyed by the fields the parsers read.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("cniVersion"),
        Just("name"),
        Just("type"),
        Just("ipam"),
        Just("ranges"),
        Just("subnet"),
        Just("rangeStart"),
        Just("rangeEnd"),
        Just("gateway"),
        Just("routes"),
        Just("dst"),
        Just("gw"),
        Just("dataDir"),
        Just("mtu"),
        Just("dns"),
        Just("prevResult"),
        Just("cni.dev/valid-attachments"),
        Just("logLevel"),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn env() -> impl Strategy<Value = HashMap<String, String>> {
    let command = prop_oneof![
        Just("ADD"),
        Just("DEL"),
        Just("CHECK"),
        Just("GC"),
        Just("STATUS"),
        Just("VERSION"),
        Just("FROB"),
        Just(""),
    ];
    (
        command,
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(text()),
    )
        .prop_map(|(command, cid, netns, ifname, path, delegated)| {
            let mut m = HashMap::new();
            m.insert("CNI_COMMAND".to_owned(), command.to_owned());
            for (k, v) in [
                ("CNI_CONTAINERID", cid),
                ("CNI_NETNS", netns),
                ("CNI_IFNAME", ifname),
                ("CNI_PATH", path),
                ("JALUR_DELEGATED_BY", delegated),
            ] {
                if let Some(v) = v {
                    m.insert(k.to_owned(), v);
                }
            }
            m
        })
}

fn config() -> Config {
    Config {
        cases: 3000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/fuzz-regressions/parsers_prop.txt",
        ))),
        ..Config::default()
    }
}

/// An environment that passes, to send configs through to the verbs.
fn good_env() -> HashMap<String, String> {
    [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_on_stdin_get_an_answer(stdin in prop::collection::vec(any::<u8>(), 0..256)) {
        answer(&good_env(), &stdin);
        if let Err(e) = NetConf::parse(&stdin) {
            prop_assert!(e.code() == 6 || e.code() == 7, "{e}");
        }
    }

    #[test]
    fn config_shaped_json_gets_an_answer(mut v in json_value(), version in text()) {
        if let Value::Object(m) = &mut v {
            m.entry("cniVersion").or_insert(json!(version));
            m.entry("name").or_insert(json!("net"));
        }
        answer(&good_env(), v.to_string().as_bytes());
    }

    #[test]
    fn any_environment_gets_an_answer(env in env()) {
        let stdin = br#"{"cniVersion":"1.1.0","name":"n","type":"jalur","ipam":{"type":"jalur-ipam","subnet":"10.1.0.0/24"}}"#;
        answer(&env, stdin);
        if let Err(e) = CniEnv::from_lookup(&|k| env.get(k).cloned()) {
            prop_assert_eq!(e.code(), 4, "{}", e);
        }
    }
}

#[test]
fn kept_inputs_still_get_an_answer() {
    let kept = include_str!("fuzz-regressions/stdin.txt");
    let mut n = 0;
    for line in kept
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let stdin: String = serde_json::from_str(line).expect("each line is a JSON string");
        answer(&good_env(), stdin.as_bytes());
        n += 1;
    }
    assert!(n > 0);
}
