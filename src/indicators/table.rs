//! The per-bar indicator table behind `technic indicators`, in one fused pass.
//!
//! Owns the column set and its order ([`TABLE_COLUMNS`]) and the fused loop that
//! fills all 13 columns while reading each bar once: SMA(20) and the Bollinger
//! middle band share one running total, EMA(20) is seeded from that same total,
//! ATR and ADX share one true-range computation, and nothing is buffered besides
//! the outputs. The independent recursions (EMA, RSI, MACD, ATR, ADX) sit in one
//! loop body, so the CPU overlaps their dependency chains instead of waiting on
//! each in turn as nine separate TA-Lib calls do.
//!
//! Every column is bit-identical to the per-bar function it names (tested below):
//! the fused loop reuses those functions' state machines and step helpers.

use super::adx::AdxState;
use super::bollinger::{band_step, bands};
use super::macd::MacdState;
use super::rsi::RsiState;
use super::true_range::AtrState;
use super::{common_len, ema_step, tr_at};

/// Column names of [`IndicatorTable::columns`], in order (the CLI's CSV header
/// after `date`).
pub const TABLE_COLUMNS: [&str; 13] = [
    "sma_20",
    "sma_50",
    "sma_200",
    "ema_20",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "atr_14",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "adx_14",
];

/// All per-bar indicators of one series; every column has the series' length
/// and is NaN during its own warm-up, exactly like the per-bar functions.
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorTable {
    /// `sma(close, 20)`.
    pub sma_20: Vec<f64>,
    /// `sma(close, 50)`.
    pub sma_50: Vec<f64>,
    /// `sma(close, 200)`.
    pub sma_200: Vec<f64>,
    /// `ema(close, 20)`.
    pub ema_20: Vec<f64>,
    /// `rsi(close, 14)`.
    pub rsi_14: Vec<f64>,
    /// `macd(close, 12, 26, 9).macd`.
    pub macd: Vec<f64>,
    /// `macd(close, 12, 26, 9).signal`.
    pub macd_signal: Vec<f64>,
    /// `macd(close, 12, 26, 9).hist`.
    pub macd_hist: Vec<f64>,
    /// `atr(high, low, close, 14)`.
    pub atr_14: Vec<f64>,
    /// `bollinger(close, 20, 2.0).upper`.
    pub bb_upper: Vec<f64>,
    /// `bollinger(close, 20, 2.0).middle`.
    pub bb_middle: Vec<f64>,
    /// `bollinger(close, 20, 2.0).lower`.
    pub bb_lower: Vec<f64>,
    /// `adx(high, low, close, 14)`.
    pub adx_14: Vec<f64>,
}

impl IndicatorTable {
    /// The columns in [`TABLE_COLUMNS`] order.
    pub fn columns(&self) -> [&[f64]; 13] {
        [
            &self.sma_20,
            &self.sma_50,
            &self.sma_200,
            &self.ema_20,
            &self.rsi_14,
            &self.macd,
            &self.macd_signal,
            &self.macd_hist,
            &self.atr_14,
            &self.bb_upper,
            &self.bb_middle,
            &self.bb_lower,
            &self.adx_14,
        ]
    }

    fn nan(len: usize) -> Self {
        let col = || vec![f64::NAN; len];
        Self {
            sma_20: col(),
            sma_50: col(),
            sma_200: col(),
            ema_20: col(),
            rsi_14: col(),
            macd: col(),
            macd_signal: col(),
            macd_hist: col(),
            atr_14: col(),
            bb_upper: col(),
            bb_middle: col(),
            bb_lower: col(),
            adx_14: col(),
        }
    }
}

/// Computes the whole table in one pass over the bars. Uses the shortest common
/// length of the three inputs for every column (close-only columns included), so
/// all columns always have the same length.
pub fn table(high: &[f64], low: &[f64], close: &[f64]) -> IndicatorTable {
    let len = common_len(&[high, low, close]);
    let (high, low, close) = (&high[..len], &low[..len], &close[..len]);
    let mut t = IndicatorTable::nan(len);
    let k20 = super::moving_average::ema_k(20);
    let (mut s20, mut s50, mut s200, mut sq20, mut e20) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut rsi = RsiState::new(14);
    let mut atr = AtrState::new(14);
    let mut adx = AdxState::new(14);
    let mut macd: Option<MacdState> = None;
    for i in 0..len {
        let x = close[i];
        s20 += x;
        s50 += x;
        s200 += x;
        sq20 += x * x;
        if i >= 19 {
            let old = close[i - 19];
            let mid = s20 / 20.0;
            s20 -= old;
            let sd = band_step(&mut sq20, old, mid, 20.0);
            let (upper, lower) = bands(mid, sd, 2.0);
            t.sma_20[i] = mid;
            t.bb_middle[i] = mid;
            t.bb_upper[i] = upper;
            t.bb_lower[i] = lower;
            // EMA(20) is seeded by the same sum of the first 20 closes.
            e20 = if i == 19 { mid } else { ema_step(e20, x, k20) };
            t.ema_20[i] = e20;
        }
        if i >= 49 {
            t.sma_50[i] = s50 / 50.0;
            s50 -= close[i - 49];
        }
        if i >= 199 {
            t.sma_200[i] = s200 / 200.0;
            s200 -= close[i - 199];
        }
        if i == 0 {
            continue;
        }
        let r = rsi.step(x - close[i - 1], i);
        if i >= 14 {
            t.rsi_14[i] = r;
        }
        let tr = tr_at(high[i], low[i], close[i - 1]);
        let a = atr.step(tr, i);
        if i >= 14 {
            t.atr_14[i] = a;
        }
        let d = adx.step(high[i] - high[i - 1], low[i - 1] - low[i], tr, i);
        if i >= 27 {
            t.adx_14[i] = d;
        }
        if let Some(state) = macd.as_mut() {
            if let Some((m, s, h)) = state.step(x, i) {
                t.macd[i] = m;
                t.macd_signal[i] = s;
                t.macd_hist[i] = h;
            }
        } else if i == 25 {
            macd = Some(MacdState::new(close, 12, 26, 9).0);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::{adx, atr, bollinger, ema, macd, rsi, sma};
    use proptest::prelude::*;

    fn same(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    fn assert_matches_functions(high: &[f64], low: &[f64], close: &[f64]) {
        let t = table(high, low, close);
        let m = macd(close, 12, 26, 9);
        let b = bollinger(close, 20, 2.0);
        let expected: [Vec<f64>; 13] = [
            sma(close, 20),
            sma(close, 50),
            sma(close, 200),
            ema(close, 20),
            rsi(close, 14),
            m.macd,
            m.signal,
            m.hist,
            atr(high, low, close, 14),
            b.upper,
            b.middle,
            b.lower,
            adx(high, low, close, 14),
        ];
        for ((name, got), want) in TABLE_COLUMNS.iter().zip(t.columns()).zip(&expected) {
            assert!(same(got, want), "{name} differs");
        }
    }

    #[test]
    fn short_and_empty_series() {
        for len in [0, 1, 2, 14, 15, 19, 20, 26, 27, 28, 33, 34, 199, 200, 201] {
            let close: Vec<f64> = (0..len).map(|i| 100.0 + (i as f64 * 0.9).sin()).collect();
            let high: Vec<f64> = close.iter().map(|c| c + 0.5).collect();
            let low: Vec<f64> = close.iter().map(|c| c - 0.5).collect();
            assert_matches_functions(&high, &low, &close);
        }
    }

    #[test]
    fn column_names_match_columns() {
        let t = table(&[1.0], &[1.0], &[1.0]);
        assert_eq!(t.columns().len(), TABLE_COLUMNS.len());
        assert_eq!(table(&[1.0, 2.0], &[1.0], &[1.0, 2.0]).sma_20.len(), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn table_equals_the_individual_functions(
            bars in proptest::collection::vec((1.0f64..500.0, 0.0f64..5.0, 0.0f64..1.0, any::<bool>()), 0..400),
        ) {
            // Some bars repeat the previous close exactly to reach the zero branches.
            let mut close = Vec::with_capacity(bars.len());
            for b in &bars {
                let c = if b.3 { close.last().copied().unwrap_or(b.0) } else { b.0 };
                close.push(c);
            }
            let high: Vec<f64> = close.iter().zip(&bars).map(|(c, b)| c + b.1 * b.2).collect();
            let low: Vec<f64> = close.iter().zip(&bars).map(|(c, b)| c - b.1 * (1.0 - b.2)).collect();
            assert_matches_functions(&high, &low, &close);
        }
    }
}
