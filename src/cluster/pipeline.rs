//! The per-shard pipeline a worker runs: cached features, then cached bars, then the
//! provider; compute and score on rayon; write back what was computed. The warmer runs the
//! same pipeline in [`CacheMode::Refresh`] to reload keys before they expire.

use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use super::queue::WorkQueue;
use super::shard::Shard;
use crate::cache::ScanCache;
use crate::cache::{CacheReport, Kind};
use crate::data::MarketData;
use crate::data::{BarRange, DataError};
use crate::market::{Bars, Origin};
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
    pub node_id: String,
    pub outcomes: Vec<(String, SymbolOutcome)>,
    pub fetch_seconds: f64,
    pub compute_seconds: f64,
    /// Cache lookups and hits for this shard; `None` without a cache.
    pub cache: Option<CacheReport>,
    /// Symbols the provider loaded through its bulk path / from a fallback source.
    pub bulk_symbols: usize,
    pub fallback_symbols: usize,
}

/// Loads and evaluates one shard. With a cache: features first (a hit skips bars and
/// compute), then bars (a hit skips the provider), then the provider; what was computed or
/// fetched is written back. Symbols after a cancellation are left out.
pub async fn process_shard(ctx: &PipelineContext, shard: &Shard, mode: CacheMode) -> ShardReport {
    let cfg = Arc::clone(&shard.config);
    let n = shard.entries.len();
    let symbols: Vec<String> = shard.entries.iter().map(|e| e.symbol.clone()).collect();
    let keys = CacheKeys::new(ctx.provider.cache_namespace(), &cfg);
    let mut cache_stats = CacheReport::default();
    let t0 = Instant::now();

    // 1. Cached features.
    let mut features: Vec<Option<SymbolFeatures>> = vec![None; n];
    let read_cache = mode == CacheMode::Use;
    if let (Some(cache), true) = (&ctx.cache, read_cache) {
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
    if let (Some(cache), true) = (&ctx.cache, read_cache && !need.is_empty()) {
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
    let (mut bulk_symbols, mut fallback_symbols) = (0, 0);
    let fetch: Vec<usize> = need
        .iter()
        .copied()
        .filter(|&i| bars[i].is_none())
        .collect();
    if !fetch.is_empty() {
        let fetch_syms: Vec<String> = fetch.iter().map(|&i| symbols[i].clone()).collect();
        let range =
            BarRange::new(cfg.as_of, cfg.lookback_days).with_scan_symbols(shard.scan_symbols);
        let loaded = ctx.provider.load_many(&fetch_syms, range).await;
        let count = |o: fn(&Origin) -> bool| {
            loaded
                .iter()
                .filter(|r| r.as_ref().is_ok_and(|b| o(&b.origin)))
                .count()
        };
        bulk_symbols = count(|o| *o == Origin::Bulk);
        fallback_symbols = count(|o| matches!(o, Origin::Fallback(_)));
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
    let queue = ctx.queue.clone();
    let scan_id = shard.scan_id.clone();
    let compute_cfg = Arc::clone(&cfg);
    let (outcomes, computed, bars) = crate::cpu::run(move || {
        let cfg = compute_cfg;
        let per_symbol: Vec<_> = entries
            .par_iter()
            .zip(features.into_par_iter())
            .zip(bars.par_iter())
            .map(|((entry, cached), bars)| {
                if queue.as_ref().is_some_and(|q| q.is_cancelled(&scan_id)) {
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
        bulk_symbols,
        fallback_symbols,
    }
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

    fn all(&self, kind: Kind, symbols: &[String]) -> Vec<String> {
        symbols.iter().map(|s| self.one(kind, s)).collect()
    }
}
