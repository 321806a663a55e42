//! technic: a stock technical scanner that runs as a distributed actor cluster.
//!
//! Layers, from the ground up (no lower layer imports a higher one):
//!
//! - [`market`] and [`config`]: bars, symbols, universe entries; settings. Know nothing else.
//! - [`indicators`]: pure functions over slices with TA-Lib conventions, plus the fused
//!   latest-value pass the scanner uses.
//! - [`data`]: the [`data::MarketData`] trait and its providers (synthetic, csv, polygon),
//!   the resilience layer for remote providers and the fallback chain.
//! - [`scan`]: pure computation: scan config and validation, per-symbol evaluation
//!   (features → sub-scores → TechRating → signal → trade plan), filters, ranking, report.
//!   No I/O, no async.
//! - [`cluster`]: where I/O meets compute: the coordinator and worker actors, the
//!   [`cluster::WorkQueue`] they share, progress events and cancellation.
//! - [`api`]: the HTTP control plane of `technic serve` (axum): scans, SSE progress,
//!   cache, cluster, health, metrics, OpenAPI; one error shape; token and body limits.
//! - [`web`]: the dashboard served at `/` by `technic serve`: embedded HTML, JS, CSS and
//!   the vendored chart library; talks to the API only.
//! - [`cli`]: the `technic` commands and their output formats.
//! - [`telemetry`]: tracing init and the Prometheus metric definitions.

pub mod api;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod cpu;
pub mod data;
pub mod error;
pub mod fingerprint;
pub mod indicators;
pub mod market;
pub mod ml;
pub mod node;
pub mod redis_link;
pub mod scan;
pub mod screens;
pub mod shutdown;
pub mod telemetry;
pub mod web;
