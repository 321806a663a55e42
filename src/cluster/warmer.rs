//! The cache warmer: loads the symbols scans ask for most (learned from requests, seeded
//! by `cache.warm.symbols`) into the cache before they are needed, and reloads keys that
//! are about to expire. Rate-capped; runs once on demand (`technic cache warm`) or on an
//! interval in a long-running process.
//!
//! It warms the keys of a default scan (`[scan]` lookback, latest bar): scans with another
//! lookback or as-of date use other keys.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::leader::Leader;
use super::pipeline::{process_shard, CacheKeys, CacheMode, PipelineContext};
use super::shard::plan_shards;
use crate::cache::Kind;
use crate::config::WarmSettings;
use crate::market::UniverseEntry;
use crate::scan::ScanConfig;
use crate::shutdown::Shutdown;

/// What one warm pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WarmReport {
    /// Symbols considered (seed list ∪ most requested).
    pub candidates: usize,
    /// Already cached and not about to expire.
    pub fresh: usize,
    /// Loaded from the provider and written to the cache.
    pub loaded: usize,
    /// Could not be loaded.
    pub failed: usize,
}

/// One warm pass. Needs `ctx.cache`; without one it does nothing.
pub async fn warm_once(
    ctx: &PipelineContext,
    settings: &WarmSettings,
    config: &ScanConfig,
) -> WarmReport {
    let Some(cache) = &ctx.cache else {
        return WarmReport::default();
    };
    let mut candidates: Vec<String> = settings
        .symbols
        .iter()
        .map(|s| s.to_ascii_uppercase())
        .collect();
    for (s, _) in cache
        .backend()
        .most_requested(settings.top_requested)
        .await
        .unwrap_or_default()
    {
        if !candidates.contains(&s) {
            candidates.push(s);
        }
    }
    let mut report = WarmReport {
        candidates: candidates.len(),
        ..WarmReport::default()
    };
    let keys = CacheKeys::new(ctx.provider.cache_namespace(), config);
    let refresh_before = Duration::from_secs(settings.refresh_before_secs);
    let mut stale = Vec::new();
    for s in candidates {
        match cache.backend().ttl(&keys.one(Kind::Features, &s)).await {
            Ok(Some(ttl)) if ttl > refresh_before => report.fresh += 1,
            Ok(_) => stale.push(s),
            Err(e) => {
                warn!(error = %e, "cache unavailable; warm pass skipped");
                return report;
            }
        }
    }
    let metadata: std::collections::HashMap<String, UniverseEntry> =
        match ctx.provider.universe().await {
            Ok(u) => u.into_iter().map(|e| (e.symbol.clone(), e)).collect(),
            Err(_) => Default::default(),
        };
    let entries: Vec<UniverseEntry> = stale
        .into_iter()
        .map(|s| {
            metadata
                .get(&s)
                .cloned()
                .unwrap_or_else(|| UniverseEntry::bare(s))
        })
        .collect();
    // Rate cap: one shard of `max_symbols_per_second` symbols per second.
    let per_second = settings.max_symbols_per_second.max(1);
    let shards = plan_shards("warm", &entries, per_second, &Arc::new(config.clone()));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for shard in shards {
        tick.tick().await;
        let out = process_shard(ctx, &shard, CacheMode::Refresh).await;
        let failed = out
            .outcomes
            .iter()
            .filter(|(_, o)| matches!(o, super::SymbolOutcome::Failed(_)))
            .count();
        report.failed += failed;
        report.loaded += out.outcomes.len() - failed;
    }
    info!(?report, "cache warm pass done");
    report
}

/// Warms on start and then every `interval_secs` until `shutdown` flips to true.
pub async fn run_warmer(
    ctx: PipelineContext,
    settings: WarmSettings,
    config: ScanConfig,
    leader: Leader,
    shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(settings.interval_secs.max(1)));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // A cluster-wide duty: only the leader warms (the cache is shared).
                if leader.leads() {
                    crate::telemetry::metrics().cache_warm_runs.inc();
                    warm_once(&ctx, &settings, &config).await;
                }
            }
            _ = shutdown.triggered() => return,
        }
    }
}
