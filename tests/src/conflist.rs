//! A small stand-in for libcni: runs a conflist's plugins in order for ADD (each given the
//! previous result as `prevResult`, and `runtimeConfig` for the capabilities it declares) and
//! in reverse for DEL, picking the version from `cniVersion` or `cniVersions`.

use serde_json::{json, Value};

use crate::plugin::CniCall;

/// A conflist and the runtime's per-call arguments.
pub struct ConfList {
    /// The conflist JSON.
    pub list: Value,
    /// `runtimeConfig` values offered to plugins that declare the capability.
    pub runtime_config: Value,
}

const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

impl ConfList {
    /// The version libcni would pick: the highest of `cniVersions` it knows, else `cniVersion`.
    pub fn version(&self) -> String {
        if let Some(list) = self.list["cniVersions"].as_array() {
            let mut known: Vec<&str> = list
                .iter()
                .filter_map(Value::as_str)
                .filter(|v| SUPPORTED.contains(v))
                .collect();
            known.sort_by_key(|v| SUPPORTED.iter().position(|s| s == v));
            if let Some(v) = known.last() {
                return (*v).to_owned();
            }
        }
        self.list["cniVersion"]
            .as_str()
            .expect("cniVersion")
            .to_owned()
    }

    fn plugin_conf(&self, plugin: &Value, prev: Option<&Value>) -> Value {
        let mut conf = plugin.clone();
        conf["name"] = self.list["name"].clone();
        conf["cniVersion"] = json!(self.version());
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        if let Some(caps) = plugin["capabilities"].as_object() {
            let mut rc = serde_json::Map::new();
            for (cap, on) in caps {
                if on.as_bool() == Some(true) {
                    if let Some(v) = self.runtime_config.get(cap) {
                        rc.insert(cap.clone(), v.clone());
                    }
                }
            }
            conf["runtimeConfig"] = Value::Object(rc);
        }
        conf
    }

    fn plugins(&self) -> Vec<Value> {
        self.list["plugins"].as_array().expect("plugins").clone()
    }

    /// ADD through the whole list in `node_ns`; returns the final result.
    pub fn add(&self, node_ns: &str, cid: &str, netns: &str, ifname: &str) -> Value {
        let mut prev: Option<Value> = None;
        for plugin in self.plugins() {
            let conf = self.plugin_conf(&plugin, prev.as_ref());
            let out = CniCall::new(plugin["type"].as_str().unwrap(), "ADD", cid, netns, ifname)
                .run(node_ns, &conf.to_string());
            prev = Some(out.ok());
        }
        prev.expect("a plugin")
    }

    /// DEL through the list in reverse, each given the final result.
    pub fn del(&self, node_ns: &str, cid: &str, netns: &str, ifname: &str, result: &Value) {
        for plugin in self.plugins().iter().rev() {
            let conf = self.plugin_conf(plugin, Some(result));
            CniCall::new(plugin["type"].as_str().unwrap(), "DEL", cid, netns, ifname)
                .run(node_ns, &conf.to_string())
                .ok();
        }
    }
}
