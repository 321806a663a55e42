//! `technic ml train`: builds the dataset from a data source, trains one network per
//! horizon with burn, reports the holdout figures and writes the model file (accepted or
//! not: the file says which, and a model that was not accepted is served only with
//! `--force`).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use serde_json::{json, Map, Value};

use super::cluster::open_registry;
use super::output::emit;
use super::say;
use crate::cluster::PublishedModel;
use crate::config::{horizon_problems, Architecture, Settings};
use crate::error::{ErrorCode, UserError};
use crate::ml::dataset::{self, Dataset};
use crate::ml::model::{HorizonModel, Model};
use crate::ml::net::Fit;
use crate::ml::split::Split;
use crate::ml::train::{split, train, Options};
use crate::node::{invalid_options, NodeArgs, Role};

#[derive(Debug, Args)]
pub struct MlArgs {
    #[command(subcommand)]
    pub command: MlCommand,
}

#[derive(Debug, Subcommand)]
pub enum MlCommand {
    /// Train an alpha model, report its holdout figures and write the model file.
    Train(TrainArgs),
    /// Publish a model file to the cluster's Redis: every node (serve, worker) serves it
    /// from its next heartbeat on, whatever its own ml.model says.
    Publish(PublishArgs),
    /// Withdraw the published model: every node serves its own ml.model again.
    Withdraw(WithdrawArgs),
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The model file (`technic ml train --out FILE`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Publish a model whose holdout did not earn it (the nodes serve it, and their health
    /// check warns).
    #[arg(long)]
    pub force: bool,
    /// The cluster's Redis: redis://HOST:PORT or redis-cluster://HOST:PORT[,HOST:PORT...]
    /// (default: cluster.redis_url).
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
}

#[derive(Debug, Args)]
pub struct WithdrawArgs {
    /// The cluster's Redis (default: cluster.redis_url).
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
}

/// How the training report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// Forward-return horizons in trading days (comma-separated; default ml.horizons).
    #[arg(long, value_name = "LIST")]
    pub horizons: Option<String>,
    /// Holdout dates at the end of the data (default ml.holdout_days).
    #[arg(long, value_name = "N")]
    pub holdout_days: Option<usize>,
    /// Where the model file goes.
    #[arg(long, value_name = "FILE", default_value = "technic-model.json")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
    /// The network (default ml.architecture).
    #[arg(long, value_enum)]
    pub architecture: Option<Architecture>,
    /// Adam steps (default ml.epochs).
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// The holdout t-statistic a model needs to be accepted (default ml.min_t_stat).
    #[arg(long, value_name = "T")]
    pub min_t_stat: Option<f64>,
    /// Also write the training rows (inputs, labels, split) as CSV, for another tool to
    /// train on the same data (scripts/ml_baseline.py).
    #[arg(long, value_name = "FILE")]
    pub dataset_out: Option<PathBuf>,
    /// Number of symbols (synthetic: generated; otherwise the first N listed).
    #[arg(long, value_name = "N")]
    pub universe_size: Option<usize>,
    /// --data is the source to train on (default: data.source).
    #[command(flatten)]
    pub node: NodeArgs,
}

pub async fn run(args: &MlArgs, settings: &Settings) -> Result<i32, UserError> {
    match &args.command {
        MlCommand::Train(a) => run_train(a, settings).await,
        MlCommand::Publish(a) => publish(a, settings).await,
        MlCommand::Withdraw(a) => withdraw(a, settings).await,
    }
}

/// Checks the model as a node would (so a model no node could serve is never published),
/// then stores it in the cluster's Redis.
async fn publish(args: &PublishArgs, settings: &Settings) -> Result<i32, UserError> {
    let path = &args.file;
    let text = std::fs::read_to_string(path).map_err(|e| {
        UserError::new(
            ErrorCode::InvalidInput,
            format!("cannot read model file {}: {e}", path.display()),
            vec!["give the file `technic ml train --out FILE` wrote".into()],
        )
    })?;
    let origin = format!("model file {}", path.display());
    let served = Model::parse(text.as_bytes(), &origin, args.force)
        .map_err(|r| UserError::new(ErrorCode::InvalidInput, r.message, r.suggestions))?;
    let registry = open_registry(args.redis.as_deref(), settings)?;
    let published = PublishedModel {
        version: served.version.clone(),
        force: args.force && !served.model.accepted,
    };
    registry.publish_model(&published, &text).await?;
    emit(
        &format!(
            "published model {} ({}) to queue {:?}: every node serves it from its next heartbeat\n",
            served.version,
            if served.model.accepted {
                "accepted"
            } else {
                "NOT accepted, forced"
            },
            settings.cluster.queue_name
        ),
        None,
    )?;
    Ok(0)
}

async fn withdraw(args: &WithdrawArgs, settings: &Settings) -> Result<i32, UserError> {
    let registry = open_registry(args.redis.as_deref(), settings)?;
    let text = if registry.withdraw_model().await? {
        "withdrew the published model: every node serves its own ml.model again\n"
    } else {
        "no model is published: every node serves its own ml.model\n"
    };
    emit(text, None)?;
    Ok(0)
}

/// The training options from the settings and the flags, or every problem with them.
fn options(args: &TrainArgs, settings: &Settings) -> Result<(Vec<usize>, Options), Vec<String>> {
    let ml = &settings.ml;
    let mut problems = Vec::new();
    let horizons = match &args.horizons {
        Some(text) => {
            let mut hs = Vec::new();
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.parse::<usize>() {
                    Ok(h) => hs.push(h),
                    Err(_) => problems.push(format!("--horizons: {part:?} is not a number")),
                }
            }
            problems.extend(horizon_problems("--horizons", &hs));
            hs
        }
        None => ml.horizons.clone(),
    };
    let holdout_days = args.holdout_days.unwrap_or(ml.holdout_days);
    if holdout_days < 5 {
        problems.push(format!(
            "--holdout-days: {holdout_days} is too few dates to judge a model (at least 5)"
        ));
    }
    let epochs = args.epochs.unwrap_or(ml.epochs);
    if epochs == 0 {
        problems.push("--epochs must be at least 1".into());
    }
    let min_t_stat = args.min_t_stat.unwrap_or(ml.min_t_stat);
    if !min_t_stat.is_finite() {
        problems.push(format!("--min-t-stat: {min_t_stat} is not a number"));
    }
    if args.universe_size == Some(0) {
        problems.push("--universe-size must be at least 1".into());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let opts = Options {
        holdout_days,
        embargo_days: ml.embargo_days,
        fit: Fit {
            architecture: args.architecture.unwrap_or(ml.architecture),
            hidden: ml.hidden,
            epochs,
            learning_rate: ml.learning_rate,
            seed: ml.seed,
        },
        min_t_stat,
        namespace: String::new(),
        lookback_days: settings.scan.lookback_days,
        min_bars: settings.scan.min_bars,
    };
    Ok((horizons, opts))
}

async fn run_train(args: &TrainArgs, settings: &Settings) -> Result<i32, UserError> {
    let mut problems = Vec::new();
    let node = args
        .node
        .plan(settings, Role::Train)
        .map_err(|p| problems.extend(p))
        .ok();
    let opts = options(args, settings).map_err(|p| problems.extend(p)).ok();
    let (Some(node), Some((horizons, mut opts))) = (node, opts) else {
        return Err(invalid_options("ml train", problems));
    };
    let provider = node.provider(settings, args.universe_size, &[])?;
    opts.namespace = provider.cache_namespace();
    let mut universe = provider.universe().await?;
    if let Some(n) = args.universe_size {
        universe.truncate(n);
    }
    let symbols: Vec<String> = universe.into_iter().map(|e| e.symbol).collect();
    say::info(&format!(
        "ml train: loading {} symbols × {} bars from {}",
        symbols.len(),
        settings.ml.history_days,
        opts.namespace
    ));
    let (ds, failed) = dataset::load(
        provider.as_ref(),
        &symbols,
        settings.ml.history_days,
        opts.lookback_days,
        opts.min_bars,
        &horizons,
    )
    .await;
    if let Some((symbol, e)) = failed.first() {
        say::info(&format!(
            "ml train: {} symbols could not be loaded and are left out (first: {symbol} [{}] {e}; {})",
            failed.len(),
            e.code(),
            e.suggestion()
        ));
    }
    let rows: usize = ds.by_date.iter().map(Vec::len).sum();
    say::info(&format!(
        "ml train: {rows} rows over {} dates; training {:?} networks",
        ds.dates.len(),
        opts.fit.architecture
    ));
    let unsplittable = |e: String| {
        UserError::new(
            ErrorCode::InvalidInput,
            format!("cannot train on this data: {e}"),
            vec![
                "load more history (ml.history_days) or hold out fewer dates (--holdout-days)"
                    .into(),
            ],
        )
    };
    if let Some(path) = &args.dataset_out {
        let split = split(&ds, &opts).map_err(unsplittable)?;
        write_dataset(path, &ds, &split)?;
        say::info(&format!("ml train: wrote the rows to {}", path.display()));
    }
    let model = crate::cpu::run(move || train(&ds, &opts))
        .await
        .map_err(unsplittable)?;
    write_model(&args.out, &model)?;
    let text = match args.format {
        ReportFormat::Json => format!("{:#}\n", report_json(&model, &args.out)),
        ReportFormat::Table => report_table(&model, &args.out),
    };
    emit(&text, None)?;
    Ok(0)
}

fn unwritable(what: &str, path: &Path, flag: &str, e: std::io::Error) -> UserError {
    UserError::new(
        ErrorCode::InvalidInput,
        format!("cannot write the {what} to {}: {e}", path.display()),
        vec![format!(
            "check the path given with {flag} and its permissions"
        )],
    )
}

fn write_model(path: &Path, model: &Model) -> Result<(), UserError> {
    std::fs::write(path, model.to_bytes()).map_err(|e| unwritable("model", path, "--out", e))
}

fn write_dataset(path: &Path, ds: &Dataset, split: &Split) -> Result<(), UserError> {
    let failed = |e| unwritable("rows", path, "--dataset-out", e);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(failed)?);
    ds.write_csv(split, &mut out)
        .and_then(|()| std::io::Write::flush(&mut out))
        .map_err(failed)
}

/// The figures of one horizon, as `--format json` prints them.
fn horizon_json(h: &HorizonModel) -> Value {
    let m = &h.metrics;
    json!({
        "ic": m.ic,
        "rank_ic": m.rank_ic,
        "icir": m.icir,
        "rank_icir": m.rank_icir,
        "t_stat": m.t_stat,
        "ic_t_stat": m.ic_t_stat,
        "spread": m.spread,
        "dates": m.dates,
        "symbols": m.symbols,
        "accepted": h.accepted,
        "train": h.train,
        "holdout": h.holdout,
    })
}

fn report_json(model: &Model, path: &Path) -> Value {
    let horizons: Map<String, Value> = model
        .horizons
        .iter()
        .map(|h| (h.horizon.to_string(), horizon_json(h)))
        .collect();
    json!({
        "horizons": horizons,
        "accepted": model.accepted,
        "min_t_stat": model.min_t_stat,
        "architecture": model.architecture,
        "model": path.display().to_string(),
    })
}

fn report_table(model: &Model, path: &Path) -> String {
    let fmt = |x: Option<f64>, digits: usize| x.map_or("n/a".into(), |v| format!("{v:.digits$}"));
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "Horizon",
        "IC",
        "Rank IC",
        "ICIR",
        "t (Rank IC)",
        "t (IC)",
        "Spread",
        "Dates",
        "Symbols",
        "Accepted",
    ]);
    for h in &model.horizons {
        let m = &h.metrics;
        t.add_row(vec![
            Cell::new(format!("{}d", h.horizon)),
            Cell::new(fmt(m.ic, 4)).set_alignment(CellAlignment::Right),
            Cell::new(fmt(m.rank_ic, 4)).set_alignment(CellAlignment::Right),
            Cell::new(fmt(m.icir, 3)).set_alignment(CellAlignment::Right),
            Cell::new(fmt(m.t_stat, 2)).set_alignment(CellAlignment::Right),
            Cell::new(fmt(m.ic_t_stat, 2)).set_alignment(CellAlignment::Right),
            Cell::new(fmt(m.spread.map(|s| s * 100.0), 3) + " %")
                .set_alignment(CellAlignment::Right),
            Cell::new(m.dates).set_alignment(CellAlignment::Right),
            Cell::new(m.symbols).set_alignment(CellAlignment::Right),
            Cell::new(if h.accepted { "yes" } else { "no" }),
        ]);
    }
    let first = &model.horizons[0];
    let verdict = if model.accepted {
        "accepted: it may be served".to_string()
    } else {
        format!(
            "NOT accepted (a holdout t-statistic, of Rank IC or IC, below {} on some horizon): serving it needs --force",
            model.min_t_stat
        )
    };
    format!(
        "{t}\nTrained {:?} on {} ({} dates from {}), held out {} dates from {} to {}.\nModel {}: {verdict}\n",
        model.architecture,
        model.namespace,
        first.train.dates,
        first.train.first,
        first.holdout.dates,
        first.holdout.first,
        first.holdout.last,
        path.display(),
    )
}
