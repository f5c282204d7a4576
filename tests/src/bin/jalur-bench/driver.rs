//! The subjects and how each is called for one pod: a plugin exec'd as a runtime execs it
//! (`jalur`, or the reference `ptp` + `host-local`), or the kernel's floor, jalur's ADD done
//! in-process through the project's netlink client.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jalur_cni_plugin::attachment::{self, GATEWAY_V4, HOST_MAC};
use jalur_cni_plugin::net::{Neighbour, NetNs, Netlink, Route, VethSpec};
use jalur_tests::Netns;
use serde_json::Value;

use crate::{check_interrupted, IFNAME, NETWORK, PTP};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Jalur,
    Ptp,
    Floor,
}

impl Subject {
    pub fn label(self) -> &'static str {
        match self {
            Subject::Jalur => "jalur (+jalur-ipam)",
            Subject::Ptp => "ptp + host-local",
            Subject::Floor => "kernel floor",
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Subject::Jalur => "jal",
            Subject::Ptp => "ptp",
            Subject::Floor => "flr",
        }
    }
}

/// What the bench needs to know to call the plugins.
pub struct Env {
    pub bin_dir: PathBuf,
    pub cni_path: String,
    pub work: PathBuf,
}

/// One pod: its namespace (made before timing) and the attachment's identity.
pub struct Pod {
    /// Deleted on drop.
    pub ns: Netns,
    path: String,
    cid: String,
    /// The floor's address for it (plugins get theirs from IPAM).
    ip: Ipv4Addr,
}

pub fn make_pods(run: &str, n: usize, subnet_octet: u8) -> Vec<Pod> {
    (0..n)
        .map(|i| {
            check_interrupted();
            let ns = Netns::new("bp");
            let path = ns.path();
            let host = u8::try_from(i + 2).expect("at most 253 pods per node");
            Pod {
                ns,
                path,
                cid: format!("bench-{run}-{i:04}"),
                ip: Ipv4Addr::new(10, 250, subnet_octet, host),
            }
        })
        .collect()
}

/// Calls one subject for one pod, on the thread that made it (which is in the node's netns).
pub enum Driver<'a> {
    Plugin {
        env: &'a Env,
        bin: PathBuf,
        /// The config without prevResult, as JSON.
        conf: Value,
        add_stdin: String,
    },
    Floor {
        host: Netlink,
    },
}

impl<'a> Driver<'a> {
    pub fn new(subject: Subject, env: &'a Env, conf: Option<&Value>) -> Driver<'a> {
        match subject {
            Subject::Floor => Driver::Floor {
                host: Netlink::open().expect("netlink socket in the node"),
            },
            Subject::Jalur | Subject::Ptp => {
                let conf = conf.expect("plugin config").clone();
                let bin = if subject == Subject::Jalur {
                    env.bin_dir.join("jalur")
                } else {
                    PathBuf::from(PTP)
                };
                Driver::Plugin {
                    env,
                    bin,
                    add_stdin: conf.to_string(),
                    conf,
                }
            }
        }
    }

    /// ADD; returns its duration and the result (Null for the floor).
    pub fn add(&mut self, pod: &Pod) -> (Duration, Value) {
        match self {
            Driver::Plugin {
                env,
                bin,
                add_stdin,
                ..
            } => {
                let (t, stdout) = exec(env, bin, "ADD", pod, add_stdin);
                let result = serde_json::from_str(&stdout)
                    .unwrap_or_else(|e| panic!("ADD result is not JSON ({e}): {stdout}"));
                (t, result)
            }
            Driver::Floor { host } => {
                let start = Instant::now();
                floor_add(host, pod);
                (start.elapsed(), Value::Null)
            }
        }
    }

    /// The DEL's stdin (the runtime's work, so made before timing).
    pub fn del_stdin(&self, prev: &Value) -> String {
        match self {
            Driver::Plugin { conf, .. } => {
                let mut c = conf.clone();
                c["prevResult"] = prev.clone();
                c.to_string()
            }
            Driver::Floor { .. } => String::new(),
        }
    }

    pub fn del(&mut self, pod: &Pod, stdin: &str) -> Duration {
        match self {
            Driver::Plugin { env, bin, .. } => exec(env, bin, "DEL", pod, stdin).0,
            Driver::Floor { host } => {
                let name = attachment::host_ifname(&pod.cid, IFNAME);
                let start = Instant::now();
                let deleted = host.delete_link(&name).expect("ip link del");
                let t = start.elapsed();
                assert!(deleted, "{name} was not there to delete");
                t
            }
        }
    }
}

/// Execs a plugin as a runtime does: in the calling thread's netns (the node's), CNI_* set,
/// the config written to stdin, stdout and stderr collected. Timed from spawn to exit.
pub fn exec(env: &Env, bin: &Path, command: &str, pod: &Pod, stdin: &str) -> (Duration, String) {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &pod.cid)
        .env("CNI_NETNS", &pod.path)
        .env("CNI_IFNAME", IFNAME)
        .env("CNI_PATH", &env.cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let _ = child
        .stdin
        .take()
        .expect("stdin pipe")
        .write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("wait for the plugin");
    let t = start.elapsed();
    check_interrupted();
    assert!(
        out.status.success(),
        "{} {command} for {} failed ({}): {}{}",
        bin.display(),
        pod.cid,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (t, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The kernel work of jalur's ADD, and nothing else: open the pod's netns and a socket in it,
/// create the veth pair with the peer born in the pod, look both ends up, bring them up (the
/// host end with its alias), the pod's /32, the permanent neighbour for the gateway, the default route onlink, and the
/// node's host route. (No exec, JSON, IPAM, sysctls or jalur's pre-checks.)
fn floor_add(host: &mut Netlink, pod: &Pod) {
    let pod_ns = NetNs::open(Path::new(&pod.path)).expect("open pod netns");
    let mut pod_nl = pod_ns
        .run(Netlink::open)
        .expect("enter pod netns")
        .expect("netlink socket in the pod");
    let host_name = attachment::host_ifname(&pod.cid, IFNAME);
    let spec = VethSpec {
        host_name: host_name.clone(),
        host_mac: Some(HOST_MAC),
        host_up: false,
        peer_name: IFNAME.to_owned(),
        mtu: 1500,
    };
    host.create_veth(&spec, &pod_ns).expect("create veth");
    let host_link = host
        .link_by_name(&host_name)
        .expect("get host end")
        .expect("host end exists");
    let alias = attachment::alias(NETWORK, &pod.cid, IFNAME);
    host.set_up(host_link.index, Some(&alias))
        .expect("host end up");
    let pod_link = pod_nl
        .link_by_name(IFNAME)
        .expect("get pod end")
        .expect("pod end exists");
    pod_nl.set_up(pod_link.index, None).expect("pod end up");
    let ip = IpAddr::V4(pod.ip);
    let gateway = IpAddr::V4(GATEWAY_V4);
    pod_nl
        .add_address(pod_link.index, ip, 32)
        .expect("add address");
    pod_nl
        .set_permanent_neighbour(&Neighbour {
            index: pod_link.index,
            ip: gateway,
            mac: HOST_MAC.to_vec(),
        })
        .expect("neighbour");
    pod_nl
        .replace_route(&Route::via_onlink(
            "0.0.0.0/0".parse().expect("default"),
            gateway,
            pod_link.index,
        ))
        .expect("default route");
    host.replace_route(&Route::direct(
        format!("{ip}/32").parse().expect("host prefix"),
        host_link.index,
    ))
    .expect("host route");
}
