//! The coordinator actor: accepts a scan, resolves and filters the universe, shards it
//! onto the work queue, aggregates worker reports (idempotently, by symbol), publishes
//! progress, ranks, and hands back the report. Handles cancel and lost workers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use super::book::{universe_key, ScanRecord, Takeover};
use super::error::ScanError;
use super::pipeline::{MlReport, ShardReport, SymbolOutcome};
use super::progress::{analyzing, thousands, Progress, Stage};
use super::queue::WorkQueue;
use super::registry::{live_workers, NodeRegistry};
use super::result_cache::ScanKey;
use super::shard::{plan_shards, shard_size, Shard};
use super::steward::Steward;
use super::transport::ResultsFeed;
use crate::cache::CacheReport;
use crate::data::{DataError, MarketData};
use crate::market::UniverseEntry;
use crate::ml::model::Refusal;
use crate::scan::{
    blend, neutral_alphas, rank, Failure, FilterReason, ScanConfig, ScanReport, ScanStatus, Stages,
    Timing,
};
use crate::telemetry::{metrics, OutcomeLabel};

/// What a submitter gets back: live progress, the final report, and a way to cancel.
pub struct ScanHandle {
    pub id: String,
    /// The owner's epoch: 1 for a new scan, more after each takeover.
    pub epoch: u64,
    pub submitted_at: DateTime<Utc>,
    pub config: Arc<ScanConfig>,
    pub progress: watch::Receiver<Progress>,
    report: oneshot::Receiver<Result<ScanReport, ScanError>>,
    /// The selected universe, once dispatched (the steward records it).
    pub(super) universe: Option<oneshot::Receiver<Arc<Vec<UniverseEntry>>>>,
    pub(super) coordinator: ActorRef<CoordinatorMsg>,
    /// The scan's record in Redis, when it has one.
    pub(super) steward: Option<Steward>,
    /// Where the universe's uncached baseline is kept, for the report's speedup.
    pub(super) cache: Option<Arc<crate::cache::ScanCache>>,
    /// Where the report is cached once it is the data's whole answer.
    pub(super) scan_key: Option<ScanKey>,
}

/// How a scan ended for the process that ran it.
pub enum Concluded {
    /// It ended here: the record (report or error) is final, and in the scan book when
    /// the scan has one.
    Ended(Arc<ScanRecord>),
    /// It does not end here: another coordinator took it over (this one lost its lease),
    /// or this process is stopping and leaves it, running, to the cluster. The error says
    /// which.
    Left(ScanError),
}

impl ScanHandle {
    /// Asks the coordinator to cancel; the report then comes back partial and `cancelled`.
    pub fn cancel(&self) {
        let _ = self
            .coordinator
            .send_message(CoordinatorMsg::Cancel(self.id.clone()));
    }

    /// A scan answered at once by `report` (from the scan-result cache): its progress is
    /// done and its report waits to be concluded.
    pub(super) fn answered(
        coordinator: &ActorRef<CoordinatorMsg>,
        config: ScanConfig,
        mut report: ScanReport,
    ) -> ScanHandle {
        let id = new_scan_id();
        metrics().scan_requests.inc();
        metrics().scan_duration.observe(report.timing.total_seconds);
        report.id.clone_from(&id);
        let done = report.scanned + report.failures.len();
        let (_, progress) = watch::channel(Progress {
            stage: Stage::Done,
            fraction: 1.0,
            message: format!(
                "Done: {} results (from the scan cache)",
                report.results.len()
            ),
            done,
            total: report.universe_size,
            elapsed_seconds: report.timing.total_seconds,
            ..Progress::queued(&id)
        });
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Ok(report));
        ScanHandle {
            id,
            epoch: 1,
            submitted_at: Utc::now(),
            config: Arc::new(config),
            progress,
            report: rx,
            universe: None,
            coordinator: coordinator.clone(),
            steward: None,
            cache: None,
            scan_key: None,
        }
    }

    /// Waits for the end of the scan and records it, exactly once, in the scan book.
    pub async fn conclude(self) -> Concluded {
        let left = match self.report.await {
            Ok(Err(e)) if e.code == crate::error::ErrorCode::ScanSuperseded => Err(e),
            Ok(result) => Ok(result),
            // Without a verdict the scan's record stays running (the lease lapses and
            // another serve takes it over); without a record it is simply lost.
            Err(_) => Err(ScanError::internal(
                "the coordinator stopped before the scan finished",
            )),
        };
        let result = match left {
            Ok(result) => result,
            Err(e) => {
                if let Some(s) = self.steward {
                    s.stop().await;
                }
                return Concluded::Left(e);
            }
        };
        let progress = self.progress.borrow().clone();
        let (report, error) = match result {
            Ok(mut r) => {
                if let (Some(cache), ScanStatus::Completed) = (&self.cache, r.status) {
                    if let Some(key) = &self.scan_key {
                        key.store(cache, &r).await;
                    }
                    if r.from_cache.is_none() {
                        cache
                            .note_pace(r.scanned, r.timing.total_seconds, r.timing.cache_hit_rate)
                            .await;
                        let volumes: Vec<(String, f64)> = r
                            .results
                            .iter()
                            .filter(|x| x.dollar_vol_20.is_finite())
                            .map(|x| (x.symbol.clone(), x.dollar_vol_20))
                            .collect();
                        cache.record_dollar_volumes(&volumes).await;
                    }
                    let t = &r.timing;
                    r.timing.speedup = cache
                        .speedup(
                            &universe_key(&self.config),
                            t.total_seconds,
                            t.cache_hit_rate,
                        )
                        .await;
                }
                (Some(r), None)
            }
            Err(e) => (None, Some(e)),
        };
        let record = Arc::new(ScanRecord {
            id: self.id,
            submitted_at: self.submitted_at,
            finished_at: Utc::now(),
            config: Arc::unwrap_or_clone(self.config),
            progress,
            report,
            error,
            report_json: Default::default(),
        });
        match self.steward {
            Some(s) => {
                if s.finish(&record).await {
                    Concluded::Ended(record)
                } else {
                    Concluded::Left(ScanError::superseded())
                }
            }
            None => Concluded::Ended(record),
        }
    }

    /// Waits for the final report.
    pub async fn report(self) -> Result<ScanReport, ScanError> {
        match self.conclude().await {
            Concluded::Ended(record) => {
                let record = Arc::unwrap_or_clone(record);
                match (record.report, record.error) {
                    (Some(r), _) => Ok(r),
                    (None, e) => Err(e.unwrap_or_else(|| ScanError::internal("no report"))),
                }
            }
            Concluded::Left(e) => Err(e),
        }
    }
}

pub enum CoordinatorMsg {
    Submit(Box<ScanConfig>, RpcReplyPort<Result<ScanHandle, ScanError>>),
    UniverseReady(String, Result<Vec<UniverseEntry>, DataError>, f64),
    ShardDone(ShardReport),
    /// Shards whose delivery attempts ran out, and why.
    ShardsExhausted(Vec<Shard>, String),
    Cancel(String),
    /// Finish a scan whose lease expired, as its new owner: its outcomes so far (the
    /// reports read from its results stream, up to `cursor`), then its missing shards.
    Resume(Box<Resumption>, RpcReplyPort<ScanHandle>),
    /// This coordinator lost the lease of the scan it owned at this epoch: drop it without
    /// a report (its new owner finishes it), leaving its results stream.
    Release(String, u64),
    /// No worker is left to run shards.
    WorkersLost(String),
    /// A report for this scan could not be decoded (a worker of another version?).
    ReportUnreadable(String, String),
}

/// What a coordinator needs to finish a scan it took over.
pub struct Resumption {
    pub takeover: Takeover,
    /// The scan's reports so far, oldest first.
    pub past: Vec<CoordinatorMsg>,
    /// The results stream entry the past ends at.
    pub cursor: String,
}

pub struct CoordinatorArgs {
    pub provider: Arc<dyn MarketData>,
    pub queue: Arc<dyn WorkQueue>,
    /// Worker actors of this process.
    pub workers: usize,
    /// In a cluster: the nodes (to size shards for every live worker) and the results
    /// streams the reports come back through.
    pub registry: Option<Arc<NodeRegistry>>,
    pub feed: Option<Arc<ResultsFeed>>,
    pub max_shard_size: usize,
    pub max_universe_size: usize,
    /// Where the universe is cached (`meta`).
    pub cache: Option<Arc<crate::cache::ScanCache>>,
    /// Weight of the alpha z-score in the blended score (`ml.blend_weight`).
    pub blend_weight: f64,
}

pub struct Coordinator;

pub struct CoordinatorState {
    args: CoordinatorArgs,
    scans: HashMap<String, ActiveScan>,
}

struct ActiveScan {
    epoch: u64,
    config: Arc<ScanConfig>,
    /// Where its results stream is read from.
    cursor: String,
    universe: Option<oneshot::Sender<Arc<Vec<UniverseEntry>>>>,
    started: Instant,
    dispatched: Option<Instant>,
    total: usize,
    outcomes: HashMap<String, SymbolOutcome>,
    per_node: BTreeMap<String, usize>,
    stages: Stages,
    /// Cache lookups/hits summed over shards; `None` while no shard used a cache.
    cache: Option<CacheReport>,
    /// How the shards' alphas came about.
    ml: MlSummary,
    progress: watch::Sender<Progress>,
    report: Option<oneshot::Sender<Result<ScanReport, ScanError>>>,
}

/// The alphas of a scan's shards: the model versions that served them, the first
/// reason one could not, and how many came from a node without a model.
#[derive(Default)]
struct MlSummary {
    versions: BTreeSet<String>,
    unavailable: Option<Refusal>,
    without_model: usize,
}

impl MlSummary {
    fn record(&mut self, report: Option<MlReport>) {
        let Some(report) = report else {
            self.without_model += 1;
            return;
        };
        self.versions.extend(report.version);
        if self.unavailable.is_none() {
            self.unavailable = report.unavailable;
        }
    }

    /// The one model that served every shard, or the warning why the scan's alphas are
    /// neutral; `Ok(None)` when no shard served a model.
    fn outcome(&self) -> Result<Option<String>, ScanError> {
        if let Some(r) = &self.unavailable {
            return Err(ScanError::ml_unavailable(&r.message, r.suggestions.clone()));
        }
        let same_model = || {
            vec!["set the same ml.model file on every node (its version, a hash of the file, is in each node's scan reports)".into()]
        };
        match self.versions.len() {
            0 => Ok(None),
            1 if self.without_model > 0 => Err(ScanError::ml_unavailable(
                &format!(
                    "{} shard(s) ran on nodes without an alpha model: part of the results would have no alpha",
                    self.without_model
                ),
                same_model(),
            )),
            1 => Ok(self.versions.first().cloned()),
            _ => Err(ScanError::ml_unavailable(
                &format!(
                    "the nodes served different alpha models ({}): alphas of different models do not compare",
                    self.versions.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                same_model(),
            )),
        }
    }
}

static SCAN_COUNTER: AtomicU64 = AtomicU64::new(0);

fn new_scan_id() -> String {
    let ms = chrono::Utc::now().timestamp_millis();
    let n = SCAN_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("scan-{ms:x}-{n}")
}

/// The pre-fetch filters on metadata: universe size cap, symbols (requested symbols the
/// provider does not list are kept, so they come back as per-symbol `DATA_NOT_FOUND`),
/// sectors, industries, market cap.
pub fn select_universe(mut all: Vec<UniverseEntry>, cfg: &ScanConfig) -> Vec<UniverseEntry> {
    if let Some(n) = cfg.universe_size {
        all.truncate(n);
    }
    if !cfg.symbols.is_empty() {
        let by_symbol: HashMap<String, UniverseEntry> = all
            .into_iter()
            .map(|e| (e.symbol.to_ascii_uppercase(), e))
            .collect();
        let mut seen = std::collections::HashSet::new();
        all = cfg
            .symbols
            .iter()
            .map(|s| s.to_ascii_uppercase())
            .filter(|s| seen.insert(s.clone()))
            .map(|s| {
                by_symbol
                    .get(&s)
                    .cloned()
                    .unwrap_or_else(|| UniverseEntry::bare(s))
            })
            .collect();
    }
    let matches = |list: &[String], v: &str| {
        list.is_empty() || list.iter().any(|x| x.eq_ignore_ascii_case(v))
    };
    all.retain(|e| {
        matches(&cfg.sectors, &e.sector)
            && matches(&cfg.industries, &e.industry)
            && match (cfg.min_market_cap, e.market_cap) {
                (Some(min), Some(cap)) => cap >= min,
                _ => true,
            }
    });
    all
}

impl ActiveScan {
    /// Counts a shard's outcomes (a symbol already counted keeps its first outcome).
    fn record(&mut self, report: ShardReport) {
        self.stages.fetch += report.fetch_seconds;
        self.stages.compute += report.compute_seconds;
        self.stages.bulk_symbols += report.bulk_symbols;
        self.stages.fallback_symbols += report.fallback_symbols;
        if let Some(c) = report.cache {
            let acc = self.cache.get_or_insert_with(CacheReport::default);
            acc.lookups += c.lookups;
            acc.hits += c.hits;
            acc.unavailable |= c.unavailable;
        }
        self.ml.record(report.ml);
        let mut fresh = 0;
        for (symbol, outcome) in report.outcomes {
            if let std::collections::hash_map::Entry::Vacant(v) = self.outcomes.entry(symbol) {
                v.insert(outcome);
                fresh += 1;
            }
        }
        *self.per_node.entry(report.node_id).or_default() += fresh;
        if self.total > 0 {
            self.publish(
                &report.scan_id,
                Stage::Computing,
                analyzing(self.outcomes.len(), self.total),
            );
        }
    }

    /// A shard whose delivery attempts ran out: its symbols without an outcome failed.
    fn exhausted(&mut self, shard: Shard, reason: &str) {
        for e in shard.entries {
            self.outcomes.entry(e.symbol.clone()).or_insert_with(|| {
                SymbolOutcome::Failed(Failure {
                    symbol: e.symbol,
                    code: "SHARD_FAILED".into(),
                    message: format!(
                        "shard failed after {} attempts: {reason}; check the worker logs",
                        shard.attempt
                    ),
                })
            });
        }
    }

    fn publish(&self, id: &str, stage: Stage, message: String) {
        let done = self.outcomes.len();
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = self.dispatched.and_then(|t| {
            let secs = t.elapsed().as_secs_f64();
            (done > 0 && secs > 0.0).then(|| (self.total - done) as f64 / (done as f64 / secs))
        });
        self.progress.send_replace(Progress {
            scan_id: id.to_string(),
            stage,
            fraction: if self.total == 0 {
                0.0
            } else {
                done as f64 / self.total as f64
            },
            message,
            done,
            total: self.total,
            elapsed_seconds: elapsed,
            eta_seconds: if stage.is_terminal() { None } else { eta },
            per_node: self.per_node.clone(),
        });
    }

    /// Leaves the scan to its new owner: no progress event (it is not over), the handle
    /// concludes `Left`.
    fn release(mut self) {
        if let Some(tx) = self.report.take() {
            let _ = tx.send(Err(ScanError::superseded()));
        }
        metrics().active_scans.dec();
    }

    fn fail(mut self, id: &str, err: ScanError) {
        self.publish(id, Stage::Failed, err.message.clone());
        if let Some(tx) = self.report.take() {
            let _ = tx.send(Err(err));
        }
        metrics().active_scans.dec();
    }

    fn finish(mut self, id: &str, status: ScanStatus, blend_weight: f64) {
        self.publish(id, Stage::Ranking, "Ranking".into());
        let t = Instant::now();
        let mut results = Vec::new();
        let mut failures = Vec::new();
        let mut filtered: BTreeMap<FilterReason, usize> = BTreeMap::new();
        for (_, outcome) in self.outcomes.drain() {
            match outcome {
                SymbolOutcome::Passed(r) => results.push(*r),
                SymbolOutcome::Filtered(f) => *filtered.entry(f).or_default() += 1,
                SymbolOutcome::Failed(f) => failures.push(f),
            }
        }
        let m = metrics();
        for (outcome, n) in [
            ("passed", results.len()),
            ("filtered", filtered.values().sum()),
            ("failed", failures.len()),
        ] {
            m.symbols_processed
                .get_or_create(&OutcomeLabel { outcome })
                .inc_by(n as u64);
        }
        failures.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        let scanned = results.len() + filtered.values().sum::<usize>();
        let mut warnings = Vec::new();
        let model = match self.ml.outcome() {
            Ok(Some(version)) => {
                blend(&mut results, blend_weight);
                m.ml_scans
                    .get_or_create(&OutcomeLabel { outcome: "blended" })
                    .inc();
                Some(version)
            }
            Ok(None) => None,
            Err(w) => {
                warn!(scan_id = id, reason = %w.message, "scan ran with neutral alphas");
                m.ml_scans
                    .get_or_create(&OutcomeLabel { outcome: "neutral" })
                    .inc();
                neutral_alphas(&mut results);
                warnings.push(w);
                None
            }
        };
        rank(&mut results, &self.config);
        self.stages.rank = t.elapsed().as_secs_f64();
        let total_seconds = self.started.elapsed().as_secs_f64();
        if self.cache.is_some_and(|c| c.unavailable) {
            warn!(scan_id = id, "scan ran with the cache unavailable");
            warnings.push(ScanError::cache_unavailable());
        }
        let report = ScanReport {
            id: id.to_string(),
            status,
            universe_size: self.total,
            scanned,
            results,
            failures,
            filtered,
            warnings,
            nodes: std::mem::take(&mut self.per_node),
            from_cache: None,
            model,
            timing: Timing {
                total_seconds,
                symbols_per_second: if total_seconds > 0.0 {
                    (scanned as f64) / total_seconds
                } else {
                    0.0
                },
                cache_hit_rate: self
                    .cache
                    .filter(|c| c.lookups > 0)
                    .map(|c| c.hits as f64 / c.lookups as f64),
                speedup: None,
                stages: self.stages,
            },
        };
        // The outcomes were drained into the report; the final progress keeps the count.
        let done = report.scanned + report.failures.len();
        let (stage, message) = match status {
            ScanStatus::Completed => (
                Stage::Done,
                format!("Done: {} results", report.results.len()),
            ),
            ScanStatus::Cancelled => (Stage::Cancelled, format!("Cancelled after {done} symbols")),
        };
        self.progress.send_modify(|p| {
            p.stage = stage;
            p.message = message;
            p.done = done;
            p.fraction = if self.total == 0 {
                1.0
            } else {
                done as f64 / self.total as f64
            };
            p.eta_seconds = None;
            p.elapsed_seconds = total_seconds;
        });
        m.scan_duration.observe(total_seconds);
        m.active_scans.dec();
        info!(
            scan_id = id,
            ?status,
            total_seconds,
            results = report.results.len(),
            failures = report.failures.len(),
            "scan finished"
        );
        if let Some(tx) = self.report.take() {
            let _ = tx.send(Ok(report));
        }
    }
}

impl CoordinatorState {
    /// Removes a scan that is ending (and stops reading its results stream).
    fn end(&mut self, id: &str) -> Option<ActiveScan> {
        let scan = self.scans.remove(id)?;
        if let Some(feed) = &self.args.feed {
            feed.unfollow(id, true);
        }
        Some(scan)
    }
}

impl Actor for Coordinator {
    type Msg = CoordinatorMsg;
    type State = CoordinatorState;
    type Arguments = CoordinatorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(CoordinatorState {
            args,
            scans: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CoordinatorMsg::Submit(config, reply) => {
                let _ = reply.send(submit(myself, state, *config));
            }
            CoordinatorMsg::UniverseReady(id, universe, secs) => {
                on_universe(state, id, universe, secs).await
            }
            CoordinatorMsg::ShardDone(report) => {
                let id = report.scan_id.clone();
                if let Some(scan) = state.scans.get_mut(&id) {
                    if report.epoch >= scan.epoch {
                        scan.record(report);
                        finish_if_complete(state, &id);
                    }
                }
            }
            CoordinatorMsg::ShardsExhausted(shards, reason) => {
                for shard in shards {
                    let id = shard.scan_id.clone();
                    if let Some(scan) = state.scans.get_mut(&id) {
                        if shard.epoch >= scan.epoch {
                            scan.exhausted(shard, &reason);
                            finish_if_complete(state, &id);
                        }
                    }
                }
            }
            CoordinatorMsg::Resume(resumption, reply) => {
                let _ = reply.send(resume(myself, state, *resumption).await);
            }
            CoordinatorMsg::Release(id, epoch) => {
                // This process may have taken the scan over again since (a newer epoch).
                if state.scans.get(&id).is_some_and(|s| s.epoch == epoch) {
                    if let Some(feed) = &state.args.feed {
                        feed.unfollow(&id, false);
                    }
                    if let Some(scan) = state.scans.remove(&id) {
                        warn!(scan_id = %id, epoch, "lost the scan's lease; its new owner finishes it");
                        scan.release();
                    }
                }
            }
            CoordinatorMsg::Cancel(id) => {
                state.args.queue.cancel(&id).await;
                if let Some(scan) = state.end(&id) {
                    info!(scan_id = %id, "scan cancelled");
                    scan.finish(&id, ScanStatus::Cancelled, state.args.blend_weight);
                }
            }
            CoordinatorMsg::WorkersLost(reason) => {
                let ids: Vec<String> = state.scans.keys().cloned().collect();
                for id in ids {
                    if let Some(scan) = state.end(&id) {
                        scan.fail(&id, ScanError::workers_lost(&reason));
                    }
                }
            }
            CoordinatorMsg::ReportUnreadable(id, reason) => {
                state.args.queue.cancel(&id).await;
                if let Some(scan) = state.end(&id) {
                    scan.fail(&id, ScanError::report_unreadable(&reason));
                }
            }
        }
        Ok(())
    }
}

fn submit(
    myself: ActorRef<CoordinatorMsg>,
    state: &mut CoordinatorState,
    config: ScanConfig,
) -> Result<ScanHandle, ScanError> {
    config
        .validate(state.args.max_universe_size)
        .map_err(ScanError::invalid_config)?;
    let id = new_scan_id();
    metrics().scan_requests.inc();
    let handle = open(&myself, state, &id, 1, Arc::new(config), Utc::now());
    resolve_universe(myself, state, id);
    Ok(handle)
}

/// A scan becomes active in this coordinator (new, or taken over at `epoch`).
fn open(
    myself: &ActorRef<CoordinatorMsg>,
    state: &mut CoordinatorState,
    id: &str,
    epoch: u64,
    config: Arc<ScanConfig>,
    submitted_at: DateTime<Utc>,
) -> ScanHandle {
    metrics().active_scans.inc();
    let (progress_tx, progress_rx) = watch::channel(Progress::queued(id));
    let (report_tx, report_rx) = oneshot::channel();
    let (universe_tx, universe_rx) = oneshot::channel();
    // A taken-over scan's elapsed time counts from its submission.
    let age = (Utc::now() - submitted_at).to_std().unwrap_or_default();
    let scan = ActiveScan {
        epoch,
        config: Arc::clone(&config),
        cursor: "0-0".into(),
        universe: Some(universe_tx),
        started: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
        dispatched: None,
        total: 0,
        outcomes: HashMap::new(),
        per_node: BTreeMap::new(),
        stages: Stages::default(),
        cache: None,
        ml: MlSummary::default(),
        progress: progress_tx,
        report: Some(report_tx),
    };
    state.scans.insert(id.to_string(), scan);
    ScanHandle {
        id: id.to_string(),
        epoch,
        submitted_at,
        config,
        progress: progress_rx,
        report: report_rx,
        universe: Some(universe_rx),
        coordinator: myself.clone(),
        steward: None,
        cache: None,
        scan_key: None,
    }
}

/// Lists the universe on a separate task (the mailbox stays free); `UniverseReady` follows.
fn resolve_universe(myself: ActorRef<CoordinatorMsg>, state: &mut CoordinatorState, id: String) {
    if let Some(scan) = state.scans.get(&id) {
        scan.publish(&id, Stage::ResolvingUniverse, "Resolving universe".into());
    }
    let provider = Arc::clone(&state.args.provider);
    let cache = state.args.cache.clone();
    tokio::spawn(async move {
        let t = Instant::now();
        let universe = super::result_cache::universe(&provider, cache.as_deref()).await;
        let _ = myself.send_message(CoordinatorMsg::UniverseReady(
            id,
            universe,
            t.elapsed().as_secs_f64(),
        ));
    });
}

/// Takes over a scan: its outcomes so far, then the shards of the symbols that have none
/// (or the whole universe again when the previous owner never dispatched it).
async fn resume(
    myself: ActorRef<CoordinatorMsg>,
    state: &mut CoordinatorState,
    r: Resumption,
) -> ScanHandle {
    let t = r.takeover;
    let id = t.id.clone();
    // Taken back at a newer epoch (its lease lapsed while this process owned it): the
    // older handle is left, and the scan starts again from what the stream holds.
    if let Some(old) = state.scans.remove(&id) {
        old.release();
    }
    let handle = open(
        &myself,
        state,
        &id,
        t.epoch,
        Arc::new(t.config),
        t.submitted_at,
    );
    if let Some(scan) = state.scans.get_mut(&id) {
        scan.cursor = r.cursor;
        for msg in r.past {
            match msg {
                CoordinatorMsg::ShardDone(report) => scan.record(report),
                CoordinatorMsg::ShardsExhausted(shards, reason) => {
                    for shard in shards {
                        scan.exhausted(shard, &reason);
                    }
                }
                _ => {}
            }
        }
        info!(scan_id = %id, epoch = t.epoch, outcomes = scan.outcomes.len(), "took the scan over");
    }
    match t.universe {
        Some(selected) => dispatch(state, &id, selected).await,
        None => resolve_universe(myself, state, id),
    }
    handle
}

async fn on_universe(
    state: &mut CoordinatorState,
    id: String,
    universe: Result<Vec<UniverseEntry>, DataError>,
    secs: f64,
) {
    let Some(scan) = state.scans.get_mut(&id) else {
        return;
    };
    scan.stages.universe = secs;
    let all = match universe {
        Ok(all) => all,
        Err(e) => {
            warn!(scan_id = %id, error = %e, "universe unavailable");
            if let Some(scan) = state.end(&id) {
                scan.fail(&id, ScanError::provider_unavailable(&e));
            }
            return;
        }
    };
    let sectors: Vec<String> = {
        let mut s: Vec<String> = all
            .iter()
            .map(|e| e.sector.clone())
            .filter(|s| !s.is_empty())
            .collect();
        s.sort();
        s.dedup();
        s
    };
    let selected = select_universe(all, &scan.config);
    if selected.is_empty() {
        if let Some(scan) = state.end(&id) {
            scan.fail(&id, ScanError::empty_universe(&sectors));
        }
        return;
    }
    dispatch(state, &id, selected).await;
}

/// Shards the symbols of the selected universe that have no outcome yet onto the queue,
/// with the scan's epoch, and follows its results.
async fn dispatch(state: &mut CoordinatorState, id: &str, selected: Vec<UniverseEntry>) {
    // Every live worker of the cluster should be able to pull several shards.
    let cluster_workers = match &state.args.registry {
        Some(registry) => match registry.list().await {
            Ok(nodes) => live_workers(&nodes),
            Err(e) => {
                warn!(scan_id = %id, error = %e, "cannot list the cluster nodes; sizing shards for the local workers");
                0
            }
        },
        None => 0,
    };
    let Some(scan) = state.scans.get_mut(id) else {
        return;
    };
    scan.total = selected.len();
    let missing: Vec<UniverseEntry> = selected
        .iter()
        .filter(|e| !scan.outcomes.contains_key(&e.symbol))
        .cloned()
        .collect();
    if let Some(tx) = scan.universe.take() {
        let _ = tx.send(Arc::new(selected));
    }
    let workers = cluster_workers.max(state.args.workers);
    let size = shard_size(missing.len(), workers, state.args.max_shard_size);
    let mut shards = plan_shards(id, &missing, size, &scan.config);
    for s in &mut shards {
        s.epoch = scan.epoch;
        s.scan_symbols = scan.total;
    }
    info!(scan_id = %id, symbols = missing.len(), shards = shards.len(), workers, epoch = scan.epoch, "dispatching shards");
    scan.dispatched = Some(Instant::now());
    let message = if workers == 0 {
        warn!(scan_id = %id, "no worker node is up; the shards wait in the queue");
        format!(
            "Waiting for workers: {} symbols queued, no worker node is up (start `technic worker --redis URL`)",
            thousands(missing.len())
        )
    } else {
        analyzing(scan.outcomes.len(), scan.total)
    };
    let stage = if scan.outcomes.is_empty() {
        Stage::Fetching
    } else {
        Stage::Computing
    };
    scan.publish(id, stage, message);
    if let Some(feed) = &state.args.feed {
        feed.follow(id, &scan.cursor);
    }
    if missing.is_empty() {
        finish_if_complete(state, id);
        return;
    }
    if let Err(e) = state.args.queue.push(shards).await {
        if let Some(scan) = state.end(id) {
            scan.fail(id, ScanError::queue(&e));
        }
    }
}

fn finish_if_complete(state: &mut CoordinatorState, id: &str) {
    if state
        .scans
        .get(id)
        .is_some_and(|s| s.total > 0 && s.outcomes.len() >= s.total)
    {
        if let Some(scan) = state.end(id) {
            scan.finish(id, ScanStatus::Completed, state.args.blend_weight);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn served(version: &str) -> Option<MlReport> {
        Some(MlReport {
            version: Some(version.into()),
            ..MlReport::default()
        })
    }

    #[test]
    fn alphas_blend_only_when_every_shard_served_the_same_model() {
        let summary = |reports: Vec<Option<MlReport>>| {
            let mut s = MlSummary::default();
            reports.into_iter().for_each(|r| s.record(r));
            s.outcome().map_err(|e| e.message)
        };
        assert_eq!(summary(vec![None, None]), Ok(None), "no model anywhere");
        assert_eq!(
            summary(vec![served("a"), served("a")]),
            Ok(Some("a".into()))
        );
        let mixed = summary(vec![served("a"), served("b")]).unwrap_err();
        assert!(mixed.contains("different alpha models (a, b)"), "{mixed}");
        let partial = summary(vec![served("a"), None]).unwrap_err();
        assert!(
            partial.contains("1 shard(s) ran on nodes without"),
            "{partial}"
        );
        let refused = Some(MlReport {
            unavailable: Some(Refusal {
                message: "model file m was not accepted".into(),
                suggestions: vec![],
            }),
            ..MlReport::default()
        });
        let first = summary(vec![served("a"), refused, served("a")]).unwrap_err();
        assert!(first.contains("was not accepted"), "{first}");
    }

    fn entry(symbol: &str, sector: &str, cap: Option<f64>) -> UniverseEntry {
        UniverseEntry {
            symbol: symbol.into(),
            name: String::new(),
            sector: sector.into(),
            industry: String::new(),
            market_cap: cap,
        }
    }

    #[test]
    fn pre_fetch_filters() {
        let all = vec![
            entry("AAA", "Energy", Some(1e9)),
            entry("BBB", "Technology", Some(5e8)),
            entry("CCC", "energy", None),
        ];
        let base = ScanConfig::from_settings(&Settings::defaults().scan);
        let cfg = ScanConfig {
            sectors: vec!["ENERGY".into()],
            ..base.clone()
        };
        let got: Vec<String> = select_universe(all.clone(), &cfg)
            .into_iter()
            .map(|e| e.symbol)
            .collect();
        assert_eq!(got, ["AAA", "CCC"]);
        let cfg = ScanConfig {
            min_market_cap: Some(7e8),
            ..base.clone()
        };
        let got: Vec<String> = select_universe(all.clone(), &cfg)
            .into_iter()
            .map(|e| e.symbol)
            .collect();
        assert_eq!(got, ["AAA", "CCC"], "unknown caps are kept");
        let cfg = ScanConfig {
            symbols: vec!["bbb".into(), "ZZZ".into(), "BBB".into()],
            ..base.clone()
        };
        let got = select_universe(all.clone(), &cfg);
        assert_eq!(
            got.iter().map(|e| e.symbol.as_str()).collect::<Vec<_>>(),
            ["BBB", "ZZZ"]
        );
        assert_eq!(
            got[0].sector, "Technology",
            "metadata kept for listed symbols"
        );
        let cfg = ScanConfig {
            universe_size: Some(1),
            ..base
        };
        assert_eq!(select_universe(all, &cfg).len(), 1);
    }
}
