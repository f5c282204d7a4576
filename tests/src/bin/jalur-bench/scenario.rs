//! The scenarios: a fresh simulated node per scenario and subject (its namespace attached to
//! an underlay, so it has a default route), pods' namespaces made before timing, then `n`
//! pods one after another or released at once; and the exec cost any plugin pays.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use jalur_cni_plugin::net::NetNs;
use jalur_tests::{Netns, Node};
use serde_json::{json, Value};

use crate::driver::{exec, make_pods, Driver, Env, Pod, Subject};
use crate::{check_interrupted, CNI_VERSION, NETWORK};

/// Pause between scenarios, for the kernel's deferred work of the last DELs (RCU callbacks).
/// Namespaces are deleted only at the very end: the kernel tears them down asynchronously,
/// under the rtnl lock, which would slow whatever scenario runs next.
const SETTLE: Duration = Duration::from_millis(500);

static NODE_COUNTER: AtomicU8 = AtomicU8::new(0);

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

/// A fresh node for one scenario of one subject, and that subject's config on it.
pub struct Bed {
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
        let plugin = match subject {
            Subject::Floor => None,
            Subject::Jalur => Some(("jalur", "jalur-ipam")),
            Subject::Ptp => Some(("ptp", "host-local")),
        };
        let conf = plugin.map(|(plugin, ipam)| {
            let mut conf = json!({
                "cniVersion": CNI_VERSION,
                "name": NETWORK,
                "type": plugin,
                "ipam": {"type": ipam, "ranges": [[{"subnet": subnet}]], "dataDir": data_dir},
            });
            if subject == Subject::Ptp {
                conf["ipMasq"] = json!(false);
            }
            conf
        });
        Bed {
            node,
            node_ns,
            node_inode,
            conf,
            subnet_octet: k,
        }
    }

    /// Keeps the node's and the pods' namespaces for deletion at the end, and pauses.
    pub fn retire(self, pods: Vec<Pod>, retired: &mut Vec<Netns>) {
        retired.extend(pods.into_iter().map(|p| p.ns));
        retired.push(self.node.ns);
        retired.push(self.node.underlay);
        std::thread::sleep(SETTLE);
        check_interrupted();
    }
}

/// Deletes the retired namespaces (on drop), four at a time.
pub fn bury(mut retired: Vec<Netns>) {
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
pub fn exec_baseline(env: &Env, n: usize, retired: &mut Vec<Netns>) -> Vec<Duration> {
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
pub struct Measured {
    pub add: Vec<Duration>,
    pub del: Vec<Duration>,
    pub add_makespan: Option<Duration>,
    pub del_makespan: Option<Duration>,
}

/// One untimed ADD + DEL, so that caches are warm and the IPAM store exists.
fn warm_up(driver: &mut Driver, pod: &Pod) {
    let (_, prev) = driver.add(pod);
    let stdin = driver.del_stdin(&prev);
    driver.del(pod, &stdin);
}

/// Scenario `kind` (`s`, `p`) of `n` pods for `subject` on a fresh node: makes the node and
/// `n + 1` pods (the first for the warm-up), runs `f` on a thread in the node's namespace,
/// and retires them.
fn on_fresh_node(
    env: &Env,
    subject: Subject,
    kind: &str,
    n: usize,
    retired: &mut Vec<Netns>,
    f: impl FnOnce(&Bed, &[Pod]) -> Measured + Send,
) -> Measured {
    let bed = Bed::new(env, subject, &format!("{kind}{n}"));
    let pods = make_pods(
        &format!("{}{kind}{n}", subject.tag()),
        n + 1,
        bed.subnet_octet,
    );
    let measured = bed
        .node_ns
        .run(|| {
            assert_in_netns(bed.node_inode);
            f(&bed, &pods)
        })
        .expect("enter node netns");
    bed.retire(pods, retired);
    measured
}

/// `n` pods one after another: every ADD, then every DEL.
pub fn sequential(env: &Env, subject: Subject, n: usize, retired: &mut Vec<Netns>) -> Measured {
    on_fresh_node(env, subject, "s", n, retired, |bed, pods| {
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
}

/// `n` threads released at once by a barrier: ADDs, then (once all are done) DELs.
pub fn parallel(env: &Env, subject: Subject, n: usize, retired: &mut Vec<Netns>) -> Measured {
    on_fresh_node(env, subject, "p", n, retired, |bed, pods| {
        warm_up(&mut Driver::new(subject, env, bed.conf.as_ref()), &pods[0]);
        let barrier = Barrier::new(n);
        // Threads made from this one start in the node's netns (checked below).
        let spans: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = pods[1..]
                .iter()
                .map(|pod| {
                    let barrier = &barrier;
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
}
