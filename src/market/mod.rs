//! Market primitives: daily bars (column-oriented), universe entries.
//!
//! Owns the in-memory shape of price data. Knows nothing about where bars come from
//! (that is `data`) or what is computed from them (that is `indicators` and `scan`).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Daily bars of one symbol, column-oriented so indicator code runs over contiguous
/// `&[f64]` slices. Invariant kept by [`Bars::push`] callers and checked by
/// [`Bars::validate`]: all columns have the same length and dates ascend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bars {
    /// Serialized as days since 0001-01-01 (compact and fast to decode from the cache).
    #[serde(with = "day_numbers")]
    pub dates: Vec<NaiveDate>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
    /// How the provider obtained the series (not price data; reported per scan).
    #[serde(default)]
    pub origin: Origin,
}

/// How a provider obtained a series of bars. It travels with the bars so a scan can say
/// which symbols came from a bulk (grouped-daily) load or from a fallback source, without
/// the scan knowing anything about providers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// The primary source, one series per request (or a local file / generator).
    #[default]
    Primary,
    /// The primary source, assembled from whole-market daily snapshots.
    Bulk,
    /// A fallback source (named), used because the primary could not serve the symbol.
    Fallback(String),
}

/// `Vec<NaiveDate>` as `Vec<i32>` day numbers: a date as text costs a string per bar to
/// encode and a parse per bar to decode.
mod day_numbers {
    use chrono::{Datelike, NaiveDate};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(dates: &[NaiveDate], s: S) -> Result<S::Ok, S::Error> {
        dates
            .iter()
            .map(|d| d.num_days_from_ce())
            .collect::<Vec<i32>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NaiveDate>, D::Error> {
        Vec::<i32>::deserialize(d)?
            .into_iter()
            .map(|n| {
                NaiveDate::from_num_days_from_ce_opt(n)
                    .ok_or_else(|| serde::de::Error::custom(format!("day number {n} out of range")))
            })
            .collect()
    }
}

/// Why a series of bars cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BarsError {
    #[error("bar {date}: {field} is {}, expected a price in (0, 1e9]", short_number(*.value))]
    BadPrice {
        date: NaiveDate,
        field: &'static str,
        value: f64,
    },
    #[error("bar {date}: volume is {}, expected a number in [0, 1e15]", short_number(*.value))]
    BadVolume { date: NaiveDate, value: f64 },
    #[error("bar {date}: high {high} is below low {low}")]
    HighBelowLow {
        date: NaiveDate,
        high: f64,
        low: f64,
    },
}

impl Bars {
    pub fn with_capacity(n: usize) -> Self {
        Bars {
            dates: Vec::with_capacity(n),
            open: Vec::with_capacity(n),
            high: Vec::with_capacity(n),
            low: Vec::with_capacity(n),
            close: Vec::with_capacity(n),
            volume: Vec::with_capacity(n),
            origin: Origin::Primary,
        }
    }

    pub fn len(&self) -> usize {
        self.dates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }

    pub fn push(
        &mut self,
        date: NaiveDate,
        open: f64,
        high: f64,
        low: f64,
        close: f64,
        volume: f64,
    ) {
        self.dates.push(date);
        self.open.push(open);
        self.high.push(high);
        self.low.push(low);
        self.close.push(close);
        self.volume.push(volume);
    }

    /// Sorts by date (stable) when the rows are not already in order; cheap when they are.
    pub fn sort_by_date(&mut self) {
        if self.dates.windows(2).all(|w| w[0] <= w[1]) {
            return;
        }
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.sort_by_key(|&i| self.dates[i]);
        let pick = |col: &Vec<f64>| idx.iter().map(|&i| col[i]).collect::<Vec<f64>>();
        *self = Bars {
            dates: idx.iter().map(|&i| self.dates[i]).collect(),
            open: pick(&self.open),
            high: pick(&self.high),
            low: pick(&self.low),
            close: pick(&self.close),
            volume: pick(&self.volume),
            origin: std::mem::take(&mut self.origin),
        };
    }

    /// Checks every bar: prices in (0, [`MAX_PRICE`]], volume in [0, [`MAX_VOLUME`]] (NaN and
    /// infinities fail both), high not below low. Returns the first problem found.
    pub fn validate(&self) -> Result<(), BarsError> {
        for i in 0..self.len() {
            let date = self.dates[i];
            for (field, value) in [
                ("open", self.open[i]),
                ("high", self.high[i]),
                ("low", self.low[i]),
                ("close", self.close[i]),
            ] {
                if !(value > 0.0 && value <= MAX_PRICE) {
                    return Err(BarsError::BadPrice { date, field, value });
                }
            }
            let volume = self.volume[i];
            if !(0.0..=MAX_VOLUME).contains(&volume) {
                return Err(BarsError::BadVolume {
                    date,
                    value: volume,
                });
            }
            if self.high[i] < self.low[i] {
                return Err(BarsError::HighBelowLow {
                    date,
                    high: self.high[i],
                    low: self.low[i],
                });
            }
        }
        Ok(())
    }

    /// The index range of the `lookback` most recent bars dated on or before `as_of`
    /// (all bars when `as_of` is `None`).
    pub fn window(&self, as_of: Option<NaiveDate>, lookback: usize) -> BarsView<'_> {
        let end = match as_of {
            Some(d) => self.dates.partition_point(|x| *x <= d),
            None => self.len(),
        };
        let start = end.saturating_sub(lookback);
        BarsView {
            dates: &self.dates[start..end],
            open: &self.open[start..end],
            high: &self.high[start..end],
            low: &self.low[start..end],
            close: &self.close[start..end],
            volume: &self.volume[start..end],
            origin: &self.origin,
        }
    }

    pub fn view(&self) -> BarsView<'_> {
        self.window(None, usize::MAX)
    }
}

/// A borrowed window of [`Bars`].
#[derive(Debug, Clone, Copy)]
pub struct BarsView<'a> {
    pub dates: &'a [NaiveDate],
    pub open: &'a [f64],
    pub high: &'a [f64],
    pub low: &'a [f64],
    pub close: &'a [f64],
    pub volume: &'a [f64],
    pub origin: &'a Origin,
}

impl BarsView<'_> {
    /// An owned copy of the window (what the cache stores).
    pub fn to_bars(&self) -> Bars {
        Bars {
            dates: self.dates.to_vec(),
            open: self.open.to_vec(),
            high: self.high.to_vec(),
            low: self.low.to_vec(),
            close: self.close.to_vec(),
            volume: self.volume.to_vec(),
            origin: self.origin.clone(),
        }
    }

    pub fn len(&self) -> usize {
        self.dates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }
}

/// A number for an error message: large and tiny ones in exponent form (`1e308`, not 309
/// digits).
pub fn short_number(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-6..1e9).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// The highest price a bar may carry: far above any listed share (the dearest trade near
/// 1e6), far below where sums of prices lose meaning.
pub const MAX_PRICE: f64 = 1e9;
/// The highest daily volume a bar may carry.
pub const MAX_VOLUME: f64 = 1e15;

/// The rule every symbol follows, wherever it comes from (a scan request, the command line,
/// a `universe.csv`, a file name): 1 to 16 ASCII letters, digits, `.`, `-` or `_`. It is
/// also what keeps a symbol from naming anything but `SYMBOL.csv` in a data directory (no
/// `/`, no `..` alone: a dot needs company).
pub fn is_valid_symbol(s: &str) -> bool {
    (1..=16).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && s.bytes().any(|b| b != b'.')
}

/// What the symbol rule says, for error messages.
pub const SYMBOL_RULE: &str = "letters, digits, '.', '-' or '_' (1–16 characters, not only dots)";

/// One problem per symbol of `symbols` that breaks the rule, each quoted as a [`snippet`].
pub fn symbol_problems<'a>(symbols: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    symbols
        .into_iter()
        .filter(|s| !is_valid_symbol(s))
        .map(|s| format!("symbol {:?} is not valid: use {SYMBOL_RULE}", snippet(s)))
        .collect()
}

/// A value from outside (a symbol, a field of a file) as an error may quote it: at most 24
/// characters, anything but printable ASCII as `?`, so an error never carries more of a
/// file than that, nor control characters.
pub fn snippet(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(24)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().count() > 24 {
        out.push('…');
    }
    out
}

/// One symbol of a universe with the metadata pre-fetch filters use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UniverseEntry {
    pub symbol: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub sector: String,
    #[serde(default)]
    pub industry: String,
    /// Market capitalisation in dollars; `None` when unknown.
    #[serde(default)]
    pub market_cap: Option<f64>,
}

impl UniverseEntry {
    pub fn bare(symbol: impl Into<String>) -> Self {
        UniverseEntry {
            symbol: symbol.into(),
            name: String::new(),
            sector: String::new(),
            industry: String::new(),
            market_cap: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 1, day).expect("valid test date")
    }

    fn sample() -> Bars {
        let mut b = Bars::default();
        for day in [3, 1, 2, 5, 4] {
            let p = day as f64;
            b.push(d(day), p, p + 1.0, p - 0.5, p + 0.5, 100.0 * p);
        }
        b
    }

    #[test]
    fn sort_by_date_reorders_every_column_together() {
        let mut b = sample();
        b.sort_by_date();
        assert_eq!(b.dates, (1..=5).map(d).collect::<Vec<_>>());
        assert_eq!(b.close, vec![1.5, 2.5, 3.5, 4.5, 5.5]);
        assert_eq!(b.volume, vec![100.0, 200.0, 300.0, 400.0, 500.0]);
    }

    #[test]
    fn window_respects_as_of_and_lookback() {
        let mut b = sample();
        b.sort_by_date();
        let w = b.window(Some(d(4)), 2);
        assert_eq!(w.dates, &[d(3), d(4)]);
        assert_eq!(w.close, &[3.5, 4.5]);
        assert_eq!(b.window(None, 100).len(), 5);
        assert!(b
            .window(Some(NaiveDate::from_ymd_opt(2023, 1, 1).expect("date")), 10)
            .is_empty());
    }

    #[test]
    fn validate_rejects_bad_prices_and_volume() {
        let mut b = sample();
        assert!(b.validate().is_ok());
        b.close[2] = f64::NAN;
        assert!(matches!(
            b.validate(),
            Err(BarsError::BadPrice { field: "close", .. })
        ));
        b.close[2] = 1.0;
        b.low[0] = -1.0;
        assert!(matches!(
            b.validate(),
            Err(BarsError::BadPrice { field: "low", .. })
        ));
        b.low[0] = 1.0;
        b.volume[1] = -5.0;
        assert!(matches!(b.validate(), Err(BarsError::BadVolume { .. })));
    }
}
