//! Worker actors and the pool that supervises them.
//!
//! A worker pulls a shard from the [`WorkQueue`], loads its bars through the provider,
//! evaluates every symbol on rayon (checking for cancellation between symbols), acks the
//! shard and reports the outcomes to the coordinator, then pulls again. A worker that
//! panics is restarted by the [`Pool`] with the [`RestartPolicy`]'s backoff; its in-flight
//! shard is re-queued (or, after the attempt limit, reported failed).

use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{debug, error, info_span, warn, Instrument};

use super::coordinator::CoordinatorMsg;
use super::pipeline::{process_shard, CacheMode, PipelineContext};
use super::queue::WorkQueue;
use super::shard::Shard;
use super::supervision::{Decision, RestartPolicy};
use crate::cache::ScanCache;
use crate::data::MarketData;

/// Everything a worker needs; shared by all workers of a node.
#[derive(Clone)]
pub struct WorkerContext {
    pub node_id: String,
    pub queue: Arc<dyn WorkQueue>,
    pub provider: Arc<dyn MarketData>,
    pub coordinator: ActorRef<CoordinatorMsg>,
    pub cache: Option<Arc<ScanCache>>,
}

impl WorkerContext {
    pub fn pipeline(&self) -> PipelineContext {
        PipelineContext {
            node_id: self.node_id.clone(),
            provider: Arc::clone(&self.provider),
            cache: self.cache.clone(),
            queue: Some(Arc::clone(&self.queue)),
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
        if delivery.exhausted {
            let reason = format!("shard delivered {} times without an ack", shard.attempt);
            let sent = settle_exhausted(&state.ctx, vec![shard], reason).await;
            state.ctx.queue.ack(delivery.id).await;
            if !sent {
                myself.stop(Some("coordinator gone".into()));
                return Ok(());
            }
        } else if !state.ctx.queue.is_cancelled(&shard.scan_id) {
            let span = info_span!("shard", scan_id = %shard.scan_id, shard = shard.index, attempt = shard.attempt, worker = %state.id);
            let report = process_shard(&state.ctx.pipeline(), &shard, CacheMode::Use)
                .instrument(span)
                .await;
            state.ctx.queue.ack(delivery.id).await;
            if state
                .ctx
                .coordinator
                .send_message(CoordinatorMsg::ShardDone(report))
                .is_err()
            {
                myself.stop(Some("coordinator gone".into()));
                return Ok(());
            }
        } else {
            state.ctx.queue.ack(delivery.id).await;
        }
        myself.send_message(WorkerMsg::Pull)?;
        Ok(())
    }
}

/// Shards that used up their attempts: a shard that keeps killing workers is split into
/// one-symbol shards, each given one last attempt, so only the symbol at fault is reported
/// failed; one-symbol shards (and, if the re-queue fails, the whole shard) go to the
/// coordinator as failed. `false` when the coordinator is gone.
async fn settle_exhausted(ctx: &WorkerContext, exhausted: Vec<Shard>, reason: String) -> bool {
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
        return true;
    }
    ctx.coordinator
        .send_message(CoordinatorMsg::ShardsExhausted(failed, reason))
        .is_ok()
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
}

async fn spawn_worker(
    id: String,
    ctx: WorkerContext,
    supervisor: ActorCell,
) -> Result<(ractor::ActorId, String), ActorProcessingErr> {
    let (w, _) = Actor::spawn_linked(None, Worker, (id.clone(), ctx), supervisor).await?;
    Ok((w.get_id(), id))
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
            let id = format!("{}-w{i}", args.ctx.node_id);
            let (actor_id, id) = spawn_worker(id, args.ctx.clone(), myself.get_cell()).await?;
            ids.insert(actor_id, id);
        }
        Ok(PoolState {
            ctx: args.ctx,
            policy: args.policy,
            max_attempts: args.max_attempts,
            ids,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let PoolMsg::Restart(id) = msg;
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
                let exhausted = state
                    .ctx
                    .queue
                    .requeue_consumer(&id, state.max_attempts)
                    .await;
                let reason = format!("worker {id} failed: {err}");
                let _ = settle_exhausted(&state.ctx, exhausted, reason).await;
                match state.policy.on_failure(Instant::now()) {
                    Decision::RestartAfter(delay) => {
                        warn!(worker = %id, delay_ms = delay.as_millis() as u64, "restarting worker");
                        myself.send_after(delay, move || PoolMsg::Restart(id));
                    }
                    Decision::GiveUp => {
                        error!(worker = %id, "restart limit reached; not restarting");
                        if state.ids.is_empty() {
                            let _ =
                                state
                                    .ctx
                                    .coordinator
                                    .send_message(CoordinatorMsg::WorkersLost(
                                        "every worker failed and the restart limit was reached"
                                            .into(),
                                    ));
                        }
                    }
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.ids.remove(&cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }
}
