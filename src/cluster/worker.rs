//! Worker actors and the pool that supervises them.
//!
//! A worker pulls a shard from the [`WorkQueue`], loads its bars through the provider,
//! evaluates every symbol on rayon (checking for cancellation between symbols), acks the
//! shard and reports the outcomes to the coordinator, then pulls again. A worker that
//! panics is restarted by the [`Pool`] with the [`RestartPolicy`]'s backoff; its in-flight
//! shard is re-queued (or, after the attempt limit, reported failed).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{debug, error, info_span, warn, Instrument};

use super::pipeline::{process_shard, CacheMode, PipelineContext};
use super::queue::WorkQueue;
use super::shard::Shard;
use super::supervision::{Decision, RestartPolicy};
use super::transport::{ReportError, Reporter};
use crate::cache::ScanCache;
use crate::data::MarketData;

/// Everything a worker needs; shared by all workers of a node.
#[derive(Clone)]
pub struct WorkerContext {
    pub node_id: String,
    pub queue: Arc<dyn WorkQueue>,
    pub provider: Arc<dyn MarketData>,
    pub reporter: Arc<dyn Reporter>,
    pub cache: Option<Arc<ScanCache>>,
    /// The alpha model the node serves.
    pub ml: Arc<crate::ml::serve::ModelSlot>,
    pub stats: Arc<NodeStats>,
}

/// What a node's workers have done, for its heartbeats.
#[derive(Debug, Default)]
pub struct NodeStats {
    pub shards_done: AtomicU64,
    pub symbols_done: AtomicU64,
    /// Shards in flight now.
    pub busy: AtomicUsize,
    pub restarts: AtomicU64,
}

impl WorkerContext {
    pub fn pipeline(&self) -> PipelineContext {
        PipelineContext {
            node_id: self.node_id.clone(),
            provider: Arc::clone(&self.provider),
            cache: self.cache.clone(),
            queue: Some(Arc::clone(&self.queue)),
            ml: self.ml.clone(),
        }
    }
}

pub struct Worker;

pub enum WorkerMsg {
    Pull,
}

pub struct WorkerState {
    id: String,
    ctx: WorkerContext,
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = (String, WorkerContext);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (id, ctx): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_message(WorkerMsg::Pull)?;
        Ok(WorkerState { id, ctx })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        WorkerMsg::Pull: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some(delivery) = state.ctx.queue.pull(&state.id).await else {
            debug!(worker = %state.id, "queue closed, worker stopping");
            myself.stop(None);
            return Ok(());
        };
        let shard = delivery.shard;
        let stats = &state.ctx.stats;
        stats.busy.fetch_add(1, Ordering::Relaxed);
        let outcome = if delivery.exhausted {
            let reason = format!("shard delivered {} times without an ack", shard.attempt);
            settle_exhausted(&state.ctx, vec![shard], reason).await
        } else if !state.ctx.queue.is_dropped(&shard.scan_id, shard.epoch) {
            let span = info_span!("shard", scan_id = %shard.scan_id, shard = shard.index, attempt = shard.attempt, worker = %state.id);
            let report = process_shard(&state.ctx.pipeline(), &shard, CacheMode::Use)
                .instrument(span)
                .await;
            let symbols = report.outcomes.len() as u64;
            // A scan dropped meanwhile (cancelled, abandoned, taken over) has no reader
            // for this report: sending it would only recreate its results stream.
            if state.ctx.queue.is_dropped(&shard.scan_id, shard.epoch) {
                stats.busy.fetch_sub(1, Ordering::Relaxed);
                state.ctx.queue.ack(delivery.id).await;
                myself.send_message(WorkerMsg::Pull)?;
                return Ok(());
            }
            let sent = state.ctx.reporter.shard_done(report).await;
            if sent.is_ok() {
                stats.shards_done.fetch_add(1, Ordering::Relaxed);
                stats.symbols_done.fetch_add(symbols, Ordering::Relaxed);
            }
            sent
        } else {
            Ok(())
        };
        stats.busy.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            // Acked only once the report was accepted: a lost report means a re-delivery,
            // never a lost symbol.
            Ok(()) => state.ctx.queue.ack(delivery.id).await,
            Err(ReportError::CoordinatorGone) => {
                state.ctx.queue.ack(delivery.id).await;
                myself.stop(Some("coordinator gone".into()));
                return Ok(());
            }
            Err(e @ ReportError::Unavailable(_)) => {
                error!(worker = %state.id, error = %e, "shard report lost; the shard will be delivered again");
                state.ctx.queue.release(delivery.id).await;
            }
        }
        myself.send_message(WorkerMsg::Pull)?;
        Ok(())
    }
}

/// Shards that used up their attempts: a shard that keeps killing workers is split into
/// one-symbol shards, each given one last attempt, so only the symbol at fault is reported
/// failed; one-symbol shards (and, if the re-queue fails, the whole shard) go to the
/// coordinator as failed.
async fn settle_exhausted(
    ctx: &WorkerContext,
    exhausted: Vec<Shard>,
    reason: String,
) -> Result<(), ReportError> {
    let (singles, split): (Vec<Shard>, Vec<Shard>) =
        exhausted.into_iter().partition(|s| s.entries.len() <= 1);
    let isolated: Vec<Shard> = split.iter().flat_map(isolate).collect();
    let mut failed = singles;
    if !isolated.is_empty() {
        warn!(symbols = isolated.len(), %reason, "shard exhausted its attempts; retrying its symbols one by one");
        if let Err(e) = ctx.queue.push(isolated).await {
            warn!(error = %e, "cannot re-queue isolated symbols; reporting the shard failed");
            failed.extend(split);
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    ctx.reporter.shards_exhausted(failed, reason).await
}

/// One-symbol shards of `shard`, each on its last attempt.
fn isolate(shard: &Shard) -> Vec<Shard> {
    shard
        .entries
        .iter()
        .map(|e| Shard {
            entries: vec![e.clone()],
            ..shard.clone()
        })
        .collect()
}

/// The supervisor of a node's workers.
pub struct Pool;

pub enum PoolMsg {
    /// Restart the worker with this id (sent to self after the backoff).
    Restart(String),
}

pub struct PoolArgs {
    pub workers: usize,
    pub ctx: WorkerContext,
    pub policy: RestartPolicy,
    pub max_attempts: u32,
}

pub struct PoolState {
    ctx: WorkerContext,
    policy: RestartPolicy,
    max_attempts: u32,
    /// Worker id by actor cell id, to know which consumer died.
    ids: std::collections::HashMap<ractor::ActorId, String>,
    /// Restarts scheduled and not yet done.
    pending_restarts: usize,
}

async fn spawn_worker(
    id: String,
    ctx: WorkerContext,
    supervisor: ActorCell,
) -> Result<(ractor::ActorId, String), ActorProcessingErr> {
    let (w, _) = Actor::spawn_linked(None, Worker, (id.clone(), ctx), supervisor).await?;
    Ok((w.get_id(), id))
}

/// The consumer name of a node's worker `i`.
pub fn worker_id(node_id: &str, i: usize) -> String {
    format!("{node_id}-w{i}")
}

impl PoolState {
    /// The pool stops once no worker is left and none is about to restart: its workers
    /// stopped (the queue closed) or failed past the restart limit.
    fn stop_if_empty(&self, myself: &ActorRef<PoolMsg>) {
        if self.ids.is_empty() && self.pending_restarts == 0 {
            debug!(node = %self.ctx.node_id, "no worker left; pool stopping");
            myself.stop(None);
        }
    }
}

impl Actor for Pool {
    type Msg = PoolMsg;
    type State = PoolState;
    type Arguments = PoolArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut ids = std::collections::HashMap::new();
        for i in 0..args.workers {
            let id = worker_id(&args.ctx.node_id, i);
            let (actor_id, id) = spawn_worker(id, args.ctx.clone(), myself.get_cell()).await?;
            ids.insert(actor_id, id);
        }
        Ok(PoolState {
            ctx: args.ctx,
            policy: args.policy,
            max_attempts: args.max_attempts,
            ids,
            pending_restarts: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let PoolMsg::Restart(id) = msg;
        state.pending_restarts -= 1;
        let (actor_id, id) = spawn_worker(id, state.ctx.clone(), myself.get_cell()).await?;
        state.ids.insert(actor_id, id);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(id) = state.ids.remove(&cell.get_id()) else {
                    return Ok(());
                };
                error!(worker = %id, error = %err, "worker actor failed");
                crate::telemetry::metrics().worker_restarts.inc();
                state.ctx.stats.restarts.fetch_add(1, Ordering::Relaxed);
                // It died holding a shard (a panic mid-shard skips its own decrement).
                let _ =
                    state
                        .ctx
                        .stats
                        .busy
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                            Some(b.saturating_sub(1))
                        });
                let exhausted = state
                    .ctx
                    .queue
                    .requeue_consumer(&id, state.max_attempts)
                    .await;
                let reason = format!("worker {id} failed: {err}");
                if let Err(e) = settle_exhausted(&state.ctx, exhausted, reason).await {
                    warn!(error = %e, "cannot report exhausted shards");
                }
                match state.policy.on_failure(Instant::now()) {
                    Decision::RestartAfter(delay) => {
                        warn!(worker = %id, delay_ms = delay.as_millis() as u64, "restarting worker");
                        state.pending_restarts += 1;
                        myself.send_after(delay, move || PoolMsg::Restart(id));
                    }
                    Decision::GiveUp => {
                        error!(worker = %id, "restart limit reached; not restarting");
                        if state.ids.is_empty() && state.pending_restarts == 0 {
                            state.ctx.reporter.workers_lost(
                                "every worker failed and the restart limit was reached",
                            );
                        }
                        state.stop_if_empty(&myself);
                    }
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.ids.remove(&cell.get_id());
                state.stop_if_empty(&myself);
            }
            _ => {}
        }
        Ok(())
    }
}
