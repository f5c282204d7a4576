//! The cluster manifest (deploy/jalur.yaml) read into Kubernetes' own types and checked
//! against what the agent needs: its flags, the host paths they land on, RBAC, probes,
//! privileges, the image layout. Needs the built `jalur-agent` (for its `--help`), not root.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use jalur_tests::bin_dir;
use jalur_tests::install::{manifest_path, repo};

/// The manifest's objects, each read into its Kubernetes type.
#[derive(Default)]
struct Manifest {
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    bindings: Vec<ClusterRoleBinding>,
    config_maps: Vec<ConfigMap>,
    daemon_sets: Vec<DaemonSet>,
}

/// Reads `doc` into `T` and checks that `T` holds every field of it: k8s-openapi ignores
/// unknown fields, so a misspelt or misplaced field would otherwise pass unnoticed.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value, what: &str) -> T {
    let object: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{what} does not parse as its Kubernetes type: {e}"));
    let back = serde_json::to_value(&object).unwrap();
    let mut unknown = Vec::new();
    dropped(doc, &back, String::new(), &mut unknown);
    assert!(
        unknown.is_empty() && &back == doc,
        "{what}: fields that are not part of the Kubernetes type: {unknown:?}"
    );
    object
}

/// The paths in `doc` that `back` (the typed round trip) lost.
fn dropped(doc: &Value, back: &Value, path: String, out: &mut Vec<String>) {
    match (doc, back) {
        (Value::Object(d), Value::Object(b)) => {
            for (k, v) in d {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(bv) => dropped(v, bv, p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(d), Value::Array(b)) => {
            for (i, (dv, bv)) in d.iter().zip(b).enumerate() {
                dropped(dv, bv, format!("{path}[{i}]"), out);
            }
        }
        (d, b) if d != b => out.push(format!("{path} ({d} read as {b})")),
        _ => {}
    }
}

fn load_manifest() -> Manifest {
    let text = fs::read_to_string(manifest_path()).unwrap();
    let mut m = Manifest::default();
    // Every document (empty ones are skipped), as JSON.
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("valid YAML");
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        let what = format!("{kind} {}", doc["metadata"]["name"]);
        match (
            doc["apiVersion"].as_str().unwrap_or_default(),
            kind.as_str(),
        ) {
            ("v1", "ServiceAccount") => m.service_accounts.push(typed(&doc, &what)),
            ("v1", "ConfigMap") => m.config_maps.push(typed(&doc, &what)),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                m.cluster_roles.push(typed(&doc, &what))
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                m.bindings.push(typed(&doc, &what))
            }
            ("apps/v1", "DaemonSet") => m.daemon_sets.push(typed(&doc, &what)),
            (api, kind) => panic!("unexpected object in the manifest: {api} {kind}"),
        }
    }
    m
}

/// `--flag=value` arguments as a map (flags without a value map to "").
fn flags(args: &[String]) -> BTreeMap<String, String> {
    args.iter()
        .filter_map(|a| a.strip_prefix("--"))
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (a.to_owned(), String::new()),
        })
        .collect()
}

/// Where `path` inside `container` lands on the host: (host path, read-only), through the
/// deepest volume mount holding it, which must be a hostPath volume.
fn on_host(spec: &PodSpec, container: &Container, path: &str) -> (PathBuf, bool) {
    let path = Path::new(path);
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| path.starts_with(&m.mount_path))
        .max_by_key(|m| m.mount_path.len())
        .unwrap_or_else(|| {
            panic!(
                "{}: {} is on no volume mount: it would be lost with the container",
                container.name,
                path.display()
            )
        });
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap_or_else(|| panic!("volume {} is not defined", mount.name));
    let host = volume.host_path.as_ref().unwrap_or_else(|| {
        panic!(
            "{}: {} is on volume {}, which is not a hostPath",
            container.name,
            path.display(),
            volume.name
        )
    });
    let rest = path.strip_prefix(&mount.mount_path).unwrap();
    (
        Path::new(&host.path).join(rest),
        mount.read_only.unwrap_or(false),
    )
}

/// The port a probe's `port` names (a number, or a named container port).
fn probe_port(container: &Container, port: &IntOrString) -> u16 {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).unwrap(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| u16::try_from(p.container_port).unwrap())
            .unwrap_or_else(|| panic!("probe port {name} is not a named container port")),
    }
}

/// Runs `jalur-agent <sub> --help` and returns the text, to check that flags exist.
fn agent_help(sub: &[&str]) -> String {
    let out = Command::new(bin_dir().join("jalur-agent"))
        .args(sub)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
#[ignore = "system tier: needs the built binaries and test tools; sudo ./scripts/test.sh runs it"]
fn the_manifest_reads_into_kubernetes_types_and_gives_the_agent_what_it_needs() {
    let m = load_manifest();
    assert_eq!(m.daemon_sets.len(), 1, "one DaemonSet");
    let ds = &m.daemon_sets[0];
    let ns = ds.metadata.namespace.as_deref();
    assert_eq!(ns, Some("kube-system"));
    let spec = &ds.spec;

    // The selector picks the template's pods.
    let selector = spec.selector.match_labels.clone().unwrap_or_default();
    assert!(!selector.is_empty(), "the selector has matchLabels");
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    for (k, v) in &selector {
        assert_eq!(labels.get(k), Some(v), "template labels lack {k}={v}");
    }

    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.host_network, Some(true), "hostNetwork");
    let tolerates_all =
        pod.tolerations.iter().flatten().any(|t| {
            t.operator.as_deref() == Some("Exists") && t.key.is_none() && t.effect.is_none()
        });
    assert!(
        tolerates_all,
        "a toleration {{operator: Exists}} (every taint)"
    );
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );

    // Service account and RBAC: Nodes get/list/watch, nothing else.
    let sa = pod
        .service_account_name
        .as_deref()
        .expect("a service account");
    assert!(m
        .service_accounts
        .iter()
        .any(|s| s.metadata.name.as_deref() == Some(sa) && s.metadata.namespace.as_deref() == ns));
    assert_eq!(m.cluster_roles.len(), 1);
    let role = &m.cluster_roles[0];
    let rules = role.rules.clone().unwrap_or_default();
    assert_eq!(rules.len(), 1, "one rule: {rules:?}");
    let rule = &rules[0];
    assert_eq!(rule.api_groups, Some(vec![String::new()]), "core API group");
    assert_eq!(rule.resources, Some(vec!["nodes".to_owned()]));
    assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
    let verbs: BTreeSet<&str> = rule.verbs.iter().map(String::as_str).collect();
    assert_eq!(verbs, BTreeSet::from(["get", "list", "watch"]));
    assert_eq!(m.bindings.len(), 1);
    let binding = &m.bindings[0];
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    let subjects = binding.subjects.clone().unwrap_or_default();
    assert!(subjects
        .iter()
        .any(|s| s.kind == "ServiceAccount" && s.name == sa && s.namespace.as_deref() == ns));

    // Every container: the documented image, pulled only if missing (minikube image load),
    // with requests and limits.
    let inits = pod.init_containers.clone().unwrap_or_default();
    for c in pod.containers.iter().chain(&inits) {
        assert_eq!(c.image.as_deref(), Some("jalur:0.1.0"), "{}", c.name);
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        let res = c.resources.as_ref().expect("resources");
        for (what, set) in [("requests", &res.requests), ("limits", &res.limits)] {
            let set = set
                .as_ref()
                .unwrap_or_else(|| panic!("{}: no {what}", c.name));
            assert!(
                set.contains_key("cpu") && set.contains_key("memory"),
                "{}: {what} need cpu and memory",
                c.name
            );
        }
    }

    // The agent container.
    assert_eq!(pod.containers.len(), 1);
    let agent = &pod.containers[0];
    let env = agent.env.clone().unwrap_or_default();
    let node_name = env
        .iter()
        .find(|e| e.name == "NODE_NAME")
        .expect("NODE_NAME");
    let field = node_name
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .expect("NODE_NAME from the downward API");
    assert_eq!(field.field_path, "spec.nodeName");
    let args = flags(&agent.args.clone().unwrap_or_default());
    assert_eq!(args["node-name"], "$(NODE_NAME)");

    // What the agent writes lands on the node, in the dirs the runtime reads.
    let conf = on_host(pod, agent, &args["cni-conf-dir"]);
    assert_eq!(
        conf,
        (PathBuf::from("/etc/cni/net.d"), false),
        "--cni-conf-dir"
    );
    let state = on_host(pod, agent, &args["state-dir"]);
    assert_eq!(
        state,
        (PathBuf::from("/var/lib/jalur"), false),
        "--state-dir"
    );
    // The conflist names files in the state dir (readinessFile, the IPAM dataDir) that the
    // plugin reads on the host: the dir must have the same path inside and outside.
    assert_eq!(
        Path::new(&args["state-dir"]),
        state.0,
        "--state-dir must be mounted at its host path"
    );
    let bin = on_host(pod, agent, &args["cni-bin-dir"]);
    assert_eq!(bin.0, PathBuf::from("/opt/cni/bin"), "--cni-bin-dir");

    // The init container copies the plugins from the image onto the node.
    let install = inits
        .iter()
        .find(|c| {
            c.args
                .as_ref()
                .is_some_and(|a| a.first().map(String::as_str) == Some("install-cni"))
        })
        .expect("an init container running install-cni");
    let install_args = flags(install.args.as_ref().unwrap());
    let to = on_host(pod, install, &install_args["to"]);
    assert_eq!(
        to,
        (PathBuf::from("/opt/cni/bin"), false),
        "install-cni --to"
    );
    // The image layout the manifest relies on is the one deploy/Dockerfile makes.
    let dockerfile = fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    let command = agent.command.clone().unwrap_or_default();
    assert_eq!(command, install.command.clone().unwrap_or_default());
    assert_eq!(command, vec!["/usr/local/bin/jalur-agent".to_owned()]);
    assert!(dockerfile.contains(" /usr/local/bin/jalur-agent"));
    assert_eq!(install_args["from"], "/usr/local/lib/jalur/cni");
    assert!(dockerfile.contains(" /usr/local/lib/jalur/cni/"));

    // Every flag given is one the agent has.
    let run_help = agent_help(&[]);
    for flag in args.keys() {
        assert!(
            run_help.contains(&format!("--{flag}")),
            "jalur-agent has no --{flag}"
        );
    }
    let install_help = agent_help(&["install-cni"]);
    for flag in install_args.keys().filter(|f| *f != "install-cni") {
        assert!(
            install_help.contains(&format!("--{flag}")),
            "install-cni has no --{flag}"
        );
    }

    // Probes hit the agent's metrics port.
    let metrics: SocketAddr = args["metrics-addr"].parse().expect("--metrics-addr");
    for (what, probe, path) in [
        ("liveness", &agent.liveness_probe, "/healthz"),
        ("readiness", &agent.readiness_probe, "/readyz"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("no {what} httpGet probe"));
        assert_eq!(get.path.as_deref(), Some(path), "{what} path");
        assert_eq!(
            probe_port(agent, &get.port),
            metrics.port(),
            "{what} port = --metrics-addr port"
        );
    }

    // Least privilege for the long-running agent: NET_ADMIN, nothing broader.
    let sc = agent.security_context.as_ref().expect("securityContext");
    assert_ne!(sc.privileged, Some(true), "the agent is not privileged");
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.add, Some(vec!["NET_ADMIN".to_owned()]));
    assert_eq!(caps.drop, Some(vec!["ALL".to_owned()]));

    // The cluster CIDR: --cluster-cidr from the jalur-config ConfigMap.
    let cidr_arg = &args["cluster-cidr"];
    let cidr = match cidr_arg
        .strip_prefix("$(")
        .and_then(|v| v.strip_suffix(')'))
    {
        None => cidr_arg.clone(),
        Some(var) => {
            let e = env
                .iter()
                .find(|e| e.name == var)
                .expect("the CIDR's env var");
            let key = e
                .value_from
                .as_ref()
                .and_then(|v| v.config_map_key_ref.as_ref())
                .expect("the CIDR comes from a ConfigMap");
            let cm = m
                .config_maps
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(key.name.as_str()))
                .expect("the ConfigMap is in the manifest");
            assert_eq!(key.name, "jalur-config");
            assert_eq!(cm.metadata.namespace.as_deref(), ns);
            cm.data.as_ref().unwrap()[&key.key].clone()
        }
    };
    assert_eq!(cidr, "10.244.0.0/16");
}
