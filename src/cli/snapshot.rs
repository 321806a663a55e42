//! `technic snapshot --data SOURCE --out DIR`: writes bars in the `csv` provider's layout
//! (`DIR/SYMBOL.csv` + `DIR/universe.csv`), for offline copies, fixtures and benchmarks.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use rayon::prelude::*;

use super::output::format_number;
use crate::config::Settings;
use crate::data::{self, BarRange, DataSource};
use crate::error::{ErrorCode, UserError};
use crate::market::{Bars, UniverseEntry};

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Source to copy from: `synthetic` (default) or `csv:DIR`.
    #[arg(long, default_value = "synthetic")]
    pub data: String,
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of symbols (synthetic: generated; csv: the first N).
    #[arg(long, value_name = "N")]
    pub universe_size: Option<usize>,
}

pub async fn run(args: &SnapshotArgs, settings: &Settings) -> Result<i32, UserError> {
    let bad = |m: String| UserError::new(ErrorCode::InvalidInput, m, vec![]);
    let source: DataSource = args.data.parse().map_err(bad)?;
    let provider =
        data::open(&source, &settings.data.synthetic, args.universe_size).map_err(|e| {
            UserError::new(
                ErrorCode::DataProviderUnavailable,
                e.to_string(),
                vec![e.suggestion().into()],
            )
        })?;
    let mut universe = provider.universe().await.map_err(|e| {
        UserError::new(
            ErrorCode::DataProviderUnavailable,
            e.to_string(),
            vec![e.suggestion().into()],
        )
    })?;
    if let Some(n) = args.universe_size {
        universe.truncate(n);
    }
    std::fs::create_dir_all(&args.out).map_err(|e| bad(format!("{}: {e}", args.out.display())))?;
    let symbols: Vec<String> = universe.iter().map(|e| e.symbol.clone()).collect();
    let range = BarRange {
        as_of: None,
        lookback: usize::MAX,
    };
    let loaded = provider.load_many(&symbols, range).await;
    let dir = args.out.clone();
    let written: Result<Vec<()>, String> = crate::cpu::run(move || {
        symbols
            .par_iter()
            .zip(loaded)
            .filter_map(|(s, bars)| {
                bars.ok()
                    .map(|b| write_bars(&dir.join(format!("{s}.csv")), &b))
            })
            .collect()
    })
    .await;
    written.map_err(bad)?;
    write_universe(&args.out.join("universe.csv"), &universe).map_err(bad)?;
    eprintln!("wrote {} symbols to {}", universe.len(), args.out.display());
    Ok(0)
}

fn write_bars(path: &Path, b: &Bars) -> Result<(), String> {
    let mut s = String::with_capacity(b.len() * 64 + 40);
    s.push_str("date,open,high,low,close,volume\n");
    for i in 0..b.len() {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{}",
            b.dates[i],
            format_number(b.open[i]),
            format_number(b.high[i]),
            format_number(b.low[i]),
            format_number(b.close[i]),
            format_number(b.volume[i])
        );
    }
    std::fs::write(path, s).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_universe(path: &Path, universe: &[UniverseEntry]) -> Result<(), String> {
    let mut w = csv::Writer::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let err = |e: csv::Error| format!("{}: {e}", path.display());
    w.write_record(["symbol", "name", "sector", "industry", "market_cap"])
        .map_err(err)?;
    for e in universe {
        let cap = e.market_cap.map(format_number).unwrap_or_default();
        w.write_record([&e.symbol, &e.name, &e.sector, &e.industry, &cap])
            .map_err(err)?;
    }
    w.flush().map_err(|e| format!("{}: {e}", path.display()))
}
