//! Sub-scores, TechRating and the signal (`docs/scan-rules.md`, "Sub-scores" to "Signal").
//! Pure arithmetic on [`Features`].
//!
//! A comparison with a NaN side scores 0; `sign(a, b)` is +1, −1 or 0.

use serde::{Deserialize, Serialize};

use super::features::Features;
use crate::config::WeightSettings;

/// The six sub-scores, each a small integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubScores {
    pub trend: i8,
    pub momentum: i8,
    pub volume: i8,
    pub volatility: i8,
    pub oscillator: i8,
    pub breakout: i8,
}

/// The trade signal.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Signal {
    #[serde(rename = "Strong Long")]
    StrongLong,
    Long,
    Avoid,
    Short,
    #[serde(rename = "Strong Short")]
    StrongShort,
}

impl Signal {
    pub const ALL: [Signal; 5] = [
        Signal::StrongLong,
        Signal::Long,
        Signal::Avoid,
        Signal::Short,
        Signal::StrongShort,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::StrongLong => "Strong Long",
            Signal::Long => "Long",
            Signal::Avoid => "Avoid",
            Signal::Short => "Short",
            Signal::StrongShort => "Strong Short",
        }
    }

    pub fn is_short(self) -> bool {
        matches!(self, Signal::Short | Signal::StrongShort)
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Signal {
    type Err = String;

    /// Case-insensitive; spaces, `_` and `-` are interchangeable (`strong_long`, `Strong Long`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .chars()
            .filter(|c| !matches!(c, ' ' | '_' | '-'))
            .collect::<String>()
            .to_ascii_lowercase();
        Signal::ALL
            .into_iter()
            .find(|sig| sig.as_str().replace(' ', "").to_ascii_lowercase() == norm)
            .ok_or_else(|| {
                format!(
                    "unknown signal {s:?}: expected one of Strong Long, Long, Avoid, Short, Strong Short"
                )
            })
    }
}

/// +1 when a > b, −1 when a < b, 0 when equal or either is NaN.
pub fn sign(a: f64, b: f64) -> i8 {
    if a > b {
        1
    } else if a < b {
        -1
    } else {
        0
    }
}

// Written as plain comparisons on purpose: `!(40.0..=70.0).contains(&rsi)` would score
// a NaN RSI −1, and a comparison with a NaN side must score 0.
#[allow(clippy::manual_range_contains)]
pub fn sub_scores(f: &Features) -> SubScores {
    let trend = sign(f.sma_20, f.sma_50) + sign(f.sma_50, f.sma_200) + sign(f.close, f.sma_20);

    let rsi = f.rsi_14;
    let mut momentum =
        i8::from(rsi > 55.0) + i8::from(rsi > 65.0) - i8::from(rsi < 45.0) - i8::from(rsi < 35.0);
    momentum = (momentum + sign(f.macd_hist, 0.0)).clamp(-3, 3);

    let spike = f.vol_spike_ratio;
    let volume = if spike > 1.5 {
        2
    } else if spike > 1.2 {
        1
    } else if spike < 0.7 {
        -1
    } else {
        0
    };

    let volatility = i8::from(f.atr_pct_14 < 0.01) - i8::from(f.atr_pct_14 > 0.03);

    let oscillator = if (55.0..=65.0).contains(&rsi) {
        1
    } else if rsi > 70.0 || rsi < 40.0 {
        -1
    } else {
        0
    };

    let breakout = i8::from(f.pct_from_high20 > -1.0) - i8::from(f.pct_from_low20 < 1.0)
        + i8::from(f.ret_5d > 0.02)
        - i8::from(f.ret_5d < -0.02);

    SubScores {
        trend,
        momentum,
        volume,
        volatility,
        oscillator,
        breakout,
    }
}

/// raw = Σ weight·sub-score; risk = clip(1 − 50·atr_pct, 0, 1) (0 when ATR is unknown:
/// unknown risk is treated as the highest); TechRating = raw · (0.7 + 0.3·risk).
pub fn tech_rating(s: &SubScores, atr_pct_14: f64, w: &WeightSettings) -> f64 {
    let raw = w.trend * f64::from(s.trend)
        + w.momentum * f64::from(s.momentum)
        + w.volume * f64::from(s.volume)
        + w.volatility * f64::from(s.volatility)
        + w.oscillator * f64::from(s.oscillator)
        + w.breakout * f64::from(s.breakout);
    let risk = if atr_pct_14.is_nan() {
        0.0
    } else {
        (1.0 - 50.0 * atr_pct_14).clamp(0.0, 1.0)
    };
    raw * (0.7 + 0.3 * risk)
}

pub fn signal(tech_rating: f64, s: &SubScores) -> Signal {
    if tech_rating >= 22.0 && s.trend >= 2 && s.momentum >= 1 {
        Signal::StrongLong
    } else if tech_rating >= 16.0 && s.trend >= 1 {
        Signal::Long
    } else if tech_rating <= -22.0 && s.trend <= -2 && s.momentum <= -1 {
        Signal::StrongShort
    } else if tech_rating <= -16.0 && s.trend <= -1 {
        Signal::Short
    } else {
        Signal::Avoid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features() -> Features {
        Features {
            close: 100.0,
            ret_1d: 0.0,
            ret_5d: 0.0,
            ret_21d: 0.0,
            vol_realized_20: 0.2,
            atr_pct_14: 0.02,
            sma_20: 100.0,
            sma_50: 100.0,
            sma_200: 100.0,
            pct_from_high20: -5.0,
            pct_from_low20: 5.0,
            rsi_14: 50.0,
            macd_hist: 0.0,
            dollar_vol_20: 1e6,
            vol_spike_ratio: 1.0,
            gap_mean_10: 0.0,
        }
    }

    fn weights() -> WeightSettings {
        WeightSettings {
            trend: 3.0,
            momentum: 3.0,
            volume: 2.0,
            volatility: 1.0,
            oscillator: 1.0,
            breakout: 1.0,
        }
    }

    #[test]
    fn neutral_features_score_zero() {
        let s = sub_scores(&features());
        assert_eq!(
            s,
            SubScores {
                trend: 0,
                momentum: 0,
                volume: 0,
                volatility: 0,
                oscillator: 0,
                breakout: 0
            }
        );
        assert_eq!(tech_rating(&s, 0.02, &weights()), 0.0);
        assert_eq!(signal(0.0, &s), Signal::Avoid);
    }

    #[test]
    fn strong_uptrend_is_strong_long() {
        let f = Features {
            close: 110.0,
            sma_20: 105.0,
            sma_50: 100.0,
            sma_200: 90.0,
            rsi_14: 66.0,
            macd_hist: 0.5,
            vol_spike_ratio: 1.6,
            atr_pct_14: 0.005,
            pct_from_high20: -0.5,
            ret_5d: 0.03,
            ..features()
        };
        let s = sub_scores(&f);
        assert_eq!(
            s,
            SubScores {
                trend: 3,
                momentum: 3,
                volume: 2,
                volatility: 1,
                oscillator: 0,
                breakout: 2
            }
        );
        // raw = 9 + 9 + 4 + 1 + 0 + 2 = 25; risk = 1 − 0.25 = 0.75; TR = 25 · 0.925
        let tr = tech_rating(&s, 0.005, &weights());
        assert!((tr - 25.0 * (0.7 + 0.3 * 0.75)).abs() < 1e-12);
        assert_eq!(signal(tr, &s), Signal::StrongLong);
        // The same scores with a riskier ATR fall to Long.
        let tr = tech_rating(&s, 0.02, &weights());
        assert_eq!(signal(tr, &s), Signal::Long);
    }

    #[test]
    fn momentum_is_clipped_and_nan_scores_zero() {
        let f = Features {
            rsi_14: 80.0,
            macd_hist: 1.0,
            ..features()
        };
        assert_eq!(sub_scores(&f).momentum, 3);
        let f = Features {
            rsi_14: 20.0,
            macd_hist: -1.0,
            ..features()
        };
        assert_eq!(sub_scores(&f).momentum, -3);
        assert_eq!(sub_scores(&f).oscillator, -1);
        let f = Features {
            rsi_14: f64::NAN,
            macd_hist: f64::NAN,
            sma_200: f64::NAN,
            atr_pct_14: f64::NAN,
            ..features()
        };
        let s = sub_scores(&f);
        assert_eq!(
            (s.momentum, s.oscillator, s.trend, s.volatility),
            (0, 0, 0, 0)
        );
        assert_eq!(sign(f64::NAN, 1.0), 0);
    }

    #[test]
    fn signal_thresholds() {
        let s = |trend, momentum| SubScores {
            trend,
            momentum,
            volume: 0,
            volatility: 0,
            oscillator: 0,
            breakout: 0,
        };
        assert_eq!(signal(22.0, &s(2, 1)), Signal::StrongLong);
        assert_eq!(signal(22.0, &s(1, 1)), Signal::Long);
        assert_eq!(signal(15.9, &s(3, 3)), Signal::Avoid);
        assert_eq!(signal(-22.0, &s(-2, -1)), Signal::StrongShort);
        assert_eq!(signal(-16.0, &s(-1, 0)), Signal::Short);
        assert_eq!(signal(-16.0, &s(0, 0)), Signal::Avoid);
    }

    #[test]
    fn signals_parse_leniently() {
        assert_eq!("strong_long".parse::<Signal>(), Ok(Signal::StrongLong));
        assert_eq!("Strong Short".parse::<Signal>(), Ok(Signal::StrongShort));
        assert_eq!("LONG".parse::<Signal>(), Ok(Signal::Long));
        assert!("longish".parse::<Signal>().is_err());
    }
}
