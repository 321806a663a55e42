//! The `technic` command line: argument parsing and the commands.
//!
//! Commands return an exit code; errors reach the user as [`UserError`]s rendered with
//! their code and hints. `main` stays thin: it parses, loads settings, starts tracing and
//! calls [`run`].

mod cache;
mod cluster;
mod indicators;
mod ml;
mod output;
pub mod say;
mod scan;
mod screen;
mod serve;
mod signals;
mod snapshot;
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, Settings};
use crate::error::UserError;

pub use output::OutputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "technic",
    version,
    about = "Stock technical scanner on an actor cluster"
)]
pub struct Cli {
    /// A TOML file layered over the embedded defaults (configs/default.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once per process; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Scan a universe and print ranked trade ideas (coordinator + local workers).
    Scan(scan::ScanArgs),
    /// Print the per-bar indicator table of one CSV file of daily bars.
    Indicators(indicators::IndicatorsArgs),
    /// Write a data source's bars as a CSV directory (`SYMBOL.csv` + `universe.csv`).
    Snapshot(snapshot::SnapshotArgs),
    /// Inspect, clear or warm the cache.
    Cache(cache::CacheArgs),
    /// Join a cluster as a worker node: pull shards from the Redis work queue (no HTTP port).
    Worker(worker::WorkerArgs),
    /// Look at the cluster: `technic cluster nodes --redis URL`.
    Cluster(cluster::ClusterArgs),
    /// Run the coordinator, local workers and the HTTP control plane.
    Serve(serve::ServeArgs),
    /// The alpha model: `technic ml train --data SOURCE` trains and validates one.
    Ml(ml::MlArgs),
    /// Saved screens: save one with the options of `technic scan`, list, run, delete.
    Screen(screen::ScreenArgs),
    /// Watchlists: named symbol lists, a scan's universe with `--watchlist NAME`.
    Watchlist(screen::WatchlistArgs),
    /// Print a shell completion script, e.g. `technic completions bash > /etc/bash_completion.d/technic`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Loads settings from the file and environment, applying `--log-format`.
pub fn load_settings(
    cli: &Cli,
    env: &HashMap<String, String>,
) -> Result<Settings, crate::config::SettingsError> {
    let mut settings = Settings::load(cli.config.as_deref(), env)?;
    if let Some(f) = cli.log_format {
        settings.log.format = f;
    }
    Ok(settings)
}

/// Runs a parsed command; returns the process exit code.
pub async fn run(cli: Cli, settings: Settings) -> i32 {
    let result = match cli.command {
        Command::Scan(args) => scan::run(args, &settings).await,
        Command::Indicators(args) => indicators::run(&args),
        Command::Snapshot(args) => snapshot::run(&args, &settings).await,
        Command::Cache(args) => cache::run(&args, &settings).await,
        Command::Worker(args) => worker::run(&args, &settings).await,
        Command::Cluster(args) => cluster::run(&args, &settings).await,
        Command::Serve(args) => serve::run(args, settings).await,
        Command::Ml(args) => ml::run(&args, &settings).await,
        Command::Screen(args) => screen::run_screen(args, &settings).await,
        Command::Watchlist(args) => screen::run_watchlist(args, &settings).await,
        Command::Completions { shell } => completions(shell),
    };
    match result {
        Ok(code) => code,
        Err(e) => report_error(&e),
    }
}

fn completions(shell: clap_complete::Shell) -> Result<i32, UserError> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "technic", &mut out);
    output::emit(&String::from_utf8_lossy(&out), None)?;
    Ok(0)
}

/// Prints the error (as a JSON line in JSON log mode); returns its exit status.
pub fn report_error(e: &UserError) -> i32 {
    say::error(e);
    e.code.exit_code()
}
