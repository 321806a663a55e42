//! Simple and exponential moving averages (TA-Lib `SMA`, `EMA`).
//!
//! Owns the two averaging kernels everything else builds on. SMA keeps TA-Lib's
//! running total (`total += new; out = total / n; total -= old`), so its rounding
//! drifts exactly like TA-Lib's does; a fresh per-window sum would differ in the
//! last bits. EMA is seeded with the SMA of its first `n` values and then steps
//! `prev = fma(k, x − prev, prev)` with `k = 2 / (n + 1)` (TA-Lib 0.8's fused form).

use super::ema_step;

/// Simple moving average of the last `n` values; NaN for the first `n - 1` bars.
///
/// `n == 0` or `n > x.len()` gives all-NaN.
pub fn sma(x: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    if n == 0 || n > x.len() {
        return out;
    }
    let nf = n as f64;
    let mut total = 0.0;
    for (i, &v) in x.iter().enumerate() {
        total += v;
        if i + 1 >= n {
            out[i] = total / nf;
            total -= x[i + 1 - n];
        }
    }
    out
}

fma_dispatch! {
/// Exponential moving average with `k = 2 / (n + 1)`, seeded at bar `n - 1` by the
/// SMA of the first `n` values; NaN before that.
///
/// `n == 0` or `n > x.len()` gives all-NaN.
pub fn ema(x: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    if n == 0 || n > x.len() {
        return out;
    }
    let k = ema_k(n);
    let mut prev = seed_mean(&x[..n]);
    out[n - 1] = prev;
    for i in n..x.len() {
        prev = ema_step(prev, x[i], k);
        out[i] = prev;
    }
    out
}
}

/// TA-Lib's `PER_TO_K`: the EMA smoothing factor of an `n`-period EMA.
#[inline]
pub(super) fn ema_k(n: usize) -> f64 {
    2.0 / (n + 1) as f64
}

/// TA-Lib's EMA seed: the values summed from `0.0` in order, divided by the count.
#[inline]
pub(super) fn seed_mean(x: &[f64]) -> f64 {
    let mut total = 0.0;
    for &v in x {
        total += v;
    }
    total / x.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nan_eq(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x.is_nan() && y.is_nan()) || x == y)
    }

    #[test]
    fn sma_small_example() {
        let out = sma(&[1.0, 2.0, 3.0, 4.0, 5.0], 3);
        assert!(nan_eq(&out, &[f64::NAN, f64::NAN, 2.0, 3.0, 4.0]));
    }

    #[test]
    fn ema_small_example() {
        // k = 0.5; seed = mean(1, 2, 3) = 2; then (4-2)/2+2 = 3; (8-3)/2+3 = 5.5
        let out = ema(&[1.0, 2.0, 3.0, 4.0, 8.0], 3);
        assert!(nan_eq(&out, &[f64::NAN, f64::NAN, 2.0, 3.0, 5.5]));
    }

    #[test]
    fn degenerate_periods_are_all_nan() {
        for f in [sma, ema] {
            assert!(f(&[1.0, 2.0], 0).iter().all(|v| v.is_nan()));
            assert!(f(&[1.0, 2.0], 3).iter().all(|v| v.is_nan()));
            assert!(f(&[], 3).is_empty());
        }
        assert!(nan_eq(&sma(&[1.0, 2.0], 1), &[1.0, 2.0]));
        assert!(nan_eq(&ema(&[1.0, 2.0], 1), &[1.0, 2.0]));
    }

    proptest! {
        #[test]
        fn average_of_a_constant_is_that_constant(c in 0.01f64..1e4, len in 0usize..300, n in 1usize..60) {
            let x = vec![c; len];
            for out in [sma(&x, n), ema(&x, n)] {
                prop_assert_eq!(out.len(), len);
                for (i, v) in out.iter().enumerate() {
                    if i + 1 < n {
                        prop_assert!(v.is_nan());
                    } else {
                        prop_assert!((v - c).abs() <= 1e-12 * c, "{} vs {}", v, c);
                    }
                }
            }
        }
    }
}
