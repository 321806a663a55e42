//! Bollinger Bands (TA-Lib `BBANDS` with `matype = 0`, equal up/down deviations).
//!
//! Owns the band arithmetic: the middle band is exactly [`sma`](super::sma) (same
//! running total), and the deviation is TA-Lib's population standard deviation
//! from a running sum of squares, `sqrt(Σx²/n − middle²)`. TA-Lib treats a
//! variance below `1e-8` (not just a negative one) as zero, so bands collapse onto
//! the middle when the standard deviation is under `1e-4`; this is kept for parity.

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
    let mut squares = 0.0;
    for (i, &x) in close.iter().enumerate() {
        total += x;
        squares += x * x;
        if i + 1 >= n {
            let old = close[i + 1 - n];
            let middle = total / nf;
            total -= old;
            let sd = band_step(&mut squares, old, middle, nf);
            let (upper, lower) = bands(middle, sd, k);
            out.upper[i] = upper;
            out.middle[i] = middle;
            out.lower[i] = lower;
        }
    }
    out
}

/// TA-Lib's `TA_INT_stddev_using_precalc_ma` step for a window whose squares sum
/// (including the newest value) is `squares`: returns σ and drops `old²` from it.
#[inline(always)]
pub(super) fn band_step(squares: &mut f64, old: f64, middle: f64, nf: f64) -> f64 {
    let mut variance = *squares / nf;
    *squares -= old * old;
    variance -= middle * middle;
    if variance < 1e-8 {
        0.0
    } else {
        variance.sqrt()
    }
}

/// Upper and lower band from the middle band and σ.
#[inline(always)]
pub(super) fn bands(middle: f64, sd: f64, k: f64) -> (f64, f64) {
    let width = sd * k;
    (middle + width, middle - width)
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
    fn tiny_deviation_collapses_like_talib() {
        let out = bollinger(&[100.0, 100.00005, 100.0, 100.00005], 2, 2.0);
        assert_eq!(out.upper[3], out.middle[3]);
        assert_eq!(out.lower[3], out.middle[3]);
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
    }

    proptest! {
        #[test]
        fn middle_is_sma_and_bands_are_ordered(
            x in proptest::collection::vec(0.01f64..1e4, 0..300),
            n in 1usize..40,
        ) {
            let b = bollinger(&x, n, 2.0);
            let s = sma(&x, n);
            for i in 0..x.len() {
                prop_assert_eq!(b.middle[i].to_bits(), s[i].to_bits());
                if !b.middle[i].is_nan() {
                    prop_assert!(b.upper[i] >= b.middle[i] && b.middle[i] >= b.lower[i]);
                }
            }
        }
    }
}
