//! The agent under test: a running `jalur-agent`, its JSON log read as it grows, and what
//! /proc tells of it (memory, bytes read).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

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

/// When the agent logged the steps the bench times, from some start.
#[derive(Default)]
pub struct Milestones {
    /// "jalur-agent starting".
    pub started: Option<Duration>,
    /// "nodes file read" (read and parsed).
    pub parsed: Option<Duration>,
    /// "synced" logged (routes, overlay, nftables, conflist), and the sync's own duration.
    pub synced: Option<Duration>,
    pub sync_seconds: Option<f64>,
}

/// A running `jalur-agent` (spawned through `ip netns exec`, which execs it: same pid).
pub struct Agent {
    child: Child,
    log_path: PathBuf,
    log: LogWatch,
    /// The ERROR lines it logged.
    pub errors: Vec<String>,
}

impl Agent {
    /// The agent `child`, which logs JSON to `log_path`.
    pub fn new(child: Child, log_path: PathBuf) -> Agent {
        Agent {
            child,
            log: LogWatch::new(&log_path),
            log_path,
            errors: Vec::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The agent's log lines so far, with ERROR/WARN lines remembered.
    pub fn poll_log(&mut self) -> Vec<Value> {
        let lines = self.log.poll();
        for v in &lines {
            let (msg, _, level) = log_event(v);
            if level == "ERROR" {
                self.errors.push(format!("{msg} {}", v["fields"]));
            }
        }
        lines
    }

    /// Reads the agent's new log lines and notes in `m` the first of each milestone, timed
    /// from `t0`.
    pub fn note_milestones(&mut self, t0: Instant, m: &mut Milestones) {
        for v in self.poll_log() {
            let at = t0.elapsed();
            match log_event(&v) {
                ("jalur-agent starting", _, _) => m.started = m.started.or(Some(at)),
                ("nodes file read", _, _) => m.parsed = m.parsed.or(Some(at)),
                ("synced", secs, _) if m.synced.is_none() => {
                    m.synced = Some(at);
                    m.sync_seconds = secs;
                }
                _ => {}
            }
        }
    }

    /// Panics with its log if the agent has exited.
    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            panic!("jalur-agent exited ({status}):\n{log}");
        }
    }

    /// `(VmRSS, VmHWM)` in MB, from /proc/<pid>/status.
    pub fn memory_mb(&self) -> (f64, f64) {
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
    pub fn rchar(&self) -> u64 {
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
    pub fn stop(&mut self) {
        let _ = kill(Pid::from_raw(self.pid() as i32), Signal::SIGTERM);
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
