//! `technic indicators --csv FILE`: the per-bar indicator table of one file of daily bars,
//! as CSV (empty cell for NaN) or JSON (null for NaN), numbers in shortest round-trip form.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;

use super::output::emit;
use crate::data::csv_bars::{read_bars_csv, Columns};
use crate::error::{ErrorCode, UserError};
use crate::indicators::{table, TABLE_COLUMNS};
use crate::market::Bars;
use crate::scan::export::format_number;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TableFormat {
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct IndicatorsArgs {
    /// CSV of daily bars: a header row; date/timestamp, high, low, close (open, volume and
    /// other columns optional), any order, any case.
    #[arg(long, value_name = "FILE")]
    pub csv: PathBuf,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: TableFormat,
    /// Write to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(args: &IndicatorsArgs) -> Result<i32, UserError> {
    let bars = read_bars_csv(&args.csv, Columns::Hlc).map_err(|e| {
        UserError::new(
            ErrorCode::InvalidInput,
            e.to_string(),
            vec!["fix the file; the message names the line or the columns".into()],
        )
    })?;
    check_prices(&bars, &args.csv)?;
    emit(&render(&bars, args.format), args.out.as_deref())?;
    Ok(0)
}

/// High, low and close must be finite numbers for the indicators to mean anything.
fn check_prices(bars: &Bars, file: &std::path::Path) -> Result<(), UserError> {
    for i in 0..bars.len() {
        for (name, v) in [
            ("high", bars.high[i]),
            ("low", bars.low[i]),
            ("close", bars.close[i]),
        ] {
            if !v.is_finite() {
                return Err(UserError::new(
                    ErrorCode::InvalidInput,
                    format!("{}: bar {}: {name} is {v}", file.display(), bars.dates[i]),
                    vec!["fix or remove that row".into()],
                ));
            }
        }
    }
    Ok(())
}

/// The table as text.
pub fn render(bars: &Bars, format: TableFormat) -> String {
    let t = table(&bars.high, &bars.low, &bars.close);
    let cols = t.columns();
    let mut out = String::with_capacity(bars.len() * 14 * 20);
    match format {
        TableFormat::Csv => {
            out.push_str("date");
            for name in TABLE_COLUMNS {
                out.push(',');
                out.push_str(name);
            }
            out.push('\n');
            for i in 0..bars.len() {
                let _ = write!(out, "{}", bars.dates[i]);
                for col in &cols {
                    out.push(',');
                    out.push_str(&format_number(col[i]));
                }
                out.push('\n');
            }
        }
        TableFormat::Json => {
            out.push('[');
            for i in 0..bars.len() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "\n{{\"date\":\"{}\"", bars.dates[i]);
                for (name, col) in TABLE_COLUMNS.iter().zip(&cols) {
                    let v = format_number(col[i]);
                    let _ = write!(
                        out,
                        ",\"{name}\":{}",
                        if v.is_empty() { "null" } else { &v }
                    );
                }
                out.push('}');
            }
            out.push_str("\n]\n");
        }
    }
    out
}
