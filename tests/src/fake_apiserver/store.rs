//! The stored Nodes and their resource versions, kept like the real server keeps them: every
//! change bumps one global counter, an object carries the version of its last change, a list
//! carries the current one, and the changes since `history_start` are kept for watches to
//! replay.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::TcpStream;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use serde_json::{json, Value};

use super::objects::rfc3339_now;
use super::watch::Watch;

/// What the server's threads share.
pub(super) struct Inner {
    pub(super) state: Mutex<State>,
    /// Signalled on every change, fault and on shutdown; watch streams wait on it.
    pub(super) cond: Condvar,
    /// Connection threads, joined (boundedly) on drop.
    pub(super) threads: Mutex<Vec<JoinHandle<()>>>,
}

/// An event as a watch sends it: its type (ADDED, MODIFIED, DELETED or ERROR) and object.
pub(super) type Event = (&'static str, Value);

/// One change, kept in the history and fanned out to open watches.
pub(super) struct Change {
    pub(super) rv: u64,
    /// The event; for DELETED the object's last state at the deletion's version.
    pub(super) event: Event,
}

pub(super) struct State {
    pub(super) nodes: BTreeMap<String, Value>,
    /// The current (latest) resource version.
    pub(super) rv: u64,
    /// Watches from versions older than this get 410 Expired.
    pub(super) history_start: u64,
    /// Changes after `history_start`.
    pub(super) history: Vec<Change>,
    uid_counter: u64,
    pub(super) down: bool,
    pub(super) stop: bool,
    /// Every request served so far: `METHOD path?query`.
    pub(super) log: Vec<String>,
    pub(super) next_conn: u64,
    /// Every open connection (a clone of its socket, to cut it).
    pub(super) conns: HashMap<u64, TcpStream>,
    /// Open watches, by connection id.
    pub(super) watches: HashMap<u64, Watch>,
}

impl Inner {
    pub(super) fn new() -> Inner {
        Inner {
            state: Mutex::new(State {
                nodes: BTreeMap::new(),
                rv: 1,
                history_start: 0,
                history: Vec::new(),
                uid_counter: 0,
                down: false,
                stop: false,
                log: Vec::new(),
                next_conn: 0,
                conns: HashMap::new(),
                watches: HashMap::new(),
            }),
            cond: Condvar::new(),
            threads: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// See [`FakeApiServer::upsert_node`](super::FakeApiServer::upsert_node).
    pub(super) fn upsert(&self, mut node: Value) -> Value {
        let name = node
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .expect("upsert_node: the node has no metadata.name")
            .to_owned();
        let mut st = self.lock();
        let old = st.nodes.get(&name).cloned();
        normalize(&mut node, &name);
        match &old {
            Some(old) => {
                carry_identity(&mut node, old);
                if node == *old {
                    return old.clone();
                }
            }
            None => {
                st.uid_counter += 1;
                let uid = format!("00000000-0000-4000-8000-{:012x}", st.uid_counter);
                set_meta(&mut node, "uid", json!(uid));
                if node.pointer("/metadata/creationTimestamp").is_none() {
                    set_meta(&mut node, "creationTimestamp", json!(rfc3339_now()));
                }
            }
        }
        let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.commit(&mut st, &name, kind, Some(node))
            .expect("an upsert stores the node")
    }

    /// See [`FakeApiServer::delete_node`](super::FakeApiServer::delete_node).
    pub(super) fn delete(&self, name: &str) -> bool {
        let mut st = self.lock();
        if !st.nodes.contains_key(name) {
            return false;
        }
        self.commit(&mut st, name, "DELETED", None);
        true
    }

    /// Stores `new` (or deletes on None) at a new version, records the change and fans it out
    /// to the open watches. Returns what was stored.
    fn commit(
        &self,
        st: &mut State,
        name: &str,
        kind: &'static str,
        new: Option<Value>,
    ) -> Option<Value> {
        st.rv += 1;
        let rv = st.rv;
        let object = match new {
            Some(mut node) => {
                set_meta(&mut node, "resourceVersion", json!(rv.to_string()));
                st.nodes.insert(name.to_owned(), node.clone());
                node
            }
            None => {
                let mut last = st.nodes.remove(name).expect("deleting a stored node");
                set_meta(&mut last, "resourceVersion", json!(rv.to_string()));
                last
            }
        };
        for w in st.watches.values_mut() {
            w.queue.push_back((kind, object.clone()));
        }
        st.history.push(Change {
            rv,
            event: (kind, object.clone()),
        });
        self.cond.notify_all();
        (kind != "DELETED").then_some(object)
    }
}

impl State {
    /// A NodeList of the nodes after `after` (by name), at most `limit` of them, with a
    /// `continue` token when more are left; it carries the current version.
    pub(super) fn list(&self, after: Option<&str>, limit: Option<usize>) -> Value {
        let mut items = Vec::new();
        let mut cont = None;
        for (name, node) in &self.nodes {
            if after.is_some_and(|a| name.as_str() <= a) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                cont = items
                    .last()
                    .and_then(|n: &Value| n.pointer("/metadata/name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                break;
            }
            // Items of a list carry no kind/apiVersion, like the real server's.
            let mut item = node.clone();
            if let Some(o) = item.as_object_mut() {
                o.remove("kind");
                o.remove("apiVersion");
            }
            items.push(item);
        }
        let mut metadata = json!({"resourceVersion": self.rv.to_string()});
        if let Some(c) = cont {
            metadata["continue"] = json!(c);
            metadata["remainingItemCount"] = json!(0);
        }
        json!({"kind": "NodeList", "apiVersion": "v1", "metadata": metadata, "items": items})
    }

    /// The events a watch from resource version `rv` starts with: for "" or "0" (any, most
    /// recent) a synthetic ADDED per current node, else the changes after `rv`. `Err(410)` if
    /// `rv` is older than the history kept, `Err(400)` if it is no version at all.
    pub(super) fn replay(&self, rv: &str) -> Result<VecDeque<Event>, u16> {
        if rv.is_empty() || rv == "0" {
            return Ok(self.nodes.values().map(|n| ("ADDED", n.clone())).collect());
        }
        match rv.parse::<u64>() {
            Ok(n) if n < self.history_start => Err(410),
            Ok(n) => Ok(self
                .history
                .iter()
                .filter(|c| c.rv > n)
                .map(|c| c.event.clone())
                .collect()),
            Err(_) => Err(400),
        }
    }

    /// Forgets the change history: see
    /// [`FakeApiServer::expire_history`](super::FakeApiServer::expire_history).
    pub(super) fn expire_history(&mut self) {
        self.rv += 1;
        self.history.clear();
        self.history_start = self.rv;
    }
}

/// Sets kind/apiVersion and the name.
fn normalize(node: &mut Value, name: &str) {
    if !node.is_object() {
        *node = json!({});
    }
    node["kind"] = json!("Node");
    node["apiVersion"] = json!("v1");
    set_meta(node, "name", json!(name));
}

/// Keeps the identity fields of the stored object.
fn carry_identity(node: &mut Value, old: &Value) {
    for key in ["uid", "creationTimestamp", "resourceVersion"] {
        if let Some(v) = old.pointer(&format!("/metadata/{key}")) {
            set_meta(node, key, v.clone());
        }
    }
}

fn set_meta(node: &mut Value, key: &str, value: Value) {
    if !node.get("metadata").is_some_and(Value::is_object) {
        node["metadata"] = json!({});
    }
    node["metadata"][key] = value;
}
