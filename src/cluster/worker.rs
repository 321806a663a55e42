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
use rayon::prelude::*;
use tracing::{debug, error, info_span, warn, Instrument};

use super::coordinator::CoordinatorMsg;
use super::queue::WorkQueue;
use super::shard::Shard;
use super::supervision::{Decision, RestartPolicy};
use crate::data::{BarRange, MarketData};
use crate::market::Origin;
use crate::scan::FilterReason;
use crate::scan::{evaluate, Evaluation, Failure, ScanResult};

/// What one symbol came to.
#[derive(Debug, Clone, PartialEq)]
pub enum SymbolOutcome {
    Passed(Box<ScanResult>),
    Filtered(FilterReason),
    Failed(Failure),
}

/// A worker's report for one shard.
#[derive(Debug, Clone)]
pub struct ShardReport {
    pub scan_id: String,
    pub node_id: String,
    pub outcomes: Vec<(String, SymbolOutcome)>,
    pub fetch_seconds: f64,
    pub compute_seconds: f64,
    /// Symbols of the shard loaded through a provider's bulk path / from a fallback source.
    pub bulk_symbols: usize,
    pub fallback_symbols: usize,
}

/// Everything a worker needs; shared by all workers of a node.
#[derive(Clone)]
pub struct WorkerContext {
    pub node_id: String,
    pub queue: Arc<dyn WorkQueue>,
    pub provider: Arc<dyn MarketData>,
    pub coordinator: ActorRef<CoordinatorMsg>,
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
        if !state.ctx.queue.is_cancelled(&shard.scan_id) {
            let span = info_span!("shard", scan_id = %shard.scan_id, shard = shard.index, attempt = shard.attempt, worker = %state.id);
            let report = process_shard(&state.ctx, &shard).instrument(span).await;
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

/// Loads and evaluates one shard. Symbols after a cancellation are left out.
pub async fn process_shard(ctx: &WorkerContext, shard: &Shard) -> ShardReport {
    let cfg = Arc::clone(&shard.config);
    let range = BarRange::new(cfg.as_of, cfg.lookback_days).with_scan_symbols(shard.scan_symbols);
    let symbols: Vec<String> = shard.entries.iter().map(|e| e.symbol.clone()).collect();
    let t0 = Instant::now();
    let loaded = ctx.provider.load_many(&symbols, range).await;
    let fetch_seconds = t0.elapsed().as_secs_f64();
    let origin_count = |o: fn(&Origin) -> bool| {
        loaded
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|b| o(&b.origin)))
            .count()
    };
    let bulk_symbols = origin_count(|o| *o == Origin::Bulk);
    let fallback_symbols = origin_count(|o| matches!(o, Origin::Fallback(_)));

    let t1 = Instant::now();
    let entries = shard.entries.clone();
    let queue = Arc::clone(&ctx.queue);
    let scan_id = shard.scan_id.clone();
    let outcomes = crate::cpu::run(move || {
        entries
            .par_iter()
            .zip(loaded)
            .filter_map(|(entry, bars)| {
                if queue.is_cancelled(&scan_id) {
                    return None;
                }
                let outcome = match bars {
                    Ok(bars) => {
                        match evaluate(entry, bars.window(cfg.as_of, cfg.lookback_days), &cfg) {
                            Evaluation::Passed(r) => SymbolOutcome::Passed(r),
                            Evaluation::Filtered(f) => SymbolOutcome::Filtered(f),
                        }
                    }
                    Err(e) => SymbolOutcome::Failed(Failure {
                        symbol: entry.symbol.clone(),
                        code: e.code().to_string(),
                        message: format!("{e}; {}", e.suggestion()),
                    }),
                };
                Some((entry.symbol.clone(), outcome))
            })
            .collect()
    })
    .await;
    ShardReport {
        scan_id: shard.scan_id.clone(),
        node_id: ctx.node_id.clone(),
        outcomes,
        fetch_seconds,
        compute_seconds: t1.elapsed().as_secs_f64(),
        bulk_symbols,
        fallback_symbols,
    }
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
                if !exhausted.is_empty() {
                    let reason = format!("worker {id} failed: {err}");
                    let _ = state
                        .ctx
                        .coordinator
                        .send_message(CoordinatorMsg::ShardsExhausted(exhausted, reason));
                }
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
