//! `jalur-agent-bench`: how fast the node agent programs a large cluster, how fast it follows
//! one change, how much memory it holds, and what throughput pods get compared with the
//! underlay. It prints numbers beside the project's targets and asserts nothing about speed.
//! Run it through `scripts/bench-agent.sh` (root).
//!
//! 1. Scale (`scale.rs`, on the nodes of `node.rs` running the agent of `agent.rs`): a node
//!    namespace on an underlay (192.168.0.2/16, so thousands of peers are on-link), a
//!    NodeList with the node and N peers, `jalur-agent` started in file mode in the node;
//!    timed from spawn until the kernel holds every peer route (the last peer's route looked
//!    up every 2 ms, then the whole set confirmed by a netlink dump, both through the
//!    project's own netlink client). Once with on-link peers (direct routes), once with
//!    off-link peers (VXLAN); the direct routes also added by `ip -batch` for the kernel's
//!    floor. Then the agent's resident memory.
//! 2. One change (`change.rs`): with the largest N programmed (direct), the NodeList is
//!    rewritten (temp + rename) with one more peer, and the time until its route is in the
//!    kernel is split into the wait for the file source's next poll (seen as the jump of the
//!    agent's read bytes in /proc/<pid>/io), reading + parsing the file (the agent's "nodes
//!    file read" log line), and the sync up to the route (a lookup of the route every 1 ms).
//! 3. Throughput (`throughput.rs`): iperf3 pod→pod beside node→node on the simulated cluster,
//!    direct and over VXLAN, with the underlay link-bound (shaped as a NIC) and CPU-bound.
//!
//! Everything made (namespaces `jt<pid>-*`, the agents and iperf3 inside them, files under
//! `/var/tmp/jalur-agent-bench-<pid>/`) is removed at the end: by drop guards, by the panic
//! hook (release builds abort on panic, so drop guards would not run), and on SIGINT/SIGTERM.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use jalur_tests::bench::{self, WorkDir};

mod agent;
mod change;
mod node;
mod scale;
mod throughput;

const NAME: &str = "jalur-agent-bench";
/// The monitor loop's tick (log and /proc reads, route lookups of the change run: cheap).
const TICK: Duration = Duration::from_millis(1);
/// Route dumps start once the agent logged that it parsed the file, or after this (should
/// the log line never come).
const NO_LOG_FALLBACK: Duration = Duration::from_secs(5);
/// Pause after a run, so that the next starts on a quiet machine.
const SETTLE: Duration = Duration::from_millis(500);

/// Stops the bench (through the panic hook, which cleans up) once SIGINT/SIGTERM arrived.
fn check_interrupted() {
    if bench::interrupted() {
        panic!("interrupted");
    }
}

/// Parts 1 and 2: the scale runs, the kernel's floor and the single changes.
fn scale_and_change(work: &Path, bin_dir: &Path, sizes: &[usize], reps: usize, quick: bool) {
    scale::print_intro();
    let mut results = Vec::new();
    let mut retired = Vec::new();
    let mut change_node = None;
    let mut samples = Vec::new();
    let mut floors = Vec::new();
    let largest = *sizes.iter().max().expect("sizes");
    for overlay in [false, true] {
        for &n in sizes {
            eprintln!(
                "  running: scale {n} peers {}",
                if overlay { "vxlan" } else { "direct" }
            );
            let (mut node, r) = scale::scale_run(work, bin_dir, n, overlay);
            results.push(r);
            if !overlay {
                // Each route via its peer, as the agent; for the largest N also all via one.
                let shared: &[bool] = if n == largest {
                    &[false, true]
                } else {
                    &[false]
                };
                for &shared_gw in shared {
                    let (floor_node, floor) = scale::kernel_floor(work, n, shared_gw);
                    retired.push(floor_node);
                    floors.push(floor);
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
            samples = (0..reps)
                .map(|k| change::one_change(&mut node, k, reps))
                .collect();
            node.agent().stop();
            retired.push(node);
        }
    }
    scale::report(&results, &floors, largest, quick);
    change::report(&samples, reps, largest);

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
    bench::require_root(NAME, "scripts/bench-agent.sh");
    let bin_dir = bench::bin_dir(
        &["jalur-agent", "jalur"],
        "-p jalur-node-agent -p jalur-cni-plugin",
    );
    let work = WorkDir::create(NAME);
    // Still one thread: the fixtures find the plugins and put their temp dirs by these.
    std::env::set_var("JALUR_BIN_DIR", &bin_dir);
    std::env::set_var("TMPDIR", &work.0);

    bench::sweep_on_panic(NAME);
    bench::catch_interrupts();

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
        "{NAME}: {} CPUs, kernel {}, load {}, agent from {}{}",
        bench::cpus(),
        bench::kernel(),
        bench::load_average(3),
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
    let left = bench::sweep(NAME);
    if left > 0 {
        eprintln!("{NAME}: removed {left} leftover namespaces");
    }
}
