//! A node: this process's supervised pool of worker actors, and (in a cluster) its
//! heartbeat. `technic worker` is a node and nothing else; a coordinator with local
//! workers runs one beside its coordinator actor.
//!
//! In a cluster a background task, every `cluster.queue_block_ms`, renews the node's
//! in-flight shards (so they are not claimed from a live node) and refreshes the cancelled
//! scans its workers check between symbols; every `cluster.heartbeat_ms` it writes the
//! node's registry entry. [`WorkerNode::drain`] is the SIGTERM path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::book::ScanBook;
use super::queue::WorkQueue;
use super::registry::{NodeInfo, NodeRegistry, NodeState};
use super::supervision::RestartPolicy;
use super::worker::{worker_id, NodeStats, Pool, PoolArgs, PoolMsg, WorkerContext};
use super::ClusterLink;
use crate::cache::ScanCache;
use crate::config::Settings;
use crate::error::{ErrorCode, UserError};
use crate::ml::serve::ModelSlot;
use crate::shutdown::Shutdown;

/// How long a stopping node waits for its heartbeat task to finish the beat in flight
/// (each Redis call has its own, shorter deadline).
const HEARTBEAT_STOP: Duration = Duration::from_secs(5);

/// What a node is, for its heartbeats.
#[derive(Debug, Clone)]
struct Identity {
    id: String,
    host: String,
    workers: usize,
    started_at_ms: i64,
}

pub struct WorkerNode {
    identity: Identity,
    pool: ActorRef<PoolMsg>,
    pool_done: JoinHandle<()>,
    ctx: WorkerContext,
    max_attempts: u32,
    draining: Arc<AtomicBool>,
    /// The node's own scope: its heartbeat stops with it, or with the process.
    shutdown: Shutdown,
    registry: Option<Arc<NodeRegistry>>,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every in-flight shard finished and was reported.
    Finished,
    /// The drain timeout passed; unfinished shards went back to the queue.
    HandedBack,
}

impl WorkerNode {
    /// Starts `workers` worker actors (at least one) under a supervisor; with a registry,
    /// also the heartbeat task.
    /// The heartbeat stops when the node stops or `shutdown` is triggered.
    pub async fn start(
        settings: &Settings,
        ctx: WorkerContext,
        workers: usize,
        link: Option<&ClusterLink>,
        shutdown: &Shutdown,
    ) -> Result<Self, UserError> {
        let registry = link.map(|l| Arc::clone(&l.registry));
        let workers = workers.max(1);
        let shutdown = shutdown.child();
        let identity = Identity {
            id: ctx.node_id.clone(),
            host: settings.cluster.host.clone(),
            workers,
            started_at_ms: chrono::Utc::now().timestamp_millis(),
        };
        let (pool, pool_done) = Actor::spawn(
            None,
            Pool,
            PoolArgs {
                workers,
                ctx: ctx.clone(),
                policy: RestartPolicy::new(&settings.cluster),
                max_attempts: settings.cluster.max_attempts,
            },
        )
        .await
        .map_err(|e| {
            UserError::new(
                ErrorCode::Internal,
                format!("cannot start the worker actors: {e}"),
                vec![],
            )
        })?;
        let draining = Arc::new(AtomicBool::new(false));
        if let Some(registry) = &registry {
            let task = Heartbeat {
                identity: identity.clone(),
                stats: Arc::clone(&ctx.stats),
                cache: ctx.cache.clone(),
                ml: Arc::clone(&ctx.ml),
                queue: Arc::clone(&ctx.queue),
                registry: Arc::clone(registry),
                book: link.map(|l| Arc::clone(&l.book)),
                draining: Arc::clone(&draining),
                renew_every: Duration::from_millis(settings.cluster.queue_block_ms),
                beat_every: Duration::from_millis(settings.cluster.heartbeat_ms),
            };
            shutdown.spawn(task.run(shutdown.clone()));
        }
        info!(node = %identity.id, workers, "node started");
        Ok(WorkerNode {
            identity,
            pool,
            pool_done,
            ctx,
            max_attempts: settings.cluster.max_attempts,
            draining,
            shutdown,
            registry,
        })
    }

    pub fn id(&self) -> &str {
        &self.identity.id
    }

    /// The alpha model this node's workers serve.
    pub fn ml(&self) -> &Arc<ModelSlot> {
        &self.ctx.ml
    }

    /// What this node's next heartbeat would say.
    pub fn info(&self) -> NodeInfo {
        node_info(
            &self.identity,
            &self.ctx.stats,
            self.ctx.cache.as_deref(),
            &self.ctx.ml,
            self.draining.load(Ordering::Acquire),
        )
    }

    /// Resolves when the pool stopped by itself: every worker failed past the restart
    /// limit, or the queue was closed.
    pub async fn stopped(&mut self) {
        let _ = (&mut self.pool_done).await;
    }

    /// The SIGTERM path: stop pulling, let in-flight shards finish (up to `timeout`), hand
    /// back what did not, leave the registry (the node is no longer listed).
    pub async fn drain(mut self, timeout: Duration) -> Drained {
        self.draining.store(true, Ordering::Release);
        self.beat_now().await;
        self.ctx.queue.close();
        let drained = if tokio::time::timeout(timeout, &mut self.pool_done)
            .await
            .is_ok()
        {
            Drained::Finished
        } else {
            warn!(node = %self.identity.id, "drain timeout: handing unfinished shards back");
            for i in 0..self.identity.workers {
                let consumer = worker_id(&self.identity.id, i);
                let exhausted = self
                    .ctx
                    .queue
                    .requeue_consumer(&consumer, self.max_attempts)
                    .await;
                if !exhausted.is_empty() {
                    let reason = "the node draining it timed out".to_string();
                    if let Err(e) = self.ctx.reporter.shards_exhausted(exhausted, reason).await {
                        warn!(error = %e, "cannot report exhausted shards");
                    }
                }
            }
            self.pool.stop(None);
            Drained::HandedBack
        };
        self.leave().await;
        drained
    }

    /// Stops at once (workers finish nothing more) and leaves the registry.
    pub async fn stop(self) {
        self.ctx.queue.close();
        self.pool.stop(None);
        self.leave().await;
    }

    async fn beat_now(&self) {
        if let Some(registry) = &self.registry {
            let info = node_info(
                &self.identity,
                &self.ctx.stats,
                self.ctx.cache.as_deref(),
                &self.ctx.ml,
                self.draining.load(Ordering::Acquire),
            );
            if let Err(e) = registry.beat(&info).await {
                warn!(error = %e, "heartbeat failed");
            }
        }
    }

    async fn leave(self) {
        // The heartbeat ends between two beats, so it cannot write the entry again after
        // `leave` removed it.
        self.shutdown.complete(HEARTBEAT_STOP).await;
        if let Some(registry) = &self.registry {
            if let Err(e) = registry.leave(&self.identity.id).await {
                warn!(error = %e, "cannot leave the node registry; the entry expires by itself");
            }
        }
        info!(node = %self.identity.id, "node left");
    }
}

fn node_info(
    identity: &Identity,
    stats: &NodeStats,
    cache: Option<&ScanCache>,
    ml: &ModelSlot,
    draining: bool,
) -> NodeInfo {
    let busy = stats.busy.load(Ordering::Relaxed);
    NodeInfo {
        id: identity.id.clone(),
        host: identity.host.clone(),
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        workers: identity.workers,
        state: if draining {
            NodeState::Draining
        } else {
            NodeState::Up
        },
        started_at_ms: identity.started_at_ms,
        heartbeat_at_ms: chrono::Utc::now().timestamp_millis(),
        shards_done: stats.shards_done.load(Ordering::Relaxed),
        symbols_done: stats.symbols_done.load(Ordering::Relaxed),
        busy,
        load: (busy as f64 / identity.workers.max(1) as f64).min(1.0),
        restarts: stats.restarts.load(Ordering::Relaxed),
        ttl_version: cache.map_or(0, ScanCache::ttl_version),
        model: ml.served_as(),
    }
}

struct Heartbeat {
    identity: Identity,
    stats: Arc<NodeStats>,
    /// Its shared TTL settings' version is reported in each beat.
    cache: Option<Arc<ScanCache>>,
    /// Its model's version is reported in each beat.
    ml: Arc<ModelSlot>,
    queue: Arc<dyn WorkQueue>,
    registry: Arc<NodeRegistry>,
    /// Read every beat: the scans' current epochs and the abandoned one-shot scans.
    book: Option<Arc<ScanBook>>,
    draining: Arc<AtomicBool>,
    renew_every: Duration,
    beat_every: Duration,
}

impl Heartbeat {
    /// Fences the queue with the scans' current epochs, and drops the shards of one-shot
    /// scans whose process died (this pass or another node's marked them abandoned).
    async fn sweep(&self) {
        let Some(book) = &self.book else {
            return;
        };
        match book.sweep().await {
            Ok(sweep) => {
                for id in &sweep.abandoned {
                    warn!(scan_id = %id, "one-shot scan abandoned: its process stopped renewing its lease");
                    self.queue.cancel(id).await;
                }
                self.queue.fence(sweep.epochs);
            }
            Err(e) => debug!(error = %e, "cannot read the scan book this beat"),
        }
    }

    async fn run(self, shutdown: Shutdown) {
        let mut last_beat: Option<Instant> = None;
        let mut failing = false;
        loop {
            // Failures are counted and logged once per outage by the queue.
            let _ = self.queue.renew().await;
            if last_beat.is_none_or(|t| t.elapsed() >= self.beat_every) {
                last_beat = Some(Instant::now());
                let info = node_info(
                    &self.identity,
                    &self.stats,
                    self.cache.as_deref(),
                    &self.ml,
                    self.draining.load(Ordering::Acquire),
                );
                self.sweep().await;
                match self.registry.beat(&info).await {
                    Ok(()) if failing => {
                        failing = false;
                        info!("heartbeats reach the registry again");
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        warn!(error = %e, "heartbeat failed; this node may be shown down");
                    }
                    Err(_) => {}
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.renew_every) => {}
                _ = shutdown.triggered() => return,
            }
        }
    }
}
