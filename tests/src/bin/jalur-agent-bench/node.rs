//! A simulated node for the scale and change runs: a namespace on its own underlay, the
//! NodeList the agent reads (this node and N peers), the agent, and the bench's view of the
//! node's routes through the project's netlink client.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use jalur_cni_plugin::net::{NetNs, Netlink, JALUR_ROUTE_PROTOCOL};
use jalur_tests::{sh, Netns};
use serde_json::{json, Value};

use crate::agent::Agent;

/// The agent's metrics port inside each node namespace (its loopback is the node's own).
const METRICS_ADDR: &str = "127.0.0.1:19644";

/// A minimal Node object: name, pod CIDR, InternalIP.
fn node_object(name: &str, ip: Ipv4Addr, cidr: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {"addresses": [
            {"type": "InternalIP", "address": ip.to_string()},
            {"type": "Hostname", "address": name}
        ]}
    })
}

/// Peer `i`'s pod subnet (1-based; the node itself is 0): 10.<i/256>.<i%256>.0/24.
fn pod_net(i: usize) -> Ipv4Addr {
    assert!(i < 65536, "peer index out of 10.0.0.0/8 /24s");
    Ipv4Addr::new(10, (i / 256) as u8, (i % 256) as u8, 0)
}

pub fn pod_cidr(i: usize) -> String {
    format!("{}/24", pod_net(i))
}

/// Peer `i`'s InternalIP: on the node's 192.168.0.0/16 (direct), or off it in 172.16.0.0/16
/// (VXLAN).
pub fn peer_ip(i: usize, overlay: bool) -> Ipv4Addr {
    assert!(i < 250 * 250, "peer index out of the address plan");
    let (hi, lo) = ((i / 250) as u8, (i % 250) as u8 + 2);
    if overlay {
        Ipv4Addr::new(172, 16, hi, lo)
    } else {
        Ipv4Addr::new(192, 168, hi + 1, lo)
    }
}

const NODE_NAME: &str = "bench-node";
const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 2);

/// A node namespace on its own underlay (192.168.0.2/16, gateway .0.1), a netlink socket in
/// it for the bench's route lookups and dumps, the agent's files, and the agent once started.
pub struct BenchNode {
    // Dropped first: the agent, then the socket, then the namespaces.
    agent: Option<Agent>,
    nl: Netlink,
    pub ns: Netns,
    _underlay: Netns,
    pub dir: PathBuf,
    nodes_file: PathBuf,
    /// How many peers the NodeList names.
    pub peers: usize,
    overlay: bool,
    /// The NodeList's size.
    pub file_bytes: usize,
}

impl BenchNode {
    pub fn new(work: &Path, tag: &str, overlay: bool) -> BenchNode {
        let ns = Netns::new(&format!("{tag}-node"));
        let underlay = Netns::new(&format!("{tag}-ul"));
        let (n, u) = (&ns.name, &underlay.name);
        sh(&format!(
            "ip -n {n} link add ul0 type veth peer name gw0 netns {u} && \
             ip -n {n} addr add {NODE_IP}/16 dev ul0 && ip -n {n} link set ul0 up && \
             ip -n {u} addr add 192.168.0.1/16 dev gw0 && ip -n {u} link set gw0 up && \
             ip -n {n} route add default via 192.168.0.1"
        ));
        let handle = NetNs::open(Path::new(&ns.path())).expect("open node netns");
        let nl = handle
            .run(Netlink::open)
            .expect("enter node netns")
            .expect("netlink socket in the node");
        let dir = work.join(&ns.name);
        std::fs::create_dir_all(&dir).expect("node dir");
        let nodes_file = dir.join("nodes.json");
        BenchNode {
            agent: None,
            nl,
            ns,
            _underlay: underlay,
            dir,
            nodes_file,
            peers: 0,
            overlay,
            file_bytes: 0,
        }
    }

    /// Writes the NodeList (this node + peers 1..=n) atomically: temp file, then rename.
    pub fn write_nodes(&mut self, n: usize) {
        let mut items = Vec::with_capacity(n + 1);
        items.push(node_object(NODE_NAME, NODE_IP, &pod_cidr(0)));
        for i in 1..=n {
            items.push(node_object(
                &format!("peer-{i:05}"),
                peer_ip(i, self.overlay),
                &pod_cidr(i),
            ));
        }
        let text = json!({"apiVersion": "v1", "kind": "NodeList", "items": items}).to_string();
        let tmp = self.dir.join(".nodes.json.tmp");
        std::fs::write(&tmp, &text).expect("write the NodeList");
        std::fs::rename(&tmp, &self.nodes_file).expect("rename the NodeList");
        self.peers = n;
        self.file_bytes = text.len();
    }

    pub fn start_agent(&mut self, bin_dir: &Path) {
        let log_path = self.dir.join("agent.log");
        let log = File::create(&log_path).expect("agent log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns.name])
            .arg(bin_dir.join("jalur-agent"))
            .args(["--node-name", NODE_NAME, "--nodes-file"])
            .arg(&self.nodes_file)
            .arg("--cni-conf-dir")
            .arg(self.dir.join("net.d"))
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .arg("--cni-bin-dir")
            .arg(self.dir.join("no-cni-bin"))
            .args(["--metrics-addr", METRICS_ADDR, "--resync-seconds", "60"])
            .arg("--log-json")
            .env("JALUR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start jalur-agent");
        self.agent = Some(Agent::new(child, log_path));
    }

    pub fn agent(&mut self) -> &mut Agent {
        self.agent.as_mut().expect("agent running")
    }

    /// How many peer routes the kernel holds (proto 74, not blackholes, IPv4 main table).
    /// The bench dumps while the agent works, so the kernel is asked for proto 74 only.
    pub fn peer_routes(&mut self) -> usize {
        let routes = self
            .nl
            .routes_of_protocol(false, JALUR_ROUTE_PROTOCOL)
            .expect("dump the node's routes");
        routes.iter().filter(|r| !r.blackhole).count()
    }

    /// Whether the kernel holds the agent's route to peer `i`'s pod subnet: one lookup (`ip
    /// route get fibmatch`) of the subnet's first host, answered with the entry that matched.
    pub fn has_peer_route(&mut self, i: usize) -> bool {
        let net = pod_net(i);
        let first_host = Ipv4Addr::from(u32::from(net) + 1);
        let found = self
            .nl
            .route_for(IpAddr::V4(first_host))
            .expect("look up a route in the node");
        found.is_some_and(|r| {
            r.protocol == JALUR_ROUTE_PROTOCOL
                && r.dst.addr() == IpAddr::V4(net)
                && r.dst.prefix_len() == 24
        })
    }

    pub fn ready(&self) -> bool {
        self.dir.join("state").join("ready").exists()
            && self.dir.join("net.d").join("10-jalur.conflist").exists()
    }
}
