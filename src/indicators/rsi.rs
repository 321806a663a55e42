//! Relative Strength Index (TA-Lib `RSI`, classic Wilder, not Metastock).
//!
//! Owns the gain/loss recursion: average gain and loss are seeded with the simple
//! means of the first `n` changes and then Wilder-smoothed (`α = 1/n`), which is
//! what TA-Lib and TradingView do. A plain EMA here is the classic bug. When
//! `gain + loss` is inside TA-Lib's zero band (a flat stretch) the value is 0,
//! not 50 and not NaN: that is TA-Lib's choice and it is kept for parity.

use super::{is_zero, wilder_step};

/// Wilder RSI of `close` over `n` bars; NaN for the first `n` bars.
///
/// `n < 2` (TA-Lib rejects it) or `n >= close.len()` gives all-NaN.
pub fn rsi(close: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; close.len()];
    if n < 2 || n >= close.len() {
        return out;
    }
    let mut state = RsiState::new(n);
    for i in 1..close.len() {
        let v = state.step(close[i] - close[i - 1], i);
        if i >= n {
            out[i] = v;
        }
    }
    out
}

/// Running state of the Wilder gain/loss averages; shared with the fused passes so
/// every caller performs the same roundings in the same order.
#[derive(Debug, Clone, Copy)]
pub(super) struct RsiState {
    n: usize,
    nf: f64,
    n1: f64,
    gain: f64,
    loss: f64,
}

impl RsiState {
    pub(super) fn new(n: usize) -> Self {
        Self {
            n,
            nf: n as f64,
            n1: (n - 1) as f64,
            gain: 0.0,
            loss: 0.0,
        }
    }

    /// Feeds the change `diff = close[i] - close[i-1]` of bar `i >= 1` and returns
    /// the RSI at bar `i` (meaningful only once `i >= n`).
    #[inline(always)]
    pub(super) fn step(&mut self, diff: f64, i: usize) -> f64 {
        // A `+ 0.0` leaves the sums bit-identical to TA-Lib's branchy form
        // (they are never -0.0) while letting the compiler avoid a branch on
        // the sign of a random price change.
        let (up, down) = if diff < 0.0 {
            (0.0, -diff)
        } else {
            (diff, 0.0)
        };
        if i < self.n {
            self.gain += up;
            self.loss += down;
        } else if i == self.n {
            self.gain = (self.gain + up) / self.nf;
            self.loss = (self.loss + down) / self.nf;
        } else {
            self.loss = wilder_step(self.loss, down, self.nf, self.n1);
            self.gain = wilder_step(self.gain, up, self.nf, self.n1);
        }
        self.value()
    }

    /// RSI from the current averages, `100 · gain / (gain + loss)`.
    #[inline(always)]
    pub(super) fn value(&self) -> f64 {
        let total = self.gain + self.loss;
        if is_zero(total) {
            0.0
        } else {
            100.0 * (self.gain / total)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_example() {
        // n = 2: changes +1, -1 -> seed gain 0.5, loss 0.5 -> 50;
        // then +2: gain (0.5*1+2)/2 = 1.25, loss 0.25 -> 100*1.25/1.5
        let out = rsi(&[1.0, 2.0, 1.0, 3.0], 2);
        assert!(out[0].is_nan() && out[1].is_nan());
        assert_eq!(out[2], 50.0);
        assert_eq!(out[3], 100.0 * (1.25 / 1.5));
    }

    #[test]
    fn flat_series_is_zero_like_talib() {
        let out = rsi(&[5.0; 30], 14);
        assert!(out[..14].iter().all(|v| v.is_nan()));
        assert!(out[14..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn degenerate_inputs_are_all_nan() {
        assert!(rsi(&[1.0, 2.0, 3.0], 1).iter().all(|v| v.is_nan()));
        assert!(rsi(&[1.0, 2.0, 3.0], 3).iter().all(|v| v.is_nan()));
        assert!(rsi(&[], 14).is_empty());
    }

    proptest! {
        #[test]
        fn rsi_is_between_0_and_100(x in proptest::collection::vec(0.01f64..1e4, 0..300)) {
            for v in rsi(&x, 14).into_iter().filter(|v| !v.is_nan()) {
                prop_assert!((0.0..=100.0).contains(&v), "{}", v);
            }
        }
    }
}
