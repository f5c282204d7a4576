//! Part 1: scale. A node namespace on an underlay (192.168.0.2/16, so thousands of peers are
//! on-link), a NodeList with the node and N peers, `jalur-agent` started in file mode in the
//! node; timed from spawn until the kernel holds every peer route. Also the kernel's floor
//! for the same direct routes (`ip -batch`), and the agent's resident memory.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use jalur_tests::bench::{median, ms, verdict};
use jalur_tests::sh;

use crate::agent::Milestones;
use crate::node::{peer_ip, pod_cidr, BenchNode};
use crate::{check_interrupted, NO_LOG_FALLBACK, SETTLE, TICK};

/// How often the scale run looks up the last peer's route (one netlink round trip).
const LOOKUP_POLL: Duration = Duration::from_millis(2);
/// How often the scale run dumps the node's routes once it looks for stragglers.
const SCALE_POLL: Duration = Duration::from_millis(20);
/// Bound on one scale run.
const SCALE_LIMIT: Duration = Duration::from_secs(120);
/// How long after its sync the agent's memory is read.
const RSS_SETTLE: Duration = Duration::from_secs(1);

// Targets (the project's).
const TARGET_SCALE_S: f64 = 1.0;
const TARGET_SCALE_PEERS: usize = 5000;
const TARGET_RSS_MB: f64 = 40.0;

/// The kernel's floor for `n` direct routes: how long `ip -batch` took, each route via its
/// peer (as the agent) or all via one shared gateway (`shared_gw`).
pub struct Floor {
    pub n: usize,
    pub shared_gw: bool,
    pub took: Duration,
}

/// Prints part 1's heading and what its figures mean.
pub fn print_intro() {
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
}

/// Times of one scale run, from the agent's spawn.
pub struct ScaleResult {
    peers: usize,
    overlay: bool,
    /// What the agent logged: its first line, "nodes file read", "synced".
    log: Milestones,
    /// When the kernel first held every peer route (the last peer's route looked up, the
    /// whole set confirmed by a dump).
    routes: Option<Duration>,
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
pub fn kernel_floor(work: &Path, n: usize, shared_gw: bool) -> (BenchNode, Floor) {
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
    (node, Floor { n, shared_gw, took })
}

pub fn scale_run(work: &Path, bin_dir: &Path, n: usize, overlay: bool) -> (BenchNode, ScaleResult) {
    let tag = format!("s{n}{}", if overlay { "v" } else { "d" });
    let mut node = BenchNode::new(work, &tag, overlay);
    node.write_nodes(n);
    std::thread::sleep(SETTLE);
    let t0 = Instant::now();
    node.start_agent(bin_dir);
    let mut r = ScaleResult {
        peers: n,
        overlay,
        log: Milestones::default(),
        routes: None,
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
        node.agent().note_milestones(t0, &mut r.log);
        // No route can be there before the file is parsed (logged before the view is
        // published). The agent adds routes in peer-name order, so the last peer's route
        // comes last: look it up (cheap), then confirm the whole set with a full dump (a few
        // ms of kernel time for thousands of routes). Should the set be incomplete then, dump
        // every SCALE_POLL until it is.
        let may_have_routes = r.log.parsed.is_some() || t0.elapsed() > NO_LOG_FALLBACK;
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
        if r.routes.is_some() && r.log.synced.is_some() && node.ready() {
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
        // The bench's count agrees with iproute2.
        let listed = sh(&format!("ip -n {} route show proto 74", node.ns.name));
        let by_ip = listed
            .lines()
            .filter(|l| !l.starts_with("blackhole"))
            .count();
        assert_eq!(
            node.peer_routes(),
            by_ip,
            "the route count disagrees with ip route"
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
        let per_route = match (r.log.parsed, r.routes) {
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
            fmt_ms(r.log.started),
            fmt_ms(r.log.parsed),
            fmt_ms(r.routes),
            fmt_ms(r.log.synced),
            r.log
                .sync_seconds
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

/// Prints part 1: the table of the scale runs, the verdicts for the largest N, where the time
/// went, and the kernel's floor.
pub fn report(results: &[ScaleResult], floors: &[Floor], largest: usize, quick: bool) {
    print_scale(results);
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
        if let (Some(p), Some(t)) = (r.log.parsed, r.routes) {
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
    for Floor { n, shared_gw, took } in floors {
        println!(
            "kernel floor, {n} routes by ip -batch (request + ack each), {:<30} {:>5.0} ms  ({:.0} µs per route)",
            if *shared_gw {
                "all via one shared gateway:"
            } else {
                "each via its peer (as the agent):"
            },
            ms(*took),
            took.as_secs_f64() * 1e6 / *n as f64
        );
    }
}
