//! Part 2: one change. With the largest N programmed (direct), the NodeList is rewritten
//! (temp + rename) with one more peer, and the time until its route is in the kernel is split
//! into the wait for the file source's next poll (the jump of the agent's read bytes), reading
//! + parsing the file (its "nodes file read" log line), and the sync up to the route.

use std::time::{Duration, Instant};

use jalur_tests::bench::{median, ms, verdict};

use crate::agent::Milestones;
use crate::node::BenchNode;
use crate::{check_interrupted, NO_LOG_FALLBACK, SETTLE, TICK};

/// The agent's file source polls this often (node-agent/src/source/file.rs).
const FILE_POLL: Duration = Duration::from_millis(20);
/// Bound on one change.
const CHANGE_LIMIT: Duration = Duration::from_secs(20);
const TARGET_CHANGE_MS: f64 = 100.0;

/// One change's times, from the rename.
pub struct ChangeSample {
    /// The first file read after the rename (rchar jump): the file source's poll.
    tick: Option<Duration>,
    /// The lookup that first found the new peer's route.
    route: Option<Duration>,
    /// What the agent logged ("nodes file read", "synced").
    log: Milestones,
}

pub fn one_change(node: &mut BenchNode, k: usize, reps: usize) -> ChangeSample {
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
        route: None,
        log: Milestones::default(),
    };
    while t0.elapsed() < CHANGE_LIMIT {
        check_interrupted();
        node.agent().check_alive();
        if s.tick.is_none() && node.agent().rchar() >= rchar0 + threshold {
            s.tick = Some(t0.elapsed());
        }
        node.agent().note_milestones(t0, &mut s.log);
        let may_have_route = s.log.parsed.is_some() || t0.elapsed() > NO_LOG_FALLBACK;
        if s.route.is_none() && may_have_route && node.has_peer_route(n) {
            s.route = Some(t0.elapsed());
        }
        if s.route.is_some() && s.log.synced.is_some() {
            break;
        }
        std::thread::sleep(TICK);
    }
    s
}

/// Prints part 2: the changes' times, their parts, and the verdicts.
pub fn report(samples: &[ChangeSample], reps: usize, largest: usize) {
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
    let parse = part(&|s| Some(s.log.parsed? - s.tick?));
    let apply = part(&|s| Some(s.route? - s.log.parsed?));
    let sync = part(&|s| s.log.sync_seconds.map(Duration::from_secs_f64));
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
}

fn max(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(f64::MIN, f64::max)
}
