//! What the control plane's handlers share: settings, the cluster, the cache, live scans
//! and the history. The cluster is built in one function, [`start_cluster`], and the
//! node list in one, [`local_nodes`], so both can be swapped for the distributed versions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{watch, Notify};

use super::history::{History, ScanRecord};
use crate::cache::ScanCache;
use crate::cluster::{LocalCluster, Progress};
use crate::config::Settings;
use crate::data::MarketData;
use crate::error::UserError;
use crate::scan::ScanConfig;

/// Shared by every handler.
pub struct AppState {
    pub settings: Settings,
    /// `None` with `--workers 0` (a coordinator without local workers).
    pub cluster: Option<LocalCluster>,
    /// Local worker actors started.
    pub workers: usize,
    pub provider: Arc<dyn MarketData>,
    pub cache: Option<Arc<ScanCache>>,
    pub live: LiveScans,
    pub history: Arc<History>,
    /// This process's node id.
    pub node_id: String,
    pub started_at: DateTime<Utc>,
}

/// Starts the coordinator and `workers` local worker actors (none with 0).
///
/// MERGE NOTE (lead): the one place the cluster is constructed; swap in the distributed
/// constructor (Redis Streams queue selected by `--redis`) here.
pub async fn start_cluster(
    settings: &Settings,
    provider: Arc<dyn MarketData>,
    cache: Option<Arc<ScanCache>>,
    workers: usize,
) -> Result<Option<LocalCluster>, UserError> {
    if workers == 0 {
        // LocalCluster always runs at least one worker: with none asked for there is no
        // coordinator here until remote workers can join (the distributed constructor).
        return Ok(None);
    }
    LocalCluster::start(settings, provider, cache, workers)
        .await
        .map(Some)
}

/// One node of the cluster as `/api/v1/cluster/nodes` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeInfo {
    pub id: String,
    /// `up` or `down`.
    pub state: String,
    pub workers: usize,
    pub cores: usize,
    pub version: String,
    pub role: String,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// Scans running now.
    pub active_scans: usize,
}

/// The nodes of the cluster.
///
/// PLACEHOLDER for the lead's `cluster::registry`: until nodes heartbeat through Redis,
/// this reports this process only — its own worker pool, `up` once started. With
/// `--workers 0` it lists no node, so readiness stays false.
pub fn local_nodes(state: &AppState) -> Vec<NodeInfo> {
    if state.cluster.is_none() {
        return Vec::new();
    }
    vec![NodeInfo {
        id: state.node_id.clone(),
        state: "up".into(),
        workers: state.workers,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        version: env!("CARGO_PKG_VERSION").into(),
        role: "coordinator+worker".into(),
        started_at: state.started_at,
        last_heartbeat: Utc::now(),
        active_scans: state.live.len(),
    }]
}

/// A scan submitted to this coordinator that has not reached the history yet.
pub struct LiveScan {
    pub id: String,
    pub submitted_at: DateTime<Utc>,
    pub config: ScanConfig,
    pub progress: watch::Receiver<Progress>,
    /// The record, once the scan has finished.
    pub finished: watch::Receiver<Option<Arc<ScanRecord>>>,
    pub cancel: Arc<Notify>,
}

#[derive(Default)]
pub struct LiveScans {
    map: Mutex<HashMap<String, Arc<LiveScan>>>,
}

impl LiveScans {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveScan>>> {
        // Whole entries are inserted and removed: a poisoned map is still consistent.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveScan>> {
        self.map().get(id).cloned()
    }

    pub fn insert(&self, scan: Arc<LiveScan>) {
        self.map().insert(scan.id.clone(), scan);
    }

    pub fn remove(&self, id: &str) {
        self.map().remove(id);
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Running scans, newest first.
    pub fn all(&self) -> Vec<Arc<LiveScan>> {
        let mut v: Vec<_> = self.map().values().cloned().collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.submitted_at));
        v
    }
}
