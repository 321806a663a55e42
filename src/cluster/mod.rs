//! The cluster: a coordinator actor and a supervised pool of worker actors sharing a
//! [`WorkQueue`]. This is where I/O meets compute: workers load bars through `data` and
//! call `scan`; the coordinator ranks.
//!
//! [`LocalCluster`] runs coordinator + workers in one process over the in-process queue
//! (what `technic scan` uses). Progress is a `watch` channel per scan; cancellation
//! stops handing out shards and makes workers stop between symbols.

mod coordinator;
mod error;
mod pipeline;
mod progress;
mod queue;
mod redis_queue;
mod shard;
mod supervision;
mod warmer;
mod worker;

use std::sync::Arc;

use ractor::{Actor, ActorRef};

pub use coordinator::{select_universe, CoordinatorMsg, ScanHandle};
pub use error::ScanError;
pub use pipeline::{process_shard, CacheMode, PipelineContext, ShardReport, SymbolOutcome};
pub use progress::{analyzing, thousands, Progress, Stage};
pub use queue::{Delivery, InProcessQueue, QueueError, WorkQueue};
pub use redis_queue::{RedisQueueOptions, RedisStreamsQueue};
pub use shard::{plan_shards, shard_size, Shard};
pub use supervision::{Decision, RestartPolicy};
pub use warmer::{run_warmer, warm_once, WarmReport};
pub use worker::WorkerContext;

use crate::cache::ScanCache;
use crate::config::Settings;
use crate::data::MarketData;
use crate::error::{ErrorCode, UserError};
use crate::scan::ScanConfig;
use coordinator::{Coordinator, CoordinatorArgs};
use worker::{Pool, PoolArgs, PoolMsg};

/// Coordinator + a worker pool in this process, over the in-process queue.
pub struct LocalCluster {
    coordinator: ActorRef<CoordinatorMsg>,
    pool: ActorRef<PoolMsg>,
    queue: Arc<InProcessQueue>,
}

impl LocalCluster {
    /// Starts the actors. `workers` worker actors pull shards (at least one).
    pub async fn start(
        settings: &Settings,
        provider: Arc<dyn MarketData>,
        cache: Option<Arc<ScanCache>>,
        workers: usize,
    ) -> Result<Self, UserError> {
        let workers = workers.max(1);
        let queue = Arc::new(InProcessQueue::new(settings.cluster.queue_capacity));
        let spawn_err = |e: ractor::SpawnErr| {
            UserError::new(
                ErrorCode::Internal,
                format!("cannot start the cluster actors: {e}"),
                vec![],
            )
        };
        let (coordinator, _) = Actor::spawn(
            None,
            Coordinator,
            CoordinatorArgs {
                provider: Arc::clone(&provider),
                queue: queue.clone(),
                workers,
                max_shard_size: settings.cluster.shard_size,
                max_universe_size: settings.scan.max_universe_size,
            },
        )
        .await
        .map_err(spawn_err)?;
        let ctx = WorkerContext {
            node_id: "local".into(),
            queue: queue.clone(),
            provider,
            coordinator: coordinator.clone(),
            cache,
        };
        let (pool, _) = Actor::spawn(
            None,
            Pool,
            PoolArgs {
                workers,
                ctx,
                policy: RestartPolicy::new(&settings.cluster),
                max_attempts: settings.cluster.max_attempts,
            },
        )
        .await
        .map_err(spawn_err)?;
        Ok(LocalCluster {
            coordinator,
            pool,
            queue,
        })
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

    /// Stops workers (they finish their current shard) and the coordinator.
    pub async fn shutdown(self) {
        self.queue.close();
        self.pool.stop(None);
        self.coordinator.stop(None);
    }
}
