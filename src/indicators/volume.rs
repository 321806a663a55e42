//! Volume features: mean dollar volume and the volume-spike ratio.
//!
//! Owns the liquidity arithmetic the scan filters and scores on. Each value is
//! computed fresh from its window, so the fused [`latest()`](super::latest()) pass
//! reproduces the last per-bar value bit for bit. These are not TA-Lib functions.

use super::common_len;

/// Mean of `close · volume` over the last `n` bars; NaN for the first `n − 1` bars.
/// Uses the shortest common length of the inputs. `n == 0` gives all-NaN.
pub fn dollar_volume(close: &[f64], volume: &[f64], n: usize) -> Vec<f64> {
    let len = common_len(&[close, volume]);
    let mut out = vec![f64::NAN; len];
    if n == 0 {
        return out;
    }
    for (i, v) in out.iter_mut().enumerate().skip(n - 1) {
        *v = dollar_volume_at(close, volume, i, n);
    }
    out
}

/// `volume[i]` divided by the mean volume of the `n` bars *before* `i`; NaN for the
/// first `n` bars and wherever that mean is 0. `n == 0` gives all-NaN.
pub fn volume_spike(volume: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; volume.len()];
    if n == 0 {
        return out;
    }
    for (i, v) in out.iter_mut().enumerate().skip(n) {
        *v = volume_spike_at(volume, i, n);
    }
    out
}

/// Mean dollar volume of the `n` bars ending at `i`; needs `n − 1 <= i < len`.
pub(super) fn dollar_volume_at(close: &[f64], volume: &[f64], i: usize, n: usize) -> f64 {
    let mut total = 0.0;
    for j in i + 1 - n..=i {
        total += close[j] * volume[j];
    }
    total / n as f64
}

/// Spike ratio at `i`; needs `n <= i < volume.len()`.
pub(super) fn volume_spike_at(volume: &[f64], i: usize, n: usize) -> f64 {
    let mut total = 0.0;
    for &v in &volume[i - n..i] {
        total += v;
    }
    let mean = total / n as f64;
    if mean == 0.0 {
        f64::NAN
    } else {
        volume[i] / mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_volume_small_example() {
        let d = dollar_volume(&[10.0, 20.0, 30.0], &[1.0, 2.0, 3.0], 2);
        assert!(d[0].is_nan());
        assert_eq!(d[1..], [25.0, 65.0]);
        assert_eq!(dollar_volume(&[1.0, 2.0], &[1.0], 1), vec![1.0]);
        assert!(dollar_volume(&[1.0], &[1.0], 0)[0].is_nan());
    }

    #[test]
    fn volume_spike_uses_the_bars_before() {
        let s = volume_spike(&[100.0, 300.0, 400.0], 2);
        assert!(s[0].is_nan() && s[1].is_nan());
        assert_eq!(s[2], 2.0);
        assert!(volume_spike(&[0.0, 0.0, 5.0], 2)[2].is_nan());
        assert!(volume_spike(&[1.0, 2.0], 0).iter().all(|v| v.is_nan()));
    }
}
