//! `technic serve`: the coordinator, local workers (0 = coordinator only) and the HTTP
//! control plane. SIGINT/SIGTERM stop it: running scans are cancelled (their partial
//! reports reach the history), then the server and the cluster stop, within a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::signals::Signals;
use crate::api::{self, AppState, History, LiveScans};
use crate::cache::CacheTarget;
use crate::cluster::QueueTarget;
use crate::config::{Secret, Settings};
use crate::data::{self, DataSource};
use crate::error::{ErrorCode, UserError};

/// How long shutdown waits for cancelled scans and open connections.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address (default: api.bind, 127.0.0.1:8080). A non-loopback address needs a token.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// The cluster's Redis (redis://… or redis-cluster://…): the work queue shared with
    /// `technic worker` nodes, the node registry, the scan history, and the cache unless
    /// --cache says otherwise.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Cache: none | memory | redis://HOST:PORT | redis-cluster://HOST:PORT[,…] (default: cache.url).
    #[arg(long, value_name = "URL")]
    pub cache: Option<String>,
    /// Local worker actors (default: cluster.workers; 0 = coordinator only).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Bearer token for mutating routes (prefer TECHNIC_API__TOKEN: arguments are visible in `ps`).
    #[arg(long, value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data source, as for `technic scan --data`.
    #[arg(long, value_name = "SOURCE")]
    pub data: Option<String>,
}

fn invalid(message: String, hint: &str) -> UserError {
    UserError::new(ErrorCode::InvalidConfig, message, vec![hint.into()])
}

pub async fn run(args: ServeArgs, mut settings: Settings) -> Result<i32, UserError> {
    let mut signals = Signals::stop();
    if let Some(b) = args.bind {
        settings.api.bind = b;
    }
    if let Some(t) = args.token {
        settings.api.token = Secret::new(t.trim());
    }
    let addr: SocketAddr = settings.api.bind.parse().map_err(|_| {
        invalid(
            format!("--bind: {:?} is not an IP:PORT address", settings.api.bind),
            "e.g. --bind 127.0.0.1:8080",
        )
    })?;
    api::check_bind(&addr, &settings.api.token)?;
    let spec = args.data.as_deref().unwrap_or(&settings.data.source);
    let chain = DataSource::parse_chain(spec, &settings.data.fallback)
        .map_err(|e| invalid(format!("--data: {e}"), "use synthetic, polygon or csv:DIR"))?;
    let provider = data::open_chain(&chain, &settings.data, None).map_err(|e| {
        UserError::new(
            ErrorCode::DataProviderUnavailable,
            e.to_string(),
            vec![e.suggestion().into()],
        )
    })?;
    let url = args
        .cache
        .as_deref()
        .or(args.redis.as_deref())
        .unwrap_or(&settings.cache.url);
    let target: CacheTarget = url.parse().map_err(|e: crate::cache::CacheError| {
        invalid(
            format!("--cache: {e}"),
            "e.g. --redis redis://127.0.0.1:6379",
        )
    })?;
    let cache = crate::cache::build(&settings.cache, &target)
        .await
        .map_err(|e| {
            UserError::new(
                ErrorCode::CacheUnavailable,
                e.to_string(),
                vec!["use --cache memory or --cache none".into()],
            )
        })?;
    let history = History::new(
        &target,
        settings.api.history_max_scans,
        settings.api.history_ttl_secs,
    )
    .map_err(|e| invalid(e, "check the redis url"))?;
    let workers = args.workers.unwrap_or_else(|| settings.local_workers());
    let queue = match args.redis.as_deref().map(str::trim) {
        Some(url) if super::scan::is_redis_url(url) => QueueTarget::Redis(url.to_string()),
        Some(url) => {
            return Err(invalid(
                format!("--redis: {url:?} is not a redis:// or redis-cluster:// URL"),
                "e.g. --redis redis://127.0.0.1:6379",
            ))
        }
        None => QueueTarget::InProcess,
    };
    let cluster =
        api::start_cluster(&settings, provider.clone(), cache.clone(), workers, &queue).await?;
    let (stop_warmer, warmer_stop) = tokio::sync::watch::channel(false);
    if let Some(c) = &cache {
        let ctx = crate::cluster::PipelineContext {
            node_id: "warmer".into(),
            provider: provider.clone(),
            cache: Some(c.clone()),
            queue: None,
        };
        tokio::spawn(crate::cluster::run_warmer(
            ctx,
            settings.cache.warm.clone(),
            crate::scan::ScanConfig::from_settings(&settings.scan),
            warmer_stop,
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        UserError::new(
            ErrorCode::InvalidConfig,
            format!("cannot listen on {addr}: {e}"),
            vec!["pick a free port with --bind".into()],
        )
    })?;
    let state = Arc::new(AppState {
        node_id: settings.node_id(),
        settings,
        cluster,
        workers,
        provider,
        cache,
        live: LiveScans::default(),
        history: Arc::new(history),
        started_at: chrono::Utc::now(),
    });
    tracing::info!(%addr, workers, history_in_redis = state.history.persistent(), "control plane listening");
    eprintln!("technic serve: listening on http://{addr} ({workers} local workers)");
    let app = api::router(state.clone());
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let mut server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            })
            .await
    });
    tokio::select! {
        r = &mut server => {
            return Err(UserError::internal(&format!("the http server stopped: {r:?}")));
        }
        _ = signals.recv() => {}
    }
    eprintln!("technic serve: shutting down");
    for scan in state.live.all() {
        scan.cancel.notify_one();
    }
    let _ = stop_warmer.send(true);
    let _ = stop_tx.send(true);
    let drain = async {
        while !state.live.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = (&mut server).await;
    };
    // Open SSE streams and slow scans get the deadline, not forever.
    let _ = tokio::time::timeout(SHUTDOWN_DEADLINE, drain).await;
    server.abort();
    if let Ok(state) = Arc::try_unwrap(state) {
        if let Some(c) = state.cluster {
            c.shutdown().await;
        }
    }
    Ok(0)
}
