//! `ScanConfig`: what one scan asks for, and its validation (every problem at once).
//!
//! Field names are the `technic scan` option names in snake_case; the HTTP API takes
//! the same object as JSON. Absent fields take the defaults of `[scan]` in the settings.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::score::Signal;
use crate::config::{scoring_problems, ScanSettings, WeightSettings};
use crate::market::symbol_problems;

/// The key results are ranked by (descending; ties by symbol ascending).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    #[default]
    TechRating,
    Trend,
    Momentum,
    Rsi14,
    MacdHist,
    Ret5d,
    Ret21d,
    DollarVol20,
    VolSpikeRatio,
    Close,
    /// The model's predicted 5-day forward return.
    Alpha5d,
    /// The model's predicted 10-day forward return.
    Alpha10d,
    /// TechRating blended with the alphas.
    Score,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
    /// Cap on the universe: the first N symbols the provider lists (synthetic: its size).
    pub universe_size: Option<usize>,
    /// Only these symbols (pre-fetch filter).
    pub symbols: Vec<String>,
    /// Only these sectors (pre-fetch, case-insensitive).
    pub sectors: Vec<String>,
    /// Only these industries (pre-fetch, case-insensitive).
    pub industries: Vec<String>,
    /// Minimum market cap in dollars (pre-fetch; symbols with unknown cap are kept).
    pub min_market_cap: Option<f64>,
    pub min_bars: usize,
    pub min_price: f64,
    pub min_dollar_volume: f64,
    pub min_tech_rating: Option<f64>,
    /// Keep only these signals (empty: all).
    pub signals: Vec<Signal>,
    /// Most recent trading days (bars) used per symbol.
    pub lookback_days: usize,
    /// Scan as of this date (the latest bar on or before it); `None`: the latest bar.
    pub as_of: Option<NaiveDate>,
    /// Keep only the top N ranked results (`None`: all).
    pub top: Option<usize>,
    pub sort: SortKey,
    /// At most this many results per sector.
    pub sector_cap: Option<usize>,
    pub weights: WeightSettings,
    pub account_size: f64,
    pub risk_pct: f64,
    pub target_rr: f64,
    pub stop_atr_multiple: f64,
    /// The scan's universe is this watchlist's symbols (resolved when the scan is
    /// submitted, into `symbols`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchlist: Option<String>,
}

/// An invalid scan configuration: every problem, one per entry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid scan config:\n  - {}", .problems.join("\n  - "))]
pub struct InvalidConfig {
    pub problems: Vec<String>,
}

impl ScanConfig {
    /// The defaults from the `[scan]` settings.
    pub fn from_settings(s: &ScanSettings) -> Self {
        ScanConfig {
            universe_size: None,
            symbols: Vec::new(),
            sectors: Vec::new(),
            industries: Vec::new(),
            min_market_cap: None,
            min_bars: s.min_bars,
            min_price: s.min_price,
            min_dollar_volume: s.min_dollar_volume,
            min_tech_rating: None,
            signals: Vec::new(),
            lookback_days: s.lookback_days,
            as_of: None,
            top: None,
            sort: SortKey::TechRating,
            sector_cap: None,
            weights: s.weights,
            account_size: s.account_size,
            risk_pct: s.risk_pct,
            target_rr: s.target_rr,
            stop_atr_multiple: s.stop_atr_multiple,
            watchlist: None,
        }
    }

    /// Checks every field; `max_universe_size` bounds what one scan may ask for.
    pub fn validate(&self, max_universe_size: usize) -> Result<(), InvalidConfig> {
        let mut p = Vec::new();
        let mut finite_non_negative = |name: &str, v: f64| {
            if !(v.is_finite() && v >= 0.0) {
                p.push(format!("{name} must be a finite number ≥ 0, got {v}"));
            }
        };
        finite_non_negative("min_price", self.min_price);
        finite_non_negative("min_dollar_volume", self.min_dollar_volume);
        if let Some(c) = self.min_market_cap {
            finite_non_negative("min_market_cap", c);
        }
        if let Some(r) = self.min_tech_rating {
            if !r.is_finite() {
                p.push(format!("min_tech_rating must be finite, got {r}"));
            }
        }
        match self.universe_size {
            Some(0) => p.push("universe_size must be at least 1".into()),
            Some(n) if n > max_universe_size => p.push(format!(
                "universe_size {n} is above the limit of {max_universe_size} (scan.max_universe_size)"
            )),
            _ => {}
        }
        if self.symbols.len() > max_universe_size {
            p.push(format!(
                "{} symbols requested, above the limit of {max_universe_size}",
                self.symbols.len()
            ));
        }
        p.extend(symbol_problems(self.symbols.iter().map(String::as_str)));
        if self.lookback_days == 0 || self.lookback_days > 20_000 {
            p.push(format!(
                "lookback_days must be within 1..=20000, got {}",
                self.lookback_days
            ));
        }
        if self.min_bars > self.lookback_days {
            p.push(format!(
                "min_bars ({}) is larger than lookback_days ({}): no symbol could pass",
                self.min_bars, self.lookback_days
            ));
        }
        if let Some(w) = &self.watchlist {
            p.extend(name_problems("watchlist", w));
        }
        if self.top == Some(0) {
            p.push("top must be at least 1".into());
        }
        if self.sector_cap == Some(0) {
            p.push("sector_cap must be at least 1".into());
        }
        p.extend(scoring_problems(
            "",
            &self.weights,
            [
                self.account_size,
                self.risk_pct,
                self.target_rr,
                self.stop_atr_multiple,
            ],
        ));
        if p.is_empty() {
            Ok(())
        } else {
            Err(InvalidConfig { problems: p })
        }
    }
}

impl ScanConfig {
    /// As given (before a watchlist is resolved into `symbols`): both may not be.
    pub fn universe_conflict(&self) -> Option<String> {
        (self.watchlist.is_some() && !self.symbols.is_empty())
            .then(|| "symbols and watchlist both give the universe: keep one".to_string())
    }
}

/// A saved object's name (a screen, a watchlist): 1-64 letters, digits, `.`, `-` or `_`.
pub fn name_problems(kind: &str, name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    (!ok).then(|| {
        format!(
            "{kind} name {:?} is not valid: use 1-64 letters, digits, '.', '-' or '_'",
            crate::market::snippet(name)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn defaults() -> ScanConfig {
        ScanConfig::from_settings(&Settings::defaults().scan)
    }

    #[test]
    fn defaults_are_valid() {
        let c = defaults();
        assert_eq!(
            (c.min_bars, c.min_price, c.min_dollar_volume),
            (20, 1.0, 250_000.0)
        );
        assert!(c.validate(20_000).is_ok());
    }

    #[test]
    fn weights_and_account_size_are_bounded() {
        let mut weights = defaults().weights;
        weights.trend = 1e308;
        weights.volume = f64::NAN;
        let c = ScanConfig {
            weights,
            account_size: 1e308,
            ..defaults()
        };
        let err = c.validate(20_000).expect_err("invalid");
        let text = err.to_string();
        for part in [
            "weights.trend must be within 0..=100, got 1e308",
            "weights.volume must be within 0..=100, got NaN",
            "account_size must be in (0, 1e12], got 1e308",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert_eq!(err.problems.len(), 3, "{err}");
    }

    #[test]
    fn every_problem_is_listed() {
        let c = ScanConfig {
            min_price: -1.0,
            min_dollar_volume: f64::NAN,
            universe_size: Some(50_000),
            top: Some(0),
            symbols: vec![
                "OK".into(),
                "BAD SYMBOL".into(),
                "../secret/LEAK".into(),
                "..".into(),
            ],
            risk_pct: 0.0,
            ..defaults()
        };
        let err = c.validate(20_000).expect_err("invalid");
        assert_eq!(err.problems.len(), 8, "{err}");
        for bad in ["BAD SYMBOL", "../secret/LEAK", "\"..\""] {
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
    }
}
