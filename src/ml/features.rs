//! What a model sees of one symbol at one date: the scan's own features and sub-scores at
//! that date (`scan::compute_features` over the scan's window), made scale-free where a
//! price or a volume would otherwise make symbols incomparable. A model trained on these
//! sees at serving time exactly what it was trained on; [`NAMES`] is their order, which a
//! model file records and a server checks.

use crate::scan::{sub_scores, Features};

/// The inputs, in order.
pub const NAMES: [&str; 21] = [
    "ret_1d",
    "ret_5d",
    "ret_21d",
    "vol_realized_20",
    "atr_pct_14",
    "close_vs_sma_20",
    "close_vs_sma_50",
    "close_vs_sma_200",
    "pct_from_high20",
    "pct_from_low20",
    "rsi_14",
    "macd_hist_pct",
    "log_dollar_vol_20",
    "log_vol_spike_20",
    "gap_mean_10",
    "trend",
    "momentum",
    "volume",
    "volatility",
    "oscillator",
    "breakout",
];

/// Number of inputs.
pub const COUNT: usize = NAMES.len();

/// The inputs of one symbol at one date, in [`NAMES`] order; not finite where the scan's
/// feature is unknown or degenerate (too little history: NaN; no volume: −∞ for the
/// logarithms), which training and serving must treat alike, as missing.
pub fn vector(f: &Features) -> [f64; COUNT] {
    let vs = |x: f64| f.close / x - 1.0;
    let s = sub_scores(f);
    [
        f.ret_1d,
        f.ret_5d,
        f.ret_21d,
        f.vol_realized_20,
        f.atr_pct_14,
        vs(f.sma_20),
        vs(f.sma_50),
        vs(f.sma_200),
        f.pct_from_high20,
        f.pct_from_low20,
        f.rsi_14,
        f.macd_hist / f.close,
        f.dollar_vol_20.ln(),
        f.vol_spike_ratio.ln(),
        f.gap_mean_10,
        f64::from(s.trend),
        f64::from(s.momentum),
        f64::from(s.volume),
        f64::from(s.volatility),
        f64::from(s.oscillator),
        f64::from(s.breakout),
    ]
}
