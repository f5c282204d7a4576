//! A Jalur network on a simulated node: its config (any CNI version), its IPAM store in a
//! private temp dir, and the calls a runtime makes for a pod.

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::plugin::{CniCall, CniOutput};
use crate::Node;

/// One network of type `jalur` on one node.
pub struct Network {
    /// The node.
    pub node: Node,
    /// The network's name.
    pub name: String,
    /// Its config (without `cniVersion`, which each call sets).
    pub config: Value,
    /// The IPAM data directory (removed on drop).
    pub data_dir: TempDir,
}

impl Network {
    /// A network on a fresh node `192.168.<octet>.2` with the given range sets (host-local
    /// `ranges` JSON), e.g. `json!([[{"subnet": "10.244.1.0/24"}]])`.
    pub fn new(tag: &str, octet: u8, ranges: Value) -> Network {
        let node = Node::new(tag, octet);
        let data_dir = tempfile::Builder::new()
            .prefix("jalur-test-ipam")
            .tempdir()
            .expect("temp dir");
        let name = format!("jt-{tag}");
        let config = json!({
            "name": name,
            "type": "jalur",
            "ipam": {
                "type": "jalur-ipam",
                "ranges": ranges,
                "dataDir": data_dir.path(),
            }
        });
        Network {
            node,
            name,
            config,
            data_dir,
        }
    }

    /// The config as a runtime sends it for `version`, with an optional prevResult.
    pub fn stdin(&self, version: &str, prev: Option<&Value>) -> String {
        let mut c = self.config.clone();
        c["cniVersion"] = json!(version);
        if let Some(prev) = prev {
            c["prevResult"] = prev.clone();
        }
        c.to_string()
    }

    /// Calls `jalur` with `command` for (container, ifname) in `netns`.
    pub fn call(
        &self,
        command: &str,
        cid: &str,
        netns: &str,
        ifname: &str,
        stdin: &str,
    ) -> CniOutput {
        CniCall::new("jalur", command, cid, netns, ifname).run(&self.node.ns.name, stdin)
    }

    /// ADD with the newest version; asserts success and returns the result.
    pub fn add(&self, cid: &str, netns: &str) -> Value {
        self.call("ADD", cid, netns, "eth0", &self.stdin("1.1.0", None))
            .ok()
    }

    /// DEL with the newest version; asserts success.
    pub fn del(&self, cid: &str, netns: &str, prev: Option<&Value>) {
        self.call("DEL", cid, netns, "eth0", &self.stdin("1.1.0", prev))
            .ok();
    }

    /// The IPAM store's bookings: (container ID, ifname, ip).
    pub fn allocations(&self) -> Vec<(String, String, String)> {
        let path = self
            .data_dir
            .path()
            .join(&self.name)
            .join("allocations.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&text).expect("allocations.json parses");
        v["allocations"]
            .as_array()
            .expect("allocations array")
            .iter()
            .map(|a| {
                (
                    a["containerId"].as_str().unwrap().to_owned(),
                    a["ifname"].as_str().unwrap().to_owned(),
                    a["ip"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Asserts that nothing of the network is left: no host ends, no bookings.
    pub fn assert_clean(&self) {
        assert_eq!(
            self.node.host_ends(),
            Vec::<String>::new(),
            "host ends left behind"
        );
        assert_eq!(self.allocations(), Vec::new(), "addresses left booked");
    }
}

/// The first address of a result's `ips`, without its prefix length.
pub fn first_ip(result: &Value) -> String {
    let addr = result["ips"][0]["address"].as_str().expect("an address");
    addr.split('/').next().unwrap().to_owned()
}
