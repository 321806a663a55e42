//! `technic cache stats|clear|warm`: look at and act on a shared cache (Redis, Redis
//! Cluster). With the default memory cache these see only this short-lived process.

use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::output::emit;
use super::say;
use crate::cache::{CacheTarget, Kind};
use crate::cluster::{warm_once, PipelineContext};
use crate::config::Settings;
use crate::error::{ErrorCode, UserError};
use crate::market::symbol_problems;
use crate::node::{invalid_options, NodeArgs, Role};
use crate::scan::ScanConfig;

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: CacheAction,
    /// Output as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// --cache (or --redis) names the cache to act on; --data the source `warm` loads from.
    #[command(flatten)]
    pub node: NodeArgs,
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Hit rates, keys per kind, memory, most-requested symbols, TTLs.
    Stats,
    /// Remove every technic key (technic:*), and nothing else.
    Clear,
    /// Load the most-requested (and configured) symbols into the cache now.
    Warm {
        /// Extra symbols to warm (comma-separated).
        #[arg(long, value_name = "LIST")]
        symbols: Option<String>,
    },
}

pub async fn run(args: &CacheArgs, settings: &Settings) -> Result<i32, UserError> {
    let plan = args
        .node
        .plan(settings, Role::Cache)
        .map_err(|p| invalid_options("cache", p))?;
    if plan.cache == CacheTarget::Memory {
        say::info("note: the memory cache lives inside one process; point --cache at Redis to see a shared cache");
    }
    let unavailable = |m: String| {
        UserError::new(
            ErrorCode::CacheUnavailable,
            m,
            vec!["check that Redis is running and reachable".into()],
        )
    };
    let Some(cache) = plan.cache(settings).await? else {
        return Err(UserError::new(
            ErrorCode::InvalidInput,
            "no cache configured (--cache none)",
            vec!["see `technic cache --help`".into()],
        ));
    };
    let out = match &args.action {
        CacheAction::Stats => {
            let a = cache.analytics(20).await;
            if !a.status.available || a.keys_per_kind.is_none() {
                return Err(unavailable(format!(
                    "cannot read the cache: {}",
                    a.status.last_error.unwrap_or_else(|| "no answer".into())
                )));
            }
            if args.json {
                serde_json::to_string_pretty(&a).unwrap_or_default()
            } else {
                let mut t = Table::new();
                t.load_preset(UTF8_FULL_CONDENSED);
                t.set_header(["kind", "keys", "hits", "misses", "base TTL (s)"]);
                for k in Kind::ALL {
                    let keys = a
                        .keys_per_kind
                        .as_ref()
                        .and_then(|m| m.get(&k))
                        .copied()
                        .unwrap_or(0);
                    let s = a.per_kind.get(&k).copied().unwrap_or_default();
                    t.add_row([
                        k.as_str().to_string(),
                        keys.to_string(),
                        s.hits.to_string(),
                        s.misses.to_string(),
                        a.ttl_secs[&k].to_string(),
                    ]);
                }
                let mem = a.memory.unwrap_or_default();
                let top: Vec<String> = a
                    .most_requested
                    .iter()
                    .take(10)
                    .map(|(s, n)| format!("{s} ({n})"))
                    .collect();
                let nodes = a.per_node.as_ref().map(|nodes| {
                    let mut t = Table::new();
                    t.load_preset(UTF8_FULL_CONDENSED);
                    t.set_header(["node", "hits", "misses", "hit rate", "updated"]);
                    for (id, n) in nodes {
                        t.add_row([
                            id.clone(),
                            n.hits.to_string(),
                            n.misses.to_string(),
                            n.hit_rate
                                .map_or("–".into(), |r| format!("{:.1}%", r * 100.0)),
                            n.updated_at
                                .map_or("–".into(), |t| t.format("%H:%M:%S").to_string()),
                        ]);
                    }
                    format!("\nper node:\n{t}")
                });
                let warming = a.warming.as_ref().map_or("no warm pass yet".into(), |w| {
                    format!(
                        "{} symbols at {}, {} requested since{}",
                        w.warmed,
                        w.at.format("%Y-%m-%d %H:%M:%S UTC"),
                        w.requested,
                        w.precision
                            .map_or(String::new(), |p| format!(" (precision {:.1}%)", p * 100.0))
                    )
                });
                let ts = &a.time_saved;
                let saved = match (ts.total_secs, ts.secs_per_hit) {
                    (Some(total), Some(per_hit)) => format!(
                        "{total:.2} s ({:.3} ms per hit: cold {:.3} ms/symbol, warm {:.3} ms/symbol)",
                        per_hit * 1e3,
                        ts.cold_secs_per_symbol.unwrap_or_default() * 1e3,
                        ts.warm_secs_per_symbol.unwrap_or_default() * 1e3
                    ),
                    _ => "not measured yet (needs a cold and a fully cached scan)".into(),
                };
                format!(
                    "cache: {} · available · counters of the {}\n{t}{}\nmemory: {} used, {} peak\nmost requested: {}\nlast warm pass: {warming}\ntime saved by hits: {saved}",
                    a.status.backend,
                    if a.scope == "cluster" { "whole cluster" } else { "this process" },
                    nodes.unwrap_or_default(),
                    human_bytes(mem.used_bytes),
                    human_bytes(mem.peak_bytes),
                    if top.is_empty() {
                        "none yet".into()
                    } else {
                        top.join(", ")
                    }
                )
            }
        }
        CacheAction::Clear => {
            let n = cache
                .clear()
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            if args.json {
                format!("{{\"removed\":{n}}}")
            } else {
                format!("removed {n} technic keys")
            }
        }
        CacheAction::Warm { symbols } => {
            let extra: Vec<String> = symbols
                .iter()
                .flat_map(|s| s.split(','))
                .map(|s| s.trim().to_ascii_uppercase())
                .filter(|s| !s.is_empty())
                .collect();
            let problems = symbol_problems(extra.iter().map(String::as_str));
            if !problems.is_empty() {
                return Err(invalid_options("cache", problems));
            }
            let provider = plan.provider(settings, None, &[])?;
            let mut warm = settings.cache.warm.clone();
            warm.symbols.extend(extra);
            let ctx = PipelineContext {
                node_id: "cli".into(),
                provider,
                cache: Some(cache.clone()),
                queue: None,
                ml: Default::default(),
            };
            let r = warm_once(&ctx, &warm, &ScanConfig::from_settings(&settings.scan)).await;
            if !cache.status().available {
                return Err(unavailable(
                    "the cache became unavailable while warming".into(),
                ));
            }
            if r.failed > 0 && r.loaded + r.fresh == 0 {
                return Err(UserError::new(
                    ErrorCode::DataProviderUnavailable,
                    format!("no symbol could be warmed: all {} failed to load", r.failed),
                    vec!["check the data source (--data) and the symbols".into()],
                ));
            }
            if args.json {
                serde_json::to_string(&r).unwrap_or_default()
            } else {
                format!(
                    "warmed {} symbols ({} already fresh, {} failed) of {} candidates",
                    r.loaded, r.fresh, r.failed, r.candidates
                )
            }
        }
    };
    emit(&format!("{out}\n"), None)?;
    Ok(0)
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
