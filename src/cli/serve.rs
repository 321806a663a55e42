//! `technic serve`: the coordinator, local workers (0 = coordinator only) and the HTTP
//! control plane. SIGINT/SIGTERM stop it: running scans are cancelled (their partial
//! reports reach the history), then the server and the node stop, within a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::say;
use super::signals::Signals;
use crate::api::{self, AppState};
use crate::config::{Secret, Settings};
use crate::error::{ErrorCode, UserError};
use crate::node::{invalid_options, NodeArgs, Role};

/// How long shutdown waits for cancelled scans and open connections.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address (default: api.bind, 127.0.0.1:8080). A non-loopback address needs a token.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Bearer token for every route but the dashboard's page and the probes (prefer TECHNIC_API__TOKEN: arguments are visible in `ps`).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    #[command(flatten)]
    pub node: NodeArgs,
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
        UserError::new(
            ErrorCode::InvalidConfig,
            format!("--bind: {:?} is not an IP:PORT address", settings.api.bind),
            vec!["e.g. --bind 127.0.0.1:8080".into()],
        )
    })?;
    api::check_access(&addr, &settings.api)?;
    let plan = args
        .node
        .plan(&settings, Role::Serve)
        .map_err(|p| invalid_options("serve", p))?;
    let mut node = plan.start(settings, None, &[], None).await?;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            node.stop().await;
            return Err(UserError::new(
                ErrorCode::InvalidConfig,
                format!("cannot listen on {addr}: {e}"),
                vec!["pick a free port with --bind".into()],
            ));
        }
    };
    let state = Arc::new(AppState::new(&mut node)?);
    let workers = state.workers;
    tracing::info!(%addr, workers, history_in_redis = state.history.persistent(), "control plane listening");
    say::info_with(
        &format!("technic serve: listening on http://{addr} ({workers} local workers)"),
        serde_json::json!({"addr": addr.to_string(), "workers": workers}),
    );
    node.shutdown.spawn(api::scans::adopt_orphans(
        Arc::downgrade(&state),
        node.shutdown.clone(),
    ));
    node.shutdown.spawn(api::screens::schedule(
        Arc::downgrade(&state),
        node.shutdown.clone(),
    ));
    node.shutdown.spawn(api::throughput::sample(
        Arc::downgrade(&state),
        node.shutdown.clone(),
    ));
    let app = api::router(state.clone());
    let stop = node.shutdown.clone();
    let mut server = node.shutdown.spawn(async move {
        axum::serve(api::conn::Listener(listener), app)
            .with_graceful_shutdown(async move { stop.triggered().await })
            .await
    });
    tokio::select! {
        r = &mut server => {
            node.stop().await;
            return Err(UserError::internal(&format!("the http server stopped: {r:?}")));
        }
        _ = signals.recv() => {}
    }
    say::info("technic serve: shutting down");
    // Over a Redis queue the running scans belong to the cluster: they are left running,
    // and another serve takes them over when their leases lapse. In process, they are
    // cancelled and still write their partial reports to the history. The server (and
    // open SSE streams) stop with the node's shutdown, under the deadline.
    let handover = state.cluster.as_ref().is_some_and(|c| c.book().is_some());
    let scans = if handover {
        Vec::new()
    } else {
        state.live.all()
    };
    for scan in &scans {
        scan.cancel.notify_one();
    }
    let finished = async {
        for scan in scans {
            let mut done = scan.finished.clone();
            let _ = done.wait_for(Option::is_some).await;
        }
    };
    let _ = tokio::time::timeout(SHUTDOWN_DEADLINE, finished).await;
    node.shutdown.trigger();
    let _ = tokio::time::timeout(SHUTDOWN_DEADLINE, &mut server).await;
    if let Ok(state) = Arc::try_unwrap(state) {
        if let Some(c) = state.cluster {
            c.shutdown().await;
        }
    }
    node.stop().await;
    Ok(0)
}
