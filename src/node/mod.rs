//! Assembling a node, in one place: from the settings and the shared [`NodeArgs`] flags it
//! builds the provider chain, the cache, the queue target, the node registry, the local
//! cluster (coordinator and/or worker actors), the warmer and the metrics endpoint, all
//! under one [`Shutdown`] that stops them. `technic scan`, `serve`, `worker`, `cache` and
//! `snapshot` start through here; the control plane takes what it needs from a [`Node`].
//!
//! Two steps: [`NodeArgs::plan`] resolves flags against settings without I/O and lists
//! every problem (so a command can report them with its own); [`NodePlan`]'s methods then
//! open what the role needs. Must not hold command-specific logic (output formats,
//! progress display): that stays in `cli`.

mod args;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use args::NodeArgs;

use crate::cache::{CacheTarget, ScanCache};
use crate::cluster::{
    run_warmer, ClusterLink, Leader, LocalCluster, NodeRegistry, PipelineContext, PublishedModel,
    QueueTarget, ScanKind, WorkerContext, WorkerNode,
};
use crate::config::{MlSettings, Settings};
use crate::data::{self, DataSource, MarketData};
use crate::error::{ErrorCode, UserError};
use crate::ml::serve::{ModelSlot, Serving, Source};
use crate::scan::ScanConfig;
use crate::shutdown::Shutdown;

/// Which command a node serves: decides defaults and which parts are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// One scan, then exit: coordinator + local workers (or coordinator only over Redis).
    Scan,
    /// The control plane: coordinator, optional local workers, warmer, history.
    Serve,
    /// A worker node of a cluster: worker actors and their heartbeat, nothing else.
    Worker,
    /// Cache inspection and warming: the cache (and a provider to warm from).
    Cache,
    /// Copying bars: the provider alone.
    Snapshot,
    /// Training an alpha model: the provider alone.
    Train,
}

impl Role {
    /// Whether the role needs nothing but a data provider (no cache, no cluster).
    pub fn provider_only(self) -> bool {
        matches!(self, Role::Snapshot | Role::Train)
    }

    pub fn command(self) -> &'static str {
        match self {
            Role::Scan => "scan",
            Role::Serve => "serve",
            Role::Worker => "worker",
            Role::Cache => "cache",
            Role::Snapshot => "snapshot",
            Role::Train => "ml train",
        }
    }
}

/// What a node is made of, resolved from flags and settings (no I/O yet).
#[derive(Debug, Clone, PartialEq)]
pub struct NodePlan {
    pub role: Role,
    pub sources: Vec<DataSource>,
    pub cache: CacheTarget,
    pub queue: QueueTarget,
    /// Local worker actors (0: coordinator only, over Redis).
    pub workers: usize,
}

/// A running node. Dropping it does not stop it: call [`Node::stop`].
pub struct Node {
    pub settings: Settings,
    pub plan: NodePlan,
    pub provider: Arc<dyn MarketData>,
    pub cache: Option<Arc<ScanCache>>,
    /// The coordinator (and local workers) of `scan` and `serve`; `None` for `serve`
    /// without any worker in process (nothing could run a scan).
    pub cluster: Option<LocalCluster>,
    /// A `worker` node's actors and heartbeat.
    pub worker: Option<WorkerNode>,
    /// Over Redis: the cluster's node registry.
    pub registry: Option<Arc<NodeRegistry>>,
    /// Where `/metrics` is served, when asked for.
    pub metrics: Option<SocketAddr>,
    /// Whether this node runs the cluster-wide duties (a serve over Redis is elected;
    /// any other node is alone).
    pub leader: Leader,
    /// Stops every task of the node.
    pub shutdown: Shutdown,
}

/// This machine's host name, for node ids and the registry: the kernel's, else the name
/// `main` read from the environment, else `localhost`.
pub fn hostname(from_env: Option<&str>) -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| from_env.map(String::from))
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `invalid … options (N problems)` with one line per problem, as every command reports
/// its bad flags.
pub fn invalid_options(command: &str, problems: Vec<String>) -> UserError {
    let n = problems.len();
    UserError::new(
        ErrorCode::InvalidConfig,
        format!(
            "invalid {command} options ({n} {}):\n  - {}",
            if n == 1 { "problem" } else { "problems" },
            problems.join("\n  - ")
        ),
        vec![format!(
            "run `technic {command} --help` for the options and their forms"
        )],
    )
}

/// How long [`Node::stop`] waits for the node's tasks.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

impl NodePlan {
    /// The provider chain. `universe_hint` caps a synthetic universe; `symbols` (a scan's
    /// listed symbols) are Polygon's universe when none is configured, so a scan of listed
    /// symbols needs no universe listing.
    pub fn provider(
        &self,
        settings: &Settings,
        universe_hint: Option<usize>,
        symbols: &[String],
    ) -> Result<Arc<dyn MarketData>, UserError> {
        let mut data = settings.data.clone();
        if data.polygon.symbols.is_empty() {
            data.polygon.symbols = symbols.to_vec();
        }
        // A worker serves any symbol a coordinator may send: its synthetic universe is
        // as large as a scan may be.
        let hint = match self.role {
            Role::Worker => Some(settings.scan.max_universe_size),
            _ => universe_hint,
        };
        Ok(data::open_chain(&self.sources, &data, hint)?)
    }

    /// The cache, or `None` for `none`. Redis connects lazily: an unreachable Redis
    /// degrades the first scan that uses it instead of failing here.
    pub async fn cache(&self, settings: &Settings) -> Result<Option<Arc<ScanCache>>, UserError> {
        Ok(crate::cache::build(&settings.cache, &self.cache).await?)
    }

    /// Starts the node: everything the role runs, under one new [`Shutdown`].
    /// `scan_symbols` and `universe_hint` shape the provider (see [`NodePlan::provider`]).
    pub async fn start(
        self,
        mut settings: Settings,
        universe_hint: Option<usize>,
        scan_symbols: &[String],
        metrics_bind: Option<&str>,
    ) -> Result<Node, UserError> {
        if settings.cluster.node_id.is_empty() {
            settings.cluster.node_id = settings.node_id();
        }
        let shutdown = Shutdown::new();
        // Bind first: a taken port fails before anything else has started.
        let metrics = match metrics_bind {
            Some(bind) => Some(serve_metrics(bind, &shutdown).await?),
            None => None,
        };
        let provider = self.provider(&settings, universe_hint, scan_symbols)?;
        let cache = self.cache(&settings).await?;
        let mut node = Node {
            provider,
            cache,
            cluster: None,
            worker: None,
            registry: None,
            metrics,
            leader: Leader::alone(),
            shutdown,
            plan: self,
            settings,
        };
        match node.plan.role {
            Role::Scan | Role::Serve => node.start_cluster().await?,
            Role::Worker => node.start_worker().await?,
            Role::Cache | Role::Snapshot | Role::Train => {}
        }
        if matches!(node.plan.role, Role::Scan | Role::Serve | Role::Worker) {
            node.start_cache_sync();
            node.start_model_follow().await;
        }
        if node.plan.role == Role::Serve {
            if let Some(book) = node.cluster.as_ref().and_then(|c| c.book()) {
                let every = Duration::from_millis(node.settings.cluster.lease_renew_ms);
                node.leader = Leader::elect(Arc::clone(book), every, &node.shutdown);
            }
            node.start_warmer();
            node.start_node_gauge();
        }
        Ok(node)
    }
}

impl Node {
    /// This node's id in the registry and in per-node progress.
    pub fn id(&self) -> &str {
        &self.settings.cluster.node_id
    }

    /// Coordinator and local workers over the plan's queue. Over Redis the local workers
    /// may be 0 (a coordinator only); in process, `serve` with 0 starts no cluster at all
    /// (it is not ready and refuses scans).
    async fn start_cluster(&mut self) -> Result<(), UserError> {
        let p = &self.plan;
        if p.workers == 0 && p.queue == QueueTarget::InProcess && p.role == Role::Serve {
            return Ok(());
        }
        let cluster = LocalCluster::start_on(
            &self.settings,
            self.provider.clone(),
            self.cache.clone(),
            p.workers,
            &p.queue,
            if p.role == Role::Serve {
                ScanKind::Cluster
            } else {
                ScanKind::OneShot
            },
            &self.shutdown,
        )
        .await?;
        self.registry = cluster.registry().cloned();
        self.cluster = Some(cluster);
        Ok(())
    }

    /// A worker node: the Redis work queue, results back through Redis, heartbeats.
    async fn start_worker(&mut self) -> Result<(), UserError> {
        let QueueTarget::Redis(url) = &self.plan.queue else {
            return Err(UserError::internal(
                "a worker node needs the cluster's redis",
            ));
        };
        let link = ClusterLink::open(url, &self.settings)?;
        let ctx = WorkerContext {
            node_id: self.id().to_string(),
            queue: link.queue.clone(),
            provider: self.provider.clone(),
            reporter: Arc::new(crate::cluster::transport::RedisReporter(Arc::clone(
                &link.queue,
            ))),
            cache: self.cache.clone(),
            ml: crate::ml::serve::ModelSlot::from_settings(&self.settings.ml),
            stats: Arc::default(),
        };
        let node = WorkerNode::start(
            &self.settings,
            ctx,
            self.plan.workers,
            Some(&link),
            &self.shutdown,
        )
        .await?;
        self.registry = Some(link.registry);
        self.worker = Some(node);
        Ok(())
    }

    /// Over Redis, the leading serve lists the registry every heartbeat, which keeps
    /// `technic_cluster_nodes{state}` current (and prunes long-down nodes) whether or not
    /// anyone calls the API.
    fn start_node_gauge(&self) {
        let Some(registry) = &self.registry else {
            return;
        };
        let every = Duration::from_millis(self.settings.cluster.heartbeat_ms);
        self.shutdown.spawn(Arc::clone(registry).watch(
            every,
            self.leader.clone(),
            self.shutdown.clone(),
        ));
    }

    /// Every heartbeat: applies the shared cache TTL settings when newer ones were stored,
    /// and adds this node's cache counters to the cluster's statistics (over a shared
    /// cache; a memory cache keeps both in the process); the counters once more at stop.
    fn start_cache_sync(&self) {
        let Some(cache) = self.cache.clone() else {
            return;
        };
        let id = self.id().to_string();
        let every = Duration::from_millis(self.settings.cluster.heartbeat_ms);
        let stop = self.shutdown.clone();
        self.shutdown.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        cache.follow_shared_ttl().await;
                        cache.publish_stats(&id).await;
                    }
                    _ = stop.triggered() => return,
                }
            }
        });
    }

    /// The alpha model this node serves (its coordinator's and local workers', or a
    /// worker node's); `None` for a role that serves none.
    pub fn ml(&self) -> Option<&Arc<ModelSlot>> {
        match (&self.cluster, &self.worker) {
            (Some(c), _) => Some(c.ml()),
            (None, Some(w)) => Some(w.ml()),
            (None, None) => None,
        }
    }

    /// Over Redis: serves the model published to the cluster (`technic ml publish`) now
    /// and whenever it changes (checked every heartbeat), and the node's own `ml.model`
    /// again when it is withdrawn. An unreachable registry leaves the model as it is.
    async fn start_model_follow(&self) {
        let (Some(registry), Some(slot)) = (self.registry.clone(), self.ml().cloned()) else {
            return;
        };
        let ml = self.settings.ml.clone();
        let mut seen = None;
        follow_published(&registry, &slot, &ml, &mut seen).await;
        let every = Duration::from_millis(self.settings.cluster.heartbeat_ms);
        let stop = self.shutdown.clone();
        self.shutdown.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {
                        follow_published(&registry, &slot, &ml, &mut seen).await;
                    }
                    _ = stop.triggered() => return,
                }
            }
        });
    }

    /// The periodic cache warmer (when there is a cache).
    fn start_warmer(&self) {
        let Some(cache) = &self.cache else {
            return;
        };
        let ctx = PipelineContext {
            node_id: "warmer".into(),
            provider: self.provider.clone(),
            cache: Some(cache.clone()),
            queue: None,
            ml: Default::default(),
        };
        self.shutdown.spawn(run_warmer(
            ctx,
            self.settings.cache.warm.clone(),
            ScanConfig::from_settings(&self.settings.scan),
            self.leader.clone(),
            self.shutdown.clone(),
        ));
    }

    /// Stops every part: the cluster (workers finish nothing more), the warmer, the
    /// metrics endpoint; waits for their tasks up to a deadline.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(cluster) = self.cluster.take() {
            cluster.shutdown().await;
        }
        if let Some(worker) = self.worker.take() {
            worker.stop().await;
        }
        if let Some(cache) = &self.cache {
            cache.publish_stats(self.id()).await;
        }
        if !self.shutdown.complete(STOP_DEADLINE).await {
            tracing::warn!("some tasks did not stop within {STOP_DEADLINE:?}");
        }
    }
}

/// One look at the published model: `seen` is the one this node serves (`None`: none
/// published when it last looked).
async fn follow_published(
    registry: &NodeRegistry,
    slot: &ModelSlot,
    ml: &MlSettings,
    seen: &mut Option<PublishedModel>,
) {
    let published = match registry.published_model().await {
        Ok(p) => p,
        Err(e) => return tracing::debug!(error = %e, "cannot read the published model this beat"),
    };
    if published == *seen {
        return;
    }
    match &published {
        Some(p) => {
            let text = match registry.published_text().await {
                Ok(Some(text)) => text,
                // Withdrawn in between, or unreachable: the next beat looks again.
                Ok(None) | Err(_) => return,
            };
            let origin = format!("the model published to the cluster ({})", p.version);
            let serving = Serving::parse(text.as_bytes(), &origin, p.force);
            match &serving {
                Serving::Ready(s) => {
                    tracing::info!(version = %s.version, "serving the model published to the cluster")
                }
                Serving::Unavailable(r) => tracing::warn!(
                    error = %r.message,
                    "the published model cannot be served here: scans run with neutral alphas"
                ),
            }
            slot.set(Arc::new(serving), Source::Published);
        }
        None => {
            tracing::info!("the published model was withdrawn: serving ml.model again");
            slot.load_settings(ml);
        }
    }
    *seen = published;
}

/// `/metrics` and `/health/live` of this node on `bind`, until `shutdown`. Read-only, no
/// token: a worker needs no other port.
async fn serve_metrics(bind: &str, shutdown: &Shutdown) -> Result<SocketAddr, UserError> {
    let bad = |m: String| {
        UserError::new(
            ErrorCode::InvalidInput,
            m,
            vec!["give --metrics-bind as IP:PORT, e.g. 0.0.0.0:9101".into()],
        )
    };
    let addr: SocketAddr = bind.trim().parse().map_err(|_| {
        bad(format!(
            "--metrics-bind: {bind:?} is not an IP:PORT address"
        ))
    })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| bad(format!("--metrics-bind: cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().unwrap_or(addr);
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|headers: axum::http::HeaderMap| async move {
                let format = crate::telemetry::Exposition::negotiate(
                    headers
                        .get(axum::http::header::ACCEPT)
                        .and_then(|v| v.to_str().ok()),
                );
                (
                    [(axum::http::header::CONTENT_TYPE, format.content_type())],
                    format.encode(),
                )
            }),
        )
        .route(
            "/health/live",
            axum::routing::get(|| async { axum::Json(serde_json::json!({ "status": "pass" })) }),
        );
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.triggered().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: NodeArgs, role: Role) -> Result<NodePlan, Vec<String>> {
        args.plan(&Settings::defaults(), role)
    }

    #[test]
    fn every_bad_flag_is_listed_at_once() {
        let args = NodeArgs {
            data: Some("nope".into()),
            cache: Some("memcached://x".into()),
            redis: Some("http://x".into()),
            workers: Some("many".into()),
        };
        let problems = plan(args, Role::Scan).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        for flag in ["--data", "--redis", "--cache", "--workers"] {
            assert!(
                problems.iter().any(|p| p.starts_with(flag)),
                "{flag}: {problems:?}"
            );
        }
    }

    #[test]
    fn roles_decide_the_defaults() {
        // A one-shot scan skips the configured memory cache; serve keeps it.
        assert_eq!(
            plan(NodeArgs::default(), Role::Scan).unwrap().cache,
            CacheTarget::None
        );
        assert_eq!(
            plan(NodeArgs::default(), Role::Serve).unwrap().cache,
            CacheTarget::Memory
        );
        // --redis is the queue and, unless --cache says otherwise, the cache.
        let redis = NodeArgs {
            redis: Some("redis://127.0.0.1:6399".into()),
            workers: Some("0".into()),
            ..NodeArgs::default()
        };
        let p = plan(redis.clone(), Role::Scan).unwrap();
        assert_eq!(p.queue, QueueTarget::Redis("redis://127.0.0.1:6399".into()));
        assert_eq!(p.cache, CacheTarget::Redis("redis://127.0.0.1:6399".into()));
        assert_eq!(p.workers, 0);
        // A worker without --redis, a local scan without workers, a snapshot with --cache.
        assert!(plan(NodeArgs::default(), Role::Worker).is_err());
        let none = NodeArgs {
            workers: Some("0".into()),
            ..NodeArgs::default()
        };
        assert!(plan(none, Role::Scan).is_err());
        let cached = NodeArgs {
            cache: Some("memory".into()),
            ..NodeArgs::default()
        };
        assert_eq!(
            plan(cached, Role::Snapshot).unwrap_err(),
            ["--cache: not used by `technic snapshot`"]
        );
    }
}
