//! A fake Kubernetes API server for Nodes: list, watch and get of `/api/v1/nodes` over plain
//! HTTP/1.1, faithful enough that kube-rs's real client and `watcher` (what the agent runs)
//! work unchanged against it (no TLS, no auth).
//!
//! It keeps resource versions like the real server ([`store`]): a watch from version N streams
//! every change after N ([`watch`]), and one from a version older than the retained history
//! gets the real server's `410 Expired` ERROR event, so a client must relist.
//!
//! Faults for tests: [`drop_watches`](FakeApiServer::drop_watches) cuts every open watch
//! mid-stream, [`expire_history`](FakeApiServer::expire_history) makes every version handed
//! out so far too old, [`set_down`](FakeApiServer::set_down) is an outage (connections are
//! closed as soon as they are accepted, open ones are cut).
//!
//! Plain std threads ([`http`]): the fixture needs no async runtime.
//! [`FakeApiServer::start_in`] binds inside a network namespace (a simulated node), so agents
//! inside it reach the server there.

mod http;
mod objects;
mod store;
mod watch;

use std::fs::File;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use serde_json::Value;

pub use objects::node_json;
use store::{Inner, State};

/// The fake API server. Stops (threads end, listener closed) on drop.
pub struct FakeApiServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
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
            // Changes only this thread's network namespace; it ends right after binding.
            setns(File::open(&path)?, CloneFlags::CLONE_NEWNET)?;
            TcpListener::bind(bind)
        })
        .join()
        .map_err(|_| io::Error::other("the thread binding in the namespace panicked"))??;
        Self::serve(listener)
    }

    fn serve(listener: TcpListener) -> io::Result<FakeApiServer> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let inner = Arc::new(Inner::new());
        let accept = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("fake-apiserver-accept".into())
                .spawn(move || http::accept_loop(&inner, &listener))?
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

    /// Writes a kubeconfig pointing at [`url`](Self::url) (see [`kubeconfig_for`]).
    pub fn kubeconfig(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, kubeconfig_for(&self.url()))
    }

    /// Adds a Node or replaces the one of the same name (emitting ADDED or MODIFIED) and
    /// returns it as stored. It gets `kind`/`apiVersion`, a uid and creationTimestamp (kept
    /// from the replaced one), and a new resourceVersion. Replacing a node with identical
    /// content is a no-op, like on the real server. Panics without `metadata.name`.
    pub fn upsert_node(&self, node: Value) -> Value {
        self.inner.upsert(node)
    }

    /// Deletes a Node (emitting DELETED); false if there was none.
    pub fn delete_node(&self, name: &str) -> bool {
        self.inner.delete(name)
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
        let st = &mut *st;
        for (id, w) in st.watches.iter_mut() {
            w.dropped = true;
            if let Some(c) = st.conns.get(id) {
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
        self.inner.lock().expire_history();
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

/// A kubeconfig for the API server at `server` (a URL as the agent reaches it, which from a
/// node's namespace is not the fake's own listening address): one cluster, a user with no
/// credentials, and a context that is the current one.
pub fn kubeconfig_for(server: &str) -> String {
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         preferences: {{}}\n\
         clusters:\n\
         - name: jalur-fake\n  \
           cluster:\n    \
             server: {server}\n\
         users:\n\
         - name: jalur-fake\n  \
           user: {{}}\n\
         contexts:\n\
         - name: jalur-fake\n  \
           context:\n    \
             cluster: jalur-fake\n    \
             user: jalur-fake\n\
         current-context: jalur-fake\n"
    )
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
