//! `technic snapshot --data SOURCE --out DIR [--from --to --symbols]`: writes bars in the
//! `csv` provider's layout (`DIR/SYMBOL.csv` + `DIR/universe.csv`), for offline copies
//! (e.g. of Polygon data, which then serves as a fallback source), fixtures and benchmarks.
//!
//! Symbols are loaded in chunks (one provider call each, so a remote provider's bulk path
//! and rate limit apply) and written as they arrive. A symbol that cannot be loaded is
//! listed with its code and left out of `universe.csv`; the command fails only when no
//! symbol could be written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate, Weekday};
use clap::Args;
use rayon::prelude::*;

use super::say;
use crate::config::Settings;
use crate::data::{BarRange, DataError, DataSource};
use crate::error::{ErrorCode, UserError};
use crate::market::{Bars, UniverseEntry};
use crate::node::{invalid_options, NodeArgs, NodePlan, Role};
use crate::scan::export::format_number;

/// Symbols per provider call: large enough for bulk loads, small enough to write as we go.
const CHUNK: usize = 256;

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of symbols (synthetic: generated; otherwise the first N listed).
    #[arg(long, value_name = "N")]
    pub universe_size: Option<usize>,
    /// First date to copy (YYYY-MM-DD). Default: every bar a local source has; for
    /// polygon, the scan.lookback_days trading days up to --to.
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Last date to copy (YYYY-MM-DD). Default: the latest bar.
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Only these symbols (comma-separated). Default: the source's universe.
    #[arg(long, value_name = "LIST")]
    pub symbols: Option<String>,
    /// --data is the source to copy from (default: data.source).
    #[command(flatten)]
    pub node: NodeArgs,
}

/// What to copy, or every problem with the options.
struct Plan {
    node: NodePlan,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    symbols: Vec<String>,
}

fn plan(args: &SnapshotArgs, settings: &Settings) -> Result<Plan, UserError> {
    let mut problems = Vec::new();
    let node = args
        .node
        .plan(settings, Role::Snapshot)
        .map_err(|p| problems.extend(p))
        .ok();
    let mut date = |name: &str, v: &Option<String>| {
        let s = v.as_deref()?;
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|_| problems.push(format!("--{name}: {s:?} is not a date in YYYY-MM-DD form")))
            .ok()
    };
    let (from, to) = (date("from", &args.from), date("to", &args.to));
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            problems.push(format!("--from {f} is after --to {t}"));
        }
    }
    let symbols = args
        .symbols
        .as_deref()
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_ascii_uppercase())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    match node {
        Some(node) if problems.is_empty() => Ok(Plan {
            node,
            from,
            to,
            symbols,
        }),
        _ => Err(invalid_options("snapshot", problems)),
    }
}

/// Trading days (weekdays) from `from` to `to`, inclusive: the lookback that covers them.
fn weekdays_between(from: NaiveDate, to: NaiveDate) -> usize {
    from.iter_days()
        .take_while(|d| *d <= to)
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .count()
}

pub async fn run(args: &SnapshotArgs, settings: &Settings) -> Result<i32, UserError> {
    let plan = plan(args, settings)?;
    let provider = plan.node.provider(settings, args.universe_size, &[])?;
    let remote = plan.node.sources.first() == Some(&DataSource::Polygon);

    // The universe: the listed symbols (with metadata when the source lists it cheaply).
    let mut universe = if plan.symbols.is_empty() || !remote {
        provider.universe().await?
    } else {
        Vec::new()
    };
    if !plan.symbols.is_empty() {
        universe = plan
            .symbols
            .iter()
            .map(|s| {
                universe
                    .iter()
                    .find(|e| e.symbol.eq_ignore_ascii_case(s))
                    .cloned()
                    .unwrap_or_else(|| UniverseEntry::bare(s.clone()))
            })
            .collect();
    }
    if let Some(n) = args.universe_size {
        universe.truncate(n);
    }
    std::fs::create_dir_all(&args.out).map_err(|e| WriteError::at(&args.out, e))?;

    let lookback = match (plan.from, remote) {
        (Some(f), _) => weekdays_between(
            f,
            plan.to.unwrap_or_else(|| chrono::Utc::now().date_naive()),
        )
        .max(1),
        (None, true) => settings.scan.lookback_days,
        (None, false) => usize::MAX,
    };
    let range = BarRange::new(plan.to, lookback).with_scan_symbols(universe.len());
    let mut written = Vec::with_capacity(universe.len());
    let mut failures: Vec<(String, DataError)> = Vec::new();
    for chunk in universe.chunks(CHUNK) {
        let symbols: Vec<String> = chunk.iter().map(|e| e.symbol.clone()).collect();
        let loaded = provider.load_many(&symbols, range).await;
        let mut ok = Vec::with_capacity(chunk.len());
        for (entry, r) in chunk.iter().zip(loaded) {
            match r.map(|b| clip(&b, plan.from, plan.to, lookback)) {
                Ok(b) if !b.is_empty() => ok.push((entry.clone(), b)),
                Ok(_) => failures.push((
                    entry.symbol.clone(),
                    DataError::NotFound {
                        symbol: entry.symbol.clone(),
                    },
                )),
                Err(e) => failures.push((entry.symbol.clone(), e)),
            }
        }
        let dir = args.out.clone();
        let entries = crate::cpu::run(move || {
            ok.par_iter()
                .map(|(e, b)| {
                    write_bars(&dir.join(format!("{}.csv", e.symbol)), b).map(|()| e.clone())
                })
                .collect::<Result<Vec<UniverseEntry>, WriteError>>()
        })
        .await?;
        written.extend(entries);
        if remote {
            say::info(&format!(
                "snapshot: {}/{} symbols loaded",
                written.len() + failures.len(),
                universe.len()
            ));
        }
    }
    if written.is_empty() && !failures.is_empty() {
        return Err(failures.swap_remove(0).1.into());
    }
    write_universe(&args.out.join("universe.csv"), &written)?;
    say::info(&format!(
        "wrote {} symbols to {}",
        written.len(),
        args.out.display()
    ));
    if !failures.is_empty() {
        say::info(&format!(
            "{} symbols could not be copied (left out of universe.csv):",
            failures.len()
        ));
        for (s, e) in failures.iter().take(10) {
            say::info_with(
                &format!("  {s} [{}]: {e}; {}", e.code(), e.suggestion()),
                serde_json::json!({"symbol": s, "code": e.code()}),
            );
        }
        if failures.len() > 10 {
            say::info(&format!("  … and {} more", failures.len() - 10));
        }
    }
    Ok(0)
}

/// The bars within `from..=to` (when given); without `from`, the last `lookback` bars.
fn clip(b: &Bars, from: Option<NaiveDate>, to: Option<NaiveDate>, lookback: usize) -> Bars {
    let view = b.window(to, if from.is_some() { usize::MAX } else { lookback });
    let mut out = Bars::with_capacity(view.len());
    for i in 0..view.len() {
        if from.is_none_or(|f| view.dates[i] >= f) {
            out.push(
                view.dates[i],
                view.open[i],
                view.high[i],
                view.low[i],
                view.close[i],
                view.volume[i],
            );
        }
    }
    out
}

fn write_bars(path: &Path, b: &Bars) -> Result<(), WriteError> {
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
    std::fs::write(path, s).map_err(|e| WriteError::at(path, e))
}

fn write_universe(path: &Path, universe: &[UniverseEntry]) -> Result<(), WriteError> {
    let mut w = csv::Writer::from_path(path).map_err(|e| WriteError::at(path, e))?;
    let err = |e: csv::Error| WriteError::at(path, e);
    w.write_record(["symbol", "name", "sector", "industry", "market_cap"])
        .map_err(err)?;
    for e in universe {
        let cap = e.market_cap.map(format_number).unwrap_or_default();
        w.write_record([&e.symbol, &e.name, &e.sector, &e.industry, &cap])
            .map_err(err)?;
    }
    w.flush().map_err(|e| WriteError::at(path, e))
}

/// A file of the snapshot that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {message}")]
struct WriteError {
    path: String,
    message: String,
}

impl WriteError {
    fn at(path: &Path, e: impl std::fmt::Display) -> Self {
        WriteError {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}

impl From<WriteError> for UserError {
    fn from(e: WriteError) -> Self {
        UserError::new(
            ErrorCode::InvalidInput,
            e.to_string(),
            vec!["check the output directory and its permissions".into()],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, m, day).expect("date")
    }

    #[test]
    fn clip_keeps_the_requested_dates() {
        let mut b = Bars::default();
        for day in 1..=10 {
            b.push(d(1, day), 1.0, 2.0, 0.5, 1.5, 10.0);
        }
        assert_eq!(
            clip(&b, Some(d(1, 3)), Some(d(1, 5)), 1).dates,
            [d(1, 3), d(1, 4), d(1, 5)]
        );
        assert_eq!(clip(&b, None, Some(d(1, 5)), 2).dates, [d(1, 4), d(1, 5)]);
        assert_eq!(clip(&b, None, None, usize::MAX).len(), 10);
    }

    #[test]
    fn bad_options_are_reported_together() {
        let args = SnapshotArgs {
            out: "/tmp/x".into(),
            universe_size: None,
            from: Some("2024-02-30".into()),
            to: Some("yesterday".into()),
            symbols: None,
            node: NodeArgs {
                data: Some("ftp:x".into()),
                ..NodeArgs::default()
            },
        };
        let err = plan(&args, &Settings::defaults()).err().expect("invalid");
        for needle in ["--data", "--from", "--to"] {
            assert!(err.message.contains(needle), "{needle}: {}", err.message);
        }
        assert_eq!(weekdays_between(d(1, 5), d(1, 8)), 2, "Friday and Monday");
    }
}
