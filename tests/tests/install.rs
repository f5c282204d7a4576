//! Installing Jalur: the cluster manifest (deploy/jalur.yaml) read into Kubernetes' own types
//! and checked against what the agent needs, `jalur-agent install-cni`, the node scripts
//! (scripts/install.sh, scripts/uninstall.sh) against a temp prefix, and the agent's start-up
//! hygiene. Only the last one needs root (a network namespace for the agent); nothing here
//! touches the real system's files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use jalur_tests::cluster::wait_until;
use jalur_tests::{bin_dir, require_root, Netns};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn manifest_path() -> PathBuf {
    repo().join("deploy/jalur.yaml")
}

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

/// `kubernetes-validate --strict`: the manifest against the API's own JSON schemas, rejecting
/// unknown fields. `pip install kubernetes-validate` (scripts/test.sh does).
#[test]
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

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path).unwrap().modified().unwrap()
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
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

#[test]
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

#[test]
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

/// The install scripts parse, and shellcheck (`apt-get install shellcheck`) finds nothing in
/// them. scripts/minikube.sh cannot run here (no docker engine, no minikube): this is the
/// check it gets.
#[test]
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
