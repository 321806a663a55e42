//! The `csv` provider: bars from `DIR/SYMBOL.csv` (read by [`super::csv_bars`]) and the
//! universe from `DIR/universe.csv` when present, else from the file names.

use super::csv_bars::{read_bars_csv, Columns};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use rayon::prelude::*;

use super::csv_bars::CsvError;
/// The bar reader, also reachable through the provider's module (`technic indicators`
/// names it here).
use super::{BarRange, DataError, MarketData};
use crate::market::{Bars, UniverseEntry};

/// The `csv` provider: `DIR/SYMBOL.csv` per symbol, `DIR/universe.csv` for metadata.
pub struct CsvProvider {
    inner: Arc<CsvInner>,
}

struct CsvInner {
    dir: PathBuf,
    universe: Vec<UniverseEntry>,
}

impl CsvProvider {
    /// Opens a directory: reads `universe.csv` when present, else lists `*.csv` files.
    pub fn open(dir: &Path) -> Result<Self, DataError> {
        let unavailable = |message: String| DataError::Unavailable { message };
        if !dir.is_dir() {
            return Err(unavailable(format!("{} is not a directory", dir.display())));
        }
        let universe_path = dir.join("universe.csv");
        let universe = if universe_path.exists() {
            read_universe(&universe_path).map_err(|e| unavailable(e.to_string()))?
        } else {
            let mut syms: Vec<UniverseEntry> = std::fs::read_dir(dir)
                .map_err(|e| unavailable(format!("{}: {e}", dir.display())))?
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let p = e.path();
                    (p.extension()? == "csv")
                        .then(|| p.file_stem()?.to_str().map(UniverseEntry::bare))?
                })
                .collect();
            syms.sort_by(|a, b| a.symbol.cmp(&b.symbol));
            syms
        };
        Ok(CsvProvider {
            inner: Arc::new(CsvInner {
                dir: dir.to_path_buf(),
                universe,
            }),
        })
    }
}

/// A `universe.csv` that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UniverseError {
    #[error("{path}: {message}")]
    Unreadable { path: String, message: String },
    #[error("{path}: missing column symbol")]
    NoSymbolColumn { path: String },
    #[error("{path}:{line}: {message}")]
    Malformed {
        path: String,
        line: usize,
        message: String,
    },
}

fn read_universe(path: &Path) -> Result<Vec<UniverseEntry>, UniverseError> {
    let shown = || path.display().to_string();
    let unreadable = |e: csv::Error| UniverseError::Unreadable {
        path: shown(),
        message: e.to_string(),
    };
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(unreadable)?;
    let headers = rdr
        .headers()
        .map_err(unreadable)?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect::<Vec<_>>();
    let col = |n: &str| headers.iter().position(|h| h == n);
    let sym = col("symbol").ok_or_else(|| UniverseError::NoSymbolColumn { path: shown() })?;
    let (name, sector, industry, cap) = (
        col("name"),
        col("sector"),
        col("industry"),
        col("market_cap"),
    );
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let malformed = |message: String| UniverseError::Malformed {
            path: shown(),
            line: i + 2,
            message,
        };
        let rec = rec.map_err(|e| malformed(e.to_string()))?;
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("").to_string();
        let symbol = get(Some(sym));
        if symbol.is_empty() {
            return Err(malformed("empty symbol".into()));
        }
        let market_cap = match get(cap).as_str() {
            "" => None,
            s => Some(
                s.parse::<f64>()
                    .map_err(|_| malformed(format!("market_cap is not a number: {s:?}")))?,
            ),
        };
        out.push(UniverseEntry {
            symbol,
            name: get(name),
            sector: get(sector),
            industry: get(industry),
            market_cap,
        });
    }
    Ok(out)
}

impl CsvInner {
    fn bars(&self, symbol: &str) -> Result<Bars, DataError> {
        let path = self.dir.join(format!("{symbol}.csv"));
        let bars = read_bars_csv(&path, Columns::Ohlcv).map_err(|e| match e {
            CsvError::Io { .. } if !path.exists() => DataError::NotFound {
                symbol: symbol.to_string(),
            },
            other => DataError::Invalid {
                symbol: symbol.to_string(),
                message: other.to_string(),
            },
        })?;
        bars.validate().map_err(|e| DataError::Invalid {
            symbol: symbol.to_string(),
            message: format!("{}: {e}", path.display()),
        })?;
        Ok(bars)
    }
}

#[async_trait]
impl MarketData for CsvProvider {
    fn name(&self) -> &'static str {
        "csv"
    }

    fn cache_namespace(&self) -> String {
        let dir = std::fs::canonicalize(&self.inner.dir).unwrap_or_else(|_| self.inner.dir.clone());
        // Hash tags and separators must not leak into keys from a path.
        let clean: String = dir
            .display()
            .to_string()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("csv-{clean}")
    }

    async fn universe(&self) -> Result<Vec<UniverseEntry>, DataError> {
        Ok(self.inner.universe.clone())
    }

    async fn daily_bars(&self, symbol: &str, _range: BarRange) -> Result<Bars, DataError> {
        let inner = Arc::clone(&self.inner);
        let symbol = symbol.to_string();
        crate::cpu::run(move || inner.bars(&symbol)).await
    }

    async fn load_many(
        &self,
        symbols: &[String],
        _range: BarRange,
    ) -> Vec<Result<Bars, DataError>> {
        let inner = Arc::clone(&self.inner);
        let symbols = symbols.to_vec();
        crate::cpu::run(move || symbols.par_iter().map(|s| inner.bars(s)).collect()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn provider_reports_invalid_and_missing_symbols_per_symbol() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("GOOD.csv"),
            "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,10\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("NEG.csv"),
            "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,-1.5,10\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("NAN.csv"),
            "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,NaN,10\n",
        )
        .expect("write");
        let p = CsvProvider::open(dir.path()).expect("dir");
        let syms: Vec<String> = p
            .universe()
            .await
            .expect("universe")
            .into_iter()
            .map(|e| e.symbol)
            .collect();
        assert_eq!(syms, ["GOOD", "NAN", "NEG"]);
        let range = BarRange::new(None, 10);
        let all = p
            .load_many(
                &["GOOD".into(), "NEG".into(), "NAN".into(), "GONE".into()],
                range,
            )
            .await;
        assert!(all[0].is_ok());
        assert_eq!(
            all[1].as_ref().map_err(DataError::code).err(),
            Some("DATA_INVALID")
        );
        assert_eq!(
            all[2].as_ref().map_err(DataError::code).err(),
            Some("DATA_INVALID")
        );
        assert_eq!(
            all[3].as_ref().map_err(DataError::code).err(),
            Some("DATA_NOT_FOUND")
        );
    }

    #[test]
    fn universe_csv_supplies_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("universe.csv"),
            "symbol,name,sector,industry,market_cap\nAAPL,\"Apple, Inc.\",Technology,Hardware,3e12\nXYZ,,,,\n",
        )
        .expect("write");
        let p = CsvProvider::open(dir.path()).expect("dir");
        let u = &p.inner.universe;
        assert_eq!(u[0].name, "Apple, Inc.");
        assert_eq!(u[0].market_cap, Some(3e12));
        assert_eq!(u[1].market_cap, None);
    }
}
