//! The cluster: a coordinator actor and supervised pools of worker actors sharing a
//! [`WorkQueue`]. This is where I/O meets compute: workers load bars through `data` and
//! call `scan`; the coordinator ranks.
//!
//! [`LocalCluster`] runs a coordinator and (optionally) a [`WorkerNode`] in this process,
//! over the in-process queue (what `technic scan` uses by default) or over the Redis Streams
//! queue, shared with the worker nodes of other processes (`technic worker`). Results come
//! back through the [`transport`] of the queue; progress is a `watch` channel per scan;
//! cancellation stops handing out shards and makes workers stop between symbols.

mod book;
mod coordinator;
mod error;
mod leader;
mod node;
mod pipeline;
mod progress;
mod queue;
mod redis_queue;
mod registry;
mod result_cache;
mod shard;
mod steward;
mod supervision;
pub mod transport;
mod warmer;
mod worker;

use std::sync::Arc;

use ractor::{Actor, ActorRef};

pub use book::{
    universe_key, BookEntry, Lease, RunningScan, ScanBook, ScanKind, ScanRecord, ScanSummary,
    Sweep, Takeover,
};
pub use coordinator::{select_universe, Concluded, CoordinatorMsg, ScanHandle};
pub use error::ScanError;
pub use leader::Leader;
pub use node::{Drained, WorkerNode};
pub use pipeline::{process_shard, CacheMode, PipelineContext, ShardReport, SymbolOutcome};
pub use progress::{analyzing, thousands, Progress, Stage};
pub use queue::{Delivery, InProcessQueue, QueueDepth, QueueError, WorkQueue};
pub use redis_queue::{decode_shard, RedisQueueOptions, RedisStreamsQueue, ResultEntry};
pub use registry::{live_workers, NodeInfo, NodeRegistry, NodeState, NodeView, PublishedModel};
pub use shard::{plan_shards, shard_size, Shard};
pub use supervision::{Decision, RestartPolicy};
pub use warmer::{run_warmer, warm_once, WarmReport};
pub use worker::{NodeStats, WorkerContext};

use crate::cache::ScanCache;
use crate::config::Settings;
use crate::data::MarketData;
use crate::error::{ErrorCode, UserError};
use crate::ml::serve::ModelSlot;
use crate::scan::ScanConfig;
use crate::shutdown::Shutdown;
use coordinator::{Coordinator, CoordinatorArgs};
use result_cache::ScanKey;
use transport::{ActorReporter, RedisReporter, Reporter, ResultsFeed};

/// How long [`LocalCluster::shutdown`] waits for its tasks.
const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Which work queue a cluster uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueTarget {
    /// Tokio channels: coordinator and workers in this process.
    InProcess,
    /// Redis Streams at this URL (`redis://…` or `redis-cluster://…`), shared with every
    /// node that uses the same URL and `cluster.queue_name`.
    Redis(String),
}

/// The Redis side of a node: its queue handle, the registry and the scan book.
pub struct ClusterLink {
    pub queue: Arc<RedisStreamsQueue>,
    pub registry: Arc<NodeRegistry>,
    pub book: Arc<ScanBook>,
}

impl ClusterLink {
    /// Opens (without connecting) the queue and registry at `url`.
    pub fn open(url: &str, settings: &Settings) -> Result<Self, QueueError> {
        let queue =
            RedisStreamsQueue::open(url, RedisQueueOptions::from_settings(&settings.cluster))?;
        let registry = NodeRegistry::open(url, &settings.cluster)?;
        let book = crate::redis_link::RedisUrl::parse(url)
            .and_then(|u| ScanBook::open(&u, settings, &settings.node_id()))?;
        Ok(ClusterLink {
            queue: Arc::new(queue),
            registry: Arc::new(registry),
            book: Arc::new(book),
        })
    }
}

/// Coordinator + (optionally) a worker node in this process.
pub struct LocalCluster {
    coordinator: ActorRef<CoordinatorMsg>,
    node: Option<WorkerNode>,
    queue: Arc<dyn WorkQueue>,
    registry: Option<Arc<NodeRegistry>>,
    /// Over Redis: the queue (to read a taken-over scan's results) and the scan book.
    redis: Option<(Arc<RedisStreamsQueue>, Arc<ScanBook>)>,
    /// Who this cluster's scans belong to.
    kind: ScanKind,
    lease_renew: std::time::Duration,
    /// Where each scan's speedup baseline and report are kept.
    cache: Option<Arc<ScanCache>>,
    /// The data behind the scans (its version keys the cached reports).
    provider: Arc<dyn MarketData>,
    /// Whether reports are cached and answered (`cache.scan_results`).
    scan_results: bool,
    /// The alpha model this node serves, or why it cannot; its version (`unavailable`
    /// for one it cannot) is a part of the scan-result key: a report with other alphas
    /// is another answer.
    ml: Arc<ModelSlot>,
    /// Cached reports this process holds decoded.
    memo: Arc<result_cache::ReportMemo>,
    /// The cluster's own scope (results feed, node heartbeat); a child of the caller's.
    shutdown: Shutdown,
}

fn spawn_err(e: ractor::SpawnErr) -> UserError {
    UserError::new(
        ErrorCode::Internal,
        format!("cannot start the cluster actors: {e}"),
        vec![],
    )
}

impl LocalCluster {
    /// Coordinator and `workers` worker actors (at least one) over the in-process queue,
    /// stopped by [`LocalCluster::shutdown`].
    pub async fn start(
        settings: &Settings,
        provider: Arc<dyn MarketData>,
        cache: Option<Arc<ScanCache>>,
        workers: usize,
    ) -> Result<Self, UserError> {
        Self::start_on(
            settings,
            provider,
            cache,
            workers.max(1),
            &QueueTarget::InProcess,
            ScanKind::OneShot,
            &Shutdown::new(),
        )
        .await
    }

    /// Coordinator and `workers` local worker actors over `target`. Over Redis, `workers`
    /// may be 0 (a coordinator only: the shards go to `technic worker` nodes), and the
    /// local workers form a node of the cluster like any other; every scan then has a
    /// record in the scan book, owned as `kind` says. Its tasks stop with `shutdown` (or
    /// with [`LocalCluster::shutdown`]).
    pub async fn start_on(
        settings: &Settings,
        provider: Arc<dyn MarketData>,
        cache: Option<Arc<ScanCache>>,
        workers: usize,
        target: &QueueTarget,
        kind: ScanKind,
        shutdown: &Shutdown,
    ) -> Result<Self, UserError> {
        let shutdown = shutdown.child();
        let node_id = match target {
            QueueTarget::InProcess => "local".to_string(),
            QueueTarget::Redis(_) => settings.node_id(),
        };
        let (queue, link): (Arc<dyn WorkQueue>, Option<ClusterLink>) = match target {
            QueueTarget::InProcess => (
                Arc::new(InProcessQueue::new(settings.cluster.queue_capacity)),
                None,
            ),
            QueueTarget::Redis(url) => {
                let link = ClusterLink::open(url, settings)?;
                (link.queue.clone(), Some(link))
            }
        };
        let workers = if link.is_none() {
            workers.max(1)
        } else {
            workers
        };
        let ml = ModelSlot::from_settings(&settings.ml);
        let registry = link.as_ref().map(|l| Arc::clone(&l.registry));
        let feed = link
            .as_ref()
            .map(|l| ResultsFeed::new(Arc::clone(&l.queue), format!("{node_id}-results")));
        let (coordinator, _) = Actor::spawn(
            None,
            Coordinator,
            CoordinatorArgs {
                provider: Arc::clone(&provider),
                queue: queue.clone(),
                workers,
                registry: registry.clone(),
                feed: feed.clone(),
                max_shard_size: settings.cluster.shard_size,
                max_universe_size: settings.scan.max_universe_size,
                cache: cache.clone(),
                blend_weight: settings.ml.blend_weight,
            },
        )
        .await
        .map_err(spawn_err)?;
        if let Some(feed) = &feed {
            feed.start(coordinator.clone(), &shutdown);
        }
        let reporter: Arc<dyn Reporter> = match &link {
            None => Arc::new(ActorReporter(coordinator.clone())),
            Some(l) => Arc::new(RedisReporter(Arc::clone(&l.queue))),
        };
        let node = if workers > 0 {
            let ctx = WorkerContext {
                node_id,
                queue: queue.clone(),
                provider: Arc::clone(&provider),
                reporter,
                cache: cache.clone(),
                ml: ml.clone(),
                stats: Arc::default(),
            };
            Some(WorkerNode::start(settings, ctx, workers, link.as_ref(), &shutdown).await?)
        } else {
            None
        };
        Ok(LocalCluster {
            coordinator,
            node,
            queue,
            registry,
            redis: link.map(|l| (l.queue, l.book)),
            kind,
            lease_renew: std::time::Duration::from_millis(settings.cluster.lease_renew_ms),
            cache,
            provider,
            scan_results: settings.cache.scan_results,
            ml,
            memo: Arc::default(),
            shutdown,
        })
    }

    /// The alpha model this node serves (`ml.model`, or the one published to the
    /// cluster), or why it cannot; empty without one.
    pub fn ml(&self) -> &Arc<ModelSlot> {
        &self.ml
    }

    /// The cluster's node registry (over Redis); `None` in process.
    pub fn registry(&self) -> Option<&Arc<NodeRegistry>> {
        self.registry.as_ref()
    }

    /// The work queue's shards now: waiting, running, waiting again.
    pub async fn queue_depth(&self) -> Result<QueueDepth, QueueError> {
        self.queue.depth().await
    }

    /// This process's worker node, if it runs workers.
    pub fn node(&self) -> Option<&WorkerNode> {
        self.node.as_ref()
    }

    /// The scan book (over Redis).
    pub fn book(&self) -> Option<&Arc<ScanBook>> {
        self.redis.as_ref().map(|(_, b)| b)
    }

    /// Submits a scan; invalid configs are rejected here, with every problem listed. Over
    /// Redis the scan is recorded in the scan book first; if Redis cannot take the record
    /// the scan still runs, but only in this process.
    ///
    /// With a cache, a config already scanned on the same data version is answered from
    /// the scan-result cache (the report's `from_cache` says so); otherwise its report is
    /// cached when it ends.
    pub async fn submit(&self, config: ScanConfig) -> Result<ScanHandle, ScanError> {
        let scan_key = match &self.cache {
            Some(_) if self.scan_results => {
                let model = self.ml.served_as();
                ScanKey::of(&self.provider, &config, model.as_deref(), &self.memo).await
            }
            _ => None,
        };
        let answer = match (&self.cache, &scan_key) {
            (Some(cache), Some(key)) => key.lookup(cache).await,
            _ => None,
        };
        let mut handle = match answer {
            Some(report) => ScanHandle::answered(&self.coordinator, config, report),
            None => {
                let mut handle =
                    match ractor::call!(self.coordinator, CoordinatorMsg::Submit, Box::new(config))
                    {
                        Ok(result) => result?,
                        Err(e) => {
                            return Err(ScanError::internal(&format!(
                                "coordinator unreachable: {e}"
                            )))
                        }
                    };
                handle.scan_key = scan_key;
                handle
            }
        };
        handle.cache = self.cache.clone();
        if let Some(book) = self.book() {
            match book
                .create(&handle.id, self.kind, handle.submitted_at, &handle.config)
                .await
            {
                Ok(()) => steward::Steward::attach(&mut handle, Arc::clone(book), self.lease_renew),
                Err(e) => {
                    tracing::warn!(scan_id = %handle.id, error = %e, "no record of the scan in redis: it ends with this process")
                }
            }
        }
        Ok(handle)
    }

    /// Takes over the cluster scans whose owner's lease expired (serves only: one-shot
    /// scans are abandoned instead), each resumed from its outcomes so far.
    pub async fn adopt_orphans(&self) -> Vec<ScanHandle> {
        let Some((queue, book)) = &self.redis else {
            return Vec::new();
        };
        if self.kind != ScanKind::Cluster {
            return Vec::new();
        }
        let orphans = match book.sweep().await {
            Ok(s) => s.orphans,
            Err(e) => {
                tracing::debug!(error = %e, "cannot look for orphaned scans");
                return Vec::new();
            }
        };
        let mut adopted = Vec::new();
        for id in orphans {
            let takeover = match book.take(&id).await {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(scan_id = %id, error = %e, "cannot take the scan over");
                    continue;
                }
            };
            let (past, cursor) = match transport::read_past(queue, &id).await {
                Ok(p) => p,
                Err(e) => {
                    // Its lease lapses again and another attempt reads them.
                    tracing::warn!(scan_id = %id, error = %e, "cannot read the scan's results so far");
                    continue;
                }
            };
            let resumption = coordinator::Resumption {
                takeover,
                past,
                cursor,
            };
            match ractor::call!(
                self.coordinator,
                CoordinatorMsg::Resume,
                Box::new(resumption)
            ) {
                Ok(mut handle) => {
                    handle.cache = self.cache.clone();
                    steward::count("taken_over");
                    steward::Steward::attach(&mut handle, Arc::clone(book), self.lease_renew);
                    adopted.push(handle);
                }
                Err(e) => tracing::error!(scan_id = %id, error = %e, "coordinator unreachable"),
            }
        }
        adopted
    }

    /// Submits a scan and waits for its report.
    pub async fn run(&self, config: ScanConfig) -> Result<crate::scan::ScanReport, ScanError> {
        self.submit(config).await?.report().await
    }

    /// Stops the workers (they finish nothing more), the results feed and the coordinator.
    pub async fn shutdown(self) {
        self.shutdown.trigger();
        self.queue.close();
        if let Some(node) = self.node {
            node.stop().await;
        }
        self.coordinator.stop(None);
        // The feed ends within one blocking read of the queue.
        self.shutdown.complete(STOP_DEADLINE).await;
    }
}
