//! A fake Kubernetes API server for Nodes: list, watch, get and patch of `/api/v1/nodes` over
//! plain HTTP/1.1, faithful enough that kube-rs's real client and `watcher` run unchanged
//! against it (no TLS, no auth).
//!
//! It keeps a resource version like the real server: every change bumps one global counter,
//! objects carry the version of their last change, a list carries the current one, and a
//! watch from version N streams every change after N (chunked newline-delimited JSON events).
//! A watch from a version older than the retained history gets the real server's
//! `410 Expired` ERROR event, so a client must relist.
//!
//! Faults for tests: [`drop_watches`](FakeApiServer::drop_watches) cuts every open watch
//! mid-stream, [`expire_history`](FakeApiServer::expire_history) makes every version handed
//! out so far too old, [`set_down`](FakeApiServer::set_down) is an outage (connections are
//! closed as soon as they are accepted, open ones are cut).
//!
//! Plain std threads: the fixture needs no async runtime. [`FakeApiServer::start_in`] binds
//! inside a network namespace (a simulated node), so agents inside it reach the server there.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// The fake API server. Stops (threads end, listener closed) on drop.
pub struct FakeApiServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled on every change, fault and on shutdown; watch streams wait on it.
    cond: Condvar,
    /// Connection threads, joined (boundedly) on drop.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// One change, kept in the history and fanned out to open watches.
#[derive(Clone)]
struct Change {
    rv: u64,
    /// ADDED, MODIFIED or DELETED.
    kind: &'static str,
    /// The object before the change (None for ADDED).
    old: Option<Value>,
    /// The object after the change; for DELETED its last state at the deletion's version.
    new: Value,
}

struct Watch {
    selector: Selector,
    /// Events (type and object) not yet written.
    queue: VecDeque<(&'static str, Value)>,
    /// Cut by `drop_watches`.
    dropped: bool,
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, Value>,
    /// The current (latest) resource version.
    rv: u64,
    /// Watches from versions older than this get 410 Expired.
    history_start: u64,
    /// Changes after `history_start`.
    history: Vec<Change>,
    uid_counter: u64,
    down: bool,
    stop: bool,
    log: Vec<String>,
    next_conn: u64,
    /// Every open connection (a clone of its socket, to cut it).
    conns: HashMap<u64, TcpStream>,
    /// Open watches, by connection id.
    watches: HashMap<u64, Watch>,
}

impl FakeApiServer {
    /// Binds `bind` (port 0 picks one) in the caller's network namespace and starts serving.
    pub fn start(bind: SocketAddr) -> io::Result<FakeApiServer> {
        Self::serve(TcpListener::bind(bind)?)
    }

    /// Binds `bind` inside the network namespace at `netns_path` (e.g. `/run/netns/NAME`) and
    /// starts serving there. The socket is made on a short-lived thread that joins the
    /// namespace first; the caller's thread never changes namespace.
    pub fn start_in(netns_path: &str, bind: SocketAddr) -> io::Result<FakeApiServer> {
        let path = netns_path.to_owned();
        let listener = std::thread::spawn(move || -> io::Result<TcpListener> {
            let ns = File::open(&path)?;
            // SAFETY: setns on a valid fd; it changes only this thread's network namespace,
            // and this thread ends right after binding.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            TcpListener::bind(bind)
        })
        .join()
        .map_err(|_| io::Error::other("the thread binding in the namespace panicked"))??;
        Self::serve(listener)
    }

    fn serve(listener: TcpListener) -> io::Result<FakeApiServer> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                rv: 1,
                ..State::default()
            }),
            cond: Condvar::new(),
            threads: Mutex::new(Vec::new()),
        });
        let accept = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("fake-apiserver-accept".into())
                .spawn(move || accept_loop(&inner, &listener))?
        };
        Ok(FakeApiServer {
            inner,
            addr,
            accept: Some(accept),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig pointing at [`url`](Self::url): one cluster, a user with no
    /// credentials, and a context that is the current one.
    pub fn kubeconfig(&self, path: &Path) -> io::Result<()> {
        let text = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             preferences: {{}}\n\
             clusters:\n\
             - name: jalur-fake\n  \
               cluster:\n    \
                 server: {url}\n\
             users:\n\
             - name: jalur-fake\n  \
               user: {{}}\n\
             contexts:\n\
             - name: jalur-fake\n  \
               context:\n    \
                 cluster: jalur-fake\n    \
                 user: jalur-fake\n\
             current-context: jalur-fake\n",
            url = self.url()
        );
        std::fs::write(path, text)
    }

    /// Adds a Node or replaces the one of the same name (emitting ADDED or MODIFIED) and
    /// returns it as stored. It gets `kind`/`apiVersion`, a uid and creationTimestamp (kept
    /// from the replaced one), and a new resourceVersion. Replacing a node with identical
    /// content is a no-op, like on the real server. Panics without `metadata.name`.
    pub fn upsert_node(&self, node: Value) -> Value {
        let mut node = node;
        let name = node
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .expect("upsert_node: the node has no metadata.name")
            .to_owned();
        let mut st = self.inner.lock();
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
        let stored = self.inner.commit(&mut st, &name, old, Some(node));
        stored.expect("an upsert stores the node")
    }

    /// Deletes a Node (emitting DELETED); false if there was none.
    pub fn delete_node(&self, name: &str) -> bool {
        let mut st = self.inner.lock();
        let Some(old) = st.nodes.get(name).cloned() else {
            return false;
        };
        self.inner.commit(&mut st, name, Some(old), None);
        true
    }

    /// The current Nodes, by name.
    pub fn nodes(&self) -> Vec<Value> {
        self.inner.lock().nodes.values().cloned().collect()
    }

    /// The current Node called `name`.
    pub fn node(&self, name: &str) -> Option<Value> {
        self.inner.lock().nodes.get(name).cloned()
    }

    /// The current resource version.
    pub fn resource_version(&self) -> u64 {
        self.inner.lock().rv
    }

    /// How many watch streams are open now.
    pub fn open_watches(&self) -> usize {
        self.inner.lock().watches.len()
    }

    /// Cuts every open watch connection mid-stream (no end-of-body chunk), as a dropped
    /// connection or a restarting API server would.
    pub fn drop_watches(&self) {
        let mut st = self.inner.lock();
        let ids: Vec<u64> = st.watches.keys().copied().collect();
        for id in ids {
            if let Some(w) = st.watches.get_mut(&id) {
                w.dropped = true;
            }
            if let Some(c) = st.conns.get(&id) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
        self.inner.cond.notify_all();
    }

    /// Forgets the change history, as the real server's watch cache and etcd compaction do:
    /// the version moves on by one (other objects change in a real cluster too) and every
    /// version handed out before is too old, so a watch resumed from one gets `410 Expired`
    /// and the client must relist. Open watches go on undisturbed.
    pub fn expire_history(&self) {
        let mut st = self.inner.lock();
        st.rv += 1;
        st.history.clear();
        st.history_start = st.rv;
    }

    /// An outage: while down, every new connection is closed as soon as it is accepted, and
    /// going down cuts every open connection (watches included). Coming back up serves again
    /// with the state and history kept.
    pub fn set_down(&self, down: bool) {
        let mut st = self.inner.lock();
        st.down = down;
        if down {
            for c in st.conns.values() {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
        self.inner.cond.notify_all();
    }

    /// Every request served so far: `METHOD path?query`, as sent.
    pub fn request_log(&self) -> Vec<String> {
        self.inner.lock().log.clone()
    }

    /// Waits up to `timeout` for `cond` to hold on the request log; true if it did.
    pub fn wait_for_request(&self, timeout: Duration, cond: impl Fn(&[String]) -> bool) -> bool {
        self.wait_for(timeout, |st| cond(&st.log))
    }

    /// Waits up to `timeout` until at least `n` watches are open; true if they were.
    pub fn wait_for_watches(&self, n: usize, timeout: Duration) -> bool {
        self.wait_for(timeout, |st| st.watches.len() >= n)
    }

    /// Waits up to `timeout`, woken by every change of the state, until `cond` holds.
    fn wait_for(&self, timeout: Duration, cond: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.lock();
        loop {
            if cond(&st) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .inner
                .cond
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        {
            let mut st = self.inner.lock();
            st.stop = true;
            for c in st.conns.values() {
                let _ = c.shutdown(Shutdown::Both);
            }
            self.inner.cond.notify_all();
        }
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        // Connection threads end once their sockets are shut down; wait a bounded time.
        let deadline = Instant::now() + Duration::from_secs(3);
        let threads =
            std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `new` (or deletes on None) at a new version, records the change and fans it out
    /// to the open watches. Returns what was stored.
    fn commit(
        &self,
        st: &mut State,
        name: &str,
        old: Option<Value>,
        new: Option<Value>,
    ) -> Option<Value> {
        st.rv += 1;
        let rv = st.rv;
        let (kind, new) = match new {
            Some(mut node) => {
                set_meta(&mut node, "resourceVersion", json!(rv.to_string()));
                st.nodes.insert(name.to_owned(), node.clone());
                (if old.is_some() { "MODIFIED" } else { "ADDED" }, node)
            }
            None => {
                let mut last = st.nodes.remove(name).expect("deleting a stored node");
                set_meta(&mut last, "resourceVersion", json!(rv.to_string()));
                ("DELETED", last)
            }
        };
        let change = Change {
            rv,
            kind,
            old,
            new: new.clone(),
        };
        for w in st.watches.values_mut() {
            if let Some(ev) = w.selector.translate(&change) {
                w.queue.push_back(ev);
            }
        }
        st.history.push(change);
        self.cond.notify_all();
        (kind != "DELETED").then_some(new)
    }
}

fn accept_loop(inner: &Arc<Inner>, listener: &TcpListener) {
    loop {
        if inner.lock().stop {
            return;
        }
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, bounded timeout.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let id = {
            let mut st = inner.lock();
            if st.stop || st.down {
                // An outage (or shutting down): close at once.
                drop(stream);
                continue;
            }
            let Ok(clone) = stream.try_clone() else {
                continue;
            };
            st.next_conn += 1;
            let id = st.next_conn;
            st.conns.insert(id, clone);
            id
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_nodelay(true);
        let conn_inner = inner.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("fake-apiserver-conn-{id}"))
            .spawn(move || {
                let _ = serve_connection(&conn_inner, id, stream);
                let mut st = conn_inner.lock();
                if let Some(c) = st.conns.remove(&id) {
                    let _ = c.shutdown(Shutdown::Both);
                }
                st.watches.remove(&id);
                conn_inner.cond.notify_all();
            });
        let mut threads = inner.threads.lock().unwrap_or_else(|e| e.into_inner());
        threads.retain(|t| !t.is_finished());
        match spawned {
            Ok(t) => threads.push(t),
            Err(_) => {
                inner.lock().conns.remove(&id);
            }
        }
    }
}

struct Request {
    method: String,
    /// Path and query as sent.
    target: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request; None on a clean close before it.
fn read_request(r: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    // Tolerate stray empty lines between requests.
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad request line",
        ));
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut headers = Vec::new();
    let mut total = 0;
    loop {
        line.clear();
        let n = r.read_line(&mut line)?;
        total += n;
        if n == 0 || total > 256 * 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut req = Request {
        method,
        path: String::new(),
        query: Vec::new(),
        target,
        headers,
        body: Vec::new(),
    };
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    req.path = percent_decode(path);
    req.query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    if req
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = req.body.len();
            req.body.resize(start + size, 0);
            r.read_exact(&mut req.body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
        req.body.resize(len, 0);
        r.read_exact(&mut req.body)?;
    }
    Ok(Some(req))
}

fn serve_connection(inner: &Arc<Inner>, id: u64, stream: TcpStream) -> io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(req) = read_request(&mut reader)? else {
            return Ok(());
        };
        {
            let mut st = inner.lock();
            if st.stop || st.down {
                return Ok(());
            }
            st.log.push(format!("{} {}", req.method, req.target));
            inner.cond.notify_all();
        }
        let close = req
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let keep = if req.method == "GET"
            && req.path == "/api/v1/nodes"
            && matches!(req.param("watch"), Some("true" | "1"))
        {
            serve_watch(inner, id, &req, &mut out)?
        } else {
            let (code, body) = route(inner, &req);
            respond(&mut out, code, &body, close)?;
            true
        };
        if close || !keep {
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

fn respond(out: &mut TcpStream, code: u16, body: &Value, close: bool) -> io::Result<()> {
    let body = serde_json::to_vec(body).expect("serialize JSON");
    let mut msg = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache, private\r\n",
        reason_phrase(code),
        body.len()
    );
    if close {
        msg.push_str("Connection: close\r\n");
    }
    msg.push_str("\r\n");
    let mut bytes = msg.into_bytes();
    bytes.extend_from_slice(&body);
    out.write_all(&bytes)?;
    out.flush()
}

/// Writes one watch event, `{"type":..,"object":..}` and a newline, as one chunk.
fn write_chunk(out: &mut TcpStream, (kind, object): &(&str, Value)) -> io::Result<()> {
    let object = serde_json::to_string(object).expect("serialize JSON");
    let line = format!("{{\"type\":\"{kind}\",\"object\":{object}}}\n");
    let mut bytes = format!("{:x}\r\n", line.len()).into_bytes();
    bytes.extend_from_slice(line.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    out.write_all(&bytes)?;
    out.flush()
}

/// A watch stream. Returns whether the connection may serve another request (the stream
/// ended cleanly on its timeout or after an error event).
fn serve_watch(
    inner: &Arc<Inner>,
    id: u64,
    req: &Request,
    out: &mut TcpStream,
) -> io::Result<bool> {
    let selector = match Selector::from_request(req) {
        Ok(s) => s,
        Err(msg) => {
            respond(out, 400, &status(400, "BadRequest", &msg, None), false)?;
            return Ok(true);
        }
    };
    let deadline = req
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t));
    let rv = req.param("resourceVersion").unwrap_or("");

    // Set the watch up under the lock, so that no change slips between history and queue.
    let refused = {
        let mut st = inner.lock();
        let start = if rv.is_empty() || rv == "0" {
            // "Any"/"most recent": synthetic ADDED events for the current state first.
            Ok(st
                .nodes
                .values()
                .filter(|n| selector.matches(n))
                .map(|n| ("ADDED", n.clone()))
                .collect::<VecDeque<_>>())
        } else {
            match rv.parse::<u64>() {
                Ok(n) if n < st.history_start => Err(410),
                Ok(n) => Ok(st
                    .history
                    .iter()
                    .filter(|c| c.rv > n)
                    .filter_map(|c| selector.translate(c))
                    .collect()),
                Err(_) => Err(400),
            }
        };
        match start {
            Ok(queue) => {
                st.watches.insert(
                    id,
                    Watch {
                        selector,
                        queue,
                        dropped: false,
                    },
                );
                inner.cond.notify_all();
                None
            }
            Err(code) => Some(code),
        }
    };
    if refused == Some(400) {
        let msg = format!("resourceVersion: Invalid value: {rv:?}");
        respond(out, 400, &status(400, "BadRequest", &msg, None), false)?;
        return Ok(true);
    }
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
          Cache-Control: no-cache, private\r\n\r\n",
    )?;
    out.flush()?;
    if refused.is_some() {
        // As the real server: a 200 stream whose only event is the 410 error.
        let msg = format!("too old resource version: {rv}");
        write_chunk(out, &("ERROR", status(410, "Expired", &msg, None)))?;
        out.write_all(b"0\r\n\r\n")?;
        out.flush()?;
        return Ok(true);
    }

    let result = (|| -> io::Result<bool> {
        loop {
            let (events, end) = {
                let mut st = inner.lock();
                loop {
                    let cut = st.watches.get(&id).is_none_or(|w| w.dropped);
                    if cut || st.stop || st.down {
                        break (Vec::new(), Some(false));
                    }
                    let w = st.watches.get_mut(&id).expect("watch present");
                    if !w.queue.is_empty() {
                        break (w.queue.drain(..).collect::<Vec<_>>(), None);
                    }
                    let wait = match deadline {
                        Some(d) => {
                            let now = Instant::now();
                            if now >= d {
                                break (Vec::new(), Some(true));
                            }
                            (d - now).min(Duration::from_secs(1))
                        }
                        None => Duration::from_secs(1),
                    };
                    st = inner
                        .cond
                        .wait_timeout(st, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            };
            for ev in &events {
                write_chunk(out, ev)?;
            }
            match end {
                None => continue,
                Some(true) => {
                    // timeoutSeconds reached: end the body cleanly.
                    out.write_all(b"0\r\n\r\n")?;
                    out.flush()?;
                    return Ok(true);
                }
                Some(false) => {
                    // Cut: no end-of-body chunk.
                    let _ = out.shutdown(Shutdown::Both);
                    return Ok(false);
                }
            }
        }
    })();
    let mut st = inner.lock();
    st.watches.remove(&id);
    inner.cond.notify_all();
    result
}

/// Everything but watches.
fn route(inner: &Arc<Inner>, req: &Request) -> (u16, Value) {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["version"]) => (
            200,
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
            }),
        ),
        ("GET", ["healthz" | "readyz" | "livez"]) => (200, json!("ok")),
        ("GET", ["api"]) => (
            200,
            json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "apiserver"}
                ],
            }),
        ),
        ("GET", ["api", "v1"]) => (
            200,
            json!({
                "kind": "APIResourceList",
                "groupVersion": "v1",
                "resources": [
                    {"name": "nodes", "singularName": "node", "namespaced": false, "kind": "Node",
                     "verbs": ["get", "list", "patch", "watch"], "shortNames": ["no"]},
                    {"name": "nodes/status", "singularName": "", "namespaced": false,
                     "kind": "Node", "verbs": ["get", "patch"]},
                ],
            }),
        ),
        ("GET", ["api", "v1", "nodes"]) => list(inner, req),
        ("GET", ["api", "v1", "nodes", name] | ["api", "v1", "nodes", name, "status"]) => {
            match inner.lock().nodes.get(*name) {
                Some(n) => (200, n.clone()),
                None => not_found(name),
            }
        }
        ("PATCH", ["api", "v1", "nodes", name]) => patch(inner, req, name, false),
        ("PATCH", ["api", "v1", "nodes", name, "status"]) => patch(inner, req, name, true),
        (_, ["api", "v1", "nodes", ..]) => (
            405,
            status(
                405,
                "MethodNotAllowed",
                &format!(
                    "the server does not allow this method on the requested resource: {}",
                    req.method
                ),
                None,
            ),
        ),
        _ => (
            404,
            status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                None,
            ),
        ),
    }
}

fn list(inner: &Arc<Inner>, req: &Request) -> (u16, Value) {
    let selector = match Selector::from_request(req) {
        Ok(s) => s,
        Err(msg) => return (400, status(400, "BadRequest", &msg, None)),
    };
    let st = inner.lock();
    let after = req.param("continue").filter(|c| !c.is_empty());
    let limit = req
        .param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut items = Vec::new();
    let mut cont = None;
    for (name, node) in &st.nodes {
        if after.is_some_and(|a| name.as_str() <= a) || !selector.matches(node) {
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
    let mut metadata = json!({"resourceVersion": st.rv.to_string()});
    if let Some(c) = cont {
        metadata["continue"] = json!(c);
        metadata["remainingItemCount"] = json!(0);
    }
    (
        200,
        json!({"kind": "NodeList", "apiVersion": "v1", "metadata": metadata, "items": items}),
    )
}

fn patch(inner: &Arc<Inner>, req: &Request, name: &str, status_sub: bool) -> (u16, Value) {
    let ctype = req
        .header("content-type")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            let msg = format!("error decoding patch: {e}");
            return (400, status(400, "BadRequest", &msg, None));
        }
    };
    let mut st = inner.lock();
    let Some(old) = st.nodes.get(name).cloned() else {
        return not_found(name);
    };
    let mut new = old.clone();
    match ctype.as_str() {
        "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/apply-patch+yaml"
        | "application/apply-patch+json" => {
            if let Some(want) = body
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
            {
                if Some(want)
                    != old
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                {
                    let msg = format!(
                        "Operation cannot be fulfilled on nodes \"{name}\": the object has been \
                         modified; please apply your changes to the latest version and try again"
                    );
                    return (409, status(409, "Conflict", &msg, Some(name)));
                }
            }
            merge_patch(&mut new, &body);
        }
        "application/json-patch+json" => {
            if let Err(msg) = json_patch(&mut new, &body) {
                return (422, status(422, "Invalid", &msg, Some(name)));
            }
        }
        other => {
            let msg = format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})");
            return (415, status(415, "UnsupportedMediaType", &msg, None));
        }
    }
    // The main resource ignores status changes; the status subresource takes only them.
    if status_sub {
        let patched_status = new.get("status").cloned();
        new = old.clone();
        match patched_status {
            Some(s) => new["status"] = s,
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    } else {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    if new.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
        return (
            422,
            status(
                422,
                "Invalid",
                "metadata.name: Invalid value: field is immutable",
                Some(name),
            ),
        );
    }
    normalize(&mut new, name);
    carry_identity(&mut new, &old);
    if new == old {
        return (200, old);
    }
    let stored = inner.commit(&mut st, name, Some(old), Some(new));
    (200, stored.expect("a patch stores the node"))
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// RFC 6902 JSON patch: add, remove, replace, test (no move/copy).
fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch.as_array().ok_or("a JSON patch must be an array")?;
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).ok_or("op missing")?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("path missing")?;
        let (parent_path, last) = path.rsplit_once('/').ok_or("bad path")?;
        let last = last.replace("~1", "/").replace("~0", "~");
        match kind {
            "test" => {
                if target.pointer(path) != op.get("value") {
                    return Err(format!("test failed at {path}"));
                }
            }
            "add" | "replace" | "remove" => {
                let parent = target
                    .pointer_mut(parent_path)
                    .ok_or_else(|| format!("no parent for {path}"))?;
                match parent {
                    Value::Object(o) => match kind {
                        "remove" => {
                            o.remove(&last)
                                .ok_or_else(|| format!("nothing at {path}"))?;
                        }
                        _ => {
                            if kind == "replace" && !o.contains_key(&last) {
                                return Err(format!("nothing at {path}"));
                            }
                            o.insert(last, op.get("value").cloned().unwrap_or(Value::Null));
                        }
                    },
                    Value::Array(a) => {
                        let value = op.get("value").cloned().unwrap_or(Value::Null);
                        if kind == "add" && last == "-" {
                            a.push(value);
                        } else {
                            let i: usize =
                                last.parse().map_err(|_| format!("bad index in {path}"))?;
                            match kind {
                                "add" if i <= a.len() => a.insert(i, value),
                                "replace" if i < a.len() => a[i] = value,
                                "remove" if i < a.len() => {
                                    a.remove(i);
                                }
                                _ => return Err(format!("index out of range in {path}")),
                            }
                        }
                    }
                    _ => return Err(format!("no container at {parent_path}")),
                }
            }
            other => return Err(format!("unsupported op {other}")),
        }
    }
    Ok(())
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

fn status(code: u16, reason: &str, message: &str, name: Option<&str>) -> Value {
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

fn not_found(name: &str) -> (u16, Value) {
    let msg = format!("nodes \"{name}\" not found");
    (404, status(404, "NotFound", &msg, Some(name)))
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        _ => "Error",
    }
}

/// Field and label selectors (`fieldSelector`, `labelSelector`): `k=v`, `k==v`, `k!=v`, and for
/// labels also `k`, `!k`, `k in (a,b)`, `k notin (a,b)`. Fields are dotted paths
/// (`metadata.name`, `spec.unschedulable`).
#[derive(Default)]
struct Selector {
    fields: Vec<Req>,
    labels: Vec<Req>,
}

enum Req {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl Selector {
    fn from_request(req: &Request) -> Result<Selector, String> {
        let mut s = Selector::default();
        if let Some(f) = req.param("fieldSelector") {
            s.fields = parse_selector(f, false)?;
        }
        if let Some(l) = req.param("labelSelector") {
            s.labels = parse_selector(l, true)?;
        }
        Ok(s)
    }

    fn matches(&self, node: &Value) -> bool {
        let field = |k: &str| -> Option<String> {
            let v = node.pointer(&format!("/{}", k.replace('.', "/")))?;
            Some(match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        let label = |k: &str| -> Option<String> {
            node.get("metadata")?
                .get("labels")?
                .get(k)?
                .as_str()
                .map(str::to_owned)
        };
        let ok = |r: &Req, get: &dyn Fn(&str) -> Option<String>| match r {
            Req::Eq(k, v) => get(k).unwrap_or_default() == *v,
            Req::Ne(k, v) => get(k).unwrap_or_default() != *v,
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.contains(&x)),
            Req::NotIn(k, vs) => !get(k).is_some_and(|x| vs.contains(&x)),
        };
        self.fields.iter().all(|r| ok(r, &field)) && self.labels.iter().all(|r| ok(r, &label))
    }

    /// The event this change shows a watch with this selector, as the real server does:
    /// an object moving into the selection is ADDED, one moving out is DELETED.
    fn translate(&self, c: &Change) -> Option<(&'static str, Value)> {
        let was = c.old.as_ref().is_some_and(|o| self.matches(o));
        let is = self.matches(&c.new);
        let kind = match (c.kind, was, is) {
            ("ADDED", _, true) => "ADDED",
            ("MODIFIED", true, true) => "MODIFIED",
            ("MODIFIED", false, true) => "ADDED",
            ("MODIFIED", true, false) => "DELETED",
            ("DELETED", true, _) | ("DELETED", _, true) => "DELETED",
            _ => return None,
        };
        Some((kind, c.new.clone()))
    }
}

fn parse_selector(s: &str, labels: bool) -> Result<Vec<Req>, String> {
    // Split on commas outside parentheses.
    let mut parts = Vec::new();
    let (mut depth, mut cur) = (0i32, String::new());
    for ch in s.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    parts.push(cur);
    let mut reqs = Vec::new();
    for p in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let bad = || format!("unable to parse requirement: {p:?}");
        let req = if let Some((k, v)) = p.split_once("!=") {
            Req::Ne(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
            Req::Eq(k.trim().into(), v.trim().into())
        } else if !labels {
            return Err(bad());
        } else if let Some(k) = p.strip_prefix('!') {
            Req::NotExists(k.trim().into())
        } else if let Some((k, rest)) = p.split_once(" notin ") {
            Req::NotIn(k.trim().into(), set_values(rest).ok_or_else(bad)?)
        } else if let Some((k, rest)) = p.split_once(" in ") {
            Req::In(k.trim().into(), set_values(rest).ok_or_else(bad)?)
        } else if p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            Req::Exists(p.into())
        } else {
            return Err(bad());
        };
        reqs.push(req);
    }
    Ok(reqs)
}

fn set_values(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The current time as RFC 3339 in UTC, seconds precision, as Kubernetes writes timestamps.
fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge_patch(&mut v, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(v, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }

    #[test]
    fn json_patch_ops() {
        let mut v = json!({"metadata": {"labels": {"a/b": "1"}}, "l": [1, 2]});
        let p = json!([
            {"op": "test", "path": "/metadata/labels/a~1b", "value": "1"},
            {"op": "add", "path": "/metadata/labels/c", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a~1b"},
            {"op": "replace", "path": "/l/0", "value": 9},
            {"op": "add", "path": "/l/-", "value": 3},
        ]);
        json_patch(&mut v, &p).unwrap();
        assert_eq!(
            v,
            json!({"metadata": {"labels": {"c": "2"}}, "l": [9, 2, 3]})
        );
        let bad = json!([{"op": "test", "path": "/l/0", "value": 1}]);
        assert!(json_patch(&mut v, &bad).is_err());
    }

    #[test]
    fn kubeconfig_text() {
        let s = FakeApiServer::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kc");
        s.kubeconfig(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(&format!("    server: {}\n", s.url())),
            "{text}"
        );
        assert!(text.contains("current-context: jalur-fake\n"), "{text}");
    }

    #[test]
    fn selectors() {
        let n = node_json("n1", "10.0.0.1", &["10.244.1.0/24"]);
        let sel = |f: &str, l: &str| Selector {
            fields: parse_selector(f, false).unwrap(),
            labels: parse_selector(l, true).unwrap(),
        };
        assert!(sel("metadata.name=n1", "").matches(&n));
        assert!(!sel("metadata.name=n2", "").matches(&n));
        assert!(sel("metadata.name!=n2", "kubernetes.io/os=linux").matches(&n));
        assert!(sel("", "kubernetes.io/os in (linux,windows),!foo").matches(&n));
        assert!(!sel("", "kubernetes.io/os notin (linux)").matches(&n));
        assert!(sel("", "kubernetes.io/hostname").matches(&n));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("metadata.name%3Dn1"), "metadata.name=n1");
        assert_eq!(percent_decode("a+b%2"), "a b%2");
    }

    #[test]
    fn timestamps_look_right() {
        let t = rfc3339_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
