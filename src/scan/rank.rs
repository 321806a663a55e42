//! Cross-sectional steps: sort by the configured key (descending, NaN last, ties by
//! symbol ascending), an optional per-sector cap, then top N.

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
