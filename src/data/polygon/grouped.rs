//! Grouped-daily days: whole-market snapshots (every symbol's bar for one date), kept in
//! a bounded, expiring in-memory map shared by every shard of the node, and the assembly
//! of one symbol's history from them.
//!
//! A day is stored compactly (a sorted array of 16-byte ticker keys and a parallel array
//! of OHLCV), about 56 bytes per symbol, so a year of a 5,000-symbol universe is ~70 MB.
//! Concurrent requests for the same date share one fetch (moka's `try_get_with`); failed
//! fetches are not kept. Once the provider's universe is known, only its symbols are
//! stored; symbols outside it are never assembled from days (they are loaded per symbol).

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;

use crate::market::{Bars, Origin};

/// A ticker as a fixed-size key (tickers are ASCII and short; longer ones are not stored
/// and so load per symbol).
pub(super) type Key = [u8; 16];

pub(super) fn key(symbol: &str) -> Option<Key> {
    let b = symbol.as_bytes();
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    let mut k = [0u8; 16];
    k[..b.len()].copy_from_slice(b);
    Some(k)
}

/// One entry of `GET /v2/aggs/grouped/locale/us/market/stocks/{date}`.
#[derive(Debug, Deserialize)]
pub(super) struct GroupedBar {
    #[serde(rename = "T")]
    pub ticker: String,
    pub o: Option<f64>,
    pub h: Option<f64>,
    pub l: Option<f64>,
    pub c: Option<f64>,
    pub v: Option<f64>,
}

/// Every stored symbol's bar for one date, sorted by key.
#[derive(Debug, Default)]
pub(super) struct GroupedDay {
    keys: Vec<Key>,
    ohlcv: Vec<[f64; 5]>,
}

impl GroupedDay {
    /// Builds a day from a response, keeping complete bars of symbols `filter` allows.
    pub fn from_results(results: Vec<GroupedBar>, filter: Option<&HashSet<Key>>) -> Self {
        let mut rows: Vec<(Key, [f64; 5])> = results
            .into_iter()
            .filter_map(|b| {
                let k = key(&b.ticker)?;
                if filter.is_some_and(|f| !f.contains(&k)) {
                    return None;
                }
                Some((k, [b.o?, b.h?, b.l?, b.c?, b.v.unwrap_or(0.0)]))
            })
            .collect();
        rows.sort_unstable_by_key(|a| a.0);
        rows.dedup_by(|a, b| a.0 == b.0);
        let (keys, ohlcv) = rows.into_iter().unzip();
        GroupedDay { keys, ohlcv }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    fn get(&self, k: &Key) -> Option<&[f64; 5]> {
        self.keys.binary_search(k).ok().map(|i| &self.ohlcv[i])
    }
}

/// The node's memo of grouped-daily days (see the module doc).
pub(super) struct GroupedDays {
    pub cache: moka::future::Cache<NaiveDate, Arc<GroupedDay>>,
    filter: OnceLock<Arc<HashSet<Key>>>,
}

impl GroupedDays {
    pub fn new(max_days: u64, ttl: Duration) -> Self {
        GroupedDays {
            cache: moka::future::Cache::builder()
                .max_capacity(max_days)
                .time_to_live(ttl)
                .build(),
            filter: OnceLock::new(),
        }
    }

    /// Restricts stored days to these symbols, once (the first universe the provider
    /// lists); later calls keep the first set so every stored day agrees with it.
    pub fn set_filter<'a>(&self, symbols: impl Iterator<Item = &'a str>) {
        if self.filter.get().is_none() {
            let set: HashSet<Key> = symbols.filter_map(key).collect();
            let _ = self.filter.set(Arc::new(set));
        }
    }

    pub fn filter(&self) -> Option<Arc<HashSet<Key>>> {
        self.filter.get().cloned()
    }

    /// Days of `days` not currently held (what a bulk load would request).
    pub fn missing(&self, days: &[NaiveDate]) -> usize {
        days.iter().filter(|d| !self.cache.contains_key(*d)).count()
    }
}

/// One symbol's bars from `days` (ascending), empty when no day has it or when the
/// symbol cannot be assembled from days (`filter` excludes it, or its key is too long).
pub(super) fn assemble(
    days: &[(NaiveDate, Arc<GroupedDay>)],
    symbol: &str,
    filter: Option<&HashSet<Key>>,
) -> Bars {
    let Some(k) = key(symbol).filter(|k| filter.is_none_or(|f| f.contains(k))) else {
        return Bars::default();
    };
    let mut bars = Bars::with_capacity(days.len());
    for (date, day) in days {
        if let Some(&[o, h, l, c, v]) = day.get(&k) {
            bars.push(*date, o, h, l, c, v);
        }
    }
    bars.origin = Origin::Bulk;
    bars
}

/// Weekdays from `from` to `to` inclusive: the dates a bulk load requests (exchange
/// holidays come back empty; they cost one request each, ~9 a year).
pub(super) fn weekdays(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    from.iter_days()
        .take_while(|d| *d <= to)
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(t: &str, c: f64) -> GroupedBar {
        GroupedBar {
            ticker: t.into(),
            o: Some(c),
            h: Some(c + 1.0),
            l: Some(c - 1.0),
            c: Some(c),
            v: Some(10.0),
        }
    }

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 1, day).expect("date")
    }

    #[test]
    fn days_assemble_into_histories_in_date_order() {
        let day1 = Arc::new(GroupedDay::from_results(
            vec![bar("MSFT", 2.0), bar("AAPL", 1.0)],
            None,
        ));
        let mut incomplete = bar("AAPL", 5.0);
        incomplete.c = None;
        let day2 = Arc::new(GroupedDay::from_results(
            vec![bar("MSFT", 3.0), incomplete],
            None,
        ));
        let days = vec![(d(2), day1), (d(3), day2)];
        let aapl = assemble(&days, "AAPL", None);
        assert_eq!(aapl.dates, [d(2)]);
        assert_eq!(aapl.origin, Origin::Bulk);
        assert_eq!(assemble(&days, "MSFT", None).close, [2.0, 3.0]);
        assert!(assemble(&days, "NOPE", None).is_empty());
        let only_msft: HashSet<Key> = ["MSFT"].into_iter().filter_map(key).collect();
        assert!(
            assemble(&days, "AAPL", Some(&only_msft)).is_empty(),
            "outside the filter"
        );
    }

    #[test]
    fn weekdays_skip_weekends() {
        // 2024-01-05 is a Friday.
        assert_eq!(weekdays(d(5), d(9)), [d(5), d(8), d(9)]);
        assert!(weekdays(d(9), d(5)).is_empty());
    }

    #[test]
    fn long_or_empty_tickers_have_no_key() {
        assert!(key("").is_none());
        assert!(key("ABCDEFGHIJKLMNOPQ").is_none());
        assert!(key("BRK.A").is_some());
    }
}
