//! Rolling maximum and minimum over a trailing window (for 20-day highs and lows).
//!
//! Owns only the window scan. NaNs inside a window are ignored (`f64::max`/`min`
//! semantics); a window of only NaNs gives NaN. These are not TA-Lib functions.

/// Maximum of `x[i + 1 − n ..= i]`; NaN for the first `n − 1` bars. `n == 0` gives all-NaN.
pub fn rolling_max(x: &[f64], n: usize) -> Vec<f64> {
    rolling(x, n, f64::max)
}

/// Minimum of `x[i + 1 − n ..= i]`; NaN for the first `n − 1` bars. `n == 0` gives all-NaN.
pub fn rolling_min(x: &[f64], n: usize) -> Vec<f64> {
    rolling(x, n, f64::min)
}

fn rolling(x: &[f64], n: usize, pick: fn(f64, f64) -> f64) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    if n == 0 {
        return out;
    }
    for i in n.saturating_sub(1)..x.len() {
        out[i] = window_fold(&x[i + 1 - n..=i], pick);
    }
    out
}

/// Folds one window, starting from NaN so an all-NaN window stays NaN.
#[inline]
pub(super) fn window_fold(window: &[f64], pick: fn(f64, f64) -> f64) -> f64 {
    window.iter().fold(f64::NAN, |acc, &v| pick(acc, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_example() {
        let x = [3.0, 1.0, 4.0, 1.0, 5.0];
        let hi = rolling_max(&x, 3);
        let lo = rolling_min(&x, 3);
        assert!(hi[..2].iter().all(|v| v.is_nan()) && lo[..2].iter().all(|v| v.is_nan()));
        assert_eq!(hi[2..], [4.0, 4.0, 5.0]);
        assert_eq!(lo[2..], [1.0, 1.0, 1.0]);
    }

    #[test]
    fn nans_are_ignored_and_degenerate_periods_are_nan() {
        assert_eq!(rolling_max(&[f64::NAN, 2.0], 2)[1], 2.0);
        assert!(rolling_min(&[f64::NAN, f64::NAN], 2)[1].is_nan());
        assert!(rolling_max(&[1.0, 2.0], 0).iter().all(|v| v.is_nan()));
        assert!(rolling_max(&[1.0, 2.0], 3).iter().all(|v| v.is_nan()));
    }
}
