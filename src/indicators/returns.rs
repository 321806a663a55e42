//! Price-change features: k-bar returns, realised volatility and the mean open gap.
//!
//! Owns the simple-return arithmetic (`c / p − 1`) and the window statistics built
//! on it. Each value is computed fresh from its window (no running sums), so the
//! fused [`latest()`](super::latest()) pass, which only sees the tail, reproduces the
//! last per-bar value bit for bit. These are not TA-Lib functions.

use super::common_len;

/// Annualisation factor for daily volatility.
const TRADING_DAYS: f64 = 252.0;

/// `close[i] / close[i − k] − 1`; NaN for the first `k` bars. `k == 0` gives all-NaN.
pub fn returns(close: &[f64], k: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; close.len()];
    if k == 0 {
        return out;
    }
    for i in k..close.len() {
        out[i] = simple_return(close[i], close[i - k]);
    }
    out
}

/// Realised volatility: the sample standard deviation (`n − 1`) of the `n` daily
/// simple returns ending at bar `i`, times `√252`; NaN for the first `n` bars.
///
/// `n < 2` (a sample deviation needs two returns) gives all-NaN.
pub fn realized_vol(close: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; close.len()];
    if n < 2 || n >= close.len() {
        return out;
    }
    let daily = returns(close, 1);
    for i in n..close.len() {
        out[i] = annualized_sample_std(&daily[i + 1 - n..=i]);
    }
    out
}

/// Mean over the last `n` bars `j` of the opening gap `(open[j] − close[j−1]) / close[j−1]`;
/// NaN for the first `n` bars. Uses the shortest common length of the inputs.
/// `n == 0` gives all-NaN.
pub fn gap_mean(open: &[f64], close: &[f64], n: usize) -> Vec<f64> {
    let len = common_len(&[open, close]);
    let mut out = vec![f64::NAN; len];
    if n == 0 {
        return out;
    }
    for (i, v) in out.iter_mut().enumerate().skip(n) {
        *v = gap_mean_at(open, close, i, n);
    }
    out
}

#[inline(always)]
pub(super) fn simple_return(now: f64, before: f64) -> f64 {
    now / before - 1.0
}

/// `√252 ·` sample standard deviation of `r` (two-pass: mean, then squared deviations).
pub(super) fn annualized_sample_std(r: &[f64]) -> f64 {
    let n = r.len() as f64;
    let mut total = 0.0;
    for &v in r {
        total += v;
    }
    let mean = total / n;
    let mut squares = 0.0;
    for &v in r {
        let d = v - mean;
        squares += d * d;
    }
    (squares / (n - 1.0)).sqrt() * TRADING_DAYS.sqrt()
}

/// Gap mean of the `n` bars ending at `i`; needs `n <= i < open.len().min(close.len())`.
pub(super) fn gap_mean_at(open: &[f64], close: &[f64], i: usize, n: usize) -> f64 {
    let mut total = 0.0;
    for j in i + 1 - n..=i {
        total += (open[j] - close[j - 1]) / close[j - 1];
    }
    total / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_small_example() {
        let r = returns(&[100.0, 110.0, 99.0], 1);
        assert!(r[0].is_nan());
        assert!((r[1] - 0.1).abs() < 1e-15 && (r[2] + 0.1).abs() < 1e-15);
        assert!((returns(&[100.0, 110.0, 99.0], 2)[2] + 0.01).abs() < 1e-15);
        assert!(returns(&[1.0, 2.0], 0).iter().all(|v| v.is_nan()));
        assert!(returns(&[1.0, 2.0], 5).iter().all(|v| v.is_nan()));
    }

    #[test]
    fn realized_vol_small_example() {
        // Daily returns +10%, -10% -> mean 0, sample var 0.02 -> sd 0.1414…
        let v = realized_vol(&[100.0, 110.0, 99.0], 2);
        assert!(v[0].is_nan() && v[1].is_nan());
        let expected = (0.02f64).sqrt() * 252f64.sqrt();
        assert!((v[2] - expected).abs() < 1e-12, "{} vs {}", v[2], expected);
        assert!(realized_vol(&[1.0; 10], 1).iter().all(|v| v.is_nan()));
        assert_eq!(realized_vol(&[5.0; 30], 20)[29], 0.0);
    }

    #[test]
    fn gap_mean_small_example() {
        let open = [10.0, 11.0, 9.9];
        let close = [10.0, 11.0, 10.0];
        let g = gap_mean(&open, &close, 2);
        assert!(g[0].is_nan() && g[1].is_nan());
        assert!((g[2] - (0.1 + -0.1) / 2.0).abs() < 1e-15);
        assert_eq!(gap_mean(&open, &close[..1], 1).len(), 1);
        assert!(gap_mean(&open, &close, 0).iter().all(|v| v.is_nan()));
    }
}
