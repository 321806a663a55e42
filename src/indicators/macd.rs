//! Moving Average Convergence/Divergence (TA-Lib `MACD`).
//!
//! Owns TA-Lib's particular seeding, which differs from "EMA(fast) − EMA(slow)":
//! both EMAs start at bar `slow - 1`, the slow one seeded by the SMA of the first
//! `slow` closes and the fast one by the SMA of the `fast` closes ending there (not
//! the first `fast` closes). The signal line is an EMA of the MACD line seeded by
//! the SMA of its first `signal` values, and all three outputs are NaN until the
//! signal exists (bar `slow + signal - 2`, 33 for 12/26/9).

use super::ema_step;
use super::moving_average::{ema_k, seed_mean};

/// The three MACD lines, each as long as the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Macd {
    /// EMA(fast) − EMA(slow).
    pub macd: Vec<f64>,
    /// EMA(signal) of the MACD line.
    pub signal: Vec<f64>,
    /// `macd − signal`.
    pub hist: Vec<f64>,
}

fma_dispatch! {
/// MACD of `close`. Like TA-Lib, `fast` and `slow` are swapped if `slow < fast`.
///
/// `fast < 2`, `slow < 2`, `signal == 0`, or fewer than `slow + signal - 1` bars
/// give all-NaN lines.
pub fn macd(close: &[f64], fast: usize, slow: usize, signal: usize) -> Macd {
    let len = close.len();
    let mut out = Macd {
        macd: vec![f64::NAN; len],
        signal: vec![f64::NAN; len],
        hist: vec![f64::NAN; len],
    };
    let (fast, slow) = if slow < fast {
        (slow, fast)
    } else {
        (fast, slow)
    };
    if fast < 2 || signal == 0 || slow + signal - 1 > len {
        return out;
    }
    let (mut state, seed) = MacdState::new(close, fast, slow, signal);
    // With signal == 1 the first output is at the seed bar itself.
    if let Some((m, s, h)) = seed {
        out.macd[slow - 1] = m;
        out.signal[slow - 1] = s;
        out.hist[slow - 1] = h;
    }
    for (i, &x) in close.iter().enumerate().skip(slow) {
        if let Some((m, s, h)) = state.step(x, i) {
            out.macd[i] = m;
            out.signal[i] = s;
            out.hist[i] = h;
        }
    }
    out
}
}

/// Running MACD state from bar `slow - 1` on; shared with the fused passes.
#[derive(Debug, Clone, Copy)]
pub(super) struct MacdState {
    k_fast: f64,
    k_slow: f64,
    k_signal: f64,
    fast_ema: f64,
    slow_ema: f64,
    signal: usize,
    /// First bar with a signal value: `slow + signal - 2`.
    signal_start: usize,
    /// Sum of MACD values while the signal seed accumulates, then the signal EMA.
    signal_value: f64,
}

impl MacdState {
    /// Seeds both EMAs at bar `slow - 1`; needs `close.len() >= slow >= fast >= 1`
    /// and `signal >= 1` (callers check, this only reads `close[..slow]`). Also
    /// returns the output at the seed bar, which exists only when `signal == 1`.
    pub(super) fn new(
        close: &[f64],
        fast: usize,
        slow: usize,
        signal: usize,
    ) -> (Self, Option<(f64, f64, f64)>) {
        let slow_ema = seed_mean(&close[..slow]);
        let fast_ema = seed_mean(&close[slow - fast..slow]);
        let mut state = Self {
            k_fast: ema_k(fast),
            k_slow: ema_k(slow),
            k_signal: ema_k(signal),
            fast_ema,
            slow_ema,
            signal,
            signal_start: slow + signal - 2,
            signal_value: 0.0,
        };
        let seed = state.feed_signal(fast_ema - slow_ema, slow - 1);
        (state, seed)
    }

    /// Advances to bar `i >= slow` with close `x`; returns `(macd, signal, hist)`
    /// once the signal line exists.
    #[inline(always)]
    pub(super) fn step(&mut self, x: f64, i: usize) -> Option<(f64, f64, f64)> {
        if i > self.signal_start {
            return Some(self.step_steady(x));
        }
        let m = self.advance_lines(x);
        self.feed_signal(m, i)
    }

    /// [`step`](Self::step) for a bar past the signal seed, without the index tests.
    #[inline(always)]
    pub(super) fn step_steady(&mut self, x: f64) -> (f64, f64, f64) {
        let m = self.advance_lines(x);
        self.signal_value = ema_step(self.signal_value, m, self.k_signal);
        (m, self.signal_value, m - self.signal_value)
    }

    /// Steps both EMAs and returns the MACD line.
    #[inline(always)]
    fn advance_lines(&mut self, x: f64) -> f64 {
        self.slow_ema = ema_step(self.slow_ema, x, self.k_slow);
        self.fast_ema = ema_step(self.fast_ema, x, self.k_fast);
        self.fast_ema - self.slow_ema
    }

    #[inline(always)]
    fn feed_signal(&mut self, m: f64, i: usize) -> Option<(f64, f64, f64)> {
        if i < self.signal_start {
            self.signal_value += m;
            None
        } else {
            if i == self.signal_start {
                self.signal_value = (self.signal_value + m) / self.signal as f64;
            } else {
                self.signal_value = ema_step(self.signal_value, m, self.k_signal);
            }
            let s = self.signal_value;
            Some((m, s, m - s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::ema;

    #[test]
    fn first_output_is_at_slow_plus_signal_minus_two() {
        let x: Vec<f64> = (0..60)
            .map(|i| 100.0 + (i as f64 * 0.7).sin() * 5.0)
            .collect();
        let out = macd(&x, 12, 26, 9);
        assert!(out.macd[..33].iter().all(|v| v.is_nan()));
        assert!(out.signal[..33].iter().all(|v| v.is_nan()));
        assert!(out.hist[..33].iter().all(|v| v.is_nan()));
        assert!(out.macd[33..].iter().all(|v| v.is_finite()));
    }

    #[test]
    fn slow_line_is_the_plain_ema_and_fast_seed_ends_at_slow_minus_one() {
        let x: Vec<f64> = (0..80)
            .map(|i| 50.0 + (i as f64 * 0.3).cos() * 3.0 + i as f64 * 0.1)
            .collect();
        let out = macd(&x, 12, 26, 9);
        let slow = ema(&x, 26);
        // Fast EMA seeded by the SMA of x[14..26] at bar 25.
        let mut fast = seed_mean(&x[14..26]);
        for i in 26..x.len() {
            fast = ema_step(fast, x[i], ema_k(12));
            if i >= 33 {
                assert_eq!(out.macd[i], fast - slow[i]);
                assert_eq!(out.hist[i], out.macd[i] - out.signal[i]);
            }
        }
    }

    #[test]
    fn degenerate_inputs_are_all_nan() {
        let x = vec![1.0; 40];
        for (f, s, g) in [(1, 26, 9), (12, 26, 0), (12, 30, 12), (0, 0, 0)] {
            let out = macd(&x, f, s, g);
            assert!(out.macd.iter().all(|v| v.is_nan()), "{f} {s} {g}");
        }
        assert!(macd(&[], 12, 26, 9).macd.is_empty());
    }

    #[test]
    fn swapped_periods_match_talib_swap() {
        let x: Vec<f64> = (0..60).map(|i| (i as f64).sqrt()).collect();
        assert_eq!(
            format!("{:?}", macd(&x, 26, 12, 9)),
            format!("{:?}", macd(&x, 12, 26, 9))
        );
    }

    #[test]
    fn signal_of_one_starts_at_the_seed_bar() {
        let x: Vec<f64> = (0..40).map(|i| (i as f64 * 0.5).sin() + 10.0).collect();
        let out = macd(&x, 3, 5, 1);
        assert!(out.macd[..4].iter().all(|v| v.is_nan()));
        assert!(out.macd[4].is_finite());
        assert_eq!(out.hist[4], 0.0);
    }
}
