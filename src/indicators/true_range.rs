//! True range and Average True Range (TA-Lib `TRANGE`, `ATR`).
//!
//! Owns the Wilder-smoothed ATR: seeded at bar `n` by the mean of `TR[1..=n]`
//! (bar 0 has no previous close, so no true range), then, as TA-Lib 0.8 writes it,
//! `atr = fma(a, atr, TR · (1 − a))` with `a = (n − 1) / n`. The true range itself
//! lives in the parent module so ADX and the fused passes compute it once.

use super::{common_len, tr_at};

/// True range per bar: `max(high − low, |high − prev close|, |low − prev close|)`;
/// NaN at bar 0. Uses the shortest common length of the inputs.
pub fn true_range(high: &[f64], low: &[f64], close: &[f64]) -> Vec<f64> {
    let len = common_len(&[high, low, close]);
    let mut out = vec![f64::NAN; len];
    for i in 1..len {
        out[i] = tr_at(high[i], low[i], close[i - 1]);
    }
    out
}

fma_dispatch! {
/// Wilder ATR over `n` bars; NaN for the first `n` bars. Uses the shortest common
/// length of the inputs.
///
/// `n == 0` or `n >= len` gives all-NaN (`n == 1` is the true range, as in TA-Lib).
pub fn atr(high: &[f64], low: &[f64], close: &[f64], n: usize) -> Vec<f64> {
    let len = common_len(&[high, low, close]);
    let mut out = vec![f64::NAN; len];
    if n == 0 || n >= len {
        return out;
    }
    let mut state = AtrState::new(n);
    for i in 1..len {
        let v = state.step(tr_at(high[i], low[i], close[i - 1]), i);
        if i >= n {
            out[i] = v;
        }
    }
    out
}
}

/// Running ATR; shared with the fused passes.
#[derive(Debug, Clone, Copy)]
pub(super) struct AtrState {
    n: usize,
    nf: f64,
    /// `(n − 1) / n`, the weight of the previous ATR.
    keep: f64,
    /// `1 − keep`, the weight of today's true range.
    take: f64,
    value: f64,
}

impl AtrState {
    pub(super) fn new(n: usize) -> Self {
        let keep = (n - 1) as f64 / n as f64;
        Self {
            n,
            nf: n as f64,
            keep,
            take: 1.0 - keep,
            value: 0.0,
        }
    }

    /// Feeds the true range of bar `i >= 1`; the result is the ATR once `i >= n`.
    #[inline(always)]
    pub(super) fn step(&mut self, tr: f64, i: usize) -> f64 {
        if i < self.n {
            self.value += tr;
        } else if i == self.n {
            self.value = (self.value + tr) / self.nf;
        } else {
            return self.step_steady(tr);
        }
        self.value
    }

    /// [`step`](Self::step) for a bar `i > n`, without the index test.
    #[inline(always)]
    pub(super) fn step_steady(&mut self, tr: f64) -> f64 {
        self.value = self.keep.mul_add(self.value, tr * self.take);
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_example() {
        let h = [10.0, 11.0, 12.0, 11.5];
        let l = [9.0, 10.0, 10.5, 9.5];
        let c = [9.5, 10.5, 11.0, 10.0];
        let tr = true_range(&h, &l, &c);
        assert!(tr[0].is_nan());
        assert_eq!(&tr[1..], &[1.5, 1.5, 2.0]);
        let a = atr(&h, &l, &c, 2);
        assert!(a[0].is_nan() && a[1].is_nan());
        assert_eq!(a[2], 1.5);
        assert_eq!(a[3], 0.5f64.mul_add(1.5, 2.0 * 0.5));
    }

    #[test]
    fn degenerate_inputs_never_panic() {
        assert!(atr(&[1.0], &[1.0], &[1.0], 14).iter().all(|v| v.is_nan()));
        assert!(atr(&[1.0, 2.0], &[1.0, 2.0], &[1.0, 2.0], 0)
            .iter()
            .all(|v| v.is_nan()));
        assert_eq!(true_range(&[1.0, 2.0, 3.0], &[1.0], &[1.0, 2.0]).len(), 1);
        assert!(true_range(&[], &[], &[]).is_empty());
        let h = [3.0, 4.0, 5.0];
        assert_eq!(atr(&h, &h, &h, 1)[1..], true_range(&h, &h, &h)[1..]);
    }

    proptest! {
        #[test]
        fn atr_is_never_negative(
            bars in proptest::collection::vec((1.0f64..100.0, 0.0f64..5.0, 0.0f64..1.0), 0..200),
        ) {
            let close: Vec<f64> = bars.iter().map(|b| b.0).collect();
            let high: Vec<f64> = bars.iter().map(|b| b.0 + b.1 * b.2).collect();
            let low: Vec<f64> = bars.iter().map(|b| b.0 - b.1 * (1.0 - b.2)).collect();
            for v in atr(&high, &low, &close, 14).into_iter().filter(|v| !v.is_nan()) {
                prop_assert!(v >= 0.0);
            }
        }
    }
}
