//! The `csv` provider: bars from `DIR/SYMBOL.csv` (read by [`super::csv_bars`]) and the
//! universe from `DIR/universe.csv` when present, else from the file names.
//!
//! What it reads is bounded by the data directory: a symbol must follow the symbol rule
//! ([`is_valid_symbol`]: no `/`, nothing but dots), and a file is read only when it is a
//! regular file whose real path (symlinks resolved) is inside the directory; it is opened
//! non-blocking, so a FIFO cannot hang a scan. Errors name files relative to the directory
//! and quote at most a short, sanitised snippet of a field.

use super::csv_bars::{parse_bars_csv, Columns};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use rayon::prelude::*;

use super::csv_bars::CsvError;
/// The bar reader, also reachable through the provider's module (`technic indicators`
/// names it here).
use super::{BarRange, DataError, MarketData};
use crate::market::{is_valid_symbol, snippet, Bars, UniverseEntry, SYMBOL_RULE};

/// The `csv` provider: `DIR/SYMBOL.csv` per symbol, `DIR/universe.csv` for metadata.
pub struct CsvProvider {
    inner: Arc<CsvInner>,
}

struct CsvInner {
    dir: PathBuf,
    /// `dir` with every symlink resolved: what a file's real path must start with.
    real_dir: PathBuf,
    universe: Vec<UniverseEntry>,
}

impl CsvProvider {
    /// Opens a directory: reads `universe.csv` when present, else lists `*.csv` files.
    pub fn open(dir: &Path) -> Result<Self, DataError> {
        let unavailable = |message: String| DataError::Unavailable { message };
        if !dir.is_dir() {
            return Err(unavailable(format!("{} is not a directory", dir.display())));
        }
        let real_dir = std::fs::canonicalize(dir)
            .map_err(|e| unavailable(format!("{}: {e}", dir.display())))?;
        let universe = match read_inside(&real_dir, UNIVERSE_FILE) {
            Ok(bytes) => parse_universe(&bytes).map_err(|e| unavailable(e.to_string()))?,
            Err(ReadError::Missing) => {
                let mut syms: Vec<UniverseEntry> = std::fs::read_dir(dir)
                    .map_err(|e| unavailable(format!("{}: {e}", dir.display())))?
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let p = e.path();
                        (p.extension()? == "csv")
                            .then(|| p.file_stem()?.to_str().map(str::to_string))?
                    })
                    // A file whose name is no symbol is not part of the universe.
                    .filter(|s| is_valid_symbol(s))
                    .map(UniverseEntry::bare)
                    .collect();
                syms.sort_by(|a, b| a.symbol.cmp(&b.symbol));
                syms
            }
            Err(e) => return Err(unavailable(format!("{UNIVERSE_FILE}: {e}"))),
        };
        Ok(CsvProvider {
            inner: Arc::new(CsvInner {
                dir: dir.to_path_buf(),
                real_dir,
                universe,
            }),
        })
    }
}

const UNIVERSE_FILE: &str = "universe.csv";

/// Why a file of the data directory was not read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("no such file")]
    Missing,
    #[error("refused: {0}")]
    Refused(&'static str),
    #[error("{0}")]
    Io(std::io::Error),
}

/// Reads `name` from the data directory (`real_dir`, symlinks resolved) when it is a
/// regular file whose real path is inside it. Opened with `O_NONBLOCK` and checked on the
/// open handle, so a FIFO (or a file swapped for one) returns at once instead of blocking.
fn read_inside(real_dir: &Path, name: &str) -> Result<Vec<u8>, ReadError> {
    let real = std::fs::canonicalize(real_dir.join(name)).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::Missing,
        _ => ReadError::Io(e),
    })?;
    if !real.starts_with(real_dir) {
        return Err(ReadError::Refused("it leads outside the data directory"));
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&real)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::Refused("not a regular file"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(ReadError::Io)?;
    Ok(bytes)
}

/// A `universe.csv` that cannot be read. Named relative to the data directory.
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
    #[error("{path}: {} invalid symbol(s), use {SYMBOL_RULE}: {}", .problems.len(), .problems.join("; "))]
    InvalidSymbols { path: String, problems: Vec<String> },
}

fn parse_universe(bytes: &[u8]) -> Result<Vec<UniverseEntry>, UniverseError> {
    let shown = || UNIVERSE_FILE.to_string();
    let unreadable = |e: csv::Error| UniverseError::Unreadable {
        path: shown(),
        message: e.to_string(),
    };
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes);
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
    let mut invalid = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let malformed = |message: String| UniverseError::Malformed {
            path: shown(),
            line: i + 2,
            message,
        };
        let rec = rec.map_err(|e| malformed(e.to_string()))?;
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("").to_string();
        let symbol = get(Some(sym));
        if !is_valid_symbol(&symbol) {
            invalid.push(format!("line {}: {:?}", i + 2, snippet(&symbol)));
            continue;
        }
        let market_cap = match get(cap).as_str() {
            "" => None,
            s => Some(
                s.parse::<f64>()
                    .ok()
                    .filter(|c| c.is_finite() && *c >= 0.0)
                    .ok_or_else(|| {
                        malformed(format!(
                            "market_cap is not a finite number ≥ 0: {:?}",
                            snippet(s)
                        ))
                    })?,
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
    if !invalid.is_empty() {
        return Err(UniverseError::InvalidSymbols {
            path: shown(),
            problems: invalid,
        });
    }
    Ok(out)
}

/// FNV-1a over the sorted `*.csv` entries of `dir`: name, length, modification time.
fn dir_fingerprint(dir: &Path) -> Option<u64> {
    let mut files: Vec<(String, u64, u128)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !name.ends_with(".csv") {
                return None;
            }
            let meta = e.metadata().ok()?;
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            Some((name, meta.len(), modified))
        })
        .collect();
    files.sort_unstable();
    let mut h = crate::fingerprint::Fnv::default();
    for (name, len, modified) in &files {
        h.part(name.as_bytes())
            .part(&len.to_le_bytes())
            .part(&modified.to_le_bytes());
    }
    Some(h.finish())
}

impl CsvInner {
    fn bars(&self, symbol: &str) -> Result<Bars, DataError> {
        let not_found = || DataError::NotFound {
            symbol: symbol.to_string(),
        };
        if !is_valid_symbol(symbol) {
            return Err(not_found());
        }
        let name = format!("{symbol}.csv");
        let invalid = |message: String| DataError::Invalid {
            symbol: symbol.to_string(),
            message,
        };
        let bytes = read_inside(&self.real_dir, &name).map_err(|e| match e {
            ReadError::Missing => not_found(),
            e => invalid(format!("{name}: {e}")),
        })?;
        let bars = parse_bars_csv(&bytes, &name, Columns::Ohlcv)
            .map_err(|e: CsvError| invalid(e.to_string()))?;
        bars.validate()
            .map_err(|e| invalid(format!("{name}: {e}")))?;
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

    /// A fingerprint of the directory's `*.csv` files: name, size and modification time
    /// of each (a file written, added or removed makes a new version). `None` when the
    /// directory cannot be listed.
    async fn data_version(&self) -> Option<String> {
        let dir = self.inner.real_dir.clone();
        tokio::task::spawn_blocking(move || dir_fingerprint(&dir))
            .await
            .ok()
            .flatten()
            .map(|h| format!("{h:016x}"))
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

    const HEADER: &str = "date,open,high,low,close,volume\n";

    fn load(dir: &Path, symbol: &str) -> Result<Bars, DataError> {
        CsvProvider::open(dir).expect("dir").inner.bars(symbol)
    }

    fn invalid_message(r: Result<Bars, DataError>) -> String {
        match r {
            Err(DataError::Invalid { message, .. }) => message,
            other => panic!("expected DATA_INVALID, got {other:?}"),
        }
    }

    #[test]
    fn universe_csv_symbols_follow_the_symbol_rule_and_every_violation_is_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("universe.csv"),
            "symbol,name\nGOOD,Good\n../secret/LEAK,x\n/tmp/x/outside,y\n..,z\n",
        )
        .expect("write");
        let err = CsvProvider::open(dir.path())
            .err()
            .expect("refused")
            .to_string();
        for want in [
            "universe.csv: 3 invalid symbol(s)",
            "line 3: \"../secret/LEAK\"",
            "line 4: \"/tmp/x/outside\"",
            "line 5: \"..\"",
        ] {
            assert!(err.contains(want), "{want}: {err}");
        }
        assert!(!err.contains(&dir.path().display().to_string()), "{err}");
    }

    #[test]
    fn files_outside_the_directory_and_non_regular_files_are_not_read() {
        let outside = tempfile::tempdir().expect("tempdir");
        let secret = outside.path().join("secret.csv");
        std::fs::write(&secret, "root:x:0:0:root:/root:/bin/bash\n").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(&secret, dir.path().join("LINK.csv")).expect("symlink");
        let msg = invalid_message(load(dir.path(), "LINK"));
        assert!(msg.contains("outside the data directory"), "{msg}");
        assert!(!msg.contains("root:x"), "quotes the target: {msg}");

        // A symlink that stays inside is followed.
        std::fs::write(
            dir.path().join("REAL.csv"),
            format!("{HEADER}2024-01-02,1,2,0.5,1.5,10\n"),
        )
        .expect("write");
        std::os::unix::fs::symlink(dir.path().join("REAL.csv"), dir.path().join("ALIAS.csv"))
            .expect("symlink");
        assert_eq!(load(dir.path(), "ALIAS").expect("inside").len(), 1);

        // A FIFO is refused at once, not read (which would block forever).
        let fifo = dir.path().join("PIPE.csv");
        let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
        // SAFETY: mkfifo(3) on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        let path = dir.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(load(&path, "PIPE"));
        });
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a FIFO must not block the read");
        assert!(invalid_message(r).contains("not a regular file"));

        // A symbol that is no symbol never names a path.
        assert!(matches!(
            load(dir.path(), "../secret"),
            Err(DataError::NotFound { .. })
        ));
    }

    #[test]
    fn errors_name_files_relative_to_the_directory_and_quote_only_a_snippet() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("HDR.csv"),
            "root:x:0:0:root:/root:/bin/bash,and,more\n1,2\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("BADF.csv"),
            format!("{HEADER}2024-01-02,1,2,0.5,{},10\n", "9".repeat(200) + "x"),
        )
        .expect("write");
        let hdr = invalid_message(load(dir.path(), "HDR"));
        assert!(hdr.starts_with("HDR.csv: missing column(s)"), "{hdr}");
        assert!(!hdr.contains("/bin/bash"), "more than a snippet: {hdr}");
        let badf = invalid_message(load(dir.path(), "BADF"));
        assert!(
            badf.starts_with("BADF.csv:2: close is not a number"),
            "{badf}"
        );
        assert!(badf.len() < 120, "{badf}");
        for msg in [hdr, badf] {
            assert!(!msg.contains(&dir.path().display().to_string()), "{msg}");
        }
    }

    #[test]
    fn repeated_and_future_dates_and_absurd_prices_are_invalid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, rows: &str| {
            std::fs::write(dir.path().join(name), format!("{HEADER}{rows}")).expect("write")
        };
        write(
            "DUP.csv",
            "2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1,2,0.5,1.5,10\n2024-01-02,1,2,0.5,1.6,10\n",
        );
        write(
            "FUT.csv",
            "2024-01-02,1,2,0.5,1.5,10\n9999-12-31,1,2,0.5,1.5,10\n",
        );
        write("BIG.csv", "2024-01-02,1,1e308,0.5,1.5,10\n");
        write("VOL.csv", "2024-01-02,1,2,0.5,1.5,1e300\n");
        assert_eq!(
            invalid_message(load(dir.path(), "DUP")),
            "DUP.csv:4: date 2024-01-02 repeats line 2"
        );
        assert_eq!(
            invalid_message(load(dir.path(), "FUT")),
            "FUT.csv:3: date 9999-12-31 is in the future"
        );
        assert!(invalid_message(load(dir.path(), "BIG")).contains("high is 1e308"));
        assert!(invalid_message(load(dir.path(), "VOL")).contains("volume is 1e300"));
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
