//! Per-symbol features at the latest bar, derived from the fused latest-value indicator
//! pass. Definitions, windows and units: `docs/scan-rules.md`, "Features".

use serde::{Deserialize, Serialize};

use crate::indicators::Latest;

/// The features the scores read. `pct_from_high20`/`pct_from_low20` are percent (−1 =
/// −1 %); returns and `atr_pct_14` (despite its name) are fractions (0.02 = 2 %).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Features {
    pub close: f64,
    pub ret_1d: f64,
    pub ret_5d: f64,
    pub ret_21d: f64,
    pub vol_realized_20: f64,
    pub atr_pct_14: f64,
    pub sma_20: f64,
    pub sma_50: f64,
    pub sma_200: f64,
    /// close vs the 20-day max of closes, in % (≤ 0).
    pub pct_from_high20: f64,
    /// close vs the 20-day min of closes, in % (≥ 0).
    pub pct_from_low20: f64,
    pub rsi_14: f64,
    pub macd_hist: f64,
    pub dollar_vol_20: f64,
    pub vol_spike_ratio: f64,
    pub gap_mean_10: f64,
}

impl From<&Latest> for Features {
    fn from(l: &Latest) -> Self {
        Features {
            close: l.close,
            ret_1d: l.ret_1d,
            ret_5d: l.ret_5d,
            ret_21d: l.ret_21d,
            vol_realized_20: l.vol_realized_20,
            atr_pct_14: l.atr_14 / l.close,
            sma_20: l.sma_20,
            sma_50: l.sma_50,
            sma_200: l.sma_200,
            pct_from_high20: (l.close / l.max_close_20 - 1.0) * 100.0,
            pct_from_low20: (l.close / l.min_close_20 - 1.0) * 100.0,
            rsi_14: l.rsi_14,
            macd_hist: l.macd_hist,
            dollar_vol_20: l.dollar_vol_20,
            vol_spike_ratio: l.vol_spike_20,
            gap_mean_10: l.gap_mean_10,
        }
    }
}
