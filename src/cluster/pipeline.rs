//! The per-shard pipeline a worker runs, one function per stage: cached features, cached
//! bars, the provider for the rest; compute and score on rayon; write back what was
//! computed; the report. The warmer runs the same pipeline in [`CacheMode::Refresh`] to
//! reload keys before they expire.

use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use super::queue::WorkQueue;
use super::shard::Shard;
use crate::cache::ScanCache;
use crate::cache::{CacheReport, Kind};
use crate::data::MarketData;
use crate::data::{BarRange, DataError};
use crate::market::{Bars, Origin, UniverseEntry};
use crate::ml::features::{self, COUNT};
use crate::ml::model::Refusal;
use crate::ml::serve::{ModelSlot, Serving};
use crate::scan::{
    compute_features, score, Evaluation, Failure, FilterReason, ScanConfig, ScanResult,
    SymbolFeatures, FEATURES_VERSION,
};

/// What the pipeline needs: where bars come from, the cache, and (for workers) the queue
/// that says whether a scan was cancelled.
#[derive(Clone)]
pub struct PipelineContext {
    pub node_id: String,
    pub provider: Arc<dyn MarketData>,
    pub cache: Option<Arc<ScanCache>>,
    pub queue: Option<Arc<dyn WorkQueue>>,
    /// The alpha model this node serves (empty: none, no alphas); read once per shard.
    pub ml: Arc<ModelSlot>,
}

/// Whether a shard reads the cache first, or reloads from the provider and overwrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    Use,
    Refresh,
}

/// What one symbol came to.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SymbolOutcome {
    Passed(Box<ScanResult>),
    Filtered(FilterReason),
    Failed(Failure),
}

/// A worker's report for one shard.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShardReport {
    pub scan_id: String,
    /// The shard's epoch: an owner ignores reports of shards an older owner dispatched.
    #[serde(default)]
    pub epoch: u64,
    pub node_id: String,
    pub outcomes: Vec<(String, SymbolOutcome)>,
    pub fetch_seconds: f64,
    pub compute_seconds: f64,
    /// Cache lookups and hits for this shard; `None` without a cache.
    pub cache: Option<CacheReport>,
    /// Symbols the provider loaded through its bulk path / from a fallback source.
    pub bulk_symbols: usize,
    pub fallback_symbols: usize,
    /// The alphas of this shard; `None` when the node serves no model.
    #[serde(default)]
    pub ml: Option<MlReport>,
}

/// How a shard's alphas came about.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MlReport {
    /// The model version that served them; `None` when none could (neutral alphas).
    pub version: Option<String>,
    /// Why the alphas are neutral.
    pub unavailable: Option<Refusal>,
    /// Results whose alphas were predicted here / read from the cache.
    pub predicted: usize,
    pub cached: usize,
}

/// Loads and evaluates one shard. With a cache: features first (a hit skips bars and
/// compute), then bars (a hit skips the provider), then the provider; what was computed or
/// fetched is written back. Symbols after a cancellation are left out.
pub async fn process_shard(ctx: &PipelineContext, shard: &Shard, mode: CacheMode) -> ShardReport {
    let symbols: Vec<String> = shard.entries.iter().map(|e| e.symbol.clone()).collect();
    let keys = CacheKeys::new(ctx.provider.cache_namespace(), &shard.config);
    // The cache is read only in `Use` mode; it is written in both.
    let readable = ctx.cache.as_deref().filter(|_| mode == CacheMode::Use);
    let mut stats = CacheReport::default();

    let serving = ctx.ml.serving();
    let model = serving.as_deref().and_then(Serving::version);
    let t0 = Instant::now();
    let (features, alphas) = cached_features(readable, &keys, &symbols, model, &mut stats).await;
    let mut bars = cached_bars(readable, &keys, &symbols, &features, &mut stats).await;
    let loaded = provider_load(ctx, shard, &symbols, &features, &mut bars.bars).await;
    stats.hits = (0..symbols.len())
        .filter(|&i| features[i].is_some() || bars.cached[i])
        .count() as u64;
    let fetch_seconds = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let computed = compute(ctx, shard, serving, features, bars.bars, alphas).await;
    let compute_seconds = t1.elapsed().as_secs_f64();

    if let Some(cache) = ctx.cache.as_deref() {
        write_back(cache, &keys, &symbols, &computed, &bars.cached, &mut stats).await;
    }
    ShardReport {
        scan_id: shard.scan_id.clone(),
        epoch: shard.epoch,
        node_id: ctx.node_id.clone(),
        outcomes: computed.outcomes,
        fetch_seconds,
        compute_seconds,
        cache: ctx.cache.as_ref().map(|_| stats),
        bulk_symbols: loaded.bulk,
        fallback_symbols: loaded.fallback,
        ml: computed.ml,
    }
}

/// Bars of one shard, index-aligned with its entries: `None` where not loaded (a features
/// hit needs none), and whether each came from the cache.
struct ShardBars {
    bars: Vec<Option<Result<Bars, DataError>>>,
    cached: Vec<bool>,
}

/// How many symbols the provider served through its bulk path and from a fallback source.
#[derive(Default)]
struct Loaded {
    bulk: usize,
    fallback: usize,
}

/// What compute produced: the outcome of each symbol not cancelled, the features computed
/// fresh (by entry index) and the bars they were computed from, the alphas predicted
/// here (by entry index) and how the alphas came about.
struct Computed {
    outcomes: Vec<(String, SymbolOutcome)>,
    fresh: Vec<(usize, SymbolFeatures)>,
    bars: Vec<Option<Result<Bars, DataError>>>,
    fresh_alphas: Vec<(usize, Alphas)>,
    ml: Option<MlReport>,
}

/// A symbol's alphas as cached: the date of the bar they were predicted at (a cached
/// entry for another bar is stale) and one alpha per model horizon.
type Alphas = (chrono::NaiveDate, Vec<f64>);

/// A cached entry per symbol, `None` where there is none.
type Cached<T> = Vec<Option<T>>;

/// Stage 1: cached features and, with a `model` version, cached alphas, one per symbol
/// (`None`: a miss, or no readable cache).
async fn cached_features(
    cache: Option<&ScanCache>,
    keys: &CacheKeys,
    symbols: &[String],
    model: Option<&str>,
    stats: &mut CacheReport,
) -> (Cached<SymbolFeatures>, Cached<Alphas>) {
    let Some(cache) = cache else {
        return (vec![None; symbols.len()], vec![None; symbols.len()]);
    };
    // Recording the request (counts, recency, the request model) and reading the alphas
    // ride along with the features lookup rather than before or after it: all three are
    // independent.
    let variant = keys.variant();
    let feature_keys = keys.all(Kind::Features, symbols);
    let alphas = async {
        match model {
            Some(version) => {
                let keys: Vec<String> = symbols.iter().map(|s| keys.alpha(s, version)).collect();
                cache.get(Kind::Ml, &keys).await
            }
            None => (vec![None; symbols.len()], true),
        }
    };
    let ((), (got, available), (alphas, alphas_available)) = tokio::join!(
        cache.record_requests(symbols, &variant),
        cache.get(Kind::Features, &feature_keys),
        alphas
    );
    stats.lookups = symbols.len() as u64;
    stats.unavailable |= !available || !alphas_available;
    (got, alphas)
}

/// Stage 2: cached bars for the symbols without cached features.
async fn cached_bars(
    cache: Option<&ScanCache>,
    keys: &CacheKeys,
    symbols: &[String],
    features: &[Option<SymbolFeatures>],
    stats: &mut CacheReport,
) -> ShardBars {
    let n = symbols.len();
    let mut out = ShardBars {
        bars: vec![None; n],
        cached: vec![false; n],
    };
    let need: Vec<usize> = (0..n).filter(|&i| features[i].is_none()).collect();
    let Some(cache) = cache.filter(|_| !need.is_empty()) else {
        return out;
    };
    let need_syms: Vec<String> = need.iter().map(|&i| symbols[i].clone()).collect();
    let (got, available) = cache
        .get::<Bars>(Kind::Bars, &keys.all(Kind::Bars, &need_syms))
        .await;
    stats.unavailable |= !available;
    for (&i, b) in need.iter().zip(got) {
        out.cached[i] = b.is_some();
        out.bars[i] = b.map(Ok);
    }
    out
}

/// Stage 3: the provider loads what neither cache served (symbols with neither features nor
/// bars), windowed to the scan's lookback.
async fn provider_load(
    ctx: &PipelineContext,
    shard: &Shard,
    symbols: &[String],
    features: &[Option<SymbolFeatures>],
    bars: &mut [Option<Result<Bars, DataError>>],
) -> Loaded {
    let cfg = &shard.config;
    let fetch: Vec<usize> = (0..symbols.len())
        .filter(|&i| features[i].is_none() && bars[i].is_none())
        .collect();
    if fetch.is_empty() {
        return Loaded::default();
    }
    let fetch_syms: Vec<String> = fetch.iter().map(|&i| symbols[i].clone()).collect();
    let range = BarRange::new(cfg.as_of, cfg.lookback_days).with_scan_symbols(shard.scan_symbols);
    let loaded = ctx.provider.load_many(&fetch_syms, range).await;
    let count = |o: fn(&Origin) -> bool| {
        loaded
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|b| o(&b.origin)))
            .count()
    };
    let counts = Loaded {
        bulk: count(|o| *o == Origin::Bulk),
        fallback: count(|o| matches!(o, Origin::Fallback(_))),
    };
    for (&i, b) in fetch.iter().zip(loaded) {
        bars[i] = Some(b.map(|b| b.window(cfg.as_of, cfg.lookback_days).to_bars()));
    }
    counts
}

/// Stage 4: computes what is missing and scores everything, on rayon, then the alphas of
/// the results (see [`serve_alphas`]). A symbol reached after its scan was cancelled gets
/// no outcome.
async fn compute(
    ctx: &PipelineContext,
    shard: &Shard,
    ml: Option<Arc<Serving>>,
    features: Cached<SymbolFeatures>,
    bars: Vec<Option<Result<Bars, DataError>>>,
    alphas: Cached<Alphas>,
) -> Computed {
    let entries = shard.entries.clone();
    let queue = ctx.queue.clone();
    let scan_id = shard.scan_id.clone();
    let epoch = shard.epoch;
    let cfg = Arc::clone(&shard.config);
    crate::cpu::run(move || {
        let with_inputs = ml.is_some();
        let per_symbol: Vec<_> = entries
            .par_iter()
            .zip(features.into_par_iter())
            .zip(bars.par_iter())
            .map(|((entry, cached), bars)| {
                if queue
                    .as_ref()
                    .is_some_and(|q| q.is_dropped(&scan_id, epoch))
                {
                    return None;
                }
                Some(evaluate(entry, cached, bars, &cfg, with_inputs))
            })
            .collect();
        let mut outcomes = Vec::with_capacity(per_symbol.len());
        let mut fresh = Vec::new();
        let mut inputs = Vec::new();
        for (i, item) in per_symbol.into_iter().enumerate() {
            if let Some(e) = item {
                if let Some(x) = e.inputs {
                    inputs.push((i, outcomes.len(), x));
                }
                outcomes.push(e.outcome);
                if let Some(sf) = e.computed {
                    fresh.push((i, sf));
                }
            }
        }
        let mut computed = Computed {
            outcomes,
            fresh,
            bars,
            fresh_alphas: Vec::new(),
            ml: None,
        };
        if let Some(serving) = ml {
            serve_alphas(&serving, &mut computed, &inputs, alphas);
        }
        computed
    })
    .await
}

/// The alphas of the passed results: read from the cache where it had them, the rest
/// predicted in one batch. When the model cannot be served or predicting fails, every
/// alpha stays neutral (0) and the report says why.
fn serve_alphas(
    serving: &Serving,
    computed: &mut Computed,
    inputs: &[(usize, usize, [f64; COUNT])],
    mut cached: Cached<Alphas>,
) {
    let served = match serving {
        Serving::Ready(s) => s,
        Serving::Unavailable(r) => {
            computed.ml = Some(MlReport {
                unavailable: Some(r.clone()),
                ..MlReport::default()
            });
            return;
        }
    };
    let horizons = served.model.horizons.len();
    let as_of = |outcome: usize| match &computed.outcomes[outcome].1 {
        SymbolOutcome::Passed(r) => Some(r.as_of),
        _ => None,
    };
    let mut alphas: Vec<(usize, Vec<f64>)> = Vec::with_capacity(inputs.len());
    let mut missing = Vec::new();
    for &(entry, outcome, x) in inputs {
        let fits = |(date, a): &Alphas| a.len() == horizons && Some(*date) == as_of(outcome);
        match cached[entry].take().filter(fits) {
            Some((_, a)) => alphas.push((outcome, a)),
            None => missing.push((entry, outcome, x)),
        }
    }
    let cached_count = alphas.len();
    let rows: Vec<[f64; COUNT]> = missing.iter().map(|m| m.2).collect();
    let predicted = match served.alphas(&rows) {
        Ok(p) => p,
        Err(r) => {
            computed.ml = Some(MlReport {
                unavailable: Some(r),
                ..MlReport::default()
            });
            return;
        }
    };
    for ((entry, outcome, _), a) in missing.iter().zip(predicted) {
        if let Some(date) = as_of(*outcome) {
            computed.fresh_alphas.push((*entry, (date, a.clone())));
        }
        alphas.push((*outcome, a));
    }
    for (outcome, a) in alphas {
        if let (_, SymbolOutcome::Passed(r)) = &mut computed.outcomes[outcome] {
            for (h, value) in served.model.horizons.iter().zip(a) {
                match h.horizon {
                    5 => r.alpha_5d = value,
                    10 => r.alpha_10d = value,
                    _ => {}
                }
            }
        }
    }
    computed.ml = Some(MlReport {
        version: Some(served.version.clone()),
        unavailable: None,
        predicted: missing.len(),
        cached: cached_count,
    });
}

/// One symbol's evaluation.
struct Evaluated {
    outcome: (String, SymbolOutcome),
    /// The features, when they were computed here (to be written back).
    computed: Option<SymbolFeatures>,
    /// A passed result's model inputs, when asked for.
    inputs: Option<[f64; COUNT]>,
}

/// One symbol's outcome from its cached features or its bars.
fn evaluate(
    entry: &UniverseEntry,
    cached: Option<SymbolFeatures>,
    bars: &Option<Result<Bars, DataError>>,
    cfg: &ScanConfig,
    with_inputs: bool,
) -> Evaluated {
    let (sf, fresh) = match (cached, bars) {
        (Some(sf), _) => (Ok(Some(sf)), false),
        (None, Some(Ok(b))) => (Ok(compute_features(b.view())), true),
        (None, Some(Err(e))) => (Err(e.clone()), false),
        (None, None) => (Ok(None), false),
    };
    let outcome = match &sf {
        Ok(Some(sf)) => match score(entry, sf, cfg) {
            Evaluation::Passed(mut r) => {
                if let Some(Ok(Bars {
                    origin: Origin::Fallback(source),
                    ..
                })) = bars
                {
                    r.fallback_source = Some(source.clone());
                }
                SymbolOutcome::Passed(r)
            }
            Evaluation::Filtered(f) => SymbolOutcome::Filtered(f),
        },
        Ok(None) => SymbolOutcome::Filtered(FilterReason::TooFewBars),
        Err(e) => SymbolOutcome::Failed(Failure {
            symbol: entry.symbol.clone(),
            code: e.code().to_string(),
            message: format!("{e}; {}", e.suggestion()),
        }),
    };
    let inputs = match (&sf, &outcome) {
        (Ok(Some(sf)), SymbolOutcome::Passed(_)) if with_inputs => {
            Some(features::vector(&sf.features))
        }
        _ => None,
    };
    let computed = match sf {
        Ok(Some(sf)) if fresh => Some(sf),
        _ => None,
    };
    Evaluated {
        outcome: (entry.symbol.clone(), outcome),
        computed,
        inputs,
    }
}

/// Stage 5: writes back fresh features, the bars they came from when those were fetched
/// (not read from the cache), and the alphas predicted here.
async fn write_back(
    cache: &ScanCache,
    keys: &CacheKeys,
    symbols: &[String],
    computed: &Computed,
    cached_bars: &[bool],
    stats: &mut CacheReport,
) {
    if let Some(version) = computed.ml.as_ref().and_then(|m| m.version.as_deref()) {
        let items: Vec<_> = computed
            .fresh_alphas
            .iter()
            .map(|(i, a)| (keys.alpha(&symbols[*i], version), a, None, Some(a.0)))
            .collect();
        stats.unavailable |= !cache.put(Kind::Ml, &items).await;
    }
    if computed.fresh.is_empty() {
        return;
    }
    let f_items: Vec<_> = computed
        .fresh
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
    stats.unavailable |= !cache.put(Kind::Features, &f_items).await;
    let b_items: Vec<_> = computed
        .fresh
        .iter()
        .filter(|(i, _)| !cached_bars[*i])
        .filter_map(|(i, sf)| match &computed.bars[*i] {
            Some(Ok(b)) => Some((
                keys.one(Kind::Bars, &symbols[*i]),
                b,
                sf.daily_vol(),
                Some(sf.as_of),
            )),
            _ => None,
        })
        .collect();
    stats.unavailable |= !cache.put(Kind::Bars, &b_items).await;
}

/// Cache keys of one scan's bars and features: data namespace, symbol, as-of, lookback
/// (and the features version for features).
pub(crate) struct CacheKeys {
    namespace: String,
    as_of: String,
    lookback: usize,
}

impl CacheKeys {
    pub(crate) fn new(namespace: String, cfg: &ScanConfig) -> Self {
        CacheKeys {
            namespace,
            as_of: cfg
                .as_of
                .map_or_else(|| "latest".to_string(), |d| d.to_string()),
            lookback: cfg.lookback_days,
        }
    }

    /// What the keys ask for besides the symbol: `AS_OF:LOOKBACK` (`latest` for no as-of).
    pub(crate) fn variant(&self) -> String {
        format!("{}:{}", self.as_of, self.lookback)
    }

    /// `base` asking for what `variant` names; `None` for a variant this version does not
    /// write.
    pub(crate) fn config_of(base: &ScanConfig, variant: &str) -> Option<ScanConfig> {
        let (as_of, lookback) = variant.split_once(':')?;
        let as_of = match as_of {
            "latest" => None,
            d => Some(d.parse().ok()?),
        };
        Some(ScanConfig {
            as_of,
            lookback_days: lookback.parse().ok()?,
            ..base.clone()
        })
    }

    pub(crate) fn one(&self, kind: Kind, symbol: &str) -> String {
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

    /// The key of a symbol's alphas by model `version`.
    fn alpha(&self, symbol: &str, version: &str) -> String {
        Kind::Ml.key(&format!(
            "{}:{symbol}:{}:{}:m{version}",
            self.namespace, self.as_of, self.lookback
        ))
    }

    fn all(&self, kind: Kind, symbols: &[String]) -> Vec<String> {
        symbols.iter().map(|s| self.one(kind, s)).collect()
    }
}
