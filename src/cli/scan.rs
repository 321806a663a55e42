//! `technic scan`: coordinator + local workers in this process, live progress on stderr,
//! ranked results on stdout (table, JSON or CSV). Ctrl-C cancels and prints the partial
//! report. With `--redis` the scan goes through the cluster's Redis Streams queue: this
//! process coordinates, and every `technic worker` node (plus its own local workers,
//! unless `--workers 0`) takes shards.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use indicatif::{ProgressBar, ProgressStyle};

use super::output::{emit, OutputFormat};
use super::say;
use super::signals::Signals;
use crate::cluster::{thousands, Progress, ScanHandle};
use crate::config::Settings;
use crate::error::UserError;
use crate::node::{invalid_options, NodeArgs, NodePlan, Role};
use crate::scan::export::results_csv;
use crate::scan::{ScanConfig, ScanReport, ScanStatus, Signal, SortKey};

/// Numeric and list options are taken as text and checked together, so one run reports
/// every problem at once (exit status 2).
#[derive(Debug, Default, Args)]
#[command(allow_negative_numbers = true)]
pub struct ScanArgs {
    /// Number of symbols in the universe (synthetic: generated; csv: the first N).
    #[arg(long, value_name = "N")]
    pub universe_size: Option<String>,
    /// Only these symbols (comma-separated).
    #[arg(long, value_name = "LIST")]
    pub symbols: Option<String>,
    /// The universe is this saved watchlist (`technic watchlist save`).
    #[arg(long, value_name = "NAME")]
    pub watchlist: Option<String>,
    /// Only these sectors (comma-separated, case-insensitive).
    #[arg(long, value_name = "LIST")]
    pub sectors: Option<String>,
    /// Only these industries (comma-separated, case-insensitive).
    #[arg(long, value_name = "LIST")]
    pub industries: Option<String>,
    /// Minimum market cap in dollars.
    #[arg(long, value_name = "USD")]
    pub min_market_cap: Option<String>,
    /// Minimum bars of history.
    #[arg(long, value_name = "N")]
    pub min_bars: Option<String>,
    /// Minimum last close.
    #[arg(long, value_name = "USD")]
    pub min_price: Option<String>,
    /// Minimum 20-day mean dollar volume.
    #[arg(long, value_name = "USD")]
    pub min_dollar_volume: Option<String>,
    /// Minimum TechRating.
    #[arg(long, value_name = "X")]
    pub min_tech_rating: Option<String>,
    /// Keep only these signals (comma-separated, e.g. `strong_long,long`).
    #[arg(long, value_name = "LIST")]
    pub signals: Option<String>,
    /// Most recent trading days (bars) used per symbol.
    #[arg(long, value_name = "N")]
    pub lookback_days: Option<String>,
    /// Scan as of this date (YYYY-MM-DD): the latest bar on or before it.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Keep the top N results (table default: scan.table_rows; JSON/CSV default: all).
    #[arg(long, value_name = "N")]
    pub top: Option<String>,
    /// Rank by this key (descending; ties by symbol).
    #[arg(long, value_enum)]
    pub sort: Option<SortKey>,
    /// At most N results per sector.
    #[arg(long, value_name = "N")]
    pub sector_cap: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// Write the output to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Serve this alpha model (`technic ml train` writes one; default ml.model): results
    /// gain alpha_5d, alpha_10d and the blended score.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Serve the model even though it was not accepted.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// The node to start and the scan config, or every problem found.
pub struct Plan {
    pub node: NodePlan,
    pub config: ScanConfig,
}

impl Plan {
    /// The cluster's Redis, when the scan goes through one.
    pub fn redis(&self) -> Option<&str> {
        match &self.node.queue {
            crate::cluster::QueueTarget::Redis(url) => Some(url),
            crate::cluster::QueueTarget::InProcess => None,
        }
    }
}

fn list(s: &Option<String>) -> Vec<String> {
    s.as_deref()
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

pub fn plan(args: &ScanArgs, settings: &Settings) -> Result<Plan, UserError> {
    let mut problems = Vec::new();
    let mut config = ScanConfig::from_settings(&settings.scan);

    fn num<T: std::str::FromStr>(
        name: &str,
        v: &Option<String>,
        problems: &mut Vec<String>,
    ) -> Option<T> {
        let s = v.as_deref()?;
        match s.trim().parse::<T>() {
            Ok(x) => Some(x),
            Err(_) => {
                problems.push(format!("--{name}: {s:?} is not a valid number"));
                None
            }
        }
    }
    let node = args
        .node
        .plan(settings, Role::Scan)
        .map_err(|p| problems.extend(p))
        .ok();
    config.universe_size = num("universe-size", &args.universe_size, &mut problems);
    config.symbols = list(&args.symbols)
        .into_iter()
        .map(|s| s.to_ascii_uppercase())
        .collect();
    config.watchlist = args.watchlist.clone();
    config.sectors = list(&args.sectors);
    config.industries = list(&args.industries);
    config.min_market_cap = num("min-market-cap", &args.min_market_cap, &mut problems);
    if let Some(v) = num("min-bars", &args.min_bars, &mut problems) {
        config.min_bars = v;
    }
    if let Some(v) = num("min-price", &args.min_price, &mut problems) {
        config.min_price = v;
    }
    if let Some(v) = num("min-dollar-volume", &args.min_dollar_volume, &mut problems) {
        config.min_dollar_volume = v;
    }
    config.min_tech_rating = num("min-tech-rating", &args.min_tech_rating, &mut problems);
    for s in list(&args.signals) {
        match s.parse::<Signal>() {
            Ok(sig) => config.signals.push(sig),
            Err(e) => problems.push(format!("--signals: {e}")),
        }
    }
    if let Some(v) = num("lookback-days", &args.lookback_days, &mut problems) {
        config.lookback_days = v;
    }
    if let Some(s) = args.as_of.as_deref() {
        match chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
            Ok(d) => config.as_of = Some(d),
            Err(_) => problems.push(format!("--as-of: {s:?} is not a date in YYYY-MM-DD form")),
        }
    }
    config.top = num("top", &args.top, &mut problems);
    if let Some(k) = args.sort {
        config.sort = k;
    }
    config.sector_cap = num("sector-cap", &args.sector_cap, &mut problems);
    if config.universe_conflict().is_some() {
        problems.push("--symbols and --watchlist both give the universe: keep one".into());
    }
    // Field problems, with CLI spelling, after the parse problems.
    if let Err(e) = config.validate(settings.scan.max_universe_size) {
        problems.extend(e.problems.into_iter().map(|p| match p.split_once(' ') {
            Some((field, rest)) if field.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
                format!("--{} {rest}", field.replace('_', "-"))
            }
            _ => p,
        }));
    }
    match node {
        Some(node) if problems.is_empty() => Ok(Plan { node, config }),
        _ => Err(invalid_options("scan", problems)),
    }
}

pub async fn run(args: ScanArgs, settings: &Settings) -> Result<i32, UserError> {
    let mut plan = plan(&args, settings)?;
    if plan.config.watchlist.is_some() {
        let library = crate::screens::Library::open(settings, plan.redis())?;
        plan.config = library
            .resolve(plan.config, settings.scan.max_universe_size)
            .await?;
    }
    let table_rows = plan.config.top.unwrap_or(settings.scan.table_rows);
    let report = execute(
        plan,
        settings,
        args.model.as_deref(),
        args.force,
        args.quiet,
    )
    .await?;
    print_report(&report, args.format, args.out.as_deref(), table_rows)?;
    Ok(match report.status {
        ScanStatus::Completed => 0,
        ScanStatus::Cancelled => 130,
    })
}

/// Runs the planned scan in this process, serving `model` (else ml.model), with a
/// progress view unless `quiet`: its report.
pub async fn execute(
    plan: Plan,
    settings: &Settings,
    model: Option<&std::path::Path>,
    force: bool,
    quiet: bool,
) -> Result<ScanReport, UserError> {
    let mut settings = settings.clone();
    if let Some(model) = model {
        settings.ml.model = model.display().to_string();
    }
    settings.ml.force |= force;
    let settings = &settings;
    let mut node = plan
        .node
        .start(
            settings.clone(),
            plan.config.universe_size,
            &plan.config.symbols,
            None,
        )
        .await?;
    let Some(cluster) = node.cluster.take() else {
        node.stop().await;
        return Err(UserError::internal("the scan's cluster did not start"));
    };
    let handle = cluster.submit(plan.config).await?;
    // A live bar only on a terminal and outside JSON log mode.
    let view = match (quiet, std::io::stderr().is_terminal() && !say::is_json()) {
        (true, _) => ProgressView::Hidden,
        (false, true) => ProgressView::Bar,
        (false, false) => ProgressView::Lines,
    };
    let report = await_with_progress(handle, view).await;
    cluster.shutdown().await;
    node.stop().await;
    report
}

/// How progress reaches the user: a live bar on a terminal, one line per stage change
/// when stderr is a pipe or file (logs stay readable), nothing with `--quiet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProgressView {
    Bar,
    Lines,
    Hidden,
}

/// Shows progress from the coordinator's progress events until the report arrives;
/// Ctrl-C cancels the scan (the report then comes back partial).
async fn await_with_progress(
    handle: ScanHandle,
    view: ProgressView,
) -> Result<ScanReport, UserError> {
    let mut interrupts = Signals::interrupt();
    let bar = (view == ProgressView::Bar).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner:.green} [{elapsed_precise}] {bar:30.cyan/blue} {percent:>3}% {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    let mut progress = handle.progress.clone();
    let cancel_handle = &handle;
    let watcher = async {
        let mut cancelled = false;
        let mut last_stage = None;
        loop {
            tokio::select! {
                changed = progress.changed() => {
                    if changed.is_err() { break; }
                    let p = progress.borrow_and_update().clone();
                    if let Some(bar) = &bar { draw(bar, &p); }
                    if view == ProgressView::Lines && last_stage != Some(p.stage) {
                        say::info_with(
                            &format!("[{}] {}", p.stage.as_str(), p.message),
                            serde_json::json!({"scan_id": cancel_handle.id, "stage": p.stage.as_str(), "done": p.done, "total": p.total}),
                        );
                        last_stage = Some(p.stage);
                    }
                    if p.stage.is_terminal() { break; }
                }
                _ = interrupts.recv(), if !cancelled => {
                    cancelled = true;
                    say::info(&format!("\ncancelling scan {}…", cancel_handle.id));
                    cancel_handle.cancel();
                }
            }
        }
    };
    watcher.await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    handle.report().await
}

fn draw(bar: &ProgressBar, p: &Progress) {
    bar.set_length(p.total.max(1) as u64);
    bar.set_position(p.done as u64);
    let eta = p
        .eta_seconds
        .map(|s| format!(" · ETA {s:.1}s"))
        .unwrap_or_default();
    bar.set_message(format!("{} · {}{eta}", p.stage.as_str(), p.message));
}

pub fn print_report(
    report: &ScanReport,
    format: OutputFormat,
    out: Option<&std::path::Path>,
    table_rows: usize,
) -> Result<(), UserError> {
    let ser =
        |e: serde_json::Error| UserError::internal(&format!("cannot serialise the report: {e}"));
    match format {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(report).map_err(ser)?;
            text.push('\n');
            emit(&text, out)?;
        }
        OutputFormat::Csv => {
            emit(&results_csv(&report.results).map_err(ser)?, out)?;
        }
        OutputFormat::Table => {
            if report.results.is_empty() {
                say::info(&empty_message(report));
            } else {
                emit(&format!("{}\n", table(report, table_rows)), out)?;
            }
            summary(report);
            return Ok(());
        }
    }
    if report.results.is_empty() {
        say::info(&empty_message(report));
    }
    if out.is_some() {
        summary(report);
    }
    Ok(())
}

/// The one-line summary on stderr (with the timing as fields in JSON mode).
fn summary(report: &ScanReport) {
    say::info_with(
        &summary_line(report),
        serde_json::json!({
            "scan_id": report.id,
            "scanned": report.scanned,
            "results": report.results.len(),
            "failed": report.failures.len(),
            "warnings": report.warnings,
            "timing": report.timing,
        }),
    );
}

/// The result table; with alphas (a model served the scan) three more columns: the
/// predicted 5- and 10-day returns in percent and the blended score.
fn table(report: &ScanReport, rows: usize) -> Table {
    let alphas = report.model.is_some();
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec![
        "#",
        "Symbol",
        "Sector",
        "Close",
        "RSI",
        "MACD h",
        "ATR%",
        "Trd",
        "Mom",
        "Vol",
        "Vlt",
        "Osc",
        "Brk",
        "TechRating",
        "Signal",
        "Entry",
        "Stop",
        "Target",
        "Size",
    ];
    if alphas {
        header.extend(["α5d%", "α10d%", "Score"]);
    }
    t.set_header(header);
    let f2 = |x: f64| {
        if x.is_finite() {
            format!("{x:.2}")
        } else {
            "–".into()
        }
    };
    for (i, r) in report.results.iter().take(rows).enumerate() {
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        let mut row = vec![
            right((i + 1).to_string()),
            Cell::new(&r.symbol),
            Cell::new(&r.sector),
            right(f2(r.close)),
            right(format!("{:.1}", r.rsi_14)),
            right(format!("{:.3}", r.macd_hist)),
            right(format!("{:.2}", r.atr_pct_14 * 100.0)),
            right(r.trend.to_string()),
            right(r.momentum.to_string()),
            right(r.volume.to_string()),
            right(r.volatility.to_string()),
            right(r.oscillator.to_string()),
            right(r.breakout.to_string()),
            right(format!("{:.2}", r.tech_rating)),
            Cell::new(r.signal.as_str()),
            right(f2(r.entry)),
            right(f2(r.stop)),
            right(f2(r.target)),
            right(r.position_size.to_string()),
        ];
        if alphas {
            row.extend([
                right(format!("{:.2}", r.alpha_5d * 100.0)),
                right(format!("{:.2}", r.alpha_10d * 100.0)),
                right(f2(r.score)),
            ]);
        }
        t.add_row(row);
    }
    t
}

fn summary_line(r: &ScanReport) -> String {
    let status = match r.status {
        ScanStatus::Completed => "",
        ScanStatus::Cancelled => " · CANCELLED (partial results)",
    };
    let cache = r
        .timing
        .cache_hit_rate
        .map_or("cache off".to_string(), |h| {
            format!("cache hit rate {:.1}%", h * 100.0)
        });
    let mut line = format!(
        "{} symbols scanned in {:.3} s ({} symbols/s) · {} results · {} failed · {}{}",
        thousands(r.scanned),
        r.timing.total_seconds,
        thousands(r.timing.symbols_per_second.round() as usize),
        thousands(r.results.len()),
        thousands(r.failures.len()),
        cache,
        status
    );
    if let Some(m) = &r.model {
        line.push_str(&format!(" · alphas by model {m}"));
    }
    if let Some(c) = &r.from_cache {
        line.push_str(&format!(
            " · answered from the scan cache (scan {}, {})",
            c.scan_id,
            c.finished_at.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    // 1 is the universe's first uncached scan itself: nothing to compare yet.
    if let Some(x) = r.timing.speedup.filter(|x| (x - 1.0).abs() > f64::EPSILON) {
        line.push_str(&format!(" · {x:.1}× the first uncached scan's speed"));
    }
    let st = &r.timing.stages;
    if st.bulk_symbols > 0 {
        line.push_str(&format!(" · {} bulk-loaded", thousands(st.bulk_symbols)));
    }
    if st.fallback_symbols > 0 {
        line.push_str(&format!(
            " · {} from a fallback source",
            thousands(st.fallback_symbols)
        ));
    }
    for w in &r.warnings {
        line.push_str(&format!("\n  warning [{}]: {}", w.code.as_str(), w.message));
        for s in &w.suggestions {
            line.push_str(&format!("\n    hint: {s}"));
        }
    }
    for f in r.failures.iter().take(5) {
        line.push_str(&format!(
            "\n  failed {} [{}]: {}",
            f.symbol, f.code, f.message
        ));
    }
    if r.failures.len() > 5 {
        line.push_str(&format!(
            "\n  … and {} more failures (see --format json)",
            r.failures.len() - 5
        ));
    }
    line
}

fn empty_message(r: &ScanReport) -> String {
    let mut msg = format!(
        "no symbols passed the filters ({} scanned)",
        thousands(r.scanned)
    );
    for (reason, n) in &r.filtered {
        msg.push_str(&format!("\n  {}: {}", thousands(*n), reason.describe()));
    }
    msg.push_str(
        "\n  hint: lower --min-price, --min-dollar-volume or --min-tech-rating, or widen --signals",
    );
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DataSource;
    use crate::error::ErrorCode;
    use clap::Parser;

    fn parse(argv: &[&str]) -> ScanArgs {
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Scan(a) => a,
            _ => unreachable!("scan command parsed"),
        }
    }

    #[test]
    fn every_bad_option_is_reported_at_once() {
        let args = parse(&[
            "technic",
            "scan",
            "--min-price",
            "abc",
            "--top",
            "0",
            "--signals",
            "long,sideways",
            "--as-of",
            "2024-13-01",
            "--data",
            "ftp:x",
            "--min-dollar-volume",
            "-1",
        ]);
        let err = plan(&args, &Settings::defaults()).err().expect("invalid");
        assert_eq!(err.code, ErrorCode::InvalidConfig);
        for needle in [
            "--min-price",
            "--top",
            "sideways",
            "--as-of",
            "--data",
            "--min-dollar-volume",
        ] {
            assert!(
                err.message.contains(needle),
                "{needle} missing in {}",
                err.message
            );
        }
        assert!(err.message.contains("(6 problems)"), "{}", err.message);
        assert_eq!(err.code.exit_code(), 2);
    }

    #[test]
    fn options_map_onto_the_scan_config() {
        let args = parse(&[
            "technic",
            "scan",
            "--symbols",
            "aapl, msft",
            "--sectors",
            "Energy",
            "--min-price",
            "5",
            "--top",
            "3",
            "--signals",
            "strong_long,long",
            "--as-of",
            "2025-06-30",
            "--lookback-days",
            "300",
            "--workers",
            "2",
        ]);
        let p = plan(&args, &Settings::defaults())
            .map_err(|e| e.render())
            .expect("valid");
        assert_eq!(p.config.symbols, ["AAPL", "MSFT"]);
        assert_eq!(p.config.sectors, ["Energy"]);
        assert_eq!(p.config.min_price, 5.0);
        assert_eq!(p.config.top, Some(3));
        assert_eq!(p.config.signals, [Signal::StrongLong, Signal::Long]);
        assert_eq!(p.config.lookback_days, 300);
        assert_eq!(p.node.workers, 2);
        assert_eq!(p.node.sources, [DataSource::Synthetic]);
    }
}
