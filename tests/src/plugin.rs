//! Running a built plugin the way a container runtime does: CNI_* variables, the config on
//! stdin, inside the node's namespace; stdout parsed as the protocol.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::{getpid, write};
use serde_json::Value;

/// The directory holding the workspace's built binaries (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("JALUR_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    assert!(
        dir.join("jalur").is_file(),
        "{} has no jalur binary: build the workspace first (cargo build --workspace)",
        dir.display()
    );
    dir.to_owned()
}

/// `CNI_PATH`: the built plugins, then the reference plugins of Debian's package.
pub fn cni_bin_dirs() -> String {
    format!("{}:/usr/lib/cni:/opt/cni/bin", bin_dir().display())
}

/// One plugin call.
#[derive(Debug, Clone)]
pub struct CniCall {
    /// Plugin binary name (looked up in [`bin_dir`], then `/usr/lib/cni`).
    pub plugin: String,
    /// `CNI_COMMAND`.
    pub command: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// Variables to leave out entirely (to test their absence).
    pub unset: Vec<String>,
    /// Extra variables.
    pub extra_env: Vec<(String, String)>,
    /// Kill the plugin (code -1) when it has not finished by then.
    pub timeout: Option<Duration>,
    /// A `cgroup.procs` file the plugin is put in before it starts (see [`crate::PidsCap`]).
    pub cgroup_procs: Option<PathBuf>,
}

/// What a plugin answered.
#[derive(Debug, Clone)]
pub struct CniOutput {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Stdout as text.
    pub stdout: String,
    /// Stderr as text (logs).
    pub stderr: String,
}

impl CniOutput {
    /// Stdout as JSON (panics with the output if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts success and returns the JSON result (Null for an empty stdout).
    pub fn ok(&self) -> Value {
        assert_eq!(self.code, 0, "plugin failed: {self:?}");
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts a CNI error with `code` and returns its message.
    pub fn err(&self, code: u64) -> String {
        assert_ne!(self.code, 0, "expected error {code}, got success: {self:?}");
        let v = self.json();
        assert_eq!(v["code"].as_u64(), Some(code), "wrong error code: {self:?}");
        assert!(v["cniVersion"].is_string(), "error JSON lacks cniVersion");
        v["msg"].as_str().expect("msg").to_owned()
    }
}

impl CniCall {
    /// A call of `plugin` with `command` for (container, ifname) in `netns`.
    pub fn new(plugin: &str, command: &str, container_id: &str, netns: &str, ifname: &str) -> Self {
        CniCall {
            plugin: plugin.into(),
            command: command.into(),
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: ifname.into(),
            unset: Vec::new(),
            extra_env: Vec::new(),
            timeout: None,
            cgroup_procs: None,
        }
    }

    fn binary(&self) -> PathBuf {
        let ours = bin_dir().join(&self.plugin);
        if ours.is_file() {
            ours
        } else {
            PathBuf::from("/usr/lib/cni").join(&self.plugin)
        }
    }

    /// Runs it inside `node_ns` with `stdin`.
    pub fn run(&self, node_ns: &str, stdin: &str) -> CniOutput {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", node_ns]).arg(self.binary());
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", &self.command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_PATH", cni_bin_dirs());
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        for k in &self.unset {
            cmd.env_remove(k);
        }
        if let Some(procs) = &self.cgroup_procs {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(procs)
                .expect("open cgroup.procs");
            // SAFETY: pre_exec is unsafe because the closure runs between fork and exec, where
            // only async-signal-safe work is allowed; no safe std or nix call puts the child
            // into a cgroup before it execs. The closure does only that: getpid, digits into a
            // stack buffer, one write(2) to a file opened before the fork; no allocation (the
            // errors are built from an errno or an ErrorKind).
            unsafe {
                cmd.pre_exec(move || {
                    let mut buf = [0u8; 24];
                    let mut pid = getpid().as_raw() as u64;
                    let mut i = buf.len();
                    loop {
                        i -= 1;
                        buf[i] = b'0' + (pid % 10) as u8;
                        pid /= 10;
                        if pid == 0 {
                            break;
                        }
                    }
                    let n = buf.len() - i;
                    match write(&file, &buf[i..]) {
                        Ok(written) if written == n => Ok(()),
                        Ok(_) => Err(std::io::ErrorKind::WriteZero.into()),
                        Err(errno) => Err(errno.into()),
                    }
                });
            }
        }
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn plugin");
        finish(child, stdin, self.timeout)
    }
}

/// Feeds stdin, collects the output, and kills the child at the deadline.
fn finish(mut child: Child, stdin: &str, timeout: Option<Duration>) -> CniOutput {
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    // Descendants of a killed plugin may hold the pipes open: read on detached threads and
    // stop waiting for them shortly after the plugin itself is gone.
    let reader = |mut r: Box<dyn Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            let _ = tx.send(String::from_utf8_lossy(&v).into_owned());
        });
        rx
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = timeout.map(|t| Instant::now() + t);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for plugin") {
            break status;
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            break child.wait().expect("wait for killed plugin");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let grace = Duration::from_secs(if timeout.is_some() { 2 } else { 3600 });
    CniOutput {
        code: status.code().unwrap_or(-1),
        stdout: out.recv_timeout(grace).unwrap_or_default(),
        stderr: err.recv_timeout(grace).unwrap_or_default(),
    }
}
