//! Part 3: iperf3 throughput, pod to pod beside node to node, on the simulated cluster
//! (`jalur_tests::cluster::Cluster`, agents in auto mode): underlay node1→node2 beside pod→pod
//! direct, underlay node1→node3 (through the router) beside pod→pod over VXLAN.
//!
//! Each sample is a pair, the underlay run and the pod run back to back (which goes first
//! alternates), and a figure is the median of its pairs' ratios: this VM's speed drifts from
//! second to second with other tenants' load, and the two runs of a pair see the same drift.
//!
//! Two settings, both printed:
//! - link-bound: the bridge ports facing the nodes shaped to [`LINK_GBIT`] (tbf), as a NIC
//!   bounds a real underlay while the CPU has room. The ratio is what the pod network costs
//!   in bandwidth, and the project's target is judged here. Its bound is the payload a frame
//!   of the link carries: pods' packets are at most their MTU, and over VXLAN each frame also
//!   carries 50 bytes of outer headers.
//! - CPU-bound: no shaping. Every hop is a veth on the same two cores as iperf3 itself, so
//!   the underlay has no capacity of its own and the ratio is the CPU cost of the pods' path
//!   (a pod's veth and a forwarding step on each node, the overlay's encapsulation).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jalur_tests::bench::{median, verdict};
use jalur_tests::cluster::{wait_until, Cluster};
use jalur_tests::Netns;
use serde_json::Value;

use crate::check_interrupted;

/// The link-bound setting's line rate: well below what this VM's CPUs carry on the pods'
/// path (10–17 Gbit/s), so that the link, not the CPU, is the limit.
const LINK_GBIT: u32 = 4;
/// The underlay must reach this share of the link's payload rate for the link-bound figures
/// to count as link-bound.
const LINK_BOUND_SHARE: f64 = 0.9;
const TARGET_RATIO: f64 = 0.97;
const IPERF_PORT: &str = "5201";
/// Ethernet header: counted by tbf, like the line rate of a NIC counts it.
const ETH_HLEN: f64 = 14.0;
/// IPv4 (20) + TCP (20) + TCP timestamps (12): what a full-sized frame spends on headers.
const TCP_IP_HLEN: f64 = 52.0;
/// VXLAN's outer IPv4 + UDP + VXLAN + inner Ethernet headers.
const VXLAN_OVERHEAD: f64 = 50.0;

/// How many pairs and how long each run.
pub struct Plan {
    pub secs: u32,
    pub link_pairs: usize,
    pub cpu_pairs: usize,
}

/// A process killed (and reaped) on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `iperf3 -s -1` in `server`, `iperf3 -c ip -t secs -J` from `client`: bits/s received.
fn iperf(server: &Netns, client: &Netns, ip: &str, secs: u32) -> f64 {
    check_interrupted();
    let mut srv = Reaped(
        Command::new("ip")
            .args(["netns", "exec", &server.name])
            .args(["iperf3", "-s", "-1", "-p", IPERF_PORT])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start iperf3 -s"),
    );
    let listening = wait_until(Duration::from_secs(5), || {
        let (_, out) = server.try_exec(&format!("ss -Hltn sport = :{IPERF_PORT}"));
        !out.trim().is_empty()
    });
    assert!(listening, "iperf3 server in {} did not listen", server.name);
    let out = Command::new("timeout")
        .arg((secs + 20).to_string())
        .args(["ip", "netns", "exec", &client.name])
        .args(["iperf3", "-c", ip, "-p", IPERF_PORT, "-J"])
        .args(["-t", &secs.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run iperf3 -c");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("iperf3 -c {ip} output is not JSON ({e}): {text}"));
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 -c {ip} gave no sum_received: {text}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && srv.0.try_wait().ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(20));
    }
    bps
}

/// `ip route get` of `ip` from the node: the path the kernel picks.
fn route_get(ns: &Netns, ip: &str) -> String {
    let (_, out) = ns.try_exec(&format!("ip route get {ip}"));
    out.lines().next().unwrap_or("").trim().to_owned()
}

/// One comparison: a pod pair beside the node pair it crosses.
struct Path<'a> {
    label: &'static str,
    underlay: (&'a Netns, &'a Netns, &'a str),
    pod: (&'a Netns, &'a Netns, &'a str),
    /// The best ratio a link can give: the pods' payload per byte on the wire over the
    /// underlay's.
    bound: f64,
}

/// Pairs of (underlay, pod) bits/s.
fn pairs(path: &Path, n: usize, secs: u32) -> Vec<(f64, f64)> {
    let run = |(server, client, ip): (&Netns, &Netns, &str)| iperf(server, client, ip, secs);
    (0..n)
        .map(|k| {
            if k % 2 == 0 {
                let u = run(path.underlay);
                (u, run(path.pod))
            } else {
                let p = run(path.pod);
                (run(path.underlay), p)
            }
        })
        .collect()
}

/// A row: medians of both sides in Gbit/s, the median ratio and its spread. Returns the ratio
/// and the underlay's median.
fn row(path: &Path, samples: &[(f64, f64)]) -> (f64, f64) {
    let ratios: Vec<f64> = samples.iter().map(|(u, p)| p / u).collect();
    let ul = median(&samples.iter().map(|s| s.0).collect::<Vec<_>>()) / 1e9;
    let pod = median(&samples.iter().map(|s| s.1).collect::<Vec<_>>()) / 1e9;
    let ratio = median(&ratios);
    let lo = ratios.iter().copied().fold(f64::MAX, f64::min);
    let hi = ratios.iter().copied().fold(f64::MIN, f64::max);
    print!(
        "{:<34} {ul:>8.2} {pod:>8.2}   {ratio:>6.3} ({lo:.3}..{hi:.3})  {:>6.3}",
        path.label, path.bound
    );
    (ratio, ul)
}

pub fn run(plan: &Plan) {
    println!(
        "\n== 3. Throughput: iperf3 pod -> pod beside node -> node on the underlay, in pairs run back to back =="
    );
    let mut c = Cluster::new("tp", 77, "auto");
    c.start_agents();
    let (p1, _, _) = c.add_pod(0, "tp-p1");
    let (p2, ip2, _) = c.add_pod(1, "tp-p2");
    let (p3, ip3, _) = c.add_pod(2, "tp-p3");
    for (from, to) in [(&p1, &ip2), (&p1, &ip3)] {
        let ok = wait_until(Duration::from_secs(15), || {
            check_interrupted();
            c.pod(from).try_exec(&format!("ping -c1 -W1 {to}")).0
        });
        assert!(ok, "pod {from} cannot reach {to}:\n{}", c.agent_routes(0));
    }
    let (n1, n2, n3) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    println!("paths from node1:");
    for ip in [&n2.ip, &ip2, &n3.ip, &ip3] {
        println!("  {}", route_get(&n1.ns, ip));
    }
    let mtu = |ns: &Netns| -> f64 {
        let text = ns.exec("cat /sys/class/net/eth0/mtu");
        text.trim().parse().expect("an MTU")
    };
    let (ul_mtu, pod_mtu) = (mtu(&n1.ns), mtu(c.pod(&p1)));
    println!("MTU: underlay {ul_mtu}, pods {pod_mtu}");
    let ul_eff = (ul_mtu - TCP_IP_HLEN) / (ul_mtu + ETH_HLEN);
    let payload = pod_mtu - TCP_IP_HLEN;
    let paths = [
        Path {
            label: "direct (node1 -> node2)",
            underlay: (&n2.ns, &n1.ns, &n2.ip),
            pod: (c.pod(&p2), c.pod(&p1), &ip2),
            bound: payload / (pod_mtu + ETH_HLEN) / ul_eff,
        },
        Path {
            label: "vxlan (node1 -> router -> node3)",
            underlay: (&n3.ns, &n1.ns, &n3.ip),
            pod: (c.pod(&p3), c.pod(&p1), &ip3),
            bound: payload / (pod_mtu + VXLAN_OVERHEAD + ETH_HLEN) / ul_eff,
        },
    ];
    let header = format!(
        "{:<34} {:>8} {:>8}   {:<20}  {:>6}",
        "Gbit/s (medians)", "underlay", "pod", "ratio (min..max)", "bound"
    );

    println!(
        "\n3a. Link-bound: each node's underlay link shaped to {LINK_GBIT} Gbit/s (tbf), as a NIC bounds a real \
         underlay;\n    {} pair(s) of {} s runs; bound = the pods' payload per byte on the link over the underlay's",
        plan.link_pairs, plan.secs
    );
    println!("{header}");
    c.set_link_rate(Some(LINK_GBIT));
    let link_payload = LINK_GBIT as f64 * ul_eff;
    for path in &paths {
        eprintln!("  running: link-bound, {}", path.label);
        let (ratio, ul) = row(path, &pairs(path, plan.link_pairs, plan.secs));
        if ul < LINK_BOUND_SHARE * link_payload {
            println!(
                "  not link-bound: the underlay reached {ul:.2} of {link_payload:.2} Gbit/s, \
                 the machine was the limit; no verdict"
            );
        } else if ratio >= TARGET_RATIO {
            println!("  (target >= {TARGET_RATIO})  {}", verdict(true));
        } else if path.bound < TARGET_RATIO {
            println!(
                "  (target >= {TARGET_RATIO})  {}: VXLAN's 50 bytes per frame cap any overlay at {:.3}",
                verdict(false),
                path.bound
            );
        } else {
            println!("  (target >= {TARGET_RATIO})  {}", verdict(false));
        }
    }
    c.set_link_rate(None);

    println!(
        "\n3b. CPU-bound: no shaping; every hop is a veth on the same {} CPUs as iperf3, so the ratio is the\n    \
         CPU cost of the pods' path (a veth and a forwarding step per node; VXLAN's encapsulation);\n    \
         {} pair(s) of {} s runs; no target: the target is judged link-bound (3a)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        plan.cpu_pairs,
        plan.secs
    );
    println!("{header}");
    for path in &paths {
        eprintln!("  running: CPU-bound, {}", path.label);
        row(path, &pairs(path, plan.cpu_pairs, plan.secs));
        println!();
    }
    eprintln!("  cleaning up the throughput cluster");
}
