//! `technic worker`: a node of the cluster and nothing else. It joins through Redis, pulls
//! shards from the Redis Streams queue, loads bars from its own data source (cache first)
//! and sends results back to each scan's coordinator; it needs no HTTP port. It heartbeats
//! to the node registry; SIGTERM (or Ctrl-C) drains it: no new shards, in-flight ones
//! finish (or go back to the queue after `cluster.drain_timeout_secs`), then it exits 0. A
//! second signal exits at once; the queue re-delivers what was in flight.

use std::time::Duration;

use clap::Args;

use super::say;
use super::signals::Signals;
use crate::cluster::Drained;
use crate::config::Settings;
use crate::error::{ErrorCode, UserError};
use crate::node::{invalid_options, NodeArgs, Role};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// This node's id in the registry (default: settings cluster.node_id, else HOST-PID).
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
    /// Serve this node's Prometheus `/metrics` (and `/health/live`) on ADDR, e.g.
    /// 0.0.0.0:9101. Off by default: a worker needs no port. Read-only, no token.
    #[arg(long, value_name = "ADDR")]
    pub metrics_bind: Option<String>,
    #[command(flatten)]
    pub node: NodeArgs,
}

pub async fn run(args: &WorkerArgs, settings: &Settings) -> Result<i32, UserError> {
    let mut settings = settings.clone();
    let mut problems = Vec::new();
    if let Some(id) = &args.node_id {
        settings.cluster.node_id = id.trim().to_string();
        if let Err(e) = settings.validate() {
            problems.extend(e.problems.into_iter().map(|p| format!("--node-id: {p}")));
        }
    }
    let plan = match args.node.plan(&settings, Role::Worker) {
        Ok(plan) if problems.is_empty() => plan,
        Ok(_) => return Err(invalid_options("worker", problems)),
        Err(p) => {
            problems.extend(p);
            return Err(invalid_options("worker", problems));
        }
    };
    let mut signals = Signals::stop();
    let mut node = plan
        .start(settings, None, &[], args.metrics_bind.as_deref())
        .await?;
    let node_id = node.id().to_string();
    say::info_with(
        &format!(
            "technic worker {node_id}: {} worker actors on queue {:?}{}; SIGTERM drains",
            node.plan.workers.max(1),
            node.settings.cluster.queue_name,
            node.metrics
                .map(|a| format!(", metrics on http://{a}/metrics"))
                .unwrap_or_default()
        ),
        serde_json::json!({"node": node_id, "workers": node.plan.workers.max(1)}),
    );
    let timeout = Duration::from_secs(node.settings.cluster.drain_timeout_secs);
    let Some(mut worker) = node.worker.take() else {
        node.stop().await;
        return Err(UserError::internal("the worker node did not start"));
    };
    tokio::select! {
        _ = signals.recv() => {}
        _ = worker.stopped() => {
            node.stop().await;
            return Err(UserError::new(
                ErrorCode::WorkersUnavailable,
                format!("every worker of node {node_id} failed and the restart limit was reached"),
                vec!["check the log lines above for the worker failures".into()],
            ));
        }
    }
    say::info(&format!(
        "technic worker {node_id}: draining (a second signal exits at once)"
    ));
    let drained = tokio::select! {
        d = worker.drain(timeout) => d,
        _ = signals.recv() => {
            say::info(&format!("technic worker {node_id}: exiting without draining"));
            return Ok(143);
        }
    };
    say::info(&format!(
        "technic worker {node_id}: {}",
        match drained {
            Drained::Finished => "drained; every in-flight shard finished",
            Drained::HandedBack => "drain timeout; unfinished shards went back to the queue",
        }
    ));
    node.stop().await;
    Ok(0)
}
