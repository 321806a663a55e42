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
use crate::cache::{CacheReport, Kind, ScanCache};
use crate::data::{BarRange, DataError, MarketData};
use crate::market::Bars;
use crate::scan::{
    compute_features, score, Evaluation, Failure, FilterReason, ScanConfig, ScanResult,
    SymbolFeatures, FEATURES_VERSION,
};

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
    /// Cache lookups and hits for this shard; `None` without a cache.
    pub cache: Option<CacheReport>,
}

/// Everything a worker needs; shared by all workers of a node.
#[derive(Clone)]
pub struct WorkerContext {
    pub node_id: String,
    pub queue: Arc<dyn WorkQueue>,
    pub provider: Arc<dyn MarketData>,
    pub coordinator: ActorRef<CoordinatorMsg>,
    pub cache: Option<Arc<ScanCache>>,
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

/// Loads and evaluates one shard. With a cache: features first (a hit skips bars and
/// compute), then bars (a hit skips the provider), then the provider; what was computed or
/// fetched is written back. Symbols after a cancellation are left out.
pub async fn process_shard(ctx: &WorkerContext, shard: &Shard) -> ShardReport {
    let cfg = Arc::clone(&shard.config);
    let n = shard.entries.len();
    let symbols: Vec<String> = shard.entries.iter().map(|e| e.symbol.clone()).collect();
    let keys = CacheKeys::new(ctx.provider.cache_namespace(), &cfg);
    let mut cache_stats = CacheReport::default();
    let t0 = Instant::now();

    // 1. Cached features.
    let mut features: Vec<Option<SymbolFeatures>> = vec![None; n];
    if let Some(cache) = &ctx.cache {
        cache.record_requests(&symbols).await;
        let (got, available) = cache
            .get(Kind::Features, &keys.all(Kind::Features, &symbols))
            .await;
        features = got;
        cache_stats.lookups = n as u64;
        cache_stats.unavailable |= !available;
    }
    // 2. Cached bars, then the provider, for the rest.
    let need: Vec<usize> = (0..n).filter(|&i| features[i].is_none()).collect();
    let mut bars: Vec<Option<Result<Bars, DataError>>> = vec![None; n];
    let mut cached_bars = vec![false; n];
    if let (Some(cache), false) = (&ctx.cache, need.is_empty()) {
        let need_syms: Vec<String> = need.iter().map(|&i| symbols[i].clone()).collect();
        let (got, available) = cache
            .get::<Bars>(Kind::Bars, &keys.all(Kind::Bars, &need_syms))
            .await;
        cache_stats.unavailable |= !available;
        for (&i, b) in need.iter().zip(got) {
            cached_bars[i] = b.is_some();
            bars[i] = b.map(Ok);
        }
    }
    let fetch: Vec<usize> = need
        .iter()
        .copied()
        .filter(|&i| bars[i].is_none())
        .collect();
    if !fetch.is_empty() {
        let fetch_syms: Vec<String> = fetch.iter().map(|&i| symbols[i].clone()).collect();
        let range = BarRange {
            as_of: cfg.as_of,
            lookback: cfg.lookback_days,
        };
        let loaded = ctx.provider.load_many(&fetch_syms, range).await;
        for (&i, b) in fetch.iter().zip(loaded) {
            bars[i] = Some(b.map(|b| b.window(cfg.as_of, cfg.lookback_days).to_bars()));
        }
    }
    cache_stats.hits = (0..n)
        .filter(|&i| features[i].is_some() || cached_bars[i])
        .count() as u64;
    let fetch_seconds = t0.elapsed().as_secs_f64();

    // 3. Compute what is missing and score everything, on rayon.
    let t1 = Instant::now();
    let entries = shard.entries.clone();
    let queue = Arc::clone(&ctx.queue);
    let scan_id = shard.scan_id.clone();
    let compute_cfg = Arc::clone(&cfg);
    let (outcomes, computed, bars) = crate::cpu::run(move || {
        let cfg = compute_cfg;
        let per_symbol: Vec<_> = entries
            .par_iter()
            .zip(features.into_par_iter())
            .zip(bars.par_iter())
            .map(|((entry, cached), bars)| {
                if queue.is_cancelled(&scan_id) {
                    return None;
                }
                let (sf, fresh) = match (cached, bars) {
                    (Some(sf), _) => (Ok(Some(sf)), false),
                    (None, Some(Ok(b))) => (Ok(compute_features(b.view())), true),
                    (None, Some(Err(e))) => (Err(e.clone()), false),
                    (None, None) => (Ok(None), false),
                };
                let outcome = match &sf {
                    Ok(Some(sf)) => match score(entry, sf, &cfg) {
                        Evaluation::Passed(r) => SymbolOutcome::Passed(r),
                        Evaluation::Filtered(f) => SymbolOutcome::Filtered(f),
                    },
                    Ok(None) => SymbolOutcome::Filtered(FilterReason::TooFewBars),
                    Err(e) => SymbolOutcome::Failed(Failure {
                        symbol: entry.symbol.clone(),
                        code: e.code().to_string(),
                        message: format!("{e}; {}", e.suggestion()),
                    }),
                };
                let computed = match sf {
                    Ok(Some(sf)) if fresh => Some(sf),
                    _ => None,
                };
                Some(((entry.symbol.clone(), outcome), computed))
            })
            .collect();
        let mut outcomes = Vec::with_capacity(per_symbol.len());
        let mut computed = Vec::new();
        for (i, item) in per_symbol.into_iter().enumerate() {
            if let Some((outcome, sf)) = item {
                outcomes.push(outcome);
                if let Some(sf) = sf {
                    computed.push((i, sf));
                }
            }
        }
        (outcomes, computed, bars)
    })
    .await;
    let compute_seconds = t1.elapsed().as_secs_f64();

    // 4. Write back fresh features, and the bars they came from when those were fetched.
    if let Some(cache) = &ctx.cache {
        if !computed.is_empty() {
            let f_items: Vec<_> = computed
                .iter()
                .map(|(i, sf)| {
                    (
                        keys.one(Kind::Features, &symbols[*i]),
                        sf,
                        sf.daily_vol(),
                        Some(sf.as_of),
                    )
                })
                .collect();
            cache_stats.unavailable |= !cache.put(Kind::Features, &f_items).await;
            let b_items: Vec<_> = computed
                .iter()
                .filter(|(i, _)| !cached_bars[*i])
                .filter_map(|(i, sf)| match &bars[*i] {
                    Some(Ok(b)) => Some((
                        keys.one(Kind::Bars, &symbols[*i]),
                        b,
                        sf.daily_vol(),
                        Some(sf.as_of),
                    )),
                    _ => None,
                })
                .collect();
            cache_stats.unavailable |= !cache.put(Kind::Bars, &b_items).await;
        }
    }
    ShardReport {
        scan_id: shard.scan_id.clone(),
        node_id: ctx.node_id.clone(),
        outcomes,
        fetch_seconds,
        compute_seconds,
        cache: ctx.cache.as_ref().map(|_| cache_stats),
    }
}

/// Cache keys of one scan's bars and features: data namespace, symbol, as-of, lookback
/// (and the features version for features).
struct CacheKeys {
    namespace: String,
    as_of: String,
    lookback: usize,
}

impl CacheKeys {
    fn new(namespace: String, cfg: &ScanConfig) -> Self {
        CacheKeys {
            namespace,
            as_of: cfg
                .as_of
                .map_or_else(|| "latest".to_string(), |d| d.to_string()),
            lookback: cfg.lookback_days,
        }
    }

    fn one(&self, kind: Kind, symbol: &str) -> String {
        match kind {
            Kind::Features => kind.key(&format!(
                "{}:{symbol}:{}:{}:f{FEATURES_VERSION}",
                self.namespace, self.as_of, self.lookback
            )),
            _ => kind.key(&format!(
                "{}:{symbol}:{}:{}",
                self.namespace, self.as_of, self.lookback
            )),
        }
    }

    fn all(&self, kind: Kind, symbols: &[String]) -> Vec<String> {
        symbols.iter().map(|s| self.one(kind, s)).collect()
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
