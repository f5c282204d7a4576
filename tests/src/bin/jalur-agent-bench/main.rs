//! `jalur-agent-bench`: how fast the node agent programs a large cluster, how fast it follows
//! one change, how much memory it holds, and what throughput pods get compared with the
//! underlay. It prints numbers beside the project's targets and asserts nothing about speed.
//! Run it through `scripts/bench-agent.sh` (root).
//!
//! 1. Scale: a node namespace on an underlay (192.168.0.2/16, so thousands of peers are
//!    on-link), a NodeList with the node and N peers, `jalur-agent` started in file mode in
//!    the node; timed from spawn until the kernel holds every peer route (the last peer's
//!    route looked up every 2 ms, then the whole set confirmed by a netlink dump). Once with
//!    on-link peers (direct routes), once with off-link peers (VXLAN); the direct routes also
//!    added by `ip -batch` for the kernel's floor. Then the agent's resident memory.
//! 2. One change: with the largest N programmed (direct), the NodeList is rewritten (temp +
//!    rename) with one more peer, and the time until its route is in the kernel is split into
//!    the wait for the file source's next poll (seen as the jump of the agent's read bytes in
//!    /proc/<pid>/io), reading + parsing the file (the agent's "nodes file read" log line), and
//!    the sync up to the route (a lookup of the route every 1 ms).
//! 3. Throughput (`throughput.rs`): iperf3 pod→pod beside node→node on the simulated cluster,
//!    direct and over VXLAN, with the underlay link-bound (shaped as a NIC) and CPU-bound.
//!
//! Everything made (namespaces `jt<pid>-*`, the agents and iperf3 inside them, files under
//! `/var/tmp/jalur-agent-bench-<pid>/`) is removed at the end: by drop guards, by the panic
//! hook (release builds abort on panic, so drop guards would not run), and on SIGINT/SIGTERM.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jalur_cni_plugin::net::{NetNs, JALUR_ROUTE_PROTOCOL};
use jalur_tests::bench::{ms, verdict, WorkDir};
use jalur_tests::{sh, Netns};
use serde_json::{json, Value};

mod throughput;

/// The agent's metrics port inside each node namespace (its loopback is the node's own).
const METRICS_ADDR: &str = "127.0.0.1:19644";
/// The agent's file source polls this often (node-agent/src/source/file.rs).
const FILE_POLL: Duration = Duration::from_millis(20);
/// How often the scale run looks up the last peer's route (one netlink round trip).
const LOOKUP_POLL: Duration = Duration::from_millis(2);
/// How often the scale run dumps the node's routes once it looks for stragglers.
const SCALE_POLL: Duration = Duration::from_millis(20);
/// The monitor loop's tick (log and /proc reads, route lookups of the change run: cheap).
const TICK: Duration = Duration::from_millis(1);
/// Bound on one scale run.
const SCALE_LIMIT: Duration = Duration::from_secs(120);
/// Bound on one change.
const CHANGE_LIMIT: Duration = Duration::from_secs(20);
/// Route dumps start once the agent logged that it parsed the file, or after this (should
/// the log line never come).
const NO_LOG_FALLBACK: Duration = Duration::from_secs(5);
/// Pause after a run, so that the next starts on a quiet machine.
const SETTLE: Duration = Duration::from_millis(500);
/// How long after its sync the agent's memory is read.
const RSS_SETTLE: Duration = Duration::from_secs(1);

// Targets (the project's).
const TARGET_SCALE_S: f64 = 1.0;
const TARGET_SCALE_PEERS: usize = 5000;
const TARGET_RSS_MB: f64 = 40.0;
const TARGET_CHANGE_MS: f64 = 100.0;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Stops the bench (through the panic hook, which cleans up) once SIGINT/SIGTERM arrived.
fn check_interrupted() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        panic!("interrupted");
    }
}

/// This run's namespaces all start with this (see `jalur_tests::Netns::new`).
fn ns_prefix() -> String {
    format!("jt{}-", std::process::id())
}

/// This run's files (also `TMPDIR` for the cluster fixture's temp dir).
fn work_dir() -> PathBuf {
    WorkDir::path_for("jalur-agent-bench")
}

/// Deletes whatever of this run is left: the processes inside namespaces `jt<pid>-*`, those
/// namespaces, and the work dir. Returns how many namespaces it had to delete.
fn sweep() -> usize {
    let prefix = ns_prefix();
    let mut left = 0;
    if let Ok(dir) = std::fs::read_dir("/run/netns") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                let _ = Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "for p in $(ip netns pids {name} 2>/dev/null); do kill -9 $p; done; \
                         ip netns del {name}"
                    ))
                    .status();
                left += 1;
            }
        }
    }
    let _ = std::fs::remove_dir_all(work_dir());
    left
}

/// Nearest-rank percentile.
fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(samples: &[f64]) -> f64 {
    percentile(samples, 50.0)
}

fn max(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(f64::MIN, f64::max)
}

/// A file written by someone else, read as it grows, line by line (the agent's JSON log).
struct LogWatch {
    file: Option<File>,
    path: PathBuf,
    pos: u64,
    partial: String,
}

impl LogWatch {
    fn new(path: &Path) -> LogWatch {
        LogWatch {
            file: None,
            path: path.to_owned(),
            pos: 0,
            partial: String::new(),
        }
    }

    /// The complete lines written since the last call, as JSON.
    fn poll(&mut self) -> Vec<Value> {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        let Some(file) = self.file.as_mut() else {
            return Vec::new();
        };
        let mut buf = Vec::new();
        if file.seek(SeekFrom::Start(self.pos)).is_err() || file.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        self.pos += buf.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        let mut out = Vec::new();
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            if let Ok(v) = serde_json::from_str::<Value>(line.trim()) {
                out.push(v);
            }
        }
        out
    }
}

/// What the agent logged that the bench times: (message, sync seconds if any, level).
fn log_event(v: &Value) -> (&str, Option<f64>, &str) {
    (
        v["fields"]["message"].as_str().unwrap_or(""),
        v["fields"]["seconds"].as_f64(),
        v["level"].as_str().unwrap_or(""),
    )
}

/// A running `jalur-agent` (spawned through `ip netns exec`, which execs it: same pid).
struct Agent {
    child: Child,
    log_path: PathBuf,
    log: LogWatch,
    errors: Vec<String>,
}

impl Agent {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The agent's log lines so far, with ERROR/WARN lines remembered.
    fn poll_log(&mut self) -> Vec<Value> {
        let lines = self.log.poll();
        for v in &lines {
            let (msg, _, level) = log_event(v);
            if level == "ERROR" {
                self.errors.push(format!("{msg} {}", v["fields"]));
            }
        }
        lines
    }

    /// Panics with its log if the agent has exited.
    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            panic!("jalur-agent exited ({status}):\n{log}");
        }
    }

    /// `(VmRSS, VmHWM)` in MB, from /proc/<pid>/status.
    fn memory_mb(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("agent's /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(f64::NAN, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Bytes the agent has read through read(2) and friends (`rchar` of /proc/<pid>/io).
    fn rchar(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/io", self.pid()))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("rchar:"))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// SIGTERM, then a bounded wait, then SIGKILL.
    fn stop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

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

fn pod_cidr(i: usize) -> String {
    format!("{}/24", pod_net(i))
}

/// A bare rtnetlink socket that counts the agent's IPv4 routes without decoding them: the
/// bench polls while the agent works, so its own dumps should cost the machine little.
struct RouteCounter {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

const NLMSG_HDR: usize = 16;
const RTMSG_LEN: usize = 12;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RT_TABLE_MAIN: u8 = 254;
const RTN_BLACKHOLE: u8 = 6;
const RTA_DST: u16 = 1;
/// `rtmsg.rtm_flags`: answer a lookup with the FIB entry that matched.
const RTM_F_FIB_MATCH: u32 = 0x2000;

impl RouteCounter {
    /// Opens the socket in the calling thread's network namespace.
    fn open() -> io::Result<RouteCounter> {
        // SAFETY: plain socket(2); the fd is owned right after.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; zeroed is a valid "kernel picks the port id".
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: addr is a valid sockaddr_nl of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RouteCounter {
            fd,
            seq: 0,
            buf: vec![0; 256 * 1024],
        })
    }

    /// Sends `req` (a complete netlink message) and hands every answer's type and payload to
    /// `each`, until the dump's end (`dump`) or the first answer.
    fn exchange(
        &mut self,
        req: &mut [u8],
        dump: bool,
        mut each: impl FnMut(u16, &[u8]),
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        req[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        // SAFETY: req is a valid buffer of its length; an unbound destination is the kernel.
        let sent = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            // SAFETY: buf is a valid writable buffer of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let data = &self.buf[..n as usize];
            let mut off = 0;
            while off + NLMSG_HDR <= data.len() {
                let u32_at = |i: usize| u32::from_ne_bytes(data[i..i + 4].try_into().unwrap());
                let len = u32_at(off) as usize;
                let kind = u16::from_ne_bytes([data[off + 4], data[off + 5]]);
                if len < NLMSG_HDR || off + len > data.len() {
                    return Err(io::Error::other("truncated netlink message"));
                }
                if u32_at(off + 8) == self.seq {
                    let payload = &data[off + NLMSG_HDR..off + len];
                    match kind {
                        NLMSG_DONE => return Ok(()),
                        NLMSG_ERROR if payload.len() >= 4 => {
                            let errno = i32::from_ne_bytes(payload[..4].try_into().unwrap());
                            return Err(io::Error::from_raw_os_error(-errno));
                        }
                        _ => {
                            each(kind, payload);
                            if !dump {
                                return Ok(());
                            }
                        }
                    }
                }
                off += (len + 3) & !3;
            }
        }
    }

    /// A route request: nlmsghdr, rtmsg for IPv4, and `attr_room` bytes for attributes.
    fn request(flags: i32, attr_room: usize) -> Vec<u8> {
        let len = NLMSG_HDR + RTMSG_LEN + attr_room;
        let mut req = vec![0u8; len];
        req[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&RTM_GETROUTE.to_ne_bytes());
        req[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | flags) as u16).to_ne_bytes());
        req[NLMSG_HDR] = libc::AF_INET as u8;
        req
    }

    /// Dumps the IPv4 routes and counts those of the main table with protocol 74 that are
    /// not blackholes.
    fn count(&mut self) -> io::Result<usize> {
        let mut req = Self::request(libc::NLM_F_DUMP, 0);
        let mut count = 0;
        self.exchange(&mut req, true, |kind, rt| {
            if kind == RTM_NEWROUTE && rt.len() >= RTMSG_LEN {
                let (table, protocol, kind) = (rt[4], rt[5], rt[7]);
                if table == RT_TABLE_MAIN
                    && protocol == JALUR_ROUTE_PROTOCOL
                    && kind != RTN_BLACKHOLE
                {
                    count += 1;
                }
            }
        })?;
        Ok(count)
    }

    /// Whether the kernel holds the agent's route to `net`/`len`: one lookup (`ip route get
    /// fibmatch`) of the subnet's first host, answered with the FIB entry that matched it.
    fn has_route(&mut self, net: Ipv4Addr, len: u8) -> io::Result<bool> {
        let mut req = Self::request(0, 8);
        let rt = NLMSG_HDR;
        req[rt + 1] = 32;
        req[rt + 8..rt + 12].copy_from_slice(&RTM_F_FIB_MATCH.to_ne_bytes());
        let attr = rt + RTMSG_LEN;
        req[attr..attr + 2].copy_from_slice(&8u16.to_ne_bytes());
        req[attr + 2..attr + 4].copy_from_slice(&RTA_DST.to_ne_bytes());
        let host = Ipv4Addr::from(u32::from(net) + 1);
        req[attr + 4..attr + 8].copy_from_slice(&host.octets());
        let mut found = false;
        match self.exchange(&mut req, false, |kind, rt| {
            found = kind == RTM_NEWROUTE
                && rt.len() >= RTMSG_LEN
                && rt[1] == len
                && rt[5] == JALUR_ROUTE_PROTOCOL
                && route_dst(rt) == Some(net);
        }) {
            Ok(()) => Ok(found),
            // No route at all (the node has a default route, so this is unexpected).
            Err(e) if e.raw_os_error() == Some(libc::ENETUNREACH) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The RTA_DST of a route message (rtmsg and its attributes).
fn route_dst(rt: &[u8]) -> Option<Ipv4Addr> {
    let mut off = RTMSG_LEN;
    while off + 4 <= rt.len() {
        let len = u16::from_ne_bytes([rt[off], rt[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([rt[off + 2], rt[off + 3]]);
        if len < 4 || off + len > rt.len() {
            return None;
        }
        if kind == RTA_DST && len == 8 {
            return Some(Ipv4Addr::new(
                rt[off + 4],
                rt[off + 5],
                rt[off + 6],
                rt[off + 7],
            ));
        }
        off += (len + 3) & !3;
    }
    None
}

/// Peer `i`'s InternalIP: on the node's 192.168.0.0/16 (direct), or off it in 172.16.0.0/16
/// (VXLAN).
fn peer_ip(i: usize, overlay: bool) -> Ipv4Addr {
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
struct BenchNode {
    // Dropped first: the agent, then the socket, then the namespaces.
    agent: Option<Agent>,
    nl: RouteCounter,
    ns: Netns,
    _underlay: Netns,
    dir: PathBuf,
    nodes_file: PathBuf,
    peers: usize,
    overlay: bool,
    file_bytes: usize,
}

impl BenchNode {
    fn new(work: &Path, tag: &str, overlay: bool) -> BenchNode {
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
            .run(RouteCounter::open)
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
    fn write_nodes(&mut self, n: usize) {
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

    fn start_agent(&mut self, bin_dir: &Path) {
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
        self.agent = Some(Agent {
            child,
            log: LogWatch::new(&log_path),
            log_path,
            errors: Vec::new(),
        });
    }

    fn agent(&mut self) -> &mut Agent {
        self.agent.as_mut().expect("agent running")
    }

    /// How many peer routes the kernel holds (proto 74, not blackholes, IPv4 main table).
    fn peer_routes(&mut self) -> usize {
        self.nl.count().expect("dump the node's routes")
    }

    /// Whether the kernel holds the route to peer `i`'s pod subnet.
    fn has_peer_route(&mut self, i: usize) -> bool {
        self.nl
            .has_route(pod_net(i), 24)
            .expect("look up a route in the node")
    }

    fn ready(&self) -> bool {
        self.dir.join("state").join("ready").exists()
            && self.dir.join("net.d").join("10-jalur.conflist").exists()
    }
}

/// Times of one scale run, from the agent's spawn.
struct ScaleResult {
    peers: usize,
    overlay: bool,
    /// The agent's first log line ("jalur-agent starting").
    started: Option<Duration>,
    /// "nodes file read" (read and parsed).
    parsed: Option<Duration>,
    /// When the kernel first held every peer route (the last peer's route looked up, the
    /// whole set confirmed by a dump).
    routes: Option<Duration>,
    /// "synced" logged (routes, overlay, nftables, conflist) and its own duration.
    synced: Option<Duration>,
    sync_seconds: Option<f64>,
    rss_mb: f64,
    peak_mb: f64,
    /// What one of the bench's own route dumps costs with every route in place.
    dump_ms: f64,
    file_bytes: usize,
    errors: Vec<String>,
}

/// The kernel's floor for the direct routes of `n` peers: the same routes added by one
/// `ip -batch` (one request and ack per route, as the agent does) to a fresh node, each via
/// its peer's address, or all via one shared gateway (`shared_gw`) for comparison.
fn kernel_floor(work: &Path, n: usize, shared_gw: bool) -> (BenchNode, Duration) {
    let tag = format!("f{n}{}", if shared_gw { "s" } else { "d" });
    let mut node = BenchNode::new(work, &tag, false);
    let batch: String = (1..=n)
        .map(|i| {
            let gw = if shared_gw {
                peer_ip(1, false)
            } else {
                peer_ip(i, false)
            };
            format!("route replace {} via {gw} dev ul0 proto 74\n", pod_cidr(i))
        })
        .collect();
    let path = node.dir.join("routes.batch");
    std::fs::write(&path, batch).expect("write the batch");
    std::thread::sleep(SETTLE);
    check_interrupted();
    let t = Instant::now();
    let status = Command::new("ip")
        .args(["-n", &node.ns.name, "-batch"])
        .arg(&path)
        .status()
        .expect("run ip -batch");
    let took = t.elapsed();
    assert!(status.success(), "ip -batch failed");
    assert_eq!(node.peer_routes(), n, "ip -batch added every route");
    (node, took)
}

fn scale_run(work: &Path, bin_dir: &Path, n: usize, overlay: bool) -> (BenchNode, ScaleResult) {
    let tag = format!("s{n}{}", if overlay { "v" } else { "d" });
    let mut node = BenchNode::new(work, &tag, overlay);
    node.write_nodes(n);
    std::thread::sleep(SETTLE);
    let t0 = Instant::now();
    node.start_agent(bin_dir);
    let mut r = ScaleResult {
        peers: n,
        overlay,
        started: None,
        parsed: None,
        routes: None,
        synced: None,
        sync_seconds: None,
        rss_mb: f64::NAN,
        peak_mb: f64::NAN,
        dump_ms: f64::NAN,
        file_bytes: node.file_bytes,
        errors: Vec::new(),
    };
    let mut next_probe = t0;
    let mut last_seen: Option<Duration> = None;
    while t0.elapsed() < SCALE_LIMIT {
        check_interrupted();
        node.agent().check_alive();
        for v in node.agent().poll_log() {
            let at = t0.elapsed();
            match log_event(&v) {
                ("jalur-agent starting", _, _) => r.started = r.started.or(Some(at)),
                ("nodes file read", _, _) => r.parsed = r.parsed.or(Some(at)),
                ("synced", secs, _) if r.synced.is_none() => {
                    r.synced = Some(at);
                    r.sync_seconds = secs;
                }
                _ => {}
            }
        }
        // No route can be there before the file is parsed (logged before the view is
        // published). The agent adds routes in peer-name order, so the last peer's route
        // comes last: look it up (cheap), then confirm the whole set with a full dump (a few
        // ms of kernel time for thousands of routes). Should the set be incomplete then, dump
        // every SCALE_POLL until it is.
        let may_have_routes = r.parsed.is_some() || t0.elapsed() > NO_LOG_FALLBACK;
        if r.routes.is_none() && may_have_routes && Instant::now() >= next_probe {
            match last_seen {
                None => {
                    next_probe = Instant::now() + LOOKUP_POLL;
                    if node.has_peer_route(n) {
                        let at = t0.elapsed();
                        last_seen = Some(at);
                        if node.peer_routes() >= n {
                            r.routes = Some(at);
                        }
                    }
                }
                Some(_) => {
                    next_probe = Instant::now() + SCALE_POLL;
                    if node.peer_routes() >= n {
                        r.routes = Some(t0.elapsed());
                    }
                }
            }
        }
        if r.routes.is_some() && r.synced.is_some() && node.ready() {
            break;
        }
        std::thread::sleep(TICK);
    }
    let dumps: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            node.peer_routes();
            ms(t.elapsed())
        })
        .collect();
    r.dump_ms = median(&dumps);
    if r.routes.is_some() {
        // The bare counter agrees with iproute2.
        let listed = sh(&format!("ip -n {} route show proto 74", node.ns.name));
        let by_ip = listed
            .lines()
            .filter(|l| !l.starts_with("blackhole"))
            .count();
        assert_eq!(
            node.peer_routes(),
            by_ip,
            "route counter disagrees with ip route"
        );
    }
    std::thread::sleep(RSS_SETTLE);
    let agent = node.agent();
    agent.check_alive();
    agent.poll_log();
    (r.rss_mb, r.peak_mb) = agent.memory_mb();
    r.errors = std::mem::take(&mut agent.errors);
    (node, r)
}

/// One change's times, from the rename.
struct ChangeSample {
    /// The first file read after the rename (rchar jump): the file source's poll.
    tick: Option<Duration>,
    /// "nodes file read" logged.
    parsed: Option<Duration>,
    /// The lookup that first found the new peer's route.
    route: Option<Duration>,
    /// "synced" logged, and the sync's own duration.
    synced: Option<Duration>,
    sync_seconds: Option<f64>,
}

fn one_change(node: &mut BenchNode, k: usize, reps: usize) -> ChangeSample {
    // Spread the rename over the poll period (the tick phase is otherwise fixed).
    std::thread::sleep(SETTLE + FILE_POLL.mul_f64(k as f64 / reps as f64));
    node.agent().poll_log();
    let n = node.peers + 1;
    let rchar0 = node.agent().rchar();
    // The clock starts at the rename, the last step of write_nodes (building the JSON for
    // thousands of nodes is the writer's cost, not the agent's).
    node.write_nodes(n);
    let t0 = Instant::now();
    let threshold = (node.file_bytes / 2) as u64;
    let mut s = ChangeSample {
        tick: None,
        parsed: None,
        route: None,
        synced: None,
        sync_seconds: None,
    };
    while t0.elapsed() < CHANGE_LIMIT {
        check_interrupted();
        node.agent().check_alive();
        if s.tick.is_none() && node.agent().rchar() >= rchar0 + threshold {
            s.tick = Some(t0.elapsed());
        }
        for v in node.agent().poll_log() {
            let at = t0.elapsed();
            match log_event(&v) {
                ("nodes file read", _, _) => s.parsed = s.parsed.or(Some(at)),
                ("synced", secs, _) if s.synced.is_none() => {
                    s.synced = Some(at);
                    s.sync_seconds = secs;
                }
                _ => {}
            }
        }
        let may_have_route = s.parsed.is_some() || t0.elapsed() > NO_LOG_FALLBACK;
        if s.route.is_none() && may_have_route && node.has_peer_route(n) {
            s.route = Some(t0.elapsed());
        }
        if s.route.is_some() && s.synced.is_some() {
            break;
        }
        std::thread::sleep(TICK);
    }
    s
}

fn fmt_ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "timeout".into(), |d| format!("{:.0} ms", ms(d)))
}

fn print_scale(results: &[ScaleResult]) {
    println!(
        "{:>6} {:<6} {:>8} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>11}",
        "peers",
        "path",
        "file",
        "started",
        "parsed",
        "all routes",
        "sync done",
        "sync took",
        "µs/route",
        "RSS",
        "peak RSS"
    );
    for r in results {
        let per_route = match (r.parsed, r.routes) {
            (Some(p), Some(t)) if t > p => {
                format!("{:.0}", (t - p).as_secs_f64() * 1e6 / r.peers as f64)
            }
            _ => "-".into(),
        };
        println!(
            "{:>6} {:<6} {:>6}kB {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>6.1} MB {:>8.1} MB",
            r.peers,
            if r.overlay { "vxlan" } else { "direct" },
            r.file_bytes / 1024,
            fmt_ms(r.started),
            fmt_ms(r.parsed),
            fmt_ms(r.routes),
            fmt_ms(r.synced),
            r.sync_seconds
                .map_or_else(|| "-".into(), |s| format!("{:.0} ms", s * 1e3)),
            per_route,
            r.rss_mb,
            r.peak_mb,
        );
        for e in &r.errors {
            println!("       agent error: {e}");
        }
    }
}

/// Parts 1 and 2: the scale runs, the kernel's floor and the single changes.
fn scale_and_change(work: &Path, bin_dir: &Path, sizes: &[usize], reps: usize, quick: bool) {
    println!("\n== 1. Scale: from the agent's spawn until the kernel holds every peer route ==");
    println!("NodeList of minimal Node objects (name, podCIDRs, InternalIP); node 192.168.0.2/16;");
    println!(
        "direct: peers on the node's /16 (one route each); vxlan: peers off-link (route + fdb + neighbour each);"
    );
    println!(
        "times from spawn: log lines seen within 1 ms; 'all routes': the last peer's route looked up every {} ms,\n\
         the whole set then confirmed by a full dump; RSS {} s after the sync;",
        LOOKUP_POLL.as_millis(),
        RSS_SETTLE.as_secs()
    );
    println!("'sync took' is the agent's own figure: routes, overlay, nftables and conflist");
    let mut results = Vec::new();
    let mut retired = Vec::new();
    let mut change_node = None;
    let mut samples = Vec::new();
    let mut floors: Vec<(usize, bool, Duration)> = Vec::new();
    let largest = *sizes.iter().max().expect("sizes");
    for overlay in [false, true] {
        for &n in sizes {
            eprintln!(
                "  running: scale {n} peers {}",
                if overlay { "vxlan" } else { "direct" }
            );
            let (mut node, r) = scale_run(work, bin_dir, n, overlay);
            results.push(r);
            if !overlay {
                let (floor_node, took) = kernel_floor(work, n, false);
                retired.push(floor_node);
                floors.push((n, false, took));
                if n == largest {
                    let (floor_node, took) = kernel_floor(work, n, true);
                    retired.push(floor_node);
                    floors.push((n, true, took));
                }
            }
            if !overlay && n == largest {
                change_node = Some(node);
            } else {
                node.agent().stop();
                retired.push(node);
            }
        }
        if !overlay {
            // The one-change runs on the largest direct node before the VXLAN runs load the
            // machine with more namespaces.
            let mut node = change_node.take().expect("largest direct node");
            eprintln!("  running: {reps} single changes on {largest} peers");
            samples = (0..reps).map(|k| one_change(&mut node, k, reps)).collect();
            node.agent().stop();
            retired.push(node);
        }
    }
    print_scale(&results);
    for r in results.iter().filter(|r| r.peers == largest) {
        let path = if r.overlay { "vxlan" } else { "direct" };
        let secs = r.routes.map(|d| d.as_secs_f64());
        let target_applies = r.peers >= TARGET_SCALE_PEERS || quick;
        match secs {
            Some(s) => println!(
                "{:<48} {s:>7.3} s   (target <= {TARGET_SCALE_S} s for {TARGET_SCALE_PEERS} peers)  {}",
                format!("{} peers, {path}: all routes programmed", r.peers),
                if target_applies { verdict(s <= TARGET_SCALE_S) } else { "" }
            ),
            None => println!(
                "{} peers, {path}: routes not complete within {} s  target missed",
                r.peers,
                SCALE_LIMIT.as_secs()
            ),
        }
        println!(
            "{:<48} {:>7.1} MB  (target <= {TARGET_RSS_MB} MB)  {}",
            format!("{} peers, {path}: agent RSS after settling", r.peers),
            r.rss_mb,
            verdict(r.rss_mb <= TARGET_RSS_MB)
        );
    }
    if let Some(r) = results.iter().find(|r| r.peers == largest && !r.overlay) {
        println!(
            "(a full dump of the {} routes takes the bench {:.1} ms, hence lookups while the agent works)",
            r.peers, r.dump_ms
        );
        if let (Some(p), Some(t)) = (r.parsed, r.routes) {
            println!(
                "where the time goes ({} peers, direct): spawn→file parsed {:.0} ms, parsed→all routes seen {:.0} ms \
                 (≈{:.0} µs per route; the agent sends one netlink request per route and waits for its ack)",
                r.peers,
                ms(p),
                ms(t - p),
                (t - p).as_secs_f64() * 1e6 / r.peers as f64
            );
        }
    }
    for (n, shared, took) in &floors {
        println!(
            "kernel floor, {n} routes by ip -batch (request + ack each), {:<30} {:>5.0} ms  ({:.0} µs per route)",
            if *shared {
                "all via one shared gateway:"
            } else {
                "each via its peer (as the agent):"
            },
            ms(*took),
            took.as_secs_f64() * 1e6 / *n as f64
        );
    }

    println!(
        "\n== 2. One change: NodeList rewritten (temp + rename) with one more peer, {largest} peers programmed =="
    );
    println!(
        "{reps} changes, renames spread over the {} ms file poll; the new route looked up every {} ms",
        FILE_POLL.as_millis(),
        TICK.as_millis()
    );
    let part = |f: &dyn Fn(&ChangeSample) -> Option<Duration>| -> Vec<f64> {
        samples.iter().filter_map(|s| f(s).map(ms)).collect()
    };
    let total = part(&|s| s.route);
    let wait = part(&|s| s.tick);
    let parse = part(&|s| Some(s.parsed? - s.tick?));
    let apply = part(&|s| Some(s.route? - s.parsed?));
    let sync = part(&|s| s.sync_seconds.map(Duration::from_secs_f64));
    let missing = samples.len() - total.len();
    let line = |label: &str, v: &[f64]| {
        if v.is_empty() {
            println!("{label:<52}      n/a");
        } else {
            println!(
                "{label:<52} median {:>6.1} ms   max {:>6.1} ms",
                median(v),
                max(v)
            );
        }
    };
    line("rename -> route in the kernel", &total);
    line("  waiting for the file poll (rename -> file read)", &wait);
    line("  reading + parsing the NodeList", &parse);
    line("  parsed -> route in the kernel (sync)", &apply);
    line("the agent's whole sync (incl. nftables, conflist)", &sync);
    if missing > 0 {
        println!(
            "{missing} of {reps} changes did not reach the kernel within {} s",
            CHANGE_LIMIT.as_secs()
        );
    }
    if !total.is_empty() {
        let (med, worst) = (median(&total), max(&total));
        println!(
            "{:<48} {med:>7.1} ms  (target <= {TARGET_CHANGE_MS} ms)  {}",
            "one change, median",
            verdict(med <= TARGET_CHANGE_MS && missing == 0)
        );
        println!(
            "{:<48} {worst:>7.1} ms  (target <= {TARGET_CHANGE_MS} ms)  {}",
            "one change, max",
            verdict(worst <= TARGET_CHANGE_MS && missing == 0)
        );
        let parts = [
            ("the file source's poll", median(&wait)),
            ("reading + parsing the NodeList", median(&parse)),
            ("the sync up to the route", median(&apply)),
        ];
        if let Some((why, t)) = parts
            .iter()
            .filter(|p| p.1.is_finite())
            .max_by(|a, b| a.1.total_cmp(&b.1))
        {
            println!("largest part: {why} (median {t:.1} ms)");
        }
    }

    eprintln!("  cleaning up the scale nodes");
    drop(retired);
    std::thread::sleep(SETTLE * 2);
}

fn usage() -> ! {
    eprintln!(
        "usage: jalur-agent-bench [--quick] [--throughput-only]\n\
         \n\
         Times jalur-agent programming N peers (N = 1000, 5000), following one NodeList change,\n\
         its memory, and pod vs underlay throughput (iperf3), in network namespaces.\n\
         Needs root; use scripts/bench-agent.sh.\n\
         --quick            N = 200, 5 changes, one 1 s iperf3 pair per path and setting (smoke run);\n\
                            full: 10 changes, 2 s iperf3 runs, 3 pairs link-bound and 9 CPU-bound\n\
         --throughput-only  only part 3, the iperf3 comparison"
    );
    std::process::exit(2);
}

fn main() {
    let (mut quick, mut throughput_only) = (false, false);
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => quick = true,
            "--throughput-only" => throughput_only = true,
            _ => usage(),
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "jalur-agent-bench needs root (it makes network namespaces): sudo scripts/bench-agent.sh"
        );
        std::process::exit(1);
    }

    let bin_dir = std::env::var_os("JALUR_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("own path");
            exe.parent().expect("bin dir").to_owned()
        });
    for bin in ["jalur-agent", "jalur"] {
        assert!(
            bin_dir.join(bin).is_file(),
            "no {bin} binary in {} (build with cargo build --release -p jalur-node-agent -p jalur-cni-plugin)",
            bin_dir.display()
        );
    }
    let work = WorkDir::create("jalur-agent-bench");
    // Still one thread: the fixtures find the plugins and put their temp dirs by these.
    std::env::set_var("JALUR_BIN_DIR", &bin_dir);
    std::env::set_var("TMPDIR", &work.0);

    // Release builds abort on panic, so drop guards would not run: clean up in the hook.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        let left = sweep();
        eprintln!("jalur-agent-bench: cleaned up after failure ({left} namespaces)");
    }));
    let handler = on_signal as extern "C" fn(libc::c_int);
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }

    let sizes: &[usize] = if quick { &[200] } else { &[1000, 5000] };
    let reps = if quick { 5 } else { 10 };
    let throughput_plan = if quick {
        throughput::Plan {
            secs: 1,
            link_pairs: 1,
            cpu_pairs: 1,
        }
    } else {
        throughput::Plan {
            secs: 2,
            link_pairs: 3,
            cpu_pairs: 9,
        }
    };
    println!(
        "jalur-agent-bench: {} CPUs, kernel {}, load {}, agent from {}{}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        bin_dir.display(),
        if quick { ", --quick" } else { "" }
    );

    if !throughput_only {
        scale_and_change(&work.0, &bin_dir, sizes, reps, quick);
    }

    if Command::new("iperf3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        throughput::run(&throughput_plan);
    } else {
        println!("\n== 3. Throughput: skipped, iperf3 is not installed (Debian iperf3) ==");
    }

    eprintln!("  cleaning up");
    drop(work);
    let left = sweep();
    if left > 0 {
        eprintln!("jalur-agent-bench: removed {left} leftover namespaces");
    }
}
