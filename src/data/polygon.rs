//! The Polygon provider: daily bars from Polygon's REST API.
//!
//! - Per symbol: `GET /v2/aggs/ticker/{T}/range/1/day/{from}/{to}?adjusted=true&sort=asc&limit=50000`.
//! - Bulk: `GET /v2/aggs/grouped/locale/us/market/stocks/{date}?adjusted=true`, one request
//!   per weekday of the window, memoised per node ([`grouped`]) so every shard of a scan
//!   shares them: a 5,000-symbol year costs ~260 requests instead of 5,000. The choice is
//!   automatic (`data.polygon.bulk = "auto"`): bulk when the days not yet held are fewer
//!   than the symbols the scan loads (`BarRange::scan_symbols`). Symbols the days do not
//!   cover (none of them has the symbol, or a day could not be loaded) are fetched per
//!   symbol.
//! - Universe: `data.polygon.symbols` when set; otherwise the reference tickers endpoint
//!   (`/v3/reference/tickers`, active US stocks of `ticker_type`), memoised for a day.
//!   Polygon's reference list has no sector/industry/market cap, so those stay empty.
//!
//! `results` may be absent; `t` is epoch milliseconds, taken as a UTC date. Every request
//! goes through the [`resilience`](crate::data::resilience) layer. The key is never in a
//! URL, a log line, an error or a `Debug` form.

mod client;
mod grouped;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::NaiveDate;
use futures_util::{stream, StreamExt, TryStreamExt};
use rayon::prelude::*;
use serde::Deserialize;
use tracing::{debug, info, warn};

use super::resilience::{CircuitState, ResilienceStats};
use super::{BarRange, DataError, MarketData};
use crate::config::{BulkMode, PolygonSettings};
use crate::market::{Bars, UniverseEntry};
use client::Client;
use grouped::{GroupedBar, GroupedDay, GroupedDays};

/// How long a listed universe is reused.
const UNIVERSE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The Polygon provider (see the module doc). Cheap to share: clone the `Arc` it is in.
pub struct PolygonProvider {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    grouped: GroupedDays,
    grouped_capacity: u64,
    bulk: BulkMode,
    max_in_flight: usize,
    symbols: Vec<String>,
    ticker_type: String,
    universe: tokio::sync::Mutex<Option<(Instant, Arc<Vec<UniverseEntry>>)>>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    grouped_days: std::sync::atomic::AtomicU64,
    symbol_loads: std::sync::atomic::AtomicU64,
    bulk_symbols: std::sync::atomic::AtomicU64,
}

/// What the provider has done since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolygonStats {
    /// The resilience layer's counters (`attempts` = HTTP requests sent).
    pub http: ResilienceStats,
    /// Grouped-daily days fetched (each one request, or more on retries).
    pub grouped_days: u64,
    /// Per-symbol history loads (each one request per page).
    pub symbol_loads: u64,
    /// Symbols served from grouped-daily days.
    pub bulk_symbols: u64,
}

impl std::fmt::Debug for PolygonProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolygonProvider")
            .field("client", &self.inner.client)
            .field("bulk", &self.inner.bulk)
            .finish_non_exhaustive()
    }
}

/// One bar of the per-symbol aggregates endpoint.
#[derive(Debug, Deserialize)]
struct AggBar {
    t: i64,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
    #[serde(default)]
    v: f64,
}

/// One entry of the reference tickers endpoint.
#[derive(Debug, Deserialize)]
struct TickerRow {
    ticker: String,
    #[serde(default)]
    name: Option<String>,
}

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

fn date_of(ms: i64) -> Option<NaiveDate> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.date_naive())
}

impl PolygonProvider {
    /// Builds the provider; fails with `DATA_AUTH` when no key is configured.
    pub fn new(settings: &PolygonSettings) -> Result<Self, DataError> {
        let client = Client::new(settings)?;
        Ok(PolygonProvider {
            inner: Arc::new(Inner {
                client,
                grouped: GroupedDays::new(
                    settings.grouped_cache_days.max(1),
                    Duration::from_secs(settings.grouped_ttl_secs.max(1)),
                ),
                grouped_capacity: settings.grouped_cache_days.max(1),
                bulk: settings.bulk,
                max_in_flight: settings.max_in_flight.max(1),
                symbols: settings
                    .symbols
                    .iter()
                    .map(|s| s.trim().to_ascii_uppercase())
                    .filter(|s| !s.is_empty())
                    .collect(),
                ticker_type: settings.ticker_type.trim().to_string(),
                universe: tokio::sync::Mutex::new(None),
                counters: Counters::default(),
            }),
        })
    }

    pub fn stats(&self) -> PolygonStats {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.inner.counters;
        PolygonStats {
            http: self.inner.client.stats(),
            grouped_days: c.grouped_days.load(Relaxed),
            symbol_loads: c.symbol_loads.load(Relaxed),
            bulk_symbols: c.bulk_symbols.load(Relaxed),
        }
    }

    pub fn circuit_state(&self) -> CircuitState {
        self.inner.client.resilience().circuit_state()
    }
}

impl Inner {
    /// One symbol's bars from `from` to `to`, per-symbol endpoint.
    async fn symbol_bars(
        &self,
        symbol: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Bars, DataError> {
        self.counters
            .symbol_loads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (f, t) = (from.to_string(), to.to_string());
        let url = self.client.url(
            &["v2", "aggs", "ticker", symbol, "range", "1", "day", &f, &t],
            &[("adjusted", "true"), ("sort", "asc"), ("limit", "50000")],
        );
        let rows: Vec<AggBar> = self.client.get_all(url, symbol).await.map_err(|e| {
            self.client
                .data_error(e, &format!("aggregates for {symbol}"), Some(symbol))
        })?;
        let mut bars = Bars::with_capacity(rows.len());
        for r in rows {
            let date = date_of(r.t).ok_or_else(|| DataError::Invalid {
                symbol: symbol.to_string(),
                message: format!("polygon returned a bad timestamp {}", r.t),
            })?;
            bars.push(date, r.o, r.h, r.l, r.c, r.v);
        }
        if bars.is_empty() {
            return Err(DataError::NotFound {
                symbol: symbol.to_string(),
            });
        }
        finish(bars, symbol)
    }

    /// Per-symbol loads, `max_in_flight` at a time, results in the order given.
    async fn load_each(
        &self,
        symbols: &[String],
        from: NaiveDate,
        to: NaiveDate,
    ) -> Vec<Result<Bars, DataError>> {
        stream::iter(symbols.iter().cloned())
            .map(move |s| async move { self.symbol_bars(&s, from, to).await })
            .buffered(self.max_in_flight)
            .collect()
            .await
    }

    /// One grouped-daily day, from the memo or one request (shared by concurrent callers).
    async fn grouped_day(&self, date: NaiveDate) -> Result<Arc<GroupedDay>, DataError> {
        self.grouped
            .cache
            .try_get_with(date, async {
                self.counters
                    .grouped_days
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let d = date.to_string();
                let url = self.client.url(
                    &[
                        "v2", "aggs", "grouped", "locale", "us", "market", "stocks", &d,
                    ],
                    &[("adjusted", "true")],
                );
                let what = format!("grouped daily {d}");
                let rows: Vec<GroupedBar> = match self.client.get_all(url, &what).await {
                    Ok(rows) => rows,
                    // A date Polygon has nothing for (e.g. before its history) is an empty day.
                    Err(super::resilience::AttemptError::Status { status: 404, .. }) => Vec::new(),
                    Err(e) => return Err(self.client.data_error(e, &what, None)),
                };
                let filter = self.grouped.filter();
                let day =
                    crate::cpu::run(move || GroupedDay::from_results(rows, filter.as_deref()))
                        .await;
                debug!(date = %d, symbols = day.len(), "grouped daily loaded");
                Ok(Arc::new(day))
            })
            .await
            .map_err(|e: Arc<DataError>| (*e).clone())
    }

    /// The bulk path: histories from grouped-daily days, per-symbol loads for the gaps.
    async fn load_bulk(
        &self,
        symbols: &[String],
        days: Vec<NaiveDate>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Vec<Result<Bars, DataError>> {
        let loaded: Result<Vec<(NaiveDate, Arc<GroupedDay>)>, DataError> = stream::iter(days)
            .map(|d| async move { self.grouped_day(d).await.map(|day| (d, day)) })
            .buffered(self.max_in_flight)
            .try_collect()
            .await;
        let days = match loaded {
            Ok(days) => days,
            Err(e) => {
                warn!(error = %e, symbols = symbols.len(), "grouped-daily days unavailable; loading this shard per symbol");
                return self.load_each(symbols, from, to).await;
            }
        };
        let filter = self.grouped.filter();
        let owned = symbols.to_vec();
        let mut out: Vec<Result<Bars, DataError>> = crate::cpu::run(move || {
            owned
                .par_iter()
                .map(|s| {
                    let bars = grouped::assemble(&days, s, filter.as_deref());
                    if bars.is_empty() {
                        Err(DataError::NotFound { symbol: s.clone() })
                    } else {
                        finish(bars, s)
                    }
                })
                .collect()
        })
        .await;
        let gaps: Vec<usize> = (0..out.len())
            .filter(|&i| matches!(out[i], Err(DataError::NotFound { .. })))
            .collect();
        let served = (out.len() - gaps.len()) as u64;
        self.counters
            .bulk_symbols
            .fetch_add(served, std::sync::atomic::Ordering::Relaxed);
        if !gaps.is_empty() {
            debug!(
                gaps = gaps.len(),
                "symbols not in the grouped-daily days; loading them per symbol"
            );
            let missing: Vec<String> = gaps.iter().map(|&i| symbols[i].clone()).collect();
            for (i, r) in gaps
                .into_iter()
                .zip(self.load_each(&missing, from, to).await)
            {
                out[i] = r;
            }
        }
        out
    }
}

/// Sorts, drops duplicate dates (keeping the last), and validates.
fn finish(mut bars: Bars, symbol: &str) -> Result<Bars, DataError> {
    bars.sort_by_date();
    if bars.dates.windows(2).any(|w| w[0] == w[1]) {
        let mut dedup = Bars::with_capacity(bars.len());
        dedup.origin = bars.origin.clone();
        for i in 0..bars.len() {
            if i + 1 < bars.len() && bars.dates[i] == bars.dates[i + 1] {
                continue;
            }
            dedup.push(
                bars.dates[i],
                bars.open[i],
                bars.high[i],
                bars.low[i],
                bars.close[i],
                bars.volume[i],
            );
        }
        bars = dedup;
    }
    bars.validate().map_err(|e| DataError::Invalid {
        symbol: symbol.to_string(),
        message: format!("polygon bars: {e}"),
    })?;
    Ok(bars)
}

#[async_trait]
impl MarketData for PolygonProvider {
    fn name(&self) -> &'static str {
        "polygon"
    }

    /// `polygon-HOST[:PORT]`: adjusted daily bars of one upstream.
    fn cache_namespace(&self) -> String {
        format!("polygon-{}", self.inner.client.origin())
    }

    /// The UTC date: a new session's bars make a new version. Within a session the day's
    /// bar moves under the same version, so what is cached under it is as fresh as its TTL
    /// (the `scan` and `meta` kinds' base TTLs).
    async fn data_version(&self) -> Option<String> {
        Some(today().to_string())
    }

    async fn universe(&self) -> Result<Vec<UniverseEntry>, DataError> {
        let inner = &self.inner;
        if !inner.symbols.is_empty() {
            inner
                .grouped
                .set_filter(inner.symbols.iter().map(String::as_str));
            return Ok(inner.symbols.iter().map(UniverseEntry::bare).collect());
        }
        let mut held = inner.universe.lock().await;
        if let Some((at, u)) = held.as_ref() {
            if at.elapsed() < UNIVERSE_TTL {
                return Ok(u.as_ref().clone());
            }
        }
        let mut query = vec![
            ("market", "stocks"),
            ("active", "true"),
            ("order", "asc"),
            ("sort", "ticker"),
            ("limit", "1000"),
        ];
        if !inner.ticker_type.is_empty() {
            query.push(("type", inner.ticker_type.as_str()));
        }
        let url = inner.client.url(&["v3", "reference", "tickers"], &query);
        let rows: Vec<TickerRow> = inner
            .client
            .get_all(url, "reference tickers")
            .await
            .map_err(|e| inner.client.data_error(e, "reference tickers", None))?;
        let universe: Vec<UniverseEntry> = rows
            .into_iter()
            .map(|r| UniverseEntry {
                name: r.name.unwrap_or_default(),
                ..UniverseEntry::bare(r.ticker)
            })
            .collect();
        info!(symbols = universe.len(), "polygon universe listed");
        inner
            .grouped
            .set_filter(universe.iter().map(|e| e.symbol.as_str()));
        let universe = Arc::new(universe);
        *held = Some((Instant::now(), Arc::clone(&universe)));
        Ok(universe.as_ref().clone())
    }

    async fn daily_bars(&self, symbol: &str, range: BarRange) -> Result<Bars, DataError> {
        let (from, to) = range.calendar_window(today());
        self.inner.symbol_bars(symbol, from, to).await
    }

    async fn load_many(&self, symbols: &[String], range: BarRange) -> Vec<Result<Bars, DataError>> {
        let inner = &self.inner;
        let (from, to) = range.calendar_window(today());
        let days = grouped::weekdays(from, to);
        let wanted = range.scan_symbols.unwrap_or(0).max(symbols.len());
        let bulk = match inner.bulk {
            BulkMode::Always => true,
            BulkMode::Never => false,
            // Fewer requests, and the window fits the memo (else shards would evict
            // each other's days and refetch them).
            BulkMode::Auto => {
                days.len() as u64 <= inner.grouped_capacity && inner.grouped.missing(&days) < wanted
            }
        };
        debug!(
            symbols = symbols.len(),
            scan_symbols = wanted,
            days = days.len(),
            bulk,
            "polygon load"
        );
        if bulk {
            inner.load_bulk(symbols, days, from, to).await
        } else {
            inner.load_each(symbols, from, to).await
        }
    }

    fn circuits(&self) -> Vec<(&'static str, CircuitState)> {
        vec![("polygon", self.circuit_state())]
    }
}
