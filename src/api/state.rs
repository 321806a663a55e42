//! What the control plane's handlers share: settings, the cluster, the cache, live scans
//! and the history. The parts come from the assembled [`Node`]; the node list comes from
//! one function, [`cluster_nodes`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{watch, Notify};

use super::history::{History, ScanRecord};
use crate::cache::ScanCache;
use crate::cluster::ScanBook;
use crate::cluster::{Leader, LocalCluster, NodeState, Progress, QueueError, QueueTarget};
use crate::config::Settings;
use crate::data::MarketData;
use crate::error::{ErrorCode, UserError};
use crate::node::Node;
use crate::scan::ScanConfig;
use crate::screens::Library;

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
    /// Every node's symbols per second, as this serve sampled them.
    pub throughput: super::throughput::Throughput,
    /// Saved screens, watchlists and webhooks.
    pub library: Arc<Library>,
    /// Runs of each screen in this process, one at a time.
    pub runner: super::screens::Runner,
    /// Whether this process leads the cluster (it runs the schedules).
    pub leader: Leader,
}

impl AppState {
    /// The control plane's share of an assembled node: it takes the node's cluster (the
    /// control plane stops it after the last scan) and keeps the history in the cache's
    /// Redis when there is one.
    pub fn new(node: &mut Node) -> Result<Self, UserError> {
        let cluster = node.cluster.take();
        let max = node.settings.api.history_max_scans;
        // Over a Redis queue the coordinator writes the scan book; otherwise, with a Redis
        // cache, the book in that Redis is the history alone.
        let history = match cluster.as_ref().and_then(|c| c.book()) {
            Some(book) => History::new(Some(Arc::clone(book)), false, max),
            None => {
                let book = node
                    .plan
                    .cache
                    .redis()
                    .map(|url| ScanBook::open(&url, &node.settings, node.id()))
                    .transpose()
                    .map_err(|e| UserError::new(ErrorCode::InvalidConfig, e.to_string(), vec![]))?;
                History::new(book.map(Arc::new), true, max)
            }
        };
        let redis = match &node.plan.queue {
            QueueTarget::Redis(url) => Some(url.as_str()),
            QueueTarget::InProcess => None,
        };
        let library = Arc::new(Library::open(&node.settings, redis)?);
        Ok(AppState {
            library,
            runner: Default::default(),
            leader: node.leader.clone(),
            node_id: node.id().to_string(),
            settings: node.settings.clone(),
            cluster,
            workers: node.plan.workers,
            provider: node.provider.clone(),
            cache: node.cache.clone(),
            live: LiveScans::default(),
            history: Arc::new(history),
            started_at: Utc::now(),
            throughput: Default::default(),
        })
    }
}

/// One node of the cluster as `/api/v1/cluster/nodes` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeInfo {
    pub id: String,
    /// `up`, `draining` (finishing its shards after a SIGTERM) or `down` (heartbeat expired).
    pub state: String,
    pub host: String,
    pub workers: usize,
    pub cores: usize,
    pub version: String,
    /// `coordinator+worker` for this process's own workers, else `worker`.
    pub role: String,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// Shards in flight / workers, 0–1.
    pub load: f64,
    pub shards_done: u64,
    pub symbols_done: u64,
    /// Worker actor restarts since the node started.
    pub restarts: u64,
    /// Scans running on this coordinator (its own node only).
    pub active_scans: usize,
    /// Version of the shared cache TTL settings the node writes with (0: its configured
    /// ones, none shared yet).
    pub ttl_version: u64,
    /// The alpha model the node serves: its version, `unavailable` for one it cannot
    /// serve; absent for none. Every node serves the same one when a model is published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The nodes of the cluster: over Redis, every node of the registry (down ones included,
/// until `cluster.prune_down_after_secs` after their last heartbeat); in process, this process's worker pool. `Err` when the registry cannot be
/// read.
pub async fn cluster_nodes(state: &AppState) -> Result<Vec<NodeInfo>, QueueError> {
    let Some(cluster) = &state.cluster else {
        return Ok(Vec::new());
    };
    let nodes: Vec<(crate::cluster::NodeInfo, NodeState)> = match cluster.registry() {
        Some(registry) => registry
            .list()
            .await?
            .into_iter()
            .map(|v| {
                let s = v.state();
                (v.info, s)
            })
            .collect(),
        None => cluster
            .node()
            .map(|n| {
                let info = n.info();
                let s = info.state;
                (info, s)
            })
            .into_iter()
            .collect(),
    };
    Ok(nodes
        .into_iter()
        .map(|(n, s)| {
            let own = n.id == state.node_id;
            NodeInfo {
                state: s.as_str().into(),
                role: if own { "coordinator+worker" } else { "worker" }.into(),
                active_scans: if own { state.live.len() } else { 0 },
                started_at: at(n.started_at_ms),
                last_heartbeat: at(n.heartbeat_at_ms),
                id: n.id,
                host: n.host,
                workers: n.workers,
                cores: n.cores,
                version: n.version,
                load: n.load,
                shards_done: n.shards_done,
                symbols_done: n.symbols_done,
                restarts: n.restarts,
                ttl_version: n.ttl_version,
                model: n.model,
            }
        })
        .collect())
}

/// A scan this coordinator owns that has not reached the history yet.
pub struct LiveScan {
    pub id: String,
    pub submitted_at: DateTime<Utc>,
    pub config: Arc<ScanConfig>,
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

    /// Removes this entry (not a newer one of the same scan: this process may have taken
    /// the scan over again meanwhile).
    pub fn remove(&self, scan: &Arc<LiveScan>) {
        let mut map = self.map();
        if map.get(&scan.id).is_some_and(|s| Arc::ptr_eq(s, scan)) {
            map.remove(&scan.id);
        }
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
