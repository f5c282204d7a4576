//! `jalur-bench`: how long a pod's ADD and DEL take on one simulated node, for `jalur` (with
//! its in-process IPAM), for the reference `ptp` + `host-local`, and for the kernel's floor
//! (the netlink operations of jalur's ADD done in-process). It prints numbers and asserts
//! nothing about speed. Run it through `scripts/bench.sh` (root).
//!
//! Each scenario of each subject gets a fresh node namespace (attached to an underlay, so it
//! has a default route). Pod namespaces are made before timing starts. A plugin is timed from
//! spawn to exit, its stdin written, exactly as a runtime execs it: from a thread that has
//! entered the node's namespace, with the CNI_* variables and the config on stdin.
//!
//! Everything made (namespaces `jt<pid>-*`, files under `/var/tmp/jalur-bench-<pid>/`) is
//! removed at the end: by drop guards, by the panic hook (release builds abort on panic, so
//! drop guards would not run), and on SIGINT/SIGTERM.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use jalur_cni_plugin::attachment::{self, GATEWAY_V4, HOST_MAC};
use jalur_cni_plugin::net::{Neighbour, NetNs, Netlink, Route, VethSpec};
use jalur_tests::bench::{ms, verdict, WorkDir};
use jalur_tests::{Netns, Node};
use serde_json::{json, Value};

/// Pause between scenarios, for the kernel's deferred work of the last DELs (RCU callbacks).
/// Namespaces are deleted only at the very end: the kernel tears them down asynchronously,
/// under the rtnl lock, which would slow whatever scenario runs next.
const SETTLE: Duration = Duration::from_millis(500);
/// The CNI version both plugins are called with.
const CNI_VERSION: &str = "1.0.0";
const NETWORK: &str = "bench";
const IFNAME: &str = "eth0";
const PTP: &str = "/usr/lib/cni/ptp";
const HOST_LOCAL: &str = "/usr/lib/cni/host-local";

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static NODE_COUNTER: AtomicU8 = AtomicU8::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Once SIGINT/SIGTERM arrived: removes everything of this run and exits (the first thread
/// to get here does it; any other waits for the exit).
fn check_interrupted() {
    static EXITING: AtomicBool = AtomicBool::new(false);
    if !INTERRUPTED.load(Ordering::SeqCst) {
        return;
    }
    if EXITING.swap(true, Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
    let left = sweep();
    eprintln!(
        "jalur-bench: interrupted; removed its {} namespaces",
        left.len()
    );
    std::process::exit(130);
}

/// This run's namespaces all start with this.
fn ns_prefix() -> String {
    format!("jt{}-", std::process::id())
}

/// This run's files.
fn work_dir() -> PathBuf {
    WorkDir::path_for("jalur-bench")
}

/// Deletes whatever of this run is left: namespaces named `jt<pid>-*` and the work dir.
/// Returns the names of the namespaces it had to delete.
fn sweep() -> Vec<String> {
    let prefix = ns_prefix();
    let mut left = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/run/netns") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
                left.push(name);
            }
        }
    }
    let _ = std::fs::remove_dir_all(work_dir());
    left
}

fn netns_inode(path: &str) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {path}: {e}"))
        .ino()
}

/// Guards against ever running a plugin (or a netlink call) in the root namespace.
fn assert_in_netns(inode: u64) {
    assert_eq!(
        netns_inode("/proc/thread-self/ns/net"),
        inode,
        "bench thread is not in the node's namespace"
    );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Subject {
    Jalur,
    Ptp,
    Floor,
}

impl Subject {
    fn label(self) -> &'static str {
        match self {
            Subject::Jalur => "jalur (+jalur-ipam)",
            Subject::Ptp => "ptp + host-local",
            Subject::Floor => "kernel floor",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Subject::Jalur => "jal",
            Subject::Ptp => "ptp",
            Subject::Floor => "flr",
        }
    }
}

/// What the bench needs to know to call the plugins.
struct Env {
    bin_dir: PathBuf,
    cni_path: String,
    work: PathBuf,
}

/// One pod: its namespace (made before timing) and the attachment's identity.
struct Pod {
    /// Deleted on drop.
    ns: Netns,
    path: String,
    cid: String,
    /// The floor's address for it (plugins get theirs from IPAM).
    ip: Ipv4Addr,
}

fn make_pods(run: &str, n: usize, subnet_octet: u8) -> Vec<Pod> {
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
enum Driver<'a> {
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
    fn new(subject: Subject, env: &'a Env, conf: Option<&Value>) -> Driver<'a> {
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
    fn add(&mut self, pod: &Pod) -> (Duration, Value) {
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
    fn del_stdin(&self, prev: &Value) -> String {
        match self {
            Driver::Plugin { conf, .. } => {
                let mut c = conf.clone();
                c["prevResult"] = prev.clone();
                c.to_string()
            }
            Driver::Floor { .. } => String::new(),
        }
    }

    fn del(&mut self, pod: &Pod, stdin: &str) -> Duration {
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
fn exec(env: &Env, bin: &Path, command: &str, pod: &Pod, stdin: &str) -> (Duration, String) {
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

/// A fresh node for one scenario of one subject, and that subject's config on it.
struct Bed {
    node: Node,
    node_ns: NetNs,
    node_inode: u64,
    conf: Option<Value>,
    subnet_octet: u8,
}

impl Bed {
    fn new(env: &Env, subject: Subject, scenario: &str) -> Bed {
        let k = NODE_COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        let tag = format!("b{}{scenario}", subject.tag());
        let node = Node::new(&tag, 100 + k);
        let node_ns = NetNs::open(Path::new(&node.ns.path())).expect("open node netns");
        let node_inode = netns_inode(&node.ns.path());
        let subnet = format!("10.250.{k}.0/24");
        let data_dir = env.work.join(&tag);
        let ipam = json!({
            "ranges": [[{"subnet": subnet}]],
            "dataDir": data_dir,
        });
        let conf = match subject {
            Subject::Floor => None,
            Subject::Jalur => {
                let mut ipam = ipam;
                ipam["type"] = json!("jalur-ipam");
                Some(json!({
                    "cniVersion": CNI_VERSION,
                    "name": NETWORK,
                    "type": "jalur",
                    "ipam": ipam,
                }))
            }
            Subject::Ptp => {
                let mut ipam = ipam;
                ipam["type"] = json!("host-local");
                Some(json!({
                    "cniVersion": CNI_VERSION,
                    "name": NETWORK,
                    "type": "ptp",
                    "ipMasq": false,
                    "ipam": ipam,
                }))
            }
        };
        Bed {
            node,
            node_ns,
            node_inode,
            conf,
            subnet_octet: k,
        }
    }

    /// Keeps the node's and the pods' namespaces for deletion at the end, and pauses.
    fn retire(self, pods: Vec<Pod>, retired: &mut Vec<Netns>) {
        retired.extend(pods.into_iter().map(|p| p.ns));
        retired.push(self.node.ns);
        retired.push(self.node.underlay);
        std::thread::sleep(SETTLE);
        check_interrupted();
    }
}

/// Deletes the retired namespaces (on drop), four at a time.
fn bury(mut retired: Vec<Netns>) {
    let chunk = retired.len().div_ceil(4).max(1);
    std::thread::scope(|scope| {
        while !retired.is_empty() {
            let batch: Vec<Netns> = retired.drain(..chunk.min(retired.len())).collect();
            scope.spawn(move || drop(batch));
        }
    });
}

/// Spawn-to-exit of `/bin/true`, run like a plugin from a node: what any exec'd plugin pays
/// before doing anything.
fn exec_baseline(env: &Env, n: usize, retired: &mut Vec<Netns>) -> Vec<Duration> {
    let node = Node::new("bexe", 99);
    let node_ns = NetNs::open(Path::new(&node.ns.path())).expect("open node netns");
    let node_inode = netns_inode(&node.ns.path());
    let pods = make_pods("exe", 1, 99);
    let times = node_ns
        .run(|| {
            assert_in_netns(node_inode);
            (0..n + 3)
                .map(|_| exec(env, Path::new("/bin/true"), "ADD", &pods[0], "{}").0)
                .skip(3)
                .collect()
        })
        .expect("enter node netns");
    retired.extend(pods.into_iter().map(|p| p.ns));
    retired.push(node.ns);
    retired.push(node.underlay);
    times
}

/// Durations of one scenario of one subject.
struct Measured {
    add: Vec<Duration>,
    del: Vec<Duration>,
    add_makespan: Option<Duration>,
    del_makespan: Option<Duration>,
}

/// One untimed ADD + DEL, so that caches are warm and the IPAM store exists.
fn warm_up(driver: &mut Driver, pod: &Pod) {
    let (_, prev) = driver.add(pod);
    let stdin = driver.del_stdin(&prev);
    driver.del(pod, &stdin);
}

/// `n` pods one after another: every ADD, then every DEL.
fn sequential(env: &Env, subject: Subject, n: usize, retired: &mut Vec<Netns>) -> Measured {
    let bed = Bed::new(env, subject, &format!("s{n}"));
    let pods = make_pods(&format!("{}s{n}", subject.tag()), n + 1, bed.subnet_octet);
    let measured = bed
        .node_ns
        .run(|| {
            assert_in_netns(bed.node_inode);
            let mut driver = Driver::new(subject, env, bed.conf.as_ref());
            warm_up(&mut driver, &pods[0]);
            let mut add = Vec::with_capacity(n);
            let mut results = Vec::with_capacity(n);
            for pod in &pods[1..] {
                check_interrupted();
                let (t, result) = driver.add(pod);
                add.push(t);
                results.push(result);
            }
            let mut del = Vec::with_capacity(n);
            for (pod, result) in pods[1..].iter().zip(&results) {
                check_interrupted();
                let stdin = driver.del_stdin(result);
                del.push(driver.del(pod, &stdin));
            }
            Measured {
                add,
                del,
                add_makespan: None,
                del_makespan: None,
            }
        })
        .expect("enter node netns");
    bed.retire(pods, retired);
    measured
}

/// `n` threads released at once by a barrier: ADDs, then (once all are done) DELs.
fn parallel(env: &Env, subject: Subject, n: usize, retired: &mut Vec<Netns>) -> Measured {
    let bed = Bed::new(env, subject, &format!("p{n}"));
    let pods = make_pods(&format!("{}p{n}", subject.tag()), n + 1, bed.subnet_octet);
    let measured = bed
        .node_ns
        .run(|| {
            assert_in_netns(bed.node_inode);
            warm_up(&mut Driver::new(subject, env, bed.conf.as_ref()), &pods[0]);
            let barrier = Barrier::new(n);
            // Threads made from this one start in the node's netns (checked below).
            let spans: Vec<_> = std::thread::scope(|scope| {
                let handles: Vec<_> = pods[1..]
                    .iter()
                    .map(|pod| {
                        let barrier = &barrier;
                        let bed = &bed;
                        scope.spawn(move || {
                            assert_in_netns(bed.node_inode);
                            let mut driver = Driver::new(subject, env, bed.conf.as_ref());
                            barrier.wait();
                            let add_start = Instant::now();
                            let (add, result) = driver.add(pod);
                            let add_end = Instant::now();
                            let stdin = driver.del_stdin(&result);
                            barrier.wait();
                            let del_start = Instant::now();
                            let del = driver.del(pod, &stdin);
                            let del_end = Instant::now();
                            ((add_start, add_end, add), (del_start, del_end, del))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            });
            let makespan = |spans: Vec<(Instant, Instant, Duration)>| {
                let first = spans.iter().map(|s| s.0).min().expect("spans");
                let last = spans.iter().map(|s| s.1).max().expect("spans");
                (last - first, spans.into_iter().map(|s| s.2).collect())
            };
            let (adds, dels): (Vec<_>, Vec<_>) = spans.into_iter().unzip();
            let (add_makespan, add) = makespan(adds);
            let (del_makespan, del) = makespan(dels);
            Measured {
                add,
                del,
                add_makespan: Some(add_makespan),
                del_makespan: Some(del_makespan),
            }
        })
        .expect("enter node netns");
    bed.retire(pods, retired);
    measured
}

/// Nearest-rank percentile, in ms.
fn percentile(samples: &[Duration], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    ms(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn p50(samples: &[Duration]) -> f64 {
    percentile(samples, 50.0)
}

struct Row {
    subject: Subject,
    n: usize,
    m: Measured,
}

fn print_table(title: &str, rows: &[Row], parallel: bool) {
    println!("\n== {title} (ms) ==");
    let mut head = format!(
        "{:<20} {:>4}  {:>8} {:>8} {:>8}  {:>8} {:>8} {:>8}",
        "subject", "n", "ADD p50", "p95", "p99", "DEL p50", "p95", "p99"
    );
    if parallel {
        head.push_str(&format!("  {:>12} {:>12}", "ADD makespan", "DEL makespan"));
    }
    println!("{head}");
    for r in rows {
        let mut line = format!(
            "{:<20} {:>4}  {:>8.2} {:>8.2} {:>8.2}  {:>8.2} {:>8.2} {:>8.2}",
            r.subject.label(),
            r.n,
            p50(&r.m.add),
            percentile(&r.m.add, 95.0),
            percentile(&r.m.add, 99.0),
            p50(&r.m.del),
            percentile(&r.m.del, 95.0),
            percentile(&r.m.del, 99.0),
        );
        if let (Some(a), Some(d)) = (r.m.add_makespan, r.m.del_makespan) {
            line.push_str(&format!("  {:>12.2} {:>12.2}", ms(a), ms(d)));
        }
        println!("{line}");
    }
}

fn find(rows: &[Row], subject: Subject) -> Option<&Measured> {
    rows.iter().find(|r| r.subject == subject).map(|r| &r.m)
}

fn print_ratio(label: &str, value: Option<f64>, unit: &str, target: f64) {
    match value {
        Some(v) => println!(
            "{label:<52} {v:>7.2}{unit:<3} (target <= {target}{unit})  {}",
            verdict(v <= target)
        ),
        None => println!("{label:<52}     n/a    (ptp + host-local not installed)"),
    }
}

/// The 1-minute load average: other work on the machine skews every number.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn usage() -> ! {
    eprintln!(
        "usage: jalur-bench [--quick]\n\
         \n\
         Times ADD and DEL of jalur, ptp + host-local and the kernel floor on simulated nodes\n\
         (network namespaces). Needs root; use scripts/bench.sh.\n\
         --quick   20 sequential + 20 parallel pods only (smoke run)"
    );
    std::process::exit(2);
}

fn main() {
    let mut quick = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => quick = true,
            _ => usage(),
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("jalur-bench needs root (it makes network namespaces): sudo scripts/bench.sh");
        std::process::exit(1);
    }

    // Release builds abort on panic, so drop guards would not run: clean up in the hook.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        let left = sweep();
        eprintln!(
            "jalur-bench: cleaned up after failure ({} namespaces)",
            left.len()
        );
    }));
    let handler = on_signal as extern "C" fn(libc::c_int);
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }

    let bin_dir = std::env::var_os("JALUR_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("own path");
            exe.parent().expect("bin dir").to_owned()
        });
    assert!(
        bin_dir.join("jalur").is_file(),
        "no jalur binary in {} (build with cargo build --release -p jalur-cni-plugin)",
        bin_dir.display()
    );
    let have_ptp = Path::new(PTP).is_file() && Path::new(HOST_LOCAL).is_file();
    let work = WorkDir::create("jalur-bench");
    let env = Env {
        cni_path: format!("{}:/usr/lib/cni", bin_dir.display()),
        bin_dir,
        work: work.0.clone(),
    };

    let mut subjects = vec![Subject::Jalur];
    if have_ptp {
        subjects.push(Subject::Ptp);
    }
    subjects.push(Subject::Floor);
    let seq_sizes: &[usize] = if quick { &[20] } else { &[50, 200] };
    let par_size = if quick { 20 } else { 50 };

    println!(
        "jalur-bench: {} CPUs (load average {}), kernel {}, plugins from {}, CNI {CNI_VERSION}{}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        env.bin_dir.display(),
        if quick { ", --quick" } else { "" }
    );
    if !have_ptp {
        println!("note: {PTP} or {HOST_LOCAL} is missing (Debian containernetworking-plugins): ptp skipped");
    }
    println!("each row: a fresh node, pods' netns made beforehand, one untimed warm-up ADD+DEL;");
    println!("plugins timed from spawn to exit; percentiles are nearest-rank");

    let mut retired = Vec::new();
    let baseline = exec_baseline(&env, 50, &mut retired);
    let mut seq_tables = Vec::new();
    for &n in seq_sizes {
        let mut rows = Vec::new();
        for &subject in &subjects {
            eprintln!("  running: {} sequential n={n}", subject.label());
            rows.push(Row {
                subject,
                n,
                m: sequential(&env, subject, n, &mut retired),
            });
        }
        print_table(
            &format!("Sequential, {n} pods one after another"),
            &rows,
            false,
        );
        seq_tables.push((n, rows));
    }
    let mut par_rows = Vec::new();
    for &subject in &subjects {
        eprintln!("  running: {} parallel n={par_size}", subject.label());
        par_rows.push(Row {
            subject,
            n: par_size,
            m: parallel(&env, subject, par_size, &mut retired),
        });
    }
    print_table(
        &format!("Parallel, {par_size} pods released at once (makespan: first start to last exit)"),
        &par_rows,
        true,
    );

    println!(
        "\nfor reference: spawn to exit of /bin/true from the node (the exec cost any plugin \
         pays), p50 {:.2} ms, p95 {:.2} ms",
        p50(&baseline),
        percentile(&baseline, 95.0)
    );
    println!("load average at the end: {}", load_average());
    println!("\n== Targets ==");
    for (n, rows) in &seq_tables {
        let jalur = find(rows, Subject::Jalur).expect("jalur row");
        let ptp = find(rows, Subject::Ptp);
        let floor = find(rows, Subject::Floor).expect("floor row");
        print_ratio(
            &format!("jalur ADD p50 / ptp ADD p50, {n} sequential"),
            ptp.map(|p| p50(&jalur.add) / p50(&p.add)),
            "",
            0.35,
        );
        print_ratio(
            &format!("jalur DEL p50 - floor DEL p50, {n} sequential"),
            Some(p50(&jalur.del) - p50(&floor.del)),
            " ms",
            2.0,
        );
    }
    let makespan = |s| find(&par_rows, s).and_then(|m| m.add_makespan).map(ms);
    print_ratio(
        &format!("jalur ADD makespan / ptp ADD makespan, {par_size} parallel"),
        makespan(Subject::Jalur)
            .zip(makespan(Subject::Ptp))
            .map(|(j, p)| j / p),
        "",
        0.35,
    );

    eprintln!("  cleaning up");
    bury(retired);
    drop(work);
    let left = sweep();
    if !left.is_empty() {
        eprintln!("jalur-bench: removed {} leftover namespaces", left.len());
    }
}
