//! The cluster: a coordinator actor and supervised pools of worker actors sharing a
//! [`WorkQueue`]. This is where I/O meets compute: workers load bars through `data` and
//! call `scan`; the coordinator ranks.
//!
//! [`LocalCluster`] runs a coordinator and (optionally) a [`WorkerNode`] in this process,
//! over the in-process queue (what `technic scan` uses by default) or over the Redis Streams
//! queue, shared with the worker nodes of other processes (`technic worker`). Results come
//! back through the [`transport`] of the queue; progress is a `watch` channel per scan;
//! cancellation stops handing out shards and makes workers stop between symbols.

mod coordinator;
mod error;
mod node;
mod pipeline;
mod progress;
mod queue;
mod redis_queue;
mod registry;
mod shard;
mod supervision;
pub mod transport;
mod warmer;
mod worker;

use std::sync::Arc;

use ractor::{Actor, ActorRef};

pub use coordinator::{select_universe, CoordinatorMsg, ScanHandle};
pub use error::ScanError;
pub use node::{Drained, WorkerNode};
pub use pipeline::{process_shard, CacheMode, PipelineContext, ShardReport, SymbolOutcome};
pub use progress::{analyzing, thousands, Progress, Stage};
pub use queue::{Delivery, InProcessQueue, QueueError, WorkQueue};
pub use redis_queue::{RedisQueueOptions, RedisStreamsQueue};
pub use registry::{live_workers, NodeInfo, NodeRegistry, NodeState, NodeView};
pub use shard::{plan_shards, shard_size, Shard};
pub use supervision::{Decision, RestartPolicy};
pub use warmer::{run_warmer, warm_once, WarmReport};
pub use worker::{NodeStats, WorkerContext};

use crate::cache::ScanCache;
use crate::config::Settings;
use crate::data::MarketData;
use crate::error::{ErrorCode, UserError};
use crate::scan::ScanConfig;
use crate::shutdown::Shutdown;
use coordinator::{Coordinator, CoordinatorArgs};
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

/// The Redis side of a node: its queue handle, the registry, and how it reports results.
pub struct ClusterLink {
    pub queue: Arc<RedisStreamsQueue>,
    pub registry: Arc<NodeRegistry>,
}

impl ClusterLink {
    /// Opens (without connecting) the queue and registry at `url`.
    pub fn open(url: &str, settings: &Settings) -> Result<Self, QueueError> {
        let queue =
            RedisStreamsQueue::open(url, RedisQueueOptions::from_settings(&settings.cluster))?;
        let registry = NodeRegistry::open(url, &settings.cluster)?;
        Ok(ClusterLink {
            queue: Arc::new(queue),
            registry: Arc::new(registry),
        })
    }
}

/// Coordinator + (optionally) a worker node in this process.
pub struct LocalCluster {
    coordinator: ActorRef<CoordinatorMsg>,
    node: Option<WorkerNode>,
    queue: Arc<dyn WorkQueue>,
    registry: Option<Arc<NodeRegistry>>,
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
            &Shutdown::new(),
        )
        .await
    }

    /// Coordinator and `workers` local worker actors over `target`. Over Redis, `workers`
    /// may be 0 (a coordinator only: the shards go to `technic worker` nodes), and the
    /// local workers form a node of the cluster like any other. Its tasks stop with
    /// `shutdown` (or with [`LocalCluster::shutdown`]).
    pub async fn start_on(
        settings: &Settings,
        provider: Arc<dyn MarketData>,
        cache: Option<Arc<ScanCache>>,
        workers: usize,
        target: &QueueTarget,
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
                provider,
                reporter,
                cache,
                stats: Arc::default(),
            };
            Some(WorkerNode::start(settings, ctx, workers, registry.clone(), &shutdown).await?)
        } else {
            None
        };
        Ok(LocalCluster {
            coordinator,
            node,
            queue,
            registry,
            shutdown,
        })
    }

    /// The cluster's node registry (over Redis); `None` in process.
    pub fn registry(&self) -> Option<&Arc<NodeRegistry>> {
        self.registry.as_ref()
    }

    /// This process's worker node, if it runs workers.
    pub fn node(&self) -> Option<&WorkerNode> {
        self.node.as_ref()
    }

    /// Submits a scan; invalid configs are rejected here, with every problem listed.
    pub async fn submit(&self, config: ScanConfig) -> Result<ScanHandle, ScanError> {
        match ractor::call!(self.coordinator, CoordinatorMsg::Submit, Box::new(config)) {
            Ok(result) => result,
            Err(e) => Err(ScanError::internal(&format!(
                "coordinator unreachable: {e}"
            ))),
        }
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
