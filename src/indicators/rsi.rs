//! Relative Strength Index (TA-Lib `RSI`, classic Wilder, not Metastock).
//!
//! Owns the gain/loss recursion: average gain and loss are seeded with the simple
//! means of the first `n` changes and then Wilder-smoothed (`α = 1/n`), which is
//! what TA-Lib and TradingView do. A plain EMA here is the classic bug.
//!
//! The arithmetic is TA-Lib 0.8's: means are taken by multiplying with `1/n`
//! (not dividing by `n`), each step is `(avg · (n − 1) + today) · (1/n)`, and the
//! RSI is 0 only when `gain + loss` is exactly 0 (a series flat since its start);
//! after any movement a flat stretch holds the last RSI instead of dropping to 0.

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
        state.step(close[i] - close[i - 1], i);
        if i >= n {
            out[i] = state.value();
        }
    }
    out
}

/// Running state of the Wilder gain/loss averages; shared with the fused passes so
/// every caller performs the same roundings in the same order.
#[derive(Debug, Clone, Copy)]
pub(super) struct RsiState {
    n: usize,
    inv_n: f64,
    n1: f64,
    gain: f64,
    loss: f64,
}

impl RsiState {
    pub(super) fn new(n: usize) -> Self {
        Self {
            n,
            inv_n: 1.0 / n as f64,
            n1: (n - 1) as f64,
            gain: 0.0,
            loss: 0.0,
        }
    }

    /// Feeds the change `diff = close[i] - close[i-1]` of bar `i >= 1`; the RSI
    /// at bar `i` is [`value`](Self::value) once `i >= n`.
    #[inline(always)]
    pub(super) fn step(&mut self, diff: f64, i: usize) {
        if i > self.n {
            self.step_steady(diff);
            return;
        }
        let (up, down) = split(diff);
        self.gain += up;
        self.loss += down;
        if i == self.n {
            self.gain *= self.inv_n;
            self.loss *= self.inv_n;
        }
    }

    /// [`step`](Self::step) for a bar `i > n` (past the seed), without the index test.
    #[inline(always)]
    pub(super) fn step_steady(&mut self, diff: f64) {
        let (up, down) = split(diff);
        self.gain = (self.gain * self.n1 + up) * self.inv_n;
        self.loss = (self.loss * self.n1 + down) * self.inv_n;
    }

    /// RSI from the current averages, `100 · gain / (gain + loss)`, 0 when both are 0.
    #[inline(always)]
    pub(super) fn value(&self) -> f64 {
        let total = self.gain + self.loss;
        if total > 0.0 {
            100.0 * (self.gain / total)
        } else {
            0.0
        }
    }
}

/// TA-Lib's branch-free split of a change into (gain, loss); `up − diff` is
/// exactly 0 for a gain.
#[inline(always)]
fn split(diff: f64) -> (f64, f64) {
    let up = if 0.0 < diff { diff } else { 0.0 };
    (up, up - diff)
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
    fn flat_series_is_zero_and_a_flat_stretch_holds_like_talib() {
        let out = rsi(&[5.0; 30], 14);
        assert!(out[..14].iter().all(|v| v.is_nan()));
        assert!(out[14..].iter().all(|&v| v == 0.0));
        // After movement, gains and losses decay together: the RSI holds.
        let mut x: Vec<f64> = (0..20).map(|i| 10.0 + (i % 3) as f64).collect();
        x.extend(std::iter::repeat_n(11.0, 300));
        let out = rsi(&x, 14);
        let held = out[x.len() - 1];
        assert!(
            held > 0.0 && (held - out[25]).abs() < 1e-9,
            "{held} vs {}",
            out[25]
        );
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
