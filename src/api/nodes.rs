//! `/api/v1/cluster/nodes`: the cluster's nodes, from the registry in Redis or this
//! process's workers.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::scans::Shared;
use super::state::{cluster_nodes, NodeInfo};
use crate::cluster::QueueDepth;
use crate::error::ErrorCode;

#[derive(Debug, Serialize, ToSchema)]
pub struct Nodes {
    pub nodes: Vec<NodeInfo>,
    /// The serve holding the leader lease (it runs the cache warmer, the node gauge and
    /// pruning); `null` in process or while no serve holds it.
    pub leader: Option<String>,
    /// The work queue's shards over every scan; `null` when it does not answer (or this
    /// serve runs no cluster).
    pub queue: Option<QueueDepth>,
}

/// The cluster's nodes: every node of the registry over Redis (down ones included), or
/// this process's workers in process.
#[utoipa::path(get, path = "/api/v1/cluster/nodes", tag = "cluster",
    responses((status = 200, body = Nodes), (status = 503, body = ErrorBody)))]
pub async fn nodes(State(state): Shared) -> Result<Json<Nodes>, ApiError> {
    match cluster_nodes(&state).await {
        Ok(nodes) => {
            let leader = match state.cluster.as_ref().and_then(|c| c.book()) {
                Some(book) => book.leader().await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot read the leader lease");
                    None
                }),
                None => None,
            };
            let queue = match &state.cluster {
                Some(c) => c
                    .queue_depth()
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "cannot read the queue's depth");
                    })
                    .ok(),
                None => None,
            };
            Ok(Json(Nodes {
                nodes,
                leader,
                queue,
            }))
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the cluster nodes");
            Err(ApiError::new(
                ErrorCode::QueueUnavailable,
                "the cluster's node registry (in Redis) does not answer",
                vec!["check that the Redis given with --redis is running and reachable".into()],
            ))
        }
    }
}
