//! Market data: the [`MarketData`] trait and its providers.
//!
//! Providers: [`synthetic`] (the embedded default, deterministic from a seed),
//! [`csvdir`] (`DIR/SYMBOL.csv` + optional `DIR/universe.csv`, bar files read by
//! [`csv_bars`]) and [`polygon`] (the Polygon REST API, with a bulk grouped-daily path).
//! Remote providers call through the one [`resilience`] layer; a
//! [`fallback::FallbackChain`] serves what the primary cannot from the next source and
//! flags those symbols. Every failure is a [`DataError`] with a stable code; callers turn
//! per-symbol errors into per-symbol failures, never an aborted scan. Stands on `market`
//! (and reads its settings from `config`).

pub mod csv_bars;
pub mod csvdir;
pub mod fallback;
pub mod polygon;
pub mod resilience;
pub mod synthetic;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;

use crate::market::{Bars, UniverseEntry};

pub use csv_bars::{read_bars_csv, CsvError};
pub use csvdir::CsvProvider;
pub use fallback::FallbackChain;
pub use polygon::PolygonProvider;
pub use resilience::CircuitState;
pub use synthetic::SyntheticProvider;

/// Which bars a scan needs: the `lookback` most recent bars dated on or before `as_of`.
/// Providers may return more (callers window the result); remote providers use it to
/// bound their requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarRange {
    pub as_of: Option<NaiveDate>,
    pub lookback: usize,
    /// How many symbols the whole scan loads with this range (`None`: unknown). A hint for
    /// remote providers choosing between per-symbol and whole-market (bulk) requests,
    /// since each `load_many` call only sees one shard.
    pub scan_symbols: Option<usize>,
}

impl BarRange {
    pub fn new(as_of: Option<NaiveDate>, lookback: usize) -> Self {
        BarRange {
            as_of,
            lookback,
            scan_symbols: None,
        }
    }

    pub fn with_scan_symbols(mut self, n: usize) -> Self {
        self.scan_symbols = Some(n);
        self
    }

    /// The calendar dates a remote request should cover: `lookback` counts trading days
    /// (bars), so the window is `lookback·7/5 + 10` calendar days (weekends plus a margin
    /// for holidays) ending at `as_of` (or `today`, whichever is earlier). Callers window
    /// the returned bars to exactly `lookback`.
    pub fn calendar_window(&self, today: NaiveDate) -> (NaiveDate, NaiveDate) {
        let to = self.as_of.map_or(today, |d| d.min(today));
        // 100 years of bars is more than any market has; it also keeps the arithmetic finite.
        let bars = self.lookback.min(25_200) as u64;
        let days = bars * 7 / 5 + 10;
        let from = to
            .checked_sub_days(chrono::Days::new(days))
            .unwrap_or(NaiveDate::MIN);
        (from, to)
    }
}

/// A failure to get data, with a stable code for reports and APIs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    #[error("no data for {symbol}")]
    NotFound { symbol: String },
    #[error("invalid data for {symbol}: {message}")]
    Invalid { symbol: String, message: String },
    #[error("data source unavailable: {message}")]
    Unavailable { message: String },
    #[error("data source authentication failed: {message}")]
    Auth { message: String },
    #[error("data source rate limit exceeded: {message}")]
    RateLimited { message: String },
}

impl DataError {
    /// The stable code reported per symbol.
    pub fn code(&self) -> &'static str {
        match self {
            DataError::NotFound { .. } => "DATA_NOT_FOUND",
            DataError::Invalid { .. } => "DATA_INVALID",
            DataError::Unavailable { .. } => "DATA_UNAVAILABLE",
            DataError::Auth { .. } => "DATA_AUTH",
            DataError::RateLimited { .. } => "DATA_RATE_LIMITED",
        }
    }

    /// What a user can do about it.
    pub fn suggestion(&self) -> &'static str {
        match self {
            DataError::NotFound { .. } => "check the symbol, or add its file to the data directory",
            DataError::Invalid { .. } => "fix or re-export the file; the message names the line",
            DataError::Unavailable { .. } => "check the data source is reachable, then retry",
            DataError::Auth { .. } => {
                "check the API key: set TECHNIC_DATA__POLYGON__API_KEY (or POLYGON_API_KEY) to a valid key whose plan covers this data"
            }
            DataError::RateLimited { .. } => {
                "lower data.polygon.requests_per_minute to your plan's limit, or retry later"
            }
        }
    }
}

/// A source of daily bars and of the universe they belong to.
///
/// `load_many` exists so local providers can parse or generate a whole shard on rayon in
/// one hop; remote providers keep the default, which awaits `daily_bars` per symbol.
#[async_trait]
pub trait MarketData: Send + Sync + 'static {
    /// Short provider name for logs and reports (`synthetic`, `csv`).
    fn name(&self) -> &'static str;

    /// Identifies the data behind this provider in cache keys, so two sources never share
    /// an entry (e.g. `synthetic-42-500-2026-11-27`, `csv-<dir>`).
    fn cache_namespace(&self) -> String {
        self.name().to_string()
    }

    /// Identifies the data the provider serves now: the same string while nothing it
    /// serves changed, another one once something did. Results computed from the data
    /// (whole scan reports, the universe) are cached under it. `None` when the provider
    /// cannot tell; nothing keyed on the version is then cached.
    async fn data_version(&self) -> Option<String> {
        None
    }

    /// Every symbol the provider knows, with metadata.
    async fn universe(&self) -> Result<Vec<UniverseEntry>, DataError>;

    /// Daily bars of one symbol, ascending by date, at least covering `range`.
    async fn daily_bars(&self, symbol: &str, range: BarRange) -> Result<Bars, DataError>;

    /// Daily bars of many symbols, in the order given.
    async fn load_many(&self, symbols: &[String], range: BarRange) -> Vec<Result<Bars, DataError>> {
        let mut out = Vec::with_capacity(symbols.len());
        for s in symbols {
            out.push(self.daily_bars(s, range).await);
        }
        out
    }

    /// The circuit breakers behind this provider and their states (remote providers;
    /// a fallback chain lists every source's). For health checks and metrics.
    fn circuits(&self) -> Vec<(&'static str, CircuitState)> {
        Vec::new()
    }
}

impl From<DataError> for crate::error::UserError {
    fn from(e: DataError) -> Self {
        crate::error::UserError::new(
            crate::error::ErrorCode::DataProviderUnavailable,
            e.to_string(),
            vec![e.suggestion().into()],
        )
    }
}

/// Where `--data` / `data.source` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    Synthetic,
    Csv(std::path::PathBuf),
    Polygon,
}

/// A `--data` / `data.source` value that names no source, with every bad entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct InvalidSource {
    pub problems: Vec<String>,
}

impl std::str::FromStr for DataSource {
    type Err = InvalidSource;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "synthetic" => Ok(DataSource::Synthetic),
            "polygon" => Ok(DataSource::Polygon),
            s => match s.strip_prefix("csv:") {
                Some(dir) if !dir.is_empty() => Ok(DataSource::Csv(dir.into())),
                _ => Err(InvalidSource {
                    problems: vec![format!(
                        "unknown data source {s:?}: expected \"synthetic\", \"polygon\" or \"csv:DIR\""
                    )],
                }),
            },
        }
    }
}

impl DataSource {
    /// The source chain: `spec` (`--data` or `data.source`, comma-separated, e.g.
    /// `polygon,csv:DIR`) followed by the configured `fallback` sources not already in it.
    /// Every bad entry is reported.
    pub fn parse_chain(spec: &str, fallback: &[String]) -> Result<Vec<DataSource>, InvalidSource> {
        let mut chain: Vec<DataSource> = Vec::new();
        let mut problems = Vec::new();
        for part in spec.split(',').chain(fallback.iter().map(String::as_str)) {
            if part.trim().is_empty() {
                continue;
            }
            match part.parse::<DataSource>() {
                Ok(s) if !chain.contains(&s) => chain.push(s),
                Ok(_) => {}
                Err(e) => problems.extend(e.problems),
            }
        }
        if chain.is_empty() && problems.is_empty() {
            problems.push("no data source given".to_string());
        }
        if problems.is_empty() {
            Ok(chain)
        } else {
            Err(InvalidSource { problems })
        }
    }
}

/// Builds the provider for a chain of sources: the first is the primary, the others
/// serve (and flag) the symbols it cannot. `universe_size` caps the synthetic universe.
pub fn open_chain(
    chain: &[DataSource],
    settings: &crate::config::DataSettings,
    universe_size: Option<usize>,
) -> Result<Arc<dyn MarketData>, DataError> {
    let mut providers = Vec::with_capacity(chain.len());
    for source in chain {
        providers.push(match source {
            DataSource::Polygon => {
                Arc::new(PolygonProvider::new(&settings.polygon)?) as Arc<dyn MarketData>
            }
            other => open(other, &settings.synthetic, universe_size)?,
        });
    }
    match providers.len() {
        0 => Err(DataError::Unavailable {
            message: "no data source configured".into(),
        }),
        1 => Ok(providers.remove(0)),
        _ => Ok(Arc::new(FallbackChain::new(providers))),
    }
}

/// Builds the provider for a local source. `universe_size` caps the synthetic universe.
/// Remote sources need their settings: use [`open_chain`].
pub fn open(
    source: &DataSource,
    synthetic: &crate::config::SyntheticSettings,
    universe_size: Option<usize>,
) -> Result<Arc<dyn MarketData>, DataError> {
    Ok(match source {
        DataSource::Synthetic => {
            let mut s = synthetic.clone();
            if let Some(n) = universe_size {
                s.symbols = n;
            }
            Arc::new(SyntheticProvider::new(&s))
        }
        DataSource::Csv(dir) => Arc::new(CsvProvider::open(dir)?),
        DataSource::Polygon => {
            return Err(DataError::Unavailable {
                message: "the polygon provider is built from its settings (data::open_chain)"
                    .into(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_source_parses() {
        assert_eq!("synthetic".parse::<DataSource>(), Ok(DataSource::Synthetic));
        assert_eq!(
            "csv:/d".parse::<DataSource>(),
            Ok(DataSource::Csv("/d".into()))
        );
        assert!("csv:".parse::<DataSource>().is_err());
        assert!("polygonx".parse::<DataSource>().is_err());
        assert_eq!("polygon".parse::<DataSource>(), Ok(DataSource::Polygon));
    }

    #[test]
    fn chains_append_configured_fallbacks_once() {
        let chain = DataSource::parse_chain("polygon, csv:/a", &["csv:/a".into(), "csv:/b".into()]);
        assert_eq!(
            chain,
            Ok(vec![
                DataSource::Polygon,
                DataSource::Csv("/a".into()),
                DataSource::Csv("/b".into())
            ])
        );
        let err =
            DataSource::parse_chain("polygon,ftp:x", &["nope".into()]).expect_err("bad entries");
        let err = err.to_string();
        assert!(err.contains("ftp:x") && err.contains("nope"), "{err}");
    }

    #[test]
    fn calendar_window_covers_lookback_trading_days() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).expect("date");
        let today = d(2024, 6, 28);
        let (from, to) = BarRange::new(None, 250).calendar_window(today);
        assert_eq!(to, today);
        assert_eq!((to - from).num_days(), 250 * 7 / 5 + 10);
        let (_, to) = BarRange::new(Some(d(2024, 1, 5)), 5).calendar_window(today);
        assert_eq!(to, d(2024, 1, 5));
        let (from, _) = BarRange::new(None, usize::MAX).calendar_window(today);
        assert!(from < d(1930, 1, 1));
    }

    #[test]
    fn every_error_has_a_stable_code_and_a_suggestion() {
        let all = [
            DataError::NotFound { symbol: "X".into() },
            DataError::Invalid {
                symbol: "X".into(),
                message: "m".into(),
            },
            DataError::Unavailable {
                message: "m".into(),
            },
            DataError::Auth {
                message: "m".into(),
            },
            DataError::RateLimited {
                message: "m".into(),
            },
        ];
        let codes: Vec<&str> = all.iter().map(DataError::code).collect();
        assert_eq!(
            codes,
            [
                "DATA_NOT_FOUND",
                "DATA_INVALID",
                "DATA_UNAVAILABLE",
                "DATA_AUTH",
                "DATA_RATE_LIMITED"
            ]
        );
        assert!(all.iter().all(|e| !e.suggestion().is_empty()));
        assert!(all[3].suggestion().contains("API key"));
    }
}
