//! The simulated cluster: nodes as network namespaces on an underlay, a second L3 subnet
//! behind a router, an "outside" host, an agent per node in file mode, and pods made with the
//! built `jalur` from the conflist each agent wrote.
//!
//! ```text
//!  subnet A 192.168.<a>.0/24 (bridge ns)      router ns        subnet B 192.168.<b>.0/24
//!    node1 .2   node2 .3   router .1  <----> routes A,B,X <---->  router .1   node3 .4
//!                                              |
//!                                     outside 172.31.<a>.2 (router 172.31.<a>.1)
//! ```
//! Node i owns pod subnets 10.<net>.i.0/24 and fd00:<net>:i::/64. Every namespace, process
//! and file is the fixture's own and is removed on drop.
//!
//! [`Cluster::new_ipv6_only`] builds the same shape with IPv6 only: subnets fd00:<a>::/64 and
//! fd00:<b>::/64 (router ::1, nodes ::2, ::3 and ::4), pod subnets fd00:<net>:i::/64.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::conflist::ConfList;
use crate::netns::Netns;
use crate::plugin::bin_dir;
use crate::sh;

/// One simulated node.
pub struct SimNode {
    /// Its name (the Node object's).
    pub name: String,
    /// Its namespace.
    pub ns: Netns,
    /// Its underlay address: IPv4, or IPv6 in an IPv6-only cluster.
    pub ip: String,
    /// Its underlay IPv6 address besides an IPv4 `ip`, when on a subnet that has IPv6.
    pub ip6: Option<String>,
    /// Its pod subnets.
    pub pod_cidrs: Vec<String>,
    /// The agent's CNI config dir and state dir (under the cluster's temp dir).
    pub conf_dir: PathBuf,
    /// The agent's state dir.
    pub state_dir: PathBuf,
    /// The running agent, if any.
    pub agent: Option<Child>,
}

/// The whole simulated cluster.
pub struct Cluster {
    /// Nodes 1 and 2 share subnet A; node 3 is on subnet B behind the router.
    pub nodes: Vec<SimNode>,
    /// The router between the subnets.
    pub router: Netns,
    /// A host outside the cluster.
    pub outside: Netns,
    /// Bridges of subnets A and B (their namespaces).
    pub bridges: Vec<Netns>,
    /// The NodeList file the agents read.
    pub nodes_file: PathBuf,
    /// Agents' mode flag.
    pub mode: String,
    /// The outside host's address.
    pub outside_ip: String,
    /// Pods made so far, for cleanup.
    pods: Vec<(usize, String, Netns, Value)>,
    dir: TempDir,
    net: u8,
}

impl Cluster {
    /// Builds the namespaces (no agents yet). `net` keeps parallel tests' addresses apart in
    /// messages (each cluster is isolated anyway): subnets 192.168.<net>.0/24 (A),
    /// 192.168.<net+100>.0/24 (B), pods 10.<net>.i.0/24.
    pub fn new(tag: &str, net: u8, mode: &str) -> Cluster {
        Self::build(tag, net, mode, false)
    }

    /// The same shape with IPv6 only: no IPv4 address on any node, IPv6 pod subnets only.
    pub fn new_ipv6_only(tag: &str, net: u8, mode: &str) -> Cluster {
        Self::build(tag, net, mode, true)
    }

    fn build(tag: &str, net: u8, mode: &str, v6_only: bool) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("jalur-cluster")
            .tempdir()
            .unwrap();
        let router = Netns::new(&format!("{tag}-rt"));
        let outside = Netns::new(&format!("{tag}-out"));
        let (a, b) = (net, net + 100);
        let bridges = vec![
            Netns::new(&format!("{tag}-brA")),
            Netns::new(&format!("{tag}-brB")),
        ];
        for (i, br) in bridges.iter().enumerate() {
            let subnet = if i == 0 { a } else { b };
            sh(&format!(
                "ip -n {br} link add br0 type bridge && ip -n {br} link set br0 up && \
                 ip -n {br} link add rt type veth peer name leg{i} netns {rt} && \
                 ip -n {br} link set rt master br0 up && \
                 ip -n {rt} addr add 192.168.{subnet}.1/24 dev leg{i} && \
                 ip -n {rt} link set leg{i} up",
                br = br.name,
                rt = router.name
            ));
        }
        sh(&format!(
            "ip -n {rt} addr add fd00:{a}::1/64 dev leg0 nodad && \
             ip -n {rt} addr add fd00:{b}::1/64 dev leg1 nodad && \
             ip netns exec {rt} sysctl -qw net.ipv6.conf.all.forwarding=1 && \
             ip -n {rt} link add ext type veth peer name eth0 netns {out} && \
             ip -n {rt} addr add 172.31.{a}.1/24 dev ext && ip -n {rt} link set ext up && \
             ip -n {out} addr add 172.31.{a}.2/24 dev eth0 && ip -n {out} link set eth0 up && \
             ip -n {out} route add default via 172.31.{a}.1 && \
             ip netns exec {rt} sysctl -qw net.ipv4.ip_forward=1",
            rt = router.name,
            out = outside.name
        ));
        let mut nodes = Vec::new();
        for i in 1..=3u8 {
            let (subnet, host, br) = if i < 3 {
                (a, i + 1, &bridges[0])
            } else {
                (b, 4, &bridges[1])
            };
            let ns = Netns::new(&format!("{tag}-n{i}"));
            sh(&format!(
                "ip -n {n} link add eth0 type veth peer name n{i} netns {br} && \
                 ip -n {br} link set n{i} master br0 up && ip -n {n} link set eth0 up",
                n = ns.name,
                br = br.name
            ));
            let (ip, ip6) = if v6_only {
                let ip = format!("fd00:{subnet}::{host}");
                sh(&format!(
                    "ip -n {n} addr add {ip}/64 dev eth0 nodad && \
                     ip -n {n} -6 route add default via fd00:{subnet}::1",
                    n = ns.name
                ));
                (ip, None)
            } else {
                let ip = format!("192.168.{subnet}.{host}");
                sh(&format!(
                    "ip -n {n} addr add {ip}/24 dev eth0 && \
                     ip -n {n} route add default via 192.168.{subnet}.1",
                    n = ns.name
                ));
                let ip6 = (i < 3).then(|| format!("fd00:{a}::{host}"));
                if let Some(ip6) = &ip6 {
                    sh(&format!(
                        "ip -n {} addr add {ip6}/64 dev eth0 nodad",
                        ns.name
                    ));
                }
                (ip, ip6)
            };
            let v6_cidr = format!("fd00:{net}:{i}::/64");
            let pod_cidrs = if v6_only {
                vec![v6_cidr]
            } else {
                vec![format!("10.{net}.{i}.0/24"), v6_cidr]
            };
            let name = format!("node{i}");
            let node_dir = dir.path().join(&name);
            nodes.push(SimNode {
                name,
                ns,
                ip,
                ip6,
                pod_cidrs,
                conf_dir: node_dir.join("net.d"),
                state_dir: node_dir.join("state"),
                agent: None,
            });
        }
        let nodes_file = dir.path().join("nodes.json");
        let mut cluster = Cluster {
            nodes,
            router,
            outside,
            bridges,
            nodes_file,
            mode: mode.into(),
            outside_ip: format!("172.31.{a}.2"),
            pods: Vec::new(),
            dir,
            net,
        };
        cluster.write_nodes_file(&[0, 1, 2]);
        cluster
    }

    /// A v1 Node object for node `i`.
    pub fn node_object(&self, i: usize) -> Value {
        let n = &self.nodes[i];
        let mut addresses = vec![json!({"type": "InternalIP", "address": n.ip})];
        if let Some(ip6) = &n.ip6 {
            addresses.push(json!({"type": "InternalIP", "address": ip6}));
        }
        addresses.push(json!({"type": "Hostname", "address": n.name}));
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": n.name},
            "spec": {"podCIDR": n.pod_cidrs[0], "podCIDRs": n.pod_cidrs},
            "status": {"addresses": addresses}
        })
    }

    /// The cluster's temp dir (agent logs, nodes file, kubeconfigs).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Writes the NodeList with the given nodes (atomically, as an operator's tool would).
    pub fn write_nodes_file(&mut self, which: &[usize]) {
        let items: Vec<Value> = which.iter().map(|i| self.node_object(*i)).collect();
        let list = json!({"apiVersion": "v1", "kind": "NodeList", "items": items});
        let tmp = self.dir.path().join(".nodes.tmp");
        std::fs::write(&tmp, list.to_string()).unwrap();
        std::fs::rename(&tmp, &self.nodes_file).unwrap();
    }

    /// Starts node `i`'s agent in file mode with `extra` flags.
    pub fn start_agent(&mut self, i: usize, extra: &[&str]) {
        let file = self.nodes_file.display().to_string();
        self.start_agent_with(i, &["--nodes-file", &file], extra);
    }

    /// Starts node `i`'s agent with the given source flags (`--nodes-file F` or
    /// `--kubeconfig K`) and `extra` flags.
    pub fn start_agent_with(&mut self, i: usize, source: &[&str], extra: &[&str]) {
        self.start_agent_wrapped(i, &[], &[], source, extra);
    }

    /// Like [`start_agent_with`](Self::start_agent_with), with the agent run through
    /// `wrapper` (a command that execs its arguments, e.g. `unshare -m sh -c '…; exec "$0"
    /// "$@"'`) and with the environment variables `env` set.
    pub fn start_agent_wrapped(
        &mut self,
        i: usize,
        wrapper: &[&str],
        env: &[(&str, &str)],
        source: &[&str],
        extra: &[&str],
    ) {
        let n = &mut self.nodes[i];
        let agent = bin_dir().join("jalur-agent");
        let log =
            std::fs::File::create(self.dir.path().join(format!("{}-agent.log", n.name))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &n.ns.name])
            .args(wrapper)
            .envs(env.iter().copied())
            .arg(agent)
            .args(["--node-name", &n.name])
            .args(source)
            .arg("--cni-conf-dir")
            .arg(&n.conf_dir)
            .arg("--state-dir")
            .arg(&n.state_dir)
            .args(["--cni-bin-dir", "/usr/lib/cni", "--mode", &self.mode])
            .args(["--metrics-addr", "127.0.0.1:9644", "--resync-seconds", "1"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start jalur-agent");
        n.agent = Some(child);
    }

    /// Starts every node's agent and waits until each has written its conflist.
    pub fn start_agents(&mut self) {
        for i in 0..self.nodes.len() {
            self.start_agent(i, &[]);
        }
        for i in 0..self.nodes.len() {
            self.wait_ready(i);
        }
    }

    /// Waits (bounded) until node `i`'s agent has written its conflist and readiness mark.
    pub fn wait_ready(&self, i: usize) {
        let n = &self.nodes[i];
        let ok = wait_until(Duration::from_secs(20), || {
            n.conf_dir.join("10-jalur.conflist").exists() && n.state_dir.join("ready").exists()
        });
        assert!(
            ok,
            "agent of {} never became ready:\n{}",
            n.name,
            self.agent_log(i)
        );
    }

    /// GETs `path` from node `i`'s agent (its metrics address), as a plain HTTP/1.0 client:
    /// the whole response, head and body.
    pub fn agent_http(&self, i: usize, path: &str) -> String {
        self.nodes[i].ns.exec(&format!(
            "bash -c 'exec 3<>/dev/tcp/127.0.0.1/9644; printf \"GET {path} HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3'"
        ))
    }

    /// Node `i`'s agent log.
    pub fn agent_log(&self, i: usize) -> String {
        std::fs::read_to_string(
            self.dir
                .path()
                .join(format!("{}-agent.log", self.nodes[i].name)),
        )
        .unwrap_or_default()
    }

    /// Stops node `i`'s agent with SIGTERM and waits for it.
    pub fn stop_agent(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].agent.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("agent of {} ignored SIGTERM for 10 s", self.nodes[i].name);
        }
    }

    /// The conflist node `i`'s agent wrote.
    pub fn conflist(&self, i: usize) -> ConfList {
        let text =
            std::fs::read_to_string(self.nodes[i].conf_dir.join("10-jalur.conflist")).unwrap();
        ConfList {
            list: serde_json::from_str(&text).unwrap(),
            runtime_config: json!({"portMappings": []}),
        }
    }

    /// Makes a pod on node `i` with the conflist its agent wrote; returns (netns name, its
    /// first address: IPv4 where it has one, its IPv6 address beside an IPv4 one).
    pub fn add_pod(&mut self, i: usize, name: &str) -> (String, String, Option<String>) {
        let pod = Netns::new(name);
        let cid = format!("{}-{}", self.net, pod.name);
        let result = self
            .conflist(i)
            .add(&self.nodes[i].ns.name, &cid, &pod.path(), "eth0");
        let ips: Vec<String> = result["ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ip| {
                ip["address"]
                    .as_str()
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let v4 = ips.iter().find(|ip| !ip.contains(':')).cloned();
        let v6 = ips.iter().find(|ip| ip.contains(':')).cloned();
        let (first, v6) = match v4 {
            Some(v4) => (v4, v6),
            None => (v6.expect("an address"), None),
        };
        let ns_name = pod.name.clone();
        self.pods.push((i, cid, pod, result));
        (ns_name, first, v6)
    }

    /// The pod namespace called `name` (as returned by [`add_pod`](Self::add_pod)).
    pub fn pod(&self, name: &str) -> &Netns {
        &self.pods.iter().find(|p| p.2.name == name).expect("pod").2
    }

    /// Gives every node's underlay link a line rate, as a NIC has (`tbf` on the bridge ports
    /// facing the nodes, so it shapes what each node receives), or takes it away (`None`).
    pub fn set_link_rate(&self, gbit: Option<u32>) {
        for i in 1..=self.nodes.len() {
            let br = if i < 3 {
                &self.bridges[0]
            } else {
                &self.bridges[1]
            };
            match gbit {
                // A 512 KiB burst passes 64 KiB GSO packets whole (tbf would split larger ones).
                Some(g) => br.exec(&format!(
                    "tc qdisc replace dev n{i} root tbf rate {g}gbit burst 512k latency 5ms"
                )),
                None => br.exec(&format!("tc qdisc del dev n{i} root")),
            };
        }
    }

    /// Routes with proto 74 in node `i`, as `ip route` prints them (both families).
    pub fn agent_routes(&self, i: usize) -> String {
        let n = &self.nodes[i].ns.name;
        sh(&format!(
            "ip -n {n} route show proto 74; ip -n {n} -6 route show proto 74"
        ))
    }

    /// Waits up to `limit` until node `i`'s Jalur routes contain every one of `wanted`, and
    /// returns whether they did.
    pub fn routes_appear(&self, i: usize, wanted: &[&str], limit: Duration) -> bool {
        wait_until(limit, || {
            let routes = self.agent_routes(i);
            wanted.iter().all(|w| routes.contains(w))
        })
    }
}

/// Polls `f` every 50 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            if let Some(mut child) = self.nodes[i].agent.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // Pods' namespaces, then nodes (their Netns drop removes them); the plugin's DEL is
        // not needed: deleting a node namespace removes every host end in it.
        self.pods.clear();
    }
}
