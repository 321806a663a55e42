//! The per-symbol pipeline: bars → fused indicators → features ([`compute_features`],
//! the expensive half, cacheable) → sub-scores → TechRating → signal → trade plan, with
//! the post-compute filters applied ([`score`], cheap, depends on the scan config).

use super::config::ScanConfig;
use super::features::Features;
use super::plan::trade_plan;
use super::report::{FilterReason, ScanResult};
use super::score::{signal, sub_scores, tech_rating};
use crate::indicators::latest;
use crate::market::{BarsView, UniverseEntry};

/// Bumped whenever a feature's definition changes, so cached features of another
/// definition are never read (it is part of their cache key).
pub const FEATURES_VERSION: u32 = 1;

/// Everything about one symbol the scan config does not change: what the cache keeps.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SymbolFeatures {
    pub features: Features,
    pub atr_14: f64,
    /// Date of the last bar.
    pub as_of: chrono::NaiveDate,
    /// Bars the features were computed from.
    pub bars: usize,
}

impl SymbolFeatures {
    /// Daily volatility (std of daily returns), for SmartTtl.
    pub fn daily_vol(&self) -> Option<f64> {
        let v = self.features.vol_realized_20 / 252f64.sqrt();
        v.is_finite().then_some(v)
    }
}

/// Runs the fused indicator pass over (already windowed) bars; `None` without bars.
pub fn compute_features(bars: BarsView<'_>) -> Option<SymbolFeatures> {
    let as_of = *bars.dates.last()?;
    let l = latest(bars.open, bars.high, bars.low, bars.close, bars.volume);
    Some(SymbolFeatures {
        features: Features::from(&l),
        atr_14: l.atr_14,
        as_of,
        bars: bars.len(),
    })
}

/// The outcome for one symbol whose bars were loaded.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluation {
    Passed(Box<ScanResult>),
    Filtered(FilterReason),
}

/// Evaluates one symbol on its (already windowed) bars.
pub fn evaluate(entry: &UniverseEntry, bars: BarsView<'_>, cfg: &ScanConfig) -> Evaluation {
    match compute_features(bars) {
        Some(sf) => score(entry, &sf, cfg),
        None => Evaluation::Filtered(FilterReason::TooFewBars),
    }
}

/// Scores one symbol's features under a scan config: filters, sub-scores, TechRating,
/// signal and trade plan.
pub fn score(entry: &UniverseEntry, sf: &SymbolFeatures, cfg: &ScanConfig) -> Evaluation {
    if sf.bars < cfg.min_bars {
        return Evaluation::Filtered(FilterReason::TooFewBars);
    }
    let f = sf.features;
    let as_of = sf.as_of;
    // NaN fails the floor on purpose: a symbol whose liquidity is unknown is not tradable.
    if f.close.is_nan() || f.close < cfg.min_price {
        return Evaluation::Filtered(FilterReason::BelowMinPrice);
    }
    if f.dollar_vol_20.is_nan() || f.dollar_vol_20 < cfg.min_dollar_volume {
        return Evaluation::Filtered(FilterReason::BelowMinDollarVolume);
    }
    let s = sub_scores(&f);
    let tr = tech_rating(&s, f.atr_pct_14, &cfg.weights);
    if let Some(min) = cfg.min_tech_rating {
        if tr.is_nan() || tr < min {
            return Evaluation::Filtered(FilterReason::BelowMinTechRating);
        }
    }
    let sig = signal(tr, &s);
    if !cfg.signals.is_empty() && !cfg.signals.contains(&sig) {
        return Evaluation::Filtered(FilterReason::SignalNotSelected);
    }
    let plan = trade_plan(f.close, sf.atr_14, sig, cfg);
    Evaluation::Passed(Box::new(ScanResult {
        symbol: entry.symbol.clone(),
        sector: entry.sector.clone(),
        industry: entry.industry.clone(),
        close: f.close,
        rsi_14: f.rsi_14,
        macd_hist: f.macd_hist,
        atr_pct_14: f.atr_pct_14,
        trend: s.trend,
        momentum: s.momentum,
        volume: s.volume,
        volatility: s.volatility,
        oscillator: s.oscillator,
        breakout: s.breakout,
        tech_rating: tr,
        alpha_5d: 0.0,
        alpha_10d: 0.0,
        score: tr,
        signal: sig,
        entry: plan.entry,
        stop: plan.stop,
        target: plan.target,
        reward_risk: plan.reward_risk,
        position_size: plan.position_size,
        ret_1d: f.ret_1d,
        ret_5d: f.ret_5d,
        ret_21d: f.ret_21d,
        vol_realized_20: f.vol_realized_20,
        sma_20: f.sma_20,
        sma_50: f.sma_50,
        sma_200: f.sma_200,
        pct_from_high20: f.pct_from_high20,
        pct_from_low20: f.pct_from_low20,
        dollar_vol_20: f.dollar_vol_20,
        vol_spike_ratio: f.vol_spike_ratio,
        gap_mean_10: f.gap_mean_10,
        as_of,
        bars: sf.bars,
        // Set by the pipeline, which knows where the bars came from.
        fallback_source: None,
    }))
}
