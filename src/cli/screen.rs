//! `technic screen …` (saved screens: save, list, show, run, runs, delete) and
//! `technic watchlist …` (named symbol lists: save, import, export, list, show, delete).
//! They use the cluster's Redis with `--redis` (or cluster.redis_url), else the local file
//! of `screens.path`: the same library `technic serve` uses.

use std::path::PathBuf;

use chrono::Utc;
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::output::{emit, OutputFormat};
use super::say;
use super::scan::{execute, plan, print_report, ScanArgs};
use crate::config::Settings;
use crate::error::{ErrorCode, UserError};
use crate::node::{invalid_options, NodeArgs};
use crate::scan::name_problems;
use crate::screens::{
    symbols_from_csv, symbols_to_csv, Library, Outcome, RunStart, Schedule, Trigger,
};

#[derive(Debug, Args)]
pub struct ScreenArgs {
    #[command(subcommand)]
    pub command: ScreenCommand,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum ScreenCommand {
    /// Save a screen: NAME and the options of `technic scan` (a new version if it exists).
    Save {
        name: String,
        /// Run it on this schedule: `[SECONDS] MINUTES HOURS DAY MONTH WEEKDAY`, e.g.
        /// "0 15 16 * * Mon-Fri" (by `technic serve`'s leader).
        #[arg(long, value_name = "CRON")]
        cron: Option<String>,
        /// The schedule's IANA time zone (default UTC).
        #[arg(long, value_name = "TZ", requires = "cron")]
        timezone: Option<String>,
        #[command(flatten)]
        scan: ScanArgs,
    },
    /// List the screens.
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Print a screen as JSON.
    Show {
        name: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Run a screen now, in this process: its results, and its difference from the last run
    /// (sent to the webhooks that follow it).
    Run {
        name: String,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// A screen's runs, newest first, as JSON.
    Runs {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Delete a screen and its history.
    Delete {
        name: String,
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Debug, Args)]
pub struct WatchlistArgs {
    #[command(subcommand)]
    pub command: WatchlistCommand,
    #[command(flatten)]
    pub node: NodeArgs,
}

#[derive(Debug, Subcommand)]
pub enum WatchlistCommand {
    /// Save a watchlist of these symbols (replacing one of that name).
    Save {
        name: String,
        #[arg(required = true)]
        symbols: Vec<String>,
    },
    /// Save a watchlist from a CSV file: the first column of each row (a `symbol` header
    /// is skipped).
    Import { name: String, file: PathBuf },
    /// Print a watchlist as CSV.
    Export {
        name: String,
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// List the watchlists.
    List,
    /// Print a watchlist as JSON.
    Show { name: String },
    /// Delete a watchlist.
    Delete { name: String },
}

/// The library the node flags point at.
fn library(node: &NodeArgs, settings: &Settings) -> Result<Library, UserError> {
    let configured = Some(settings.cluster.redis_url.trim()).filter(|u| !u.is_empty());
    Library::open(settings, node.redis.as_deref().or(configured))
}

fn json(v: &impl serde::Serialize) -> Result<(), UserError> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| UserError::internal(&format!("cannot serialise: {e}")))?;
    emit(&format!("{text}\n"), None)
}

fn check_name(kind: &str, name: &str) -> Result<(), UserError> {
    match name_problems(kind, name) {
        Some(p) => Err(invalid_options(kind, vec![p])),
        None => Ok(()),
    }
}

pub async fn run_screen(args: ScreenArgs, settings: &Settings) -> Result<i32, UserError> {
    match args.command {
        ScreenCommand::Save {
            name,
            cron,
            timezone,
            scan,
        } => {
            let mut problems: Vec<String> = name_problems("screen", &name).into_iter().collect();
            let schedule = cron.map(|cron| Schedule {
                cron,
                timezone: timezone.unwrap_or_else(|| "UTC".into()),
            });
            if let Some(Err(p)) = schedule.as_ref().map(Schedule::parse) {
                problems.extend(p);
            }
            let plan = plan(&scan, settings);
            if let Err(e) = &plan {
                problems.push(e.message.clone());
            }
            let plan = match plan {
                Ok(p) if problems.is_empty() => p,
                _ => return Err(invalid_options("screen save", problems)),
            };
            let lib = Library::open(settings, plan.redis())?;
            if let Some(w) = &plan.config.watchlist {
                lib.watchlist(w).await?;
            }
            let screen = lib.save_screen(&name, plan.config, schedule, false).await?;
            say::info(&format!(
                "saved screen {} (version {}) in {}",
                screen.name,
                screen.version,
                lib.store().location()
            ));
            Ok(0)
        }
        ScreenCommand::List { format, node } => {
            let lib = library(&node, settings)?;
            let screens = lib.screens().await?;
            if format == OutputFormat::Json {
                json(&screens)?;
                return Ok(0);
            }
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header([
                "screen",
                "version",
                "schedule",
                "next tick",
                "last run",
                "matches",
            ]);
            for s in &screens {
                let last = lib.runs(&s.name, 1).await?.pop();
                let ticks = s.schedule.as_ref().and_then(|x| x.parse().ok());
                t.add_row([
                    s.name.clone(),
                    s.version.to_string(),
                    s.schedule
                        .as_ref()
                        .map(|x| format!("{} ({})", x.cron, x.timezone))
                        .unwrap_or_else(|| "—".into()),
                    ticks
                        .and_then(|t| t.next_after(Utc::now()))
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "—".into()),
                    last.as_ref()
                        .map(|r| r.finished_at.to_rfc3339())
                        .unwrap_or_else(|| "—".into()),
                    last.map(|r| r.matches.to_string())
                        .unwrap_or_else(|| "—".into()),
                ]);
            }
            emit(&format!("{t}\n"), None)?;
            Ok(0)
        }
        ScreenCommand::Show { name, node } => {
            json(&library(&node, settings)?.screen(&name).await?)?;
            Ok(0)
        }
        ScreenCommand::Runs { name, limit, node } => {
            let lib = library(&node, settings)?;
            lib.screen(&name).await?;
            json(&lib.runs(&name, limit).await?)?;
            Ok(0)
        }
        ScreenCommand::Delete { name, node } => {
            library(&node, settings)?.delete_screen(&name).await?;
            say::info(&format!("deleted screen {name}"));
            Ok(0)
        }
        ScreenCommand::Run {
            name,
            format,
            out,
            quiet,
            node,
        } => {
            let lib = library(&node, settings)?;
            let screen = lib.screen(&name).await?;
            let scan = ScanArgs {
                node,
                ..Default::default()
            };
            let mut plan = plan(&scan, settings)?;
            plan.config = lib
                .resolve(screen.config.clone(), settings.scan.max_universe_size)
                .await?;
            let table_rows = plan.config.top.unwrap_or(settings.scan.table_rows);
            let started_at = Utc::now();
            let report = execute(plan, settings, None, false, quiet).await?;
            let start = RunStart {
                run_id: report.id.clone(),
                trigger: Trigger::Manual,
                tick: None,
                claim: None,
                started_at,
            };
            // A cancelled run (Ctrl-C) has partial results: recorded, not compared.
            let done = report.status == crate::scan::ScanStatus::Completed;
            let failed: Vec<String> = report.failures.iter().map(|f| f.symbol.clone()).collect();
            let outcome = Outcome {
                stage: if done { "done" } else { "cancelled" },
                results: done.then_some(report.results.as_slice()),
                failed: &failed,
                error: (!done).then(|| "cancelled (Ctrl-C)".to_string()),
            };
            let run = lib.conclude(&screen, start, outcome).await?;
            print_report(&report, format, out.as_deref(), table_rows)?;
            say::info_with(
                &format!(
                    "screen {name} v{}: {} matches · {} new · {} dropped · {} changed · sent to {} webhooks",
                    run.version,
                    run.matches,
                    run.diff.new.len(),
                    run.diff.dropped.len(),
                    run.diff.changed.len(),
                    run.deliveries
                ),
                serde_json::to_value(&run).unwrap_or_default(),
            );
            Ok(0)
        }
    }
}

pub async fn run_watchlist(args: WatchlistArgs, settings: &Settings) -> Result<i32, UserError> {
    let lib = library(&args.node, settings)?;
    match args.command {
        WatchlistCommand::Save { name, symbols } => {
            check_name("watchlist", &name)?;
            let symbols: Vec<String> = symbols
                .iter()
                .flat_map(|s| s.split(','))
                .map(|s| s.trim().to_ascii_uppercase())
                .filter(|s| !s.is_empty())
                .collect();
            let problems = crate::market::symbol_problems(symbols.iter().map(String::as_str));
            if !problems.is_empty() {
                return Err(invalid_options("watchlist save", problems));
            }
            let list = lib
                .save_watchlist(&name, crate::screens::dedup_symbols(symbols), false)
                .await?;
            say::info(&format!(
                "saved watchlist {} ({} symbols, version {})",
                list.name,
                list.symbols.len(),
                list.version
            ));
        }
        WatchlistCommand::Import { name, file } => {
            check_name("watchlist", &name)?;
            let text = std::fs::read_to_string(&file).map_err(|e| {
                UserError::new(
                    ErrorCode::InvalidInput,
                    format!("cannot read {}: {e}", file.display()),
                    vec!["check the path".into()],
                )
            })?;
            let symbols = symbols_from_csv(&text, &file.display().to_string()).map_err(|p| {
                UserError::new(
                    ErrorCode::InvalidInput,
                    format!(
                        "{} is not a valid watchlist: {}",
                        file.display(),
                        p.join("; ")
                    ),
                    vec![
                        "one symbol per row, in the first column; an optional `symbol` header"
                            .into(),
                    ],
                )
            })?;
            let list = lib.save_watchlist(&name, symbols, false).await?;
            say::info(&format!(
                "imported watchlist {} ({} symbols, version {})",
                list.name,
                list.symbols.len(),
                list.version
            ));
        }
        WatchlistCommand::Export { name, out } => {
            let list = lib.watchlist(&name).await?;
            emit(&symbols_to_csv(&list.symbols), out.as_deref())?;
        }
        WatchlistCommand::List => json(&lib.watchlists().await?)?,
        WatchlistCommand::Show { name } => json(&lib.watchlist(&name).await?)?,
        WatchlistCommand::Delete { name } => {
            lib.delete_watchlist(&name).await?;
            say::info(&format!("deleted watchlist {name}"));
        }
    }
    Ok(0)
}
