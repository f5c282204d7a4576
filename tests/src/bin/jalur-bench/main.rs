//! `jalur-bench`: how long a pod's ADD and DEL take on one simulated node, for `jalur` (with
//! its in-process IPAM), for the reference `ptp` + `host-local`, and for the kernel's floor
//! (the netlink operations of jalur's ADD done in-process). It prints numbers and asserts
//! nothing about speed. Run it through `scripts/bench.sh` (root).
//!
//! Each scenario of each subject gets a fresh node namespace (attached to an underlay, so it
//! has a default route). Pod namespaces are made before timing starts (`scenario.rs`). A
//! plugin is timed from spawn to exit, its stdin written, exactly as a runtime execs it: from
//! a thread that has entered the node's namespace, with the CNI_* variables and the config on
//! stdin (`driver.rs`, which also does the floor's netlink work). `report.rs` prints the
//! tables and the target ratios.
//!
//! Everything made (namespaces `jt<pid>-*`, files under `/var/tmp/jalur-bench-<pid>/`) is
//! removed at the end: by drop guards, by the panic hook (release builds abort on panic, so
//! drop guards would not run), and on SIGINT/SIGTERM.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use jalur_tests::bench::{self, WorkDir};

mod driver;
mod report;
mod scenario;

use driver::{Env, Subject};
use report::{p50, percentile, print_table, print_targets, Row};
use scenario::{bury, exec_baseline, parallel, sequential};

const NAME: &str = "jalur-bench";
/// The CNI version both plugins are called with.
const CNI_VERSION: &str = "1.0.0";
const NETWORK: &str = "bench";
const IFNAME: &str = "eth0";
const PTP: &str = "/usr/lib/cni/ptp";
const HOST_LOCAL: &str = "/usr/lib/cni/host-local";

/// Once SIGINT/SIGTERM arrived: removes everything of this run and exits (the first thread
/// to get here does it; any other waits for the exit).
fn check_interrupted() {
    static EXITING: AtomicBool = AtomicBool::new(false);
    if !bench::interrupted() {
        return;
    }
    if EXITING.swap(true, Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
    let left = bench::sweep(NAME);
    eprintln!("{NAME}: interrupted; removed its {left} namespaces");
    std::process::exit(130);
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
    bench::require_root(NAME, "scripts/bench.sh");
    bench::sweep_on_panic(NAME);
    bench::catch_interrupts();

    let bin_dir = bench::bin_dir(&["jalur"], "-p jalur-cni-plugin");
    let have_ptp = Path::new(PTP).is_file() && Path::new(HOST_LOCAL).is_file();
    let work = WorkDir::create(NAME);
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
        "{NAME}: {} CPUs (load average {}), kernel {}, plugins from {}, CNI {CNI_VERSION}{}",
        bench::cpus(),
        bench::load_average(1),
        bench::kernel(),
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
    println!("load average at the end: {}", bench::load_average(1));
    print_targets(&seq_tables, &par_rows, par_size);

    eprintln!("  cleaning up");
    bury(retired);
    drop(work);
    let left = bench::sweep(NAME);
    if left > 0 {
        eprintln!("{NAME}: removed {left} leftover namespaces");
    }
}
