//! The cache warmer: loads the popular symbols (seeded by `cache.warm.symbols`, then those
//! the request model expects most in this hour, then the highest dollar volume of the
//! scans so far) into the cache before they are needed, and reloads recently requested
//! keys that are about to expire.
//! Rate-capped; runs once on demand (`technic cache warm`) or, on the leading serve, when
//! it starts leading, every interval, and refreshing ahead in between.
//!
//! A warm pass warms the keys of a default scan (`[scan]` lookback, latest bar); the
//! refresh reloads each key under the as-of date and lookback it was requested with. Each
//! pass is recorded so the analytics measure its precision (how much of it was requested
//! afterwards).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

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

/// Loads those of `candidates` whose features are missing or expire within `before`, at
/// most `max_symbols_per_second` a second.
async fn load_stale(
    ctx: &PipelineContext,
    settings: &WarmSettings,
    config: &ScanConfig,
    candidates: Vec<String>,
    before: Duration,
) -> WarmReport {
    let Some(cache) = &ctx.cache else {
        return WarmReport::default();
    };
    let mut report = WarmReport {
        candidates: candidates.len(),
        ..WarmReport::default()
    };
    let keys = CacheKeys::new(ctx.provider.cache_namespace(), config);
    let mut stale = Vec::new();
    for s in candidates {
        match cache.backend().ttl(&keys.one(Kind::Features, &s)).await {
            Ok(Some(ttl)) if ttl > before => report.fresh += 1,
            Ok(_) => stale.push(s),
            Err(e) => {
                warn!(error = %e, "cache unavailable; warm pass skipped");
                return report;
            }
        }
    }
    if stale.is_empty() {
        return report;
    }
    let metadata: std::collections::HashMap<String, UniverseEntry> =
        match super::result_cache::universe(&ctx.provider, Some(cache)).await {
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
    report
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
    // The popular set: the most expected in this hour (decayed request frequency, leaning
    // to this hour's own pattern as far as the model finds one), then the highest dollar
    // volume, up to `top_requested` symbols besides the seeds.
    let at = chrono::Utc::now();
    let want = candidates.len() + settings.top_requested;
    let requested = popular(
        cache
            .predicted(at, settings.top_requested + 1)
            .await
            .unwrap_or_default(),
        settings.top_requested,
    );
    let by_volume = cache
        .backend()
        .top_dollar_volume(settings.top_requested)
        .await
        .unwrap_or_default();
    for s in requested.into_iter().chain(by_volume) {
        if candidates.len() >= want {
            break;
        }
        if !candidates.contains(&s) {
            candidates.push(s);
        }
    }
    let warmed = candidates.clone();
    let report = load_stale(
        ctx,
        settings,
        config,
        candidates,
        Duration::from_secs(settings.refresh_before_secs),
    )
    .await;
    info!(?report, "cache warm pass done");
    if report.loaded + report.fresh > 0 {
        cache.note_warm_pass(&warmed, at).await;
    }
    report
}

/// The expected symbols that stand out: of the `n + 1` best, those scored above the first
/// one left out. Symbols tied at the cut say nothing about which of them is popular
/// (whole-universe scans request every symbol alike, so they get equal weights), so the
/// dollar volume ranks them instead.
fn popular(ranked: Vec<(String, f64)>, n: usize) -> Vec<String> {
    let cut = ranked.get(n).map_or(0.0, |(_, score)| *score);
    ranked
        .into_iter()
        .take(n)
        .filter(|(_, count)| *count > cut)
        .map(|(s, _)| s)
        .collect()
}

/// When the refresher looks again, and how close to expiry a key must be to be reloaded.
/// The shortest TTL a features or bars key can get is half its base (high volatility);
/// looking every eighth of it, and reloading what expires within two looks (or within
/// `refresh_before_secs`, if that is longer but under half that TTL), reloads every key
/// before it expires as long as a reload takes less than one look.
fn refresh_timing(ctx: &PipelineContext, settings: &WarmSettings) -> (Duration, Duration) {
    let interval = Duration::from_secs(settings.interval_secs.max(1));
    let Some(cache) = &ctx.cache else {
        return (interval, Duration::ZERO);
    };
    let ttl = cache.smart_ttl();
    let shortest = ttl.base(Kind::Features).min(ttl.base(Kind::Bars)) / 2;
    let look = (shortest / 8).clamp(Duration::from_millis(250), interval);
    let before = Duration::from_secs(settings.refresh_before_secs).min(shortest / 2);
    (look, before.max(look * 2))
}

/// Refresh ahead: reloads the keys requested within `recent_secs` (each symbol under the
/// as-of date and lookback it was asked with) whose features expire within `before`, so a
/// scan repeated every few minutes finds them all cached. `config` gives the rest.
pub async fn refresh_ahead(
    ctx: &PipelineContext,
    settings: &WarmSettings,
    config: &ScanConfig,
    before: Duration,
) -> WarmReport {
    let Some(cache) = &ctx.cache else {
        return WarmReport::default();
    };
    // A degraded cache is tried again by its own traffic; looking this often would only
    // knock on a Redis that is down.
    if !cache.status().available {
        return WarmReport::default();
    }
    let since = chrono::Utc::now().timestamp_millis()
        - i64::try_from(settings.recent_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let recent = match cache.backend().recently_requested(since, MAX_REFRESH).await {
        Ok(r) => r,
        Err(e) => {
            debug!(error = %e, "cache unavailable; refresh skipped");
            return WarmReport::default();
        }
    };
    // Each variant's symbols under that variant's keys.
    let mut by_variant: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (variant, symbol) in recent {
        by_variant.entry(variant).or_default().push(symbol);
    }
    let mut report = WarmReport::default();
    for (variant, symbols) in by_variant {
        let Some(config) = CacheKeys::config_of(config, &variant) else {
            continue;
        };
        let r = load_stale(ctx, settings, &config, symbols, before).await;
        report.candidates += r.candidates;
        report.fresh += r.fresh;
        report.loaded += r.loaded;
        report.failed += r.failed;
    }
    if report.loaded + report.failed > 0 {
        info!(?report, "refreshed keys ahead of expiry");
    }
    report
}

/// Most symbols one refresh looks at.
const MAX_REFRESH: usize = 100_000;

/// Warms on becoming the leader (at start-up, or when taking over from another) and then
/// every `interval_secs`; between passes, refreshes recently requested keys ahead of
/// expiry. Only the leader does either (the cache is shared). Stops with `shutdown`.
pub async fn run_warmer(
    ctx: PipelineContext,
    settings: WarmSettings,
    config: ScanConfig,
    leader: Leader,
    shutdown: Shutdown,
) {
    let interval = Duration::from_secs(settings.interval_secs.max(1));
    let mut last_warm: Option<tokio::time::Instant> = None;
    loop {
        let (look, before) = refresh_timing(&ctx, &settings);
        if !leader.leads() {
            last_warm = None;
        } else {
            if last_warm.is_none_or(|t| t.elapsed() >= interval) {
                last_warm = Some(tokio::time::Instant::now());
                crate::telemetry::metrics().cache_warm_runs.inc();
                warm_once(&ctx, &settings, &config).await;
            }
            refresh_ahead(&ctx, &settings, &config, before).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(look) => {}
            _ = shutdown.triggered() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(v: &[(&str, f64)]) -> Vec<(String, f64)> {
        v.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    }

    #[test]
    fn symbols_tied_at_the_cut_are_left_to_the_dollar_volume() {
        // A watchlist requested often stands out from a universe scanned alike.
        let r = ranked(&[("A", 9.0), ("B", 7.0), ("C", 1.0), ("D", 1.0), ("E", 1.0)]);
        assert_eq!(popular(r.clone(), 3), ["A", "B"]);
        assert_eq!(popular(r.clone(), 2), ["A", "B"]);
        assert_eq!(popular(r.clone(), 1), ["A"]);
        // Every symbol alike: none stands out.
        assert!(popular(ranked(&[("A", 3.0), ("B", 3.0), ("C", 3.0)]), 2).is_empty());
        // Fewer symbols on record than asked for: all of them.
        assert_eq!(popular(ranked(&[("A", 2.0), ("B", 1.0)]), 5), ["A", "B"]);
    }
}
