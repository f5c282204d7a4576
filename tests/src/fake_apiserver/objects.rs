//! The JSON the fake hands out besides stored Nodes: a realistic Node to store, `Status`
//! objects for errors, `/version`, and Kubernetes' timestamps.

use serde_json::{json, Map, Value};

/// The Kubernetes version `/version` reports.
const MAJOR: &str = "1";
const MINOR: &str = "33";

/// A realistic v1 Node: `spec.podCIDR` (the first CIDR), `spec.podCIDRs`, and
/// `status.addresses` with its InternalIP and Hostname, plus the usual hostname/os labels.
pub fn node_json(name: &str, internal_ip: &str, pod_cidrs: &[&str]) -> Value {
    let mut spec = Map::new();
    if let Some(first) = pod_cidrs.first() {
        spec.insert("podCIDR".into(), json!(first));
        spec.insert("podCIDRs".into(), json!(pod_cidrs));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": spec,
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": internal_ip},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": rfc3339_now(),
                "lastTransitionTime": rfc3339_now(),
            }],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": format!("v{MAJOR}.{MINOR}.0"),
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "containerd://1.7.0",
                "kernelVersion": "6.1.0",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    })
}

/// What `GET /version` answers.
pub(super) fn version() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": format!("v{MAJOR}.{MINOR}.0"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// A failure `Status`, as the real server answers errors (and as a watch's ERROR event
/// carries them).
pub(super) fn status(code: u16, reason: &str, message: &str, name: Option<&str>) -> Value {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(name) = name {
        s["details"] = json!({"name": name, "kind": "nodes"});
    }
    s
}

pub(super) fn not_found(name: &str) -> (u16, Value) {
    let msg = format!("nodes \"{name}\" not found");
    (404, status(404, "NotFound", &msg, Some(name)))
}

/// The current time as RFC 3339 in UTC, seconds precision, as Kubernetes writes timestamps.
pub(super) fn rfc3339_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_look_right() {
        let t = rfc3339_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
