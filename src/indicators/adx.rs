//! Average Directional Index (TA-Lib `ADX`).
//!
//! Owns Wilder's directional-movement recursion as TA-Lib orders it:
//! - bars `1..n`: +DM, −DM and TR are summed (no decay);
//! - bars `n..2n`: each sum decays `s − s/n` and adds today's value; the DX of
//!   each of those `n` bars is summed, and ADX = that sum / n at bar `2n − 1`;
//! - afterwards ADX = `(ADX · (n − 1) + DX) / n`.
//!
//! Where TR or +DI + −DI is inside TA-Lib's zero band, DX is skipped (the sum or
//! the previous ADX is carried), so a flat stretch holds ADX instead of making it
//! NaN. A bar where +DM and −DM tie counts as neither, as in TA-Lib.

use super::{common_len, is_zero, tr_at};

/// ADX over `n` bars; NaN for the first `2n − 1` bars. Uses the shortest common
/// length of the inputs.
///
/// `n < 2` (TA-Lib rejects it) or fewer than `2n` bars give all-NaN.
pub fn adx(high: &[f64], low: &[f64], close: &[f64], n: usize) -> Vec<f64> {
    let len = common_len(&[high, low, close]);
    let mut out = vec![f64::NAN; len];
    if n < 2 || 2 * n > len {
        return out;
    }
    let mut state = AdxState::new(n);
    for i in 1..len {
        let tr = tr_at(high[i], low[i], close[i - 1]);
        let v = state.step(high[i] - high[i - 1], low[i - 1] - low[i], tr, i);
        if i + 1 >= 2 * n {
            out[i] = v;
        }
    }
    out
}

/// Running ADX state; shared with the fused per-bar table.
#[derive(Debug, Clone, Copy)]
pub(super) struct AdxState {
    n: usize,
    nf: f64,
    n1: f64,
    plus_dm: f64,
    minus_dm: f64,
    tr: f64,
    /// Sum of DX while seeding, then the ADX.
    adx: f64,
}

impl AdxState {
    pub(super) fn new(n: usize) -> Self {
        Self {
            n,
            nf: n as f64,
            n1: (n - 1) as f64,
            plus_dm: 0.0,
            minus_dm: 0.0,
            tr: 0.0,
            adx: 0.0,
        }
    }

    /// Feeds bar `i >= 1`: `up = high[i] − high[i−1]`, `down = low[i−1] − low[i]`
    /// and its true range. Returns the ADX, meaningful once `i >= 2n − 1`.
    #[inline(always)]
    pub(super) fn step(&mut self, up: f64, down: f64, tr: f64, i: usize) -> f64 {
        if i >= 2 * self.n {
            return self.step_steady(up, down, tr);
        }
        let (dm_minus, dm_plus) = directional_movement(up, down);
        if i < self.n {
            self.minus_dm += dm_minus;
            self.plus_dm += dm_plus;
            self.tr += tr;
            return self.adx;
        }
        self.smooth(dm_minus, dm_plus, tr);
        if let Some(dx) = self.dx() {
            self.adx += dx;
        }
        if i + 1 == 2 * self.n {
            self.adx /= self.nf;
        }
        self.adx
    }

    /// [`step`](Self::step) for a bar `i >= 2n`, without the index tests.
    #[inline(always)]
    pub(super) fn step_steady(&mut self, up: f64, down: f64, tr: f64) -> f64 {
        let (dm_minus, dm_plus) = directional_movement(up, down);
        self.smooth(dm_minus, dm_plus, tr);
        if let Some(dx) = self.dx() {
            self.adx = (self.adx * self.n1 + dx) / self.nf;
        }
        self.adx
    }

    /// Wilder's running sums: `s − s/n + today`.
    #[inline(always)]
    fn smooth(&mut self, dm_minus: f64, dm_plus: f64, tr: f64) {
        self.minus_dm = self.minus_dm - self.minus_dm / self.nf + dm_minus;
        self.plus_dm = self.plus_dm - self.plus_dm / self.nf + dm_plus;
        self.tr = self.tr - self.tr / self.nf + tr;
    }

    /// Today's DX, or `None` where TA-Lib skips it (TR or +DI + −DI ~ 0).
    #[inline(always)]
    fn dx(&self) -> Option<f64> {
        if is_zero(self.tr) {
            return None;
        }
        let minus_di = 100.0 * (self.minus_dm / self.tr);
        let plus_di = 100.0 * (self.plus_dm / self.tr);
        let sum = minus_di + plus_di;
        if is_zero(sum) {
            return None;
        }
        Some(100.0 * ((minus_di - plus_di).abs() / sum))
    }
}

/// (−DM, +DM) of one bar, TA-Lib's cases: the larger move wins if positive, a tie
/// counts as neither. Zeros are added rather than branched on: the sums are never
/// −0.0, so `s + 0.0` is `s` bit for bit, and no branch on random data is needed.
#[inline(always)]
fn directional_movement(up: f64, down: f64) -> (f64, f64) {
    let minus = down > 0.0 && up < down;
    let plus = !minus && up > 0.0 && up > down;
    (if minus { down } else { 0.0 }, if plus { up } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trending_up_series_has_high_adx() {
        let high: Vec<f64> = (0..60).map(|i| 10.0 + i as f64).collect();
        let low: Vec<f64> = high.iter().map(|h| h - 0.5).collect();
        let close: Vec<f64> = high.iter().map(|h| h - 0.25).collect();
        let out = adx(&high, &low, &close, 14);
        assert!(out[..27].iter().all(|v| v.is_nan()));
        // Only +DM is ever non-zero, so every DX is 100.
        assert!(
            out[27..].iter().all(|&v| (v - 100.0).abs() < 1e-9),
            "{:?}",
            &out[27..]
        );
    }

    #[test]
    fn flat_series_holds_zero_instead_of_nan() {
        let x = vec![5.0; 40];
        let out = adx(&x, &x, &x, 14);
        assert!(out[27..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn degenerate_inputs_are_all_nan() {
        let x: Vec<f64> = (0..30).map(|i| i as f64).collect();
        assert!(adx(&x, &x, &x, 1).iter().all(|v| v.is_nan()));
        assert!(adx(&x, &x, &x, 16).iter().all(|v| v.is_nan()));
        assert!(adx(&x, &x[..10], &x, 3).len() == 10);
        assert!(adx(&[], &[], &[], 14).is_empty());
    }

    proptest! {
        #[test]
        fn adx_is_between_0_and_100(
            bars in proptest::collection::vec((1.0f64..100.0, 0.0f64..5.0, 0.0f64..1.0), 0..200),
        ) {
            let close: Vec<f64> = bars.iter().map(|b| b.0).collect();
            let high: Vec<f64> = bars.iter().map(|b| b.0 + b.1 * b.2).collect();
            let low: Vec<f64> = bars.iter().map(|b| b.0 - b.1 * (1.0 - b.2)).collect();
            for v in adx(&high, &low, &close, 14).into_iter().filter(|v| !v.is_nan()) {
                prop_assert!((0.0..=100.0 + 1e-9).contains(&v), "{}", v);
            }
        }
    }
}
