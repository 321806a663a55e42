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
