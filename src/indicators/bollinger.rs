//! Bollinger Bands (TA-Lib `BBANDS` with `matype = 0`, equal up/down deviations).
//!
//! Owns the band arithmetic: the middle band is exactly [`sma`](super::sma) (same
//! running total) and the bands are `middle ± k·σ` with σ the population standard
//! deviation of the window. σ follows TA-Lib 0.8's shifted-data algorithm (see
//! [`Deviation`]), so bands agree with TA-Lib to the last bit, including its
//! cancellation guards: σ is exactly 0 on a constant window and for variances
//! below `1e-12` of the mean square after a re-anchor.

/// Upper, middle and lower band, each as long as the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Bollinger {
    /// `middle + k · σ`.
    pub upper: Vec<f64>,
    /// SMA(n), bit-identical to [`sma`](super::sma).
    pub middle: Vec<f64>,
    /// `middle − k · σ`.
    pub lower: Vec<f64>,
}

/// Bollinger bands of `close` over `n` bars, `k` population standard deviations
/// wide; NaN for the first `n - 1` bars.
///
/// `n == 0` or `n > close.len()` gives all-NaN bands.
pub fn bollinger(close: &[f64], n: usize, k: f64) -> Bollinger {
    let len = close.len();
    let mut out = Bollinger {
        upper: vec![f64::NAN; len],
        middle: vec![f64::NAN; len],
        lower: vec![f64::NAN; len],
    };
    if n == 0 || n > len {
        return out;
    }
    let nf = n as f64;
    let mut total = 0.0;
    let mut dev = Deviation::new(n, close[0]);
    for (i, &x) in close.iter().enumerate() {
        total += x;
        if i + 1 < n {
            dev.warm_up(x);
            continue;
        }
        let window = &close[i + 1 - n..=i];
        let middle = total / nf;
        total -= window[0];
        let sd = dev.step(window);
        let (upper, lower) = bands(middle, sd, k);
        out.upper[i] = upper;
        out.middle[i] = middle;
        out.lower[i] = lower;
    }
    out
}

/// Upper and lower band from the middle band and σ (TA-Lib's equal-deviation path).
#[inline(always)]
pub(super) fn bands(middle: f64, sd: f64, k: f64) -> (f64, f64) {
    let width = sd * k;
    (middle + width, middle - width)
}

/// TA-Lib 0.8's rolling population standard deviation.
///
/// It keeps `S1 = Σ(x − K)` and `S2 = Σ(x − K)²` for a shift `K` (first the first
/// value, later the window mean) and takes `σ² = S2/n − (S1/n)²`. It "re-anchors"
/// (recomputes `K` as the window mean and both sums from scratch) when that
/// difference has cancelled (`σ² < 1e-6 · S2/n`), when the value leaving the
/// window dominates `S2`, and every `32·n` bars regardless. Divisions are
/// multiplications by `1/n`, as in TA-Lib.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deviation {
    inv_n: f64,
    shift: f64,
    s1: f64,
    s2: f64,
    countdown: usize,
    period: usize,
}

impl Deviation {
    /// A deviation over windows of `n >= 1` values, shifted by the series' first value.
    pub(super) fn new(n: usize, first: f64) -> Self {
        Self {
            inv_n: 1.0 / n as f64,
            shift: first,
            s1: 0.0,
            s2: 0.0,
            countdown: 32 * n,
            period: 32 * n,
        }
    }

    /// Adds one of the first `n − 1` values.
    #[inline(always)]
    pub(super) fn warm_up(&mut self, x: f64) {
        let d = x - self.shift;
        self.s1 += d;
        self.s2 += d * d;
    }

    /// σ of `window` (exactly `n` values, the newest last), then drops the oldest.
    #[inline(always)]
    pub(super) fn step(&mut self, window: &[f64]) -> f64 {
        let (Some(&old), Some(&new)) = (window.first(), window.last()) else {
            return f64::NAN;
        };
        let d = new - self.shift;
        self.s1 += d;
        self.s2 += d * d;
        let m1 = self.inv_n * self.s1;
        let variance = self.inv_n * self.s2 - m1 * m1;
        let d_old = old - self.shift;
        let d_old2 = d_old * d_old;
        self.s2 -= d_old2;
        let cancelled = self.inv_n * self.s2 * 1e-6 > variance || d_old2 > self.s2 * 1e6 || {
            self.countdown -= 1;
            self.countdown == 0
        };
        if cancelled {
            let fresh = reanchor(window, self.inv_n);
            self.shift = fresh.shift;
            self.s1 = fresh.s1;
            self.s2 = fresh.s2;
            self.countdown = self.period;
            return fresh.sd;
        }
        self.s1 -= d_old;
        sqrt_or_zero(variance)
    }
}

/// Result of a re-anchor: the new shift, sums without the oldest value, and σ.
struct Fresh {
    shift: f64,
    s1: f64,
    s2: f64,
    sd: f64,
}

/// Recomputes the shift and sums from the window itself. Cold, and by value (no
/// `&mut self`), so the hot loop can keep its state in registers.
#[cold]
#[inline(never)]
fn reanchor(window: &[f64], inv_n: f64) -> Fresh {
    let mut total = 0.0;
    for &v in window {
        total += v;
    }
    let shift = inv_n * total;
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in window {
        let d = v - shift;
        s1 += d;
        s2 += d * d;
    }
    let m1 = inv_n * s1;
    let m2 = inv_n * s2;
    let variance = m2 - m1 * m1;
    let d_old = window.first().map_or(f64::NAN, |&v| v - shift);
    let sd = if m2 * 1e-12 > variance {
        0.0
    } else {
        sqrt_or_zero(variance)
    };
    Fresh {
        shift,
        s1: s1 - d_old,
        s2: s2 - d_old * d_old,
        sd,
    }
}

#[inline(always)]
fn sqrt_or_zero(variance: f64) -> f64 {
    if variance == 0.0 {
        0.0
    } else {
        variance.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::sma;
    use proptest::prelude::*;

    #[test]
    fn small_example() {
        let out = bollinger(&[1.0, 2.0, 3.0, 4.0], 2, 2.0);
        assert!(out.middle[0].is_nan() && out.upper[0].is_nan() && out.lower[0].is_nan());
        assert_eq!(out.middle[1..], [1.5, 2.5, 3.5]);
        assert_eq!(out.upper[1..], [2.5, 3.5, 4.5]);
        assert_eq!(out.lower[1..], [0.5, 1.5, 2.5]);
    }

    #[test]
    fn constant_window_has_zero_width() {
        let mut x = vec![3.0, 7.0, 1.0];
        x.extend([20.23; 30]);
        let out = bollinger(&x, 20, 2.0);
        assert_eq!(out.upper[32], out.middle[32]);
        assert_eq!(out.lower[32], out.middle[32]);
    }

    #[test]
    fn tiny_deviation_is_kept_not_collapsed() {
        // Unlike TA-Lib 0.4's 1e-8 variance floor, σ = 2.5e-5 survives.
        let out = bollinger(&[100.0, 100.00005, 100.0, 100.00005], 2, 2.0);
        assert!(out.upper[3] > out.middle[3]);
    }

    #[test]
    fn degenerate_inputs_are_all_nan() {
        assert!(bollinger(&[1.0, 2.0], 0, 2.0)
            .middle
            .iter()
            .all(|v| v.is_nan()));
        assert!(bollinger(&[1.0, 2.0], 3, 2.0)
            .upper
            .iter()
            .all(|v| v.is_nan()));
        assert!(bollinger(&[], 20, 2.0).lower.is_empty());
        let one = bollinger(&[4.0, 5.0], 1, 2.0);
        assert_eq!((one.upper[1], one.lower[1]), (5.0, 5.0));
    }

    proptest! {
        #[test]
        fn middle_is_sma_and_bands_are_ordered(
            x in proptest::collection::vec(0.01f64..1e4, 0..300),
            n in 1usize..40,
        ) {
            let b = bollinger(&x, n, 2.0);
            let s = sma(&x, n);
            for (i, want) in s.iter().enumerate() {
                let (upper, middle, lower) = (b.upper[i], b.middle[i], b.lower[i]);
                prop_assert_eq!(middle.to_bits(), want.to_bits());
                if !middle.is_nan() {
                    prop_assert!(upper >= middle && middle >= lower);
                }
            }
        }
    }
}
