//! `/api/v1/cluster/throughput`: symbols per second of every node over the last minutes.
//! Each serve samples the node registry's `symbols_done` counters once a heartbeat
//! ([`sample`]) and keeps the last [`KEEP`] samples in memory; a rate is the difference of
//! two samples over their interval.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::scans::Shared;
use super::state::{cluster_nodes, AppState};
use crate::shutdown::Shutdown;

/// Samples kept: 10 minutes at the default 2 s heartbeat.
const KEEP: usize = 300;

/// Every node's `symbols_done` at one time.
struct Sample {
    at_ms: i64,
    done: BTreeMap<String, u64>,
}

#[derive(Default)]
pub struct Throughput {
    samples: Mutex<VecDeque<Sample>>,
}

/// Symbols per second of every node over each interval between two samples.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Series {
    /// End of each interval, Unix ms, oldest first.
    pub t: Vec<i64>,
    /// Per node id, its rate over each interval of `t`; `null` where the node was not in
    /// both samples or its counter went back (it restarted).
    pub nodes: BTreeMap<String, Vec<Option<f64>>>,
}

impl Throughput {
    fn samples(&self) -> std::sync::MutexGuard<'_, VecDeque<Sample>> {
        // Whole samples are pushed and popped: a poisoned deque is still consistent.
        self.samples.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record(&self, at_ms: i64, done: BTreeMap<String, u64>) {
        let mut s = self.samples();
        if s.back().is_some_and(|last| last.at_ms >= at_ms) {
            return;
        }
        if s.len() == KEEP {
            s.pop_front();
        }
        s.push_back(Sample { at_ms, done });
    }

    pub fn series(&self) -> Series {
        let s = self.samples();
        let mut out = Series {
            t: Vec::with_capacity(s.len().saturating_sub(1)),
            nodes: BTreeMap::new(),
        };
        for node in s.iter().flat_map(|x| x.done.keys()) {
            out.nodes.entry(node.clone()).or_default();
        }
        for (i, (a, b)) in s.iter().zip(s.iter().skip(1)).enumerate() {
            out.t.push(b.at_ms);
            let secs = (b.at_ms - a.at_ms) as f64 / 1000.0;
            for (node, rates) in out.nodes.iter_mut() {
                let rate = match (a.done.get(node), b.done.get(node)) {
                    (Some(x), Some(y)) if y >= x => Some((y - x) as f64 / secs),
                    _ => None,
                };
                rates.resize(i, None);
                rates.push(rate);
            }
        }
        out
    }
}

/// Samples the registry once a heartbeat until `shutdown` (or the state is gone).
pub async fn sample(state: Weak<AppState>, shutdown: Shutdown) {
    loop {
        let Some(state) = state.upgrade() else {
            return;
        };
        if let Ok(nodes) = cluster_nodes(&state).await {
            let done = nodes.into_iter().map(|n| (n.id, n.symbols_done)).collect();
            state
                .throughput
                .record(chrono::Utc::now().timestamp_millis(), done);
        }
        let every = Duration::from_millis(state.settings.cluster.heartbeat_ms.max(500));
        drop(state);
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.triggered() => return,
        }
    }
}

/// Symbols per second of every node, sampled once a heartbeat over the last minutes (by
/// this serve, since it started).
#[utoipa::path(get, path = "/api/v1/cluster/throughput", tag = "cluster",
    responses((status = 200, body = Series)))]
pub async fn throughput(State(state): Shared) -> Json<Series> {
    Json(state.throughput.series())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(v: &[(&str, u64)]) -> BTreeMap<String, u64> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn rates_between_samples_and_gaps() {
        let t = Throughput::default();
        t.record(1_000, done(&[("a", 0)]));
        t.record(3_000, done(&[("a", 100), ("b", 10)]));
        t.record(3_000, done(&[("a", 999)])); // not after the last: ignored
        t.record(4_000, done(&[("a", 50), ("b", 30)])); // a restarted
        let s = t.series();
        assert_eq!(s.t, vec![3_000, 4_000]);
        assert_eq!(s.nodes["a"], vec![Some(50.0), None]);
        assert_eq!(s.nodes["b"], vec![None, Some(20.0)]);
        for i in 0..KEEP + 10 {
            t.record(5_000 + i as i64, done(&[]));
        }
        assert_eq!(t.series().t.len(), KEEP - 1, "bounded");
    }
}
