//! What a scan hands back: ranked results, per-symbol failures, filter counts, timing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::features::Features;
use super::score::Signal;

/// One passing symbol: identity, the features traders look at, sub-scores, rating,
/// signal and trade plan. Flat, so JSON and CSV share one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanResult {
    pub symbol: String,
    pub sector: String,
    pub industry: String,
    pub close: f64,
    pub rsi_14: f64,
    pub macd_hist: f64,
    pub atr_pct_14: f64,
    pub trend: i8,
    pub momentum: i8,
    pub volume: i8,
    pub volatility: i8,
    pub oscillator: i8,
    pub breakout: i8,
    pub tech_rating: f64,
    /// Forward return over the next 5 / 10 trading days, relative to the cross-section,
    /// as the served alpha model predicts it; 0 (neutral) without a model.
    #[serde(default)]
    pub alpha_5d: f64,
    #[serde(default)]
    pub alpha_10d: f64,
    /// TechRating blended with the alpha z-score (`ml.blend_weight`); TechRating itself
    /// when the scan has no alphas.
    #[serde(default)]
    pub score: f64,
    pub signal: Signal,
    pub entry: f64,
    pub stop: f64,
    pub target: f64,
    pub reward_risk: f64,
    pub position_size: u64,
    pub ret_1d: f64,
    pub ret_5d: f64,
    pub ret_21d: f64,
    pub vol_realized_20: f64,
    pub sma_20: f64,
    pub sma_50: f64,
    pub sma_200: f64,
    pub pct_from_high20: f64,
    pub pct_from_low20: f64,
    pub dollar_vol_20: f64,
    pub vol_spike_ratio: f64,
    pub gap_mean_10: f64,
    /// Date of the bar the result was computed at.
    pub as_of: chrono::NaiveDate,
    pub bars: usize,
    /// The fallback source that served this symbol's bars, when the primary could not;
    /// absent otherwise (so the usual output is unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_source: Option<String>,
}

impl ScanResult {
    pub fn features(&self) -> Features {
        Features {
            close: self.close,
            ret_1d: self.ret_1d,
            ret_5d: self.ret_5d,
            ret_21d: self.ret_21d,
            vol_realized_20: self.vol_realized_20,
            atr_pct_14: self.atr_pct_14,
            sma_20: self.sma_20,
            sma_50: self.sma_50,
            sma_200: self.sma_200,
            pct_from_high20: self.pct_from_high20,
            pct_from_low20: self.pct_from_low20,
            rsi_14: self.rsi_14,
            macd_hist: self.macd_hist,
            dollar_vol_20: self.dollar_vol_20,
            vol_spike_ratio: self.vol_spike_ratio,
            gap_mean_10: self.gap_mean_10,
        }
    }
}

/// Why a symbol that was computed did not make the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterReason {
    TooFewBars,
    BelowMinPrice,
    BelowMinDollarVolume,
    BelowMinTechRating,
    SignalNotSelected,
}

impl FilterReason {
    pub fn describe(self) -> &'static str {
        match self {
            FilterReason::TooFewBars => "fewer bars than min_bars",
            FilterReason::BelowMinPrice => "close below min_price",
            FilterReason::BelowMinDollarVolume => "20-day dollar volume below min_dollar_volume",
            FilterReason::BelowMinTechRating => "TechRating below min_tech_rating",
            FilterReason::SignalNotSelected => "signal not among the selected signals",
        }
    }
}

/// A symbol that could not be scanned, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub symbol: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanStatus {
    Completed,
    Cancelled,
}

/// Seconds per stage. `universe` and `rank` are wall-clock on the coordinator; `fetch` and
/// `compute` are summed over workers (worker-seconds), since shards overlap in time.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Stages {
    pub universe: f64,
    pub fetch: f64,
    pub compute: f64,
    pub rank: f64,
    /// Symbols whose bars were assembled from whole-market daily snapshots (the bulk
    /// path of a remote provider) rather than fetched one by one.
    #[serde(default)]
    pub bulk_symbols: usize,
    /// Symbols served by a fallback source because the primary could not serve them.
    #[serde(default)]
    pub fallback_symbols: usize,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Timing {
    pub total_seconds: f64,
    pub symbols_per_second: f64,
    /// Cache hits / lookups during this scan; `None` when no cache was consulted.
    pub cache_hit_rate: Option<f64>,
    /// The first uncached scan of the same universe on this cache (kept there as a `meta`
    /// entry) divided by this scan's time; 1 for that scan itself. `None` without a cache,
    /// or for a cached scan whose baseline is not on record.
    #[serde(default)]
    pub speedup: Option<f64>,
    pub stages: Stages,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    pub id: String,
    pub status: ScanStatus,
    /// Symbols selected for the scan (after pre-fetch filters).
    pub universe_size: usize,
    /// Symbols whose bars were loaded and evaluated (passing or filtered).
    pub scanned: usize,
    pub results: Vec<ScanResult>,
    pub failures: Vec<Failure>,
    /// How many evaluated symbols each post-compute filter removed.
    pub filtered: BTreeMap<FilterReason, usize>,
    pub timing: Timing,
    /// Degraded paths the scan took (e.g. `CACHE_UNAVAILABLE`): it completed, but slower
    /// or with less than usual.
    pub warnings: Vec<crate::error::UserError>,
    /// Symbols each node finished, by node id (first report counts: a re-run shard adds
    /// nothing).
    #[serde(default)]
    pub nodes: BTreeMap<String, usize>,
    /// Set when the report was answered from the scan-result cache: the scan that
    /// computed it, from the same config on the same data version. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_cache: Option<FromCache>,
    /// Version of the alpha model that served the alphas; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Which earlier scan a cached report comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FromCache {
    pub scan_id: String,
    pub finished_at: chrono::DateTime<chrono::Utc>,
}
