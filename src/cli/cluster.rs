//! `technic cluster nodes`: the node registry as a table (or JSON): every node, its state
//! (up, draining, or down once its heartbeat expired, until `cluster.prune_down_after_secs`
//! after its last heartbeat), load, work done and last heartbeat.
//! `technic cluster forget NODE`: removes a node's registry entry (a node that is gone).

use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::output::emit;
use crate::cluster::{NodeRegistry, NodeState, NodeView};
use crate::config::Settings;
use crate::error::{ErrorCode, UserError};
use crate::redis_link::RedisUrl;

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub action: ClusterAction,
    /// The cluster's Redis: redis://HOST:PORT or redis-cluster://HOST:PORT[,HOST:PORT...] (default: cluster.redis_url).
    #[arg(long, global = true, value_name = "URL")]
    pub redis: Option<String>,
    /// Output as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// The nodes of the cluster, their state, load and last heartbeat.
    Nodes,
    /// Remove a node from the registry (a down node that will not come back). A node that
    /// is still running reappears at its next heartbeat.
    Forget {
        /// The node's id, as `technic cluster nodes` lists it.
        #[arg(value_name = "NODE")]
        node: String,
    },
}

pub async fn run(args: &ClusterArgs, settings: &Settings) -> Result<i32, UserError> {
    let registry = open_registry(args.redis.as_deref(), settings)?;
    match &args.action {
        ClusterAction::Nodes => nodes(args, settings, &registry).await,
        ClusterAction::Forget { node } => forget(args, settings, &registry, node).await,
    }
}

/// The registry of the cluster on `redis` (`--redis`), else on `cluster.redis_url`.
pub(super) fn open_registry(
    redis: Option<&str>,
    settings: &Settings,
) -> Result<NodeRegistry, UserError> {
    let url = redis.unwrap_or(&settings.cluster.redis_url).trim();
    if !RedisUrl::looks_like(url) {
        return Err(UserError::new(
            ErrorCode::InvalidInput,
            format!("--redis: {url:?} is not a redis://HOST:PORT or redis-cluster://HOST:PORT[,HOST:PORT...] URL"),
            vec!["give the Redis the nodes were started with: --redis URL, or set cluster.redis_url (TECHNIC_CLUSTER__REDIS_URL)".into()],
        ));
    }
    Ok(NodeRegistry::open(url, &settings.cluster)?)
}

async fn forget(
    args: &ClusterArgs,
    settings: &Settings,
    registry: &NodeRegistry,
    node: &str,
) -> Result<i32, UserError> {
    let node = node.trim();
    if !registry.forget(node).await? {
        return Err(UserError::new(
            ErrorCode::InvalidInput,
            format!(
                "no node {node:?} in the registry of queue {:?}",
                settings.cluster.queue_name
            ),
            vec!["list the nodes with `technic cluster nodes --redis URL`".into()],
        ));
    }
    let text = if args.json {
        serde_json::json!({ "forgotten": node }).to_string()
    } else {
        format!("forgot node {node}")
    };
    emit(&format!("{text}\n"), None)?;
    Ok(0)
}

async fn nodes(
    args: &ClusterArgs,
    settings: &Settings,
    registry: &NodeRegistry,
) -> Result<i32, UserError> {
    let nodes = registry.list().await?;
    let text = if args.json {
        serde_json::to_string_pretty(&nodes)
            .map_err(|e| UserError::internal(&format!("cannot serialise the nodes: {e}")))?
    } else if nodes.is_empty() {
        format!(
            "no node has joined queue {:?} (start one with `technic worker --redis URL`)",
            settings.cluster.queue_name
        )
    } else {
        table(&nodes)
    };
    emit(&format!("{text}\n"), None)?;
    Ok(0)
}

fn table(nodes: &[NodeView]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header([
        "node",
        "state",
        "host",
        "cores",
        "workers",
        "load",
        "shards",
        "symbols",
        "restarts",
        "model",
        "version",
        "last heartbeat",
    ]);
    for n in nodes {
        let i = &n.info;
        let state = match n.state() {
            NodeState::Down => "DOWN".to_string(),
            s => s.as_str().to_string(),
        };
        t.add_row([
            i.id.clone(),
            state,
            i.host.clone(),
            i.cores.to_string(),
            i.workers.to_string(),
            format!("{:.0}%", i.load * 100.0),
            i.shards_done.to_string(),
            i.symbols_done.to_string(),
            i.restarts.to_string(),
            i.model.clone().unwrap_or_else(|| "—".into()),
            i.version.clone(),
            format!("{:.1}s ago", n.heartbeat_age_ms as f64 / 1000.0),
        ]);
    }
    t.to_string()
}
