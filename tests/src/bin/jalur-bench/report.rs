//! The tables (nearest-rank percentiles of each subject's ADD and DEL) and the project's
//! target ratios.

use std::time::Duration;

use jalur_tests::bench::{self, ms, verdict};

use crate::driver::Subject;
use crate::scenario::Measured;

/// Nearest-rank percentile, in ms.
pub fn percentile(samples: &[Duration], p: f64) -> f64 {
    let samples: Vec<f64> = samples.iter().copied().map(ms).collect();
    bench::percentile(&samples, p)
}

/// The nearest-rank median, in ms.
pub fn p50(samples: &[Duration]) -> f64 {
    percentile(samples, 50.0)
}

/// One table row: a subject's durations for `n` pods.
pub struct Row {
    pub subject: Subject,
    pub n: usize,
    pub m: Measured,
}

/// Prints one table: each row's ADD and DEL percentiles, and the makespans when `parallel`.
pub fn print_table(title: &str, rows: &[Row], parallel: bool) {
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

/// Prints the target ratios: jalur against ptp, and jalur's DEL against the kernel's floor.
pub fn print_targets(seq_tables: &[(usize, Vec<Row>)], par_rows: &[Row], par_size: usize) {
    println!("\n== Targets ==");
    for (n, rows) in seq_tables {
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
    let makespan = |s| find(par_rows, s).and_then(|m| m.add_makespan).map(ms);
    print_ratio(
        &format!("jalur ADD makespan / ptp ADD makespan, {par_size} parallel"),
        makespan(Subject::Jalur)
            .zip(makespan(Subject::Ptp))
            .map(|(j, p)| j / p),
        "",
        0.35,
    );
}
