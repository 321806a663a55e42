//! `technic worker`: a node of the cluster and nothing else. It joins through Redis, pulls
//! shards from the Redis Streams queue, loads bars from its own data source (cache first)
//! and sends results back to each scan's coordinator; it needs no HTTP port. It heartbeats
//! to the node registry; SIGTERM (or Ctrl-C) drains it: no new shards, in-flight ones
//! finish (or go back to the queue after `cluster.drain_timeout_secs`), then it exits 0. A
//! second signal exits at once; the queue re-delivers what was in flight.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::scan::is_redis_url;
use super::signals::Signals;
use crate::cache::CacheTarget;
use crate::cluster::transport::RedisReporter;
use crate::cluster::{ClusterLink, Drained, WorkerContext, WorkerNode};
use crate::config::Settings;
use crate::data::{self, DataSource};
use crate::error::{ErrorCode, UserError};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The cluster's Redis: redis://HOST:PORT or redis-cluster://HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "URL", env = "TECHNIC_REDIS")]
    pub redis: String,
    /// Worker actors (default: one per core; settings cluster.workers).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// This node's id in the registry (default: settings cluster.node_id, else HOSTNAME-PID).
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
    /// Data source for bars (default: settings data.source), as for `technic scan`.
    #[arg(long, value_name = "SOURCE")]
    pub data: Option<String>,
    /// Cache (default: the cluster's Redis): none | memory | redis://… | redis-cluster://….
    #[arg(long, value_name = "URL")]
    pub cache: Option<String>,
    /// Serve this node's Prometheus `/metrics` (and `/health/live`) on ADDR, e.g.
    /// 0.0.0.0:9101. Off by default: a worker needs no port. Read-only, no token.
    #[arg(long, value_name = "ADDR")]
    pub metrics_bind: Option<String>,
}

/// `/metrics` and `/health/live` of a worker node, served until the process exits.
async fn serve_metrics(bind: &str) -> Result<std::net::SocketAddr, UserError> {
    let bad = |m: String| {
        UserError::new(
            ErrorCode::InvalidInput,
            m,
            vec!["give --metrics-bind as IP:PORT, e.g. 0.0.0.0:9101".into()],
        )
    };
    let addr: std::net::SocketAddr = bind.trim().parse().map_err(|_| {
        bad(format!(
            "--metrics-bind: {bind:?} is not an IP:PORT address"
        ))
    })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| bad(format!("--metrics-bind: cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().unwrap_or(addr);
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(crate::api::health::metrics))
        .route("/health/live", axum::routing::get(crate::api::health::live));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(local)
}

pub async fn run(args: &WorkerArgs, settings: &Settings) -> Result<i32, UserError> {
    let invalid = |m: String| {
        UserError::new(
            ErrorCode::InvalidInput,
            m,
            vec!["see `technic worker --help`".into()],
        )
    };
    let url = args.redis.trim();
    if !is_redis_url(url) {
        return Err(invalid(format!(
            "--redis: {url:?} is not a redis://HOST:PORT or redis-cluster://HOST:PORT[,HOST:PORT...] URL"
        )));
    }
    let mut settings = settings.clone();
    if let Some(id) = &args.node_id {
        settings.cluster.node_id = id.trim().to_string();
        settings
            .validate()
            .map_err(|e| invalid(format!("--node-id: {e}")))?;
    }
    let spec = args.data.as_deref().unwrap_or(&settings.data.source);
    let chain = DataSource::parse_chain(spec, &settings.data.fallback)
        .map_err(|e| invalid(format!("--data: {e}")))?;
    // Any symbol a coordinator may send must exist in a synthetic universe here.
    let provider = data::open_chain(
        &chain,
        &settings.data,
        Some(settings.scan.max_universe_size),
    )
    .map_err(|e| {
        UserError::new(
            ErrorCode::DataProviderUnavailable,
            e.to_string(),
            vec![e.suggestion().into()],
        )
    })?;
    let cache_target: CacheTarget = args
        .cache
        .as_deref()
        .unwrap_or(url)
        .parse()
        .map_err(|e: crate::cache::CacheError| invalid(format!("--cache: {e}")))?;
    let cache = crate::cache::build(&settings.cache, &cache_target)
        .await
        .map_err(|e| {
            UserError::new(
                ErrorCode::CacheUnavailable,
                e.to_string(),
                vec!["use --cache none to run without a cache".into()],
            )
        })?;
    let link = ClusterLink::open(url, &settings)?;
    let node_id = settings.node_id();
    let workers = args.workers.unwrap_or_else(|| settings.local_workers());
    let ctx = WorkerContext {
        node_id: node_id.clone(),
        queue: link.queue.clone(),
        provider,
        reporter: Arc::new(RedisReporter(Arc::clone(&link.queue))),
        cache,
        stats: Arc::default(),
    };
    let metrics_addr = match &args.metrics_bind {
        Some(bind) => Some(serve_metrics(bind).await?),
        None => None,
    };
    let mut signals = Signals::stop();
    let mut node = WorkerNode::start(&settings, ctx, workers, Some(link.registry)).await?;
    eprintln!(
        "technic worker {node_id}: {} worker actors on queue {:?}{}; SIGTERM drains",
        workers.max(1),
        settings.cluster.queue_name,
        metrics_addr
            .map(|a| format!(", metrics on http://{a}/metrics"))
            .unwrap_or_default()
    );
    tokio::select! {
        _ = signals.recv() => {}
        _ = node.stopped() => {
            return Err(UserError::new(
                ErrorCode::WorkersUnavailable,
                format!("every worker of node {node_id} failed and the restart limit was reached"),
                vec!["check the log lines above for the worker failures".into()],
            ));
        }
    }
    eprintln!("technic worker {node_id}: draining (a second signal exits at once)");
    let timeout = Duration::from_secs(settings.cluster.drain_timeout_secs);
    let drained = tokio::select! {
        d = node.drain(timeout) => d,
        _ = signals.recv() => {
            eprintln!("technic worker {node_id}: exiting without draining");
            return Ok(143);
        }
    };
    eprintln!(
        "technic worker {node_id}: {}",
        match drained {
            Drained::Finished => "drained; every in-flight shard finished",
            Drained::HandedBack => "drain timeout; unfinished shards went back to the queue",
        }
    );
    Ok(0)
}
