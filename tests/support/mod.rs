//! The helpers of the integration tests, one folder, by topic. Every test file says
//! `mod support;` and uses what it needs (hence `dead_code` allowed here).
//!
//! - [`ports`]: the one way to get a loopback port, reserved so no other test (thread or
//!   binary) gets it while it is in use.
//! - [`wait`]: the one polling helper, under a deadline.
//! - [`redis`]: real `redis-server` processes, standalone and a 3-master cluster.
//! - [`technic`]: real `technic` processes with a clean environment.
//! - [`api`]: a real `technic serve` and an HTTP/SSE client for the control plane.
//! - [`web`]: chromedriver and headless Chromium for the dashboard.
//! - [`fake_polygon`]: a fake Polygon upstream (wiremock responder) over synthetic bars.
//! - [`polygon`]: provider settings, markets and scan helpers of the Polygon tests.
//! - [`promql`]: reading PromQL and Prometheus expositions for metric names.
//! - [`reports`]: scan reports against the embedded scan, every symbol exactly once.
//! - [`rig`]: the compose topology as processes, one network namespace per host.
#![allow(dead_code)]

pub mod api;
pub mod fake_polygon;
pub mod files;
pub mod polygon;
pub mod ports;
pub mod promql;
pub mod redis;
pub mod reports;
pub mod rig;
pub mod technic;
pub mod wait;
pub mod web;

/// What a child process keeps of the test's environment over a clean one: `PATH`, and
/// `LLVM_PROFILE_FILE` when the suite runs instrumented (`cargo llvm-cov`, as
/// `scripts/test.sh` does), so the child's coverage is written where it is counted.
pub fn kept_env() -> Vec<(&'static str, String)> {
    ["PATH", "LLVM_PROFILE_FILE"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k, v)))
        .collect()
}

/// Whether this suite runs instrumented: processes must then exit, not be killed, for
/// their coverage to be written.
pub fn instrumented() -> bool {
    std::env::var_os("LLVM_PROFILE_FILE").is_some()
}

/// Ends test processes: at once (SIGKILL), or, when the suite runs instrumented, with
/// SIGTERM first (and SIGCONT for a stopped one) and up to 10 s to exit, so a technic
/// process writes its coverage at exit. Reaps them.
pub fn end_children<'a>(children: impl IntoIterator<Item = &'a mut std::process::Child>) {
    let mut children: Vec<&mut std::process::Child> = children.into_iter().collect();
    if instrumented() {
        for c in &children {
            // SAFETY: kill(2) on our own children's pids.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
                libc::kill(c.id() as i32, libc::SIGCONT);
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline
            && children
                .iter_mut()
                .any(|c| matches!(c.try_wait(), Ok(None)))
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
}
