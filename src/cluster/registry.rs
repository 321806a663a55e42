//! The node registry: who is in the cluster, and how each node is doing.
//!
//! Every node (a `technic worker`, or a coordinator with local workers) writes a heartbeat
//! each `cluster.heartbeat_ms`:
//! - `technic:v1:nodes:{NAME}:alive:ID`, a key with a TTL of `cluster.node_ttl_ms`: the node
//!   is up (or draining) while it exists;
//! - field ID of the hash `technic:v1:nodes:{NAME}:info`: the node's last report (JSON), kept
//!   after the node died so a down node still shows its host, work done and last
//!   heartbeat. A down node's entry is pruned when the registry is listed
//!   `cluster.prune_down_after_secs` after its last heartbeat; a node that leaves on
//!   purpose (drain, end of a one-shot scan) removes both, and `technic cluster forget`
//!   removes a node by hand.
//!
//! A coordinator lists the registry every heartbeat ([`NodeRegistry::watch`]), which keeps
//! `technic_cluster_nodes{state}` current for Prometheus and does the pruning.
//!
//! One hash tag (the queue name), so the keys live in one slot of a Redis Cluster.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::leader::Leader;
use super::queue::QueueError;
use crate::config::ClusterSettings;
use crate::redis_link::RedisOptions;
use crate::redis_link::{Links, Use};
use crate::shutdown::Shutdown;
use crate::telemetry::{metrics, StateLabel};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Up,
    /// Finishing its in-flight shards after a SIGTERM; takes no new ones.
    Draining,
    /// No heartbeat within the TTL.
    Down,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Draining => "draining",
            NodeState::Down => "down",
        }
    }
}

/// What a node says of itself in each heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub cores: usize,
    /// Worker actors of the node.
    pub workers: usize,
    /// `up` or `draining` (a node never reports itself down).
    pub state: NodeState,
    pub started_at_ms: i64,
    pub heartbeat_at_ms: i64,
    pub shards_done: u64,
    pub symbols_done: u64,
    /// Shards in flight now.
    pub busy: usize,
    /// `busy / workers`, 0–1.
    pub load: f64,
    /// Worker actor restarts since the node started.
    pub restarts: u64,
    /// Version of the shared cache TTL settings the node writes with (0: its own
    /// configured ones; absent in entries of older builds).
    #[serde(default)]
    pub ttl_version: u64,
    /// The alpha model the node serves: its version, `unavailable` for one it cannot
    /// serve, absent for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// What the cluster's published model is: the version of its file and whether it is
/// served although its holdout did not earn it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedModel {
    pub version: String,
    pub force: bool,
}

/// A registry entry as listed: the node's last report and its state now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    #[serde(flatten)]
    pub info: NodeInfo,
    /// Milliseconds since the last heartbeat, as of the listing.
    pub heartbeat_age_ms: i64,
}

impl NodeView {
    pub fn state(&self) -> NodeState {
        self.info.state
    }
}

pub struct NodeRegistry {
    links: Links,
    alive_prefix: String,
    info_key: String,
    /// The model published to the cluster (`technic ml publish`): a hash of `version`,
    /// `force` and `model` (the file's text).
    model_key: String,
    ttl: Duration,
    /// Down entries whose last heartbeat is older than this are pruned.
    prune_down_after: Duration,
}

impl NodeRegistry {
    /// One Redis call through the queue's links, its failure as a [`QueueError`].
    async fn call<T, F, Fut>(&self, op: &str, using: Use<'_>, f: F) -> Result<T, QueueError>
    where
        F: FnOnce(crate::redis_link::Conn) -> Fut,
        Fut: std::future::Future<Output = ::redis::RedisResult<T>>,
    {
        Ok(self.links.call(op, using, f).await?)
    }

    /// `url` as for the work queue. Never connects; must be called inside a tokio runtime.
    pub fn open(url: &str, c: &ClusterSettings) -> Result<Self, QueueError> {
        let prefix = format!("technic:v1:nodes:{{{}}}", c.queue_name);
        Ok(NodeRegistry {
            links: Links::new(url, RedisOptions::default(), Duration::ZERO)?,
            alive_prefix: format!("{prefix}:alive:"),
            info_key: format!("{prefix}:info"),
            model_key: format!("{prefix}:model"),
            ttl: Duration::from_millis(c.node_ttl_ms),
            prune_down_after: Duration::from_secs(c.prune_down_after_secs),
        })
    }

    /// Writes a heartbeat.
    pub async fn beat(&self, info: &NodeInfo) -> Result<(), QueueError> {
        let json = serde_json::to_string(info)
            .map_err(|e| QueueError::Unavailable(format!("encode node info: {e}")))?;
        let alive = format!("{}{}", self.alive_prefix, info.id);
        let ttl = self.ttl.as_millis().max(1) as u64;
        let (alive, json, info_key, id) = (&alive, &json, &self.info_key, &info.id);
        self.call("heartbeat", Use::Shared, |mut c| async move {
            ::redis::pipe()
                .cmd("HSET")
                .arg(info_key)
                .arg(id)
                .arg(json)
                .ignore()
                .cmd("SET")
                .arg(alive)
                .arg(1)
                .arg("PX")
                .arg(ttl)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// Publishes a model file's text: every node of the cluster serves it from its next
    /// heartbeat on (`force`: although its holdout did not earn it). Replaces any model
    /// published before.
    pub async fn publish_model(
        &self,
        published: &PublishedModel,
        text: &str,
    ) -> Result<(), QueueError> {
        let key = &self.model_key;
        let force = if published.force { "1" } else { "0" };
        self.call("publish model", Use::Shared, |mut c| async move {
            ::redis::cmd("HSET")
                .arg(key)
                .arg("version")
                .arg(&published.version)
                .arg("force")
                .arg(force)
                .arg("model")
                .arg(text)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// The published model's version and force flag (a cheap read, once a heartbeat);
    /// `None` when none is published.
    pub async fn published_model(&self) -> Result<Option<PublishedModel>, QueueError> {
        let key = &self.model_key;
        let (version, force): (Option<String>, Option<String>) = self
            .call("read published model", Use::Shared, |mut c| async move {
                ::redis::cmd("HMGET")
                    .arg(key)
                    .arg("version")
                    .arg("force")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(version.map(|version| PublishedModel {
            version,
            force: force.as_deref() == Some("1"),
        }))
    }

    /// The published model file's text; `None` when none is published (any more).
    pub async fn published_text(&self) -> Result<Option<String>, QueueError> {
        let key = &self.model_key;
        self.call("read published model", Use::Shared, |mut c| async move {
            ::redis::cmd("HGET")
                .arg(key)
                .arg("model")
                .query_async(&mut c)
                .await
        })
        .await
    }

    /// Withdraws the published model: the nodes go back to their own `ml.model`. Returns
    /// whether one was published.
    pub async fn withdraw_model(&self) -> Result<bool, QueueError> {
        let key = &self.model_key;
        let removed: u64 = self
            .call("withdraw model", Use::Shared, |mut c| async move {
                ::redis::cmd("DEL").arg(key).query_async(&mut c).await
            })
            .await?;
        Ok(removed > 0)
    }

    /// Removes a node that left on purpose (drained, or a one-shot scan's local workers):
    /// it is no longer listed. Only a node that stops heartbeating without leaving is
    /// listed down, so `down` (and its alert) means a node died.
    pub async fn leave(&self, id: &str) -> Result<(), QueueError> {
        self.forget(id).await.map(|_| ())
    }

    /// Removes node `id`'s entry (a node that will not come back). Returns whether there
    /// was one. A node still running writes it again at its next heartbeat.
    pub async fn forget(&self, id: &str) -> Result<bool, QueueError> {
        let alive = format!("{}{id}", self.alive_prefix);
        let (alive, info_key) = (&alive, &self.info_key);
        let (removed,): (u64,) = self
            .call("forget node", Use::Shared, |mut c| async move {
                ::redis::pipe()
                    .cmd("DEL")
                    .arg(alive)
                    .ignore()
                    .cmd("HDEL")
                    .arg(info_key)
                    .arg(id)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(removed > 0)
    }

    /// Lists the registry every `every` until `shutdown`: keeps the
    /// `technic_cluster_nodes{state}` gauge current and prunes long-down nodes. A failed
    /// listing leaves the gauge as it was (and is logged once per failure streak).
    pub async fn watch(
        self: std::sync::Arc<Self>,
        every: Duration,
        leader: Leader,
        shutdown: Shutdown,
    ) {
        let mut failing = false;
        let mut led = false;
        loop {
            if leader.leads() {
                led = true;
                match self.maintain().await {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "cannot list the cluster nodes for technic_cluster_nodes");
                    }
                    Err(_) => {}
                }
            } else if led {
                // Only the leader reports the cluster's nodes: one series, one alert.
                led = false;
                set_gauge(&[]);
            }
            tokio::select! {
                _ = shutdown.triggered() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// The leader's duty: prunes down nodes silent for longer than
    /// `cluster.prune_down_after_secs` and sets the `technic_cluster_nodes{state}` gauge.
    async fn maintain(&self) -> Result<(), QueueError> {
        let (views, stale) = self.read().await?;
        if !stale.is_empty() {
            let (info_key, stale) = (&self.info_key, &stale);
            // Best effort: a failure leaves them for the next pass.
            let _ = self
                .call("prune nodes", Use::Shared, |mut c| async move {
                    ::redis::cmd("HDEL")
                        .arg(info_key)
                        .arg(stale)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
        }
        set_gauge(&views);
        Ok(())
    }

    /// Every node of the registry, by id, with its state now (nodes down for longer than
    /// `cluster.prune_down_after_secs` are left out: the leader prunes them).
    pub async fn list(&self) -> Result<Vec<NodeView>, QueueError> {
        Ok(self.read().await?.0)
    }

    /// The listed nodes, and the ids of entries to prune (unreadable or down too long).
    async fn read(&self) -> Result<(Vec<NodeView>, Vec<String>), QueueError> {
        let info_key = &self.info_key;
        let all: HashMap<String, String> = self
            .call("list nodes", Use::Shared, |mut c| async move {
                ::redis::cmd("HGETALL")
                    .arg(info_key)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let now = chrono::Utc::now().timestamp_millis();
        let mut nodes: Vec<NodeInfo> = Vec::new();
        let mut stale: Vec<String> = Vec::new();
        for (id, json) in all {
            match serde_json::from_str::<NodeInfo>(&json) {
                Ok(info) => nodes.push(info),
                Err(_) => stale.push(id),
            }
        }
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        let alive_keys: Vec<String> = nodes
            .iter()
            .map(|n| format!("{}{}", self.alive_prefix, n.id))
            .collect();
        let alive: Vec<Option<String>> = if alive_keys.is_empty() {
            Vec::new()
        } else {
            let keys = &alive_keys;
            self.call("list nodes", Use::Shared, |mut c| async move {
                ::redis::cmd("MGET").arg(keys).query_async(&mut c).await
            })
            .await?
        };
        let prune_after_ms = i64::try_from(self.prune_down_after.as_millis()).unwrap_or(i64::MAX);
        let mut views: Vec<NodeView> = Vec::with_capacity(nodes.len());
        for (mut info, alive) in nodes.into_iter().zip(alive) {
            let age = (now - info.heartbeat_at_ms).max(0);
            if alive.is_none() {
                if age > prune_after_ms {
                    stale.push(info.id);
                    continue;
                }
                info.state = NodeState::Down;
                info.busy = 0;
                info.load = 0.0;
            }
            views.push(NodeView {
                heartbeat_age_ms: age,
                info,
            });
        }
        Ok((views, stale))
    }
}

/// `technic_cluster_nodes{state}` from a listing.
fn set_gauge(views: &[NodeView]) {
    let m = &metrics().cluster_nodes;
    for state in [NodeState::Up, NodeState::Draining, NodeState::Down] {
        let n = views.iter().filter(|v| v.state() == state).count();
        m.get_or_create(&StateLabel {
            state: state.as_str(),
        })
        .set(n as i64);
    }
}

/// Worker actors of the nodes that take shards now.
pub fn live_workers(nodes: &[NodeView]) -> usize {
    nodes
        .iter()
        .filter(|n| n.state() == NodeState::Up)
        .map(|n| n.info.workers)
        .sum()
}
