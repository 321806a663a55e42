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
use super::bollinger::{bands, Deviation};
use super::macd::MacdState;
use super::moving_average::ema_k;
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

fma_dispatch! {
/// Computes the whole table in one pass over the bars. Uses the shortest common
/// length of the three inputs for every column (close-only columns included), so
/// all columns always have the same length.
pub fn table(high: &[f64], low: &[f64], close: &[f64]) -> IndicatorTable {
    let len = common_len(&[high, low, close]);
    let mut t = IndicatorTable::nan(len);
    let mut pass = Pass::new(&high[..len], &low[..len], &close[..len]);
    let mut out = Columns::of(&mut t, len);
    // Every indicator is past its warm-up from bar 200 on (SMA(200) is the last),
    // so the steady loop runs without any per-indicator index tests.
    let warm = len.min(STEADY_FROM);
    for i in 0..warm {
        pass.warm_up_bar(i, &mut out);
    }
    if warm == STEADY_FROM {
        if let Some(mut macd) = pass.macd.take() {
            for i in STEADY_FROM..len {
                pass.steady_bar(i, &mut macd, &mut out);
            }
        }
    }
    t
}
}

/// First bar at which every column is in its steady state.
const STEADY_FROM: usize = 200;

/// The output columns, borrowed as slices of the series length.
struct Columns<'a> {
    sma_20: &'a mut [f64],
    sma_50: &'a mut [f64],
    sma_200: &'a mut [f64],
    ema_20: &'a mut [f64],
    rsi_14: &'a mut [f64],
    macd: &'a mut [f64],
    macd_signal: &'a mut [f64],
    macd_hist: &'a mut [f64],
    atr_14: &'a mut [f64],
    bb_upper: &'a mut [f64],
    bb_middle: &'a mut [f64],
    bb_lower: &'a mut [f64],
    adx_14: &'a mut [f64],
}

impl<'a> Columns<'a> {
    fn of(t: &'a mut IndicatorTable, len: usize) -> Self {
        Self {
            sma_20: &mut t.sma_20[..len],
            sma_50: &mut t.sma_50[..len],
            sma_200: &mut t.sma_200[..len],
            ema_20: &mut t.ema_20[..len],
            rsi_14: &mut t.rsi_14[..len],
            macd: &mut t.macd[..len],
            macd_signal: &mut t.macd_signal[..len],
            macd_hist: &mut t.macd_hist[..len],
            atr_14: &mut t.atr_14[..len],
            bb_upper: &mut t.bb_upper[..len],
            bb_middle: &mut t.bb_middle[..len],
            bb_lower: &mut t.bb_lower[..len],
            adx_14: &mut t.adx_14[..len],
        }
    }
}

/// Inputs and running state of the fused pass.
struct Pass<'a> {
    high: &'a [f64],
    low: &'a [f64],
    close: &'a [f64],
    k20: f64,
    s20: f64,
    s50: f64,
    s200: f64,
    e20: f64,
    dev: Deviation,
    rsi: RsiState,
    atr: AtrState,
    adx: AdxState,
    macd: Option<MacdState>,
}

impl<'a> Pass<'a> {
    fn new(high: &'a [f64], low: &'a [f64], close: &'a [f64]) -> Self {
        Self {
            high,
            low,
            close,
            k20: ema_k(20),
            s20: 0.0,
            s50: 0.0,
            s200: 0.0,
            e20: 0.0,
            dev: Deviation::new(20, close.first().copied().unwrap_or(0.0)),
            rsi: RsiState::new(14),
            atr: AtrState::new(14),
            adx: AdxState::new(14),
            macd: None,
        }
    }

    /// Bar `i < 200`: every indicator checks whether it is still warming up.
    #[inline(always)]
    fn warm_up_bar(&mut self, i: usize, out: &mut Columns<'_>) {
        let close = self.close;
        let x = close[i];
        self.s20 += x;
        self.s50 += x;
        self.s200 += x;
        if i < 19 {
            self.dev.warm_up(x);
        } else {
            let mid = self.bollinger(i, out);
            // EMA(20) is seeded by the same sum of the first 20 closes.
            self.e20 = if i == 19 {
                mid
            } else {
                ema_step(self.e20, x, self.k20)
            };
            out.ema_20[i] = self.e20;
        }
        if i >= 49 {
            out.sma_50[i] = self.s50 / 50.0;
            self.s50 -= close[i - 49];
        }
        if i >= 199 {
            out.sma_200[i] = self.s200 / 200.0;
            self.s200 -= close[i - 199];
        }
        if i == 0 {
            return;
        }
        self.rsi.step(x - close[i - 1], i);
        if i >= 14 {
            out.rsi_14[i] = self.rsi.value();
        }
        let tr = tr_at(self.high[i], self.low[i], close[i - 1]);
        let a = self.atr.step(tr, i);
        if i >= 14 {
            out.atr_14[i] = a;
        }
        let d = self.adx.step(
            self.high[i] - self.high[i - 1],
            self.low[i - 1] - self.low[i],
            tr,
            i,
        );
        if i >= 27 {
            out.adx_14[i] = d;
        }
        if let Some(state) = self.macd.as_mut() {
            if let Some((m, s, h)) = state.step(x, i) {
                out.macd[i] = m;
                out.macd_signal[i] = s;
                out.macd_hist[i] = h;
            }
        } else if i == 25 {
            self.macd = Some(MacdState::new(close, 12, 26, 9).0);
        }
    }

    /// Bar `i >= 200`: the same arithmetic as [`warm_up_bar`](Self::warm_up_bar)
    /// through the states' steady-state steps.
    #[inline(always)]
    fn steady_bar(&mut self, i: usize, macd: &mut MacdState, out: &mut Columns<'_>) {
        let close = self.close;
        let (x, prev) = (close[i], close[i - 1]);
        self.s20 += x;
        self.s50 += x;
        self.s200 += x;
        self.bollinger(i, out);
        self.e20 = ema_step(self.e20, x, self.k20);
        out.ema_20[i] = self.e20;
        out.sma_50[i] = self.s50 / 50.0;
        self.s50 -= close[i - 49];
        out.sma_200[i] = self.s200 / 200.0;
        self.s200 -= close[i - 199];
        self.rsi.step_steady(x - prev);
        out.rsi_14[i] = self.rsi.value();
        let tr = tr_at(self.high[i], self.low[i], prev);
        out.atr_14[i] = self.atr.step_steady(tr);
        let (up, down) = (
            self.high[i] - self.high[i - 1],
            self.low[i - 1] - self.low[i],
        );
        out.adx_14[i] = self.adx.step_steady(up, down, tr);
        let (m, s, h) = macd.step_steady(x);
        out.macd[i] = m;
        out.macd_signal[i] = s;
        out.macd_hist[i] = h;
    }

    /// SMA(20) and the bands at bar `i >= 19`, sharing one running total.
    #[inline(always)]
    fn bollinger(&mut self, i: usize, out: &mut Columns<'_>) -> f64 {
        let window = &self.close[i - 19..=i];
        let mid = self.s20 / 20.0;
        self.s20 -= window[0];
        let sd = self.dev.step(window);
        let (upper, lower) = bands(mid, sd, 2.0);
        out.sma_20[i] = mid;
        out.bb_middle[i] = mid;
        out.bb_upper[i] = upper;
        out.bb_lower[i] = lower;
        mid
    }
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
