//! Real `technic` processes for multi-process tests: each with a clean environment (plus
//! the settings a test gives), stdout and stderr to files in its own temp dir, killed on
//! Drop. Waits poll under a deadline ([`super::wait`]).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::wait::wait_for;

pub const BIN: &str = env!("CARGO_BIN_EXE_technic");

/// Cluster timings short enough for tests: heartbeats every 200 ms, a node down 1.5 s after
/// its last one, a dead worker's shard claimed after 2 s.
pub const FAST_CLUSTER: &[(&str, &str)] = &[
    ("TECHNIC_CLUSTER__HEARTBEAT_MS", "200"),
    ("TECHNIC_CLUSTER__NODE_TTL_MS", "1500"),
    ("TECHNIC_CLUSTER__VISIBILITY_TIMEOUT_MS", "2000"),
    ("TECHNIC_CLUSTER__QUEUE_BLOCK_MS", "100"),
    ("TECHNIC_LOG__LEVEL", "info"),
];

/// `technic ARGS` with `env` over a clean environment (`PATH` kept).
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().envs(super::kept_env()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub struct Proc {
    child: Option<Child>,
    dir: TempDir,
    pub name: String,
}

impl Proc {
    /// Starts `technic ARGS` with `env` over a clean environment.
    pub fn spawn(name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = std::fs::File::create(dir.path().join("stdout")).expect("stdout file");
        let err = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let mut cmd = command(args, env);
        // Each process its own screens file, unless the test shares one.
        if !env.iter().any(|(k, _)| *k == "TECHNIC_SCREENS__PATH") {
            cmd.env("TECHNIC_SCREENS__PATH", dir.path().join("screens.json"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn technic");
        Proc {
            child: Some(child),
            dir,
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.file("stdout")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.file("stderr")).unwrap_or_default()
    }

    /// Sends a signal (`libc`-free: through `kill(1)`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{sig} {}", self.name);
    }

    /// `kill -9`, and reaps the process.
    pub fn kill9(&mut self) {
        self.signal("KILL");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, deadline: Duration) -> ExitStatus {
        let name = self.name.clone();
        let child = self.child.as_mut().expect("process still owned");
        let status = wait_for(&format!("{name} to exit"), deadline, || {
            child.try_wait().expect("try_wait")
        });
        self.child = None;
        status
    }

    /// Waits for exit and parses stdout as one JSON document; panics with the logs if the
    /// exit status is not `expect_code`.
    /// `technic worker --redis REDIS --workers 1 --node-id ID MORE…` (one worker actor:
    /// three such nodes fit two cores), named `id`.
    pub fn worker(id: &str, redis: &str, more: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut args = vec![
            "worker",
            "--redis",
            redis,
            "--workers",
            "1",
            "--node-id",
            id,
        ];
        args.extend_from_slice(more);
        Proc::spawn(id, &args, env)
    }

    /// `GET /metrics` of a process started with `--metrics-bind`, at the address it printed
    /// (the whole response, status line included).
    pub fn metrics(&self) -> String {
        let addr = self
            .stderr()
            .split("metrics on http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .map(String::from)
            .unwrap_or_else(|| {
                panic!(
                    "{} printed its metrics address: {}",
                    self.name,
                    self.stderr()
                )
            });
        http_get(&addr, "/metrics")
    }

    pub fn json(&mut self, deadline: Duration, expect_code: i32) -> Value {
        let status = self.wait(deadline);
        assert_eq!(
            status.code(),
            Some(expect_code),
            "{} exited with {status}; stderr:\n{}",
            self.name,
            self.stderr()
        );
        serde_json::from_str(&self.stdout()).unwrap_or_else(|e| {
            panic!(
                "{}: stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.name,
                self.stdout(),
                self.stderr()
            )
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            super::end_children([&mut c]);
        }
    }
}

/// `technic scan` of the first `n` synthetic symbols through the cache at `url`, as JSON:
/// what the cache learns from a scan (requests, dollar volumes, a cold pace).
pub fn scan_through(url: &str, n: usize) -> Value {
    let n = n.to_string();
    let report = run_json(
        &[
            "scan",
            "--cache",
            url,
            "--universe-size",
            &n,
            "--format",
            "json",
            "--quiet",
        ],
        &[],
    );
    assert_eq!(report["scanned"].to_string(), n, "{report}");
    report
}

/// Runs `technic ARGS` to completion and returns its stdout as JSON.
pub fn run_json(args: &[&str], env: &[(&str, &str)]) -> Value {
    Proc::spawn("technic", args, env).json(Duration::from_secs(120), 0)
}

/// One plain HTTP/1.1 GET over loopback; the whole response (status line, headers, body)
/// as text. Empty when the connection fails.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
