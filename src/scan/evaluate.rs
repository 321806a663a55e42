//! The per-symbol pipeline: bars → fused indicators → features → sub-scores →
//! TechRating → signal → trade plan, with the post-compute filters applied.

use super::config::ScanConfig;
use super::features::Features;
use super::plan::trade_plan;
use super::report::{FilterReason, ScanResult};
use super::score::{signal, sub_scores, tech_rating};
use crate::indicators::latest;
use crate::market::{BarsView, Origin, UniverseEntry};

/// The outcome for one symbol whose bars were loaded.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluation {
    Passed(Box<ScanResult>),
    Filtered(FilterReason),
}

/// Evaluates one symbol on its (already windowed) bars.
pub fn evaluate(entry: &UniverseEntry, bars: BarsView<'_>, cfg: &ScanConfig) -> Evaluation {
    let Some(&as_of) = bars.dates.last() else {
        return Evaluation::Filtered(FilterReason::TooFewBars);
    };
    if bars.len() < cfg.min_bars {
        return Evaluation::Filtered(FilterReason::TooFewBars);
    }
    let l = latest(bars.open, bars.high, bars.low, bars.close, bars.volume);
    let f = Features::from(&l);
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
    let plan = trade_plan(f.close, l.atr_14, sig, cfg);
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
        bars: bars.len(),
        fallback_source: match bars.origin {
            Origin::Fallback(source) => Some(source.clone()),
            Origin::Primary | Origin::Bulk => None,
        },
    }))
}
