//! A real `technic serve` process on a reserved loopback port, and a small HTTP client with
//! an SSE reader, for the control plane's integration tests.

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::ports::Port;
pub use super::wait::DEADLINE;
use super::wait::{poll, wait_for_async};

/// How long [`Server::stop`] waits for the exit after SIGTERM before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// `technic serve`, killed on drop; stderr goes to a file (`log()`).
pub struct Server {
    child: Option<std::process::Child>,
    pub base: String,
    dir: TempDir,
    /// The server's token (`--token` or `TECHNIC_API__TOKEN`), sent by [`Server::get`].
    token: Option<String>,
    /// Reserved for as long as the server runs.
    _port: Port,
}

/// `technic serve ARGS` with `env` over a clean environment.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let all: Vec<&str> = std::iter::once("serve")
        .chain(args.iter().copied())
        .collect();
    super::technic::command(&all, env)
}

impl Server {
    /// Starts the server and waits until `/health` answers.
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let port = Port::reserve();
        let bind = port.addr();
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("serve.log")).expect("log file");
        let mut all: Vec<&str> = vec!["--bind", &bind];
        all.extend_from_slice(args);
        let mut cmd = command(&all, env);
        // Each server its own screens file, unless the test shares one.
        if !env.iter().any(|(k, _)| *k == "TECHNIC_SCREENS__PATH") {
            cmd.env("TECHNIC_SCREENS__PATH", dir.path().join("screens.json"));
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn technic serve");
        let token = args
            .iter()
            .position(|a| *a == "--token")
            .and_then(|i| args.get(i + 1))
            .or_else(|| {
                env.iter()
                    .find(|(k, _)| *k == "TECHNIC_API__TOKEN")
                    .map(|(_, v)| v)
            })
            .map(|t| t.to_string());
        let server = Server {
            child: Some(child),
            base: format!("http://{bind}"),
            dir,
            token,
            _port: port,
        };
        wait_for_async(
            "technic serve to answer /health",
            DEADLINE,
            async || match server
                .authorized(client().get(server.url("/health")))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => Ok(()),
                _ => Err(format!("log: {}", server.log())),
            },
        )
        .await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's resident set size in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }

    /// Sends a signal (`KILL`, `STOP`, `CONT`, …) to the server process.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let status = Command::new("kill")
                .args([&format!("-{sig}"), &c.id().to_string()])
                .status()
                .expect("kill");
            assert!(status.success(), "kill -{sig}");
        }
    }

    /// `kill -9`, and reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            super::end_children([&mut c]);
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL after the deadline).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        if let Ok(status) = poll(STOP_DEADLINE, || child.try_wait().ok().flatten()) {
            return Some(status);
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// `req` with the server's token, when it has one.
    pub fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// GET `path`, with the server's token when it has one.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let req = self.authorized(client().get(self.url(path)));
        json_of(req.send().await.expect("get")).await
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        json_of(
            client()
                .post(self.url(path))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("post"),
        )
        .await
    }

    /// Submits a scan; returns its id.
    pub async fn submit(&self, body: &str) -> String {
        let (status, v) = self.post("/api/v1/scans", body).await;
        assert_eq!(status, 202, "submit: {v}");
        v["id"].as_str().expect("id").to_string()
    }

    /// Polls the scan until its stage is terminal; returns its state.
    pub async fn wait_done(&self, id: &str) -> Value {
        wait_for_async(&format!("scan {id} to finish"), DEADLINE, async || {
            let (status, v) = self.get(&format!("/api/v1/scans/{id}")).await;
            assert_eq!(status, 200, "{v}");
            if ["done", "failed", "cancelled"].contains(&v["stage"].as_str().unwrap_or("")) {
                Ok(v)
            } else {
                Err(v)
            }
        })
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            super::end_children([&mut c]);
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .expect("client")
}

pub async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

/// Asserts the error shape and code of a non-2xx answer.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    let e = &body["error"];
    assert_eq!(e["code"], want_code, "{body}");
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        e["suggestions"].as_array().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    assert!(e["retryable"].is_boolean(), "{body}");
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

/// Reads an SSE stream until `event: report` or `event: error` (inclusive) or its end.
pub async fn read_events(url: &str) -> Vec<SseEvent> {
    read_events_until(url, None, |_| false).await
}

/// Reads an SSE stream, sending `Last-Event-ID` when given, until `stop` says so after an
/// event, `event: report` or `event: error` (inclusive), or its end (a dropped connection
/// ends it too).
pub async fn read_events_until(
    url: &str,
    last_event_id: Option<&str>,
    mut stop: impl FnMut(&SseEvent) -> bool,
) -> Vec<SseEvent> {
    let mut req = client().get(url);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let mut resp = req.send().await.expect("sse");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let mut buf = String::new();
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf[..end].to_string();
            buf.drain(..end + 2);
            let mut event = String::from("message");
            let mut data = String::new();
            let mut id = None;
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_string();
                } else if let Some(i) = line.strip_prefix("id:") {
                    id = Some(i.trim().to_string());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            if data.is_empty() {
                continue; // keep-alive comment
            }
            let last = event == "report" || event == "error";
            let ev = SseEvent {
                event,
                id,
                data: serde_json::from_str(&data).unwrap_or(Value::Null),
            };
            let stop_here = stop(&ev);
            out.push(ev);
            if last || stop_here {
                return out;
            }
        }
    }
    out
}
