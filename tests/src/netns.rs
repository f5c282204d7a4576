//! Namespaces made by a test, and the simulated node: an "underlay" namespace standing in for
//! the node's network (192.168.X.1), joined by a veth to the node's namespace (192.168.X.2,
//! default route via .1), so that the node has an address and a default-route interface.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::sh;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace this test made; deleted on drop.
pub struct Netns {
    /// Its name under /run/netns.
    pub name: String,
}

impl Netns {
    /// Makes `jt<pid>-<tag>-<n>`, unique across parallel tests and processes.
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("jt{}-{tag}-{n}", std::process::id());
        sh(&format!("ip netns add {name}"));
        sh(&format!("ip -n {name} link set lo up"));
        Netns { name }
    }

    /// `/run/netns/<name>`.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip netns exec <name> <cmd>` through `sh -c`, panicking on failure.
    pub fn exec(&self, cmd: &str) -> String {
        sh(&format!("ip netns exec {} {cmd}", self.name))
    }

    /// Like [`exec`](Self::exec) but returns (success, output).
    pub fn try_exec(&self, cmd: &str) -> (bool, String) {
        crate::try_sh(&format!("ip netns exec {} {cmd}", self.name))
    }

    /// ICMP echo requests this namespace has received (`Icmp: InEchos` of /proc/net/snmp).
    pub fn echos_received(&self) -> u64 {
        let snmp = self.exec("cat /proc/net/snmp");
        let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp:"));
        let (names, values) = (icmp.next().unwrap(), icmp.next().unwrap());
        let i = names
            .split_whitespace()
            .position(|n| n == "InEchos")
            .unwrap();
        values.split_whitespace().nth(i).unwrap().parse().unwrap()
    }

    /// The names of the links in this namespace.
    pub fn links(&self) -> Vec<String> {
        sh(&format!("ip -n {} -o link show", self.name))
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_owned())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill whatever a test left running inside, then remove the namespace.
        let _ = crate::try_sh(&format!(
            "for p in $(ip netns pids {n} 2>/dev/null); do kill -9 $p; done; ip netns del {n}",
            n = self.name
        ));
    }
}

/// A simulated node: its namespace and the underlay namespace it is attached to.
pub struct Node {
    /// The node's namespace: plugins run here; host ends of veths land here.
    pub ns: Netns,
    /// The network the node is attached to (holds the node's default gateway).
    pub underlay: Netns,
    /// The node's address on the underlay.
    pub ip: String,
    /// The underlay gateway's address.
    pub gateway: String,
}

impl Node {
    /// A node on `192.168.<octet>.0/24`: node `.2`, gateway `.1`. IPv6: `fd00:<octet>::2/64`.
    pub fn new(tag: &str, octet: u8) -> Node {
        let ns = Netns::new(&format!("{tag}-node"));
        let underlay = Netns::new(&format!("{tag}-ul"));
        let (n, u) = (&ns.name, &underlay.name);
        sh(&format!(
            "ip -n {n} link add ul0 type veth peer name gw0 netns {u} && \
             ip -n {n} addr add 192.168.{octet}.2/24 dev ul0 && \
             ip -n {n} addr add fd00:{octet}::2/64 dev ul0 nodad && \
             ip -n {n} link set ul0 up && \
             ip -n {u} addr add 192.168.{octet}.1/24 dev gw0 && \
             ip -n {u} addr add fd00:{octet}::1/64 dev gw0 nodad && \
             ip -n {u} link set gw0 up && \
             ip -n {n} route add default via 192.168.{octet}.1 && \
             ip -n {n} -6 route add default via fd00:{octet}::1"
        ));
        Node {
            ns,
            underlay,
            ip: format!("192.168.{octet}.2"),
            gateway: format!("192.168.{octet}.1"),
        }
    }

    /// The node's links whose names start with the plugin's host-end prefix.
    pub fn host_ends(&self) -> Vec<String> {
        self.ns
            .links()
            .into_iter()
            .filter(|l| l.starts_with(jalur_cni_plugin::attachment::HOST_IF_PREFIX))
            .collect()
    }
}
