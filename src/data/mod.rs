//! Market data: the [`MarketData`] trait and its providers.
//!
//! Providers: [`synthetic`] (the embedded default, deterministic from a seed) and
//! [`csvdir`] (`DIR/SYMBOL.csv` + optional `DIR/universe.csv`). Every failure is a
//! [`DataError`] with a stable code; callers turn per-symbol errors into per-symbol
//! failures, never an aborted scan. Stands on `market` only.

pub mod csvdir;
pub mod synthetic;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;

use crate::market::{Bars, UniverseEntry};

pub use csvdir::{read_bars_csv, CsvError, CsvProvider};
pub use synthetic::SyntheticProvider;

/// Which bars a scan needs: the `lookback` most recent bars dated on or before `as_of`.
/// Providers may return more (callers window the result); remote providers use it to
/// bound their requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarRange {
    pub as_of: Option<NaiveDate>,
    pub lookback: usize,
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
}

impl DataError {
    /// The stable code reported per symbol.
    pub fn code(&self) -> &'static str {
        match self {
            DataError::NotFound { .. } => "DATA_NOT_FOUND",
            DataError::Invalid { .. } => "DATA_INVALID",
            DataError::Unavailable { .. } => "DATA_UNAVAILABLE",
        }
    }

    /// What a user can do about it.
    pub fn suggestion(&self) -> &'static str {
        match self {
            DataError::NotFound { .. } => "check the symbol, or add its file to the data directory",
            DataError::Invalid { .. } => "fix or re-export the file; the message names the line",
            DataError::Unavailable { .. } => "check the data source is reachable, then retry",
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
}

/// Where `--data` / `data.source` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    Synthetic,
    Csv(std::path::PathBuf),
}

impl std::str::FromStr for DataSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "synthetic" => Ok(DataSource::Synthetic),
            _ => match s.strip_prefix("csv:") {
                Some(dir) if !dir.is_empty() => Ok(DataSource::Csv(dir.into())),
                _ => Err(format!(
                    "unknown data source {s:?}: expected \"synthetic\" or \"csv:DIR\""
                )),
            },
        }
    }
}

/// Builds the provider for a source. `universe_size` caps the synthetic universe.
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
    }
}
