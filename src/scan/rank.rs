//! Cross-sectional steps: the blended score, then sort by the configured key (descending,
//! NaN last, ties by symbol ascending), an optional per-sector cap, then top N.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::config::{ScanConfig, SortKey};
use super::report::ScanResult;

fn key(r: &ScanResult, k: SortKey) -> f64 {
    match k {
        SortKey::TechRating => r.tech_rating,
        SortKey::Trend => f64::from(r.trend),
        SortKey::Momentum => f64::from(r.momentum),
        SortKey::Rsi14 => r.rsi_14,
        SortKey::MacdHist => r.macd_hist,
        SortKey::Ret5d => r.ret_5d,
        SortKey::Ret21d => r.ret_21d,
        SortKey::DollarVol20 => r.dollar_vol_20,
        SortKey::VolSpikeRatio => r.vol_spike_ratio,
        SortKey::Close => r.close,
        SortKey::Alpha5d => r.alpha_5d,
        SortKey::Alpha10d => r.alpha_10d,
        SortKey::Score => r.score,
    }
}

/// Descending by value with NaN after every number.
fn desc_nan_last(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => b.total_cmp(&a),
    }
}

/// Ranks results in place per the config.
pub fn rank(results: &mut Vec<ScanResult>, cfg: &ScanConfig) {
    results.sort_by(|a, b| {
        desc_nan_last(key(a, cfg.sort), key(b, cfg.sort)).then_with(|| a.symbol.cmp(&b.symbol))
    });
    if let Some(cap) = cfg.sector_cap {
        let mut per_sector: HashMap<String, usize> = HashMap::new();
        results.retain(|r| {
            let n = per_sector.entry(r.sector.clone()).or_default();
            *n += 1;
            *n <= cap
        });
    }
    if let Some(top) = cfg.top {
        results.truncate(top);
    }
}

/// Blends each result's TechRating with its alpha z-score over `results`:
/// `score = (1 − w)·TechRating + w·(mean + sd·z)`, where mean and sd are those of the
/// results' TechRatings and `z` is the result's mean alpha (over 5 and 10 days) in
/// standard deviations from the results' mean alpha. The alpha thus enters on the
/// TechRating's own scale; with alphas that do not vary (or `w` = 0), score = TechRating.
pub fn blend(results: &mut [ScanResult], w: f64) {
    let alpha = |r: &ScanResult| (r.alpha_5d + r.alpha_10d) / 2.0;
    let (tr_mean, tr_sd) = mean_sd(results.iter().map(|r| r.tech_rating));
    let (a_mean, a_sd) = mean_sd(results.iter().map(alpha));
    for r in results.iter_mut() {
        r.score = if a_sd > 0.0 && w > 0.0 {
            let z = (alpha(r) - a_mean) / a_sd;
            (1.0 - w) * r.tech_rating + w * (tr_mean + tr_sd * z)
        } else {
            r.tech_rating
        };
    }
}

/// Clears the alphas (neutral: 0) and the blend (score = TechRating).
pub fn neutral_alphas(results: &mut [ScanResult]) {
    for r in results {
        r.alpha_5d = 0.0;
        r.alpha_10d = 0.0;
        r.score = r.tech_rating;
    }
}

/// Mean and population standard deviation of the finite values (0, 0 without any).
fn mean_sd(xs: impl Iterator<Item = f64>) -> (f64, f64) {
    let xs: Vec<f64> = xs.filter(|x| x.is_finite()).collect();
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}
