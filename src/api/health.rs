//! Health and readiness: `/health`, `/health/live`, `/health/ready`, `/health/detailed`.
//!
//! `/health` and `/health/live` answer from memory (never Redis). `/health/ready` is 503
//! until workers are registered. `/health/detailed` (`application/health+json`) checks
//! each component: the cache and the data provider are optional (the scan degrades
//! without them: `fail` there makes the whole `warn`), cluster nodes and the work queue
//! are required (`fail` there makes the whole `fail`, HTTP 503). The alpha model is
//! optional too.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::scans::Shared;
use super::state::{cluster_nodes, AppState, NodeInfo};
use crate::data::CircuitState;
use crate::error::ErrorCode;
use crate::ml::serve::Serving;
use crate::telemetry::{metrics, OutcomeLabel};

/// How long the cache probe of `/health/detailed` may take.
const CACHE_PROBE: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize, ToSchema)]
pub struct Cheap {
    pub status: &'static str,
}

/// Cheap: the process answers.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = Cheap)))]
pub async fn health() -> Json<Cheap> {
    Json(Cheap { status: "pass" })
}

/// Liveness: the process answers (never touches Redis).
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Cheap)))]
pub async fn live() -> Json<Cheap> {
    Json(Cheap { status: "pass" })
}

/// Why this coordinator cannot run a scan now: no worker up in the cluster, or the
/// cluster's Redis (queue and registry) not answering.
fn not_ready(nodes: &Result<Vec<NodeInfo>, crate::cluster::QueueError>) -> Option<ApiError> {
    let nodes = match nodes {
        Ok(nodes) => nodes,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the cluster nodes");
            return Some(ApiError::new(
                ErrorCode::QueueUnavailable,
                "not ready: the cluster's Redis (work queue and node registry) does not answer",
                vec!["check that the Redis given with --redis is running and reachable".into()],
            ));
        }
    };
    let workers: usize = nodes
        .iter()
        .filter(|n| n.state == "up")
        .map(|n| n.workers)
        .sum();
    (workers == 0).then(|| {
        ApiError::new(
            ErrorCode::WorkersUnavailable,
            "not ready: no workers are registered",
            vec!["start the server with --workers N (N ≥ 1), or start `technic worker --redis URL` nodes that join this cluster".into()],
        )
    })
}

/// Readiness: 200 once workers are registered, else 503.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, body = Cheap), (status = 503, body = ErrorBody)))]
pub async fn ready(State(state): Shared) -> Result<Json<Cheap>, ApiError> {
    match not_ready(&cluster_nodes(&state).await) {
        Some(e) => Err(e),
        None => Ok(Json(Cheap { status: "pass" })),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Pass,
    Warn,
    Fail,
}

fn check(component_type: &str, status: Status, output: Option<String>, extra: Value) -> Value {
    let mut v = json!({
        "componentType": component_type,
        "status": status,
        "time": Utc::now(),
    });
    if let Some(o) = output {
        v["output"] = json!(o);
    }
    if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
        m.extend(x);
    }
    v
}

async fn cache_check(state: &AppState) -> (Status, Value) {
    let Some(c) = &state.cache else {
        return (
            Status::Warn,
            check(
                "datastore",
                Status::Warn,
                Some("no cache configured: scans load every symbol from the data provider".into()),
                json!({}),
            ),
        );
    };
    let backend = c.backend().backend();
    let probe = tokio::time::timeout(CACHE_PROBE, c.backend().memory()).await;
    let (status, output) = match probe {
        Ok(Ok(_)) if c.status().available => (Status::Pass, None),
        // The backend answers again; scans resume caching on their next operation.
        Ok(Ok(_)) => (
            Status::Pass,
            Some("recovered: scans resume caching on their next cache operation".into()),
        ),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "health: cache probe failed");
            (
                Status::Fail,
                Some("the cache does not answer; scans run uncached".into()),
            )
        }
        Err(_) => (
            Status::Fail,
            Some("the cache did not answer in time; scans run uncached".into()),
        ),
    };
    (
        status,
        check(
            "datastore",
            status,
            output,
            json!({"observedValue": backend}),
        ),
    )
}

fn provider_checks(state: &AppState) -> (Status, Vec<Value>) {
    let circuits = state.provider.circuits();
    if circuits.is_empty() {
        return (
            Status::Pass,
            vec![check(
                "component",
                Status::Pass,
                None,
                json!({"observedValue": state.settings.data.source, "breaker": "none"}),
            )],
        );
    }
    let mut worst = Status::Pass;
    let checks = circuits
        .into_iter()
        .map(|(name, c)| {
            let (status, breaker) = match c {
                CircuitState::Closed => (Status::Pass, "closed"),
                CircuitState::HalfOpen => (Status::Warn, "half_open"),
                CircuitState::Open => (Status::Fail, "open"),
            };
            worst = worst.max(status);
            let output = (status != Status::Pass)
                .then(|| format!("circuit breaker {breaker}: requests to {name} fail fast"));
            check(
                "component",
                status,
                output,
                json!({"componentId": name, "breaker": breaker}),
            )
        })
        .collect();
    (worst, checks)
}

/// The alpha model this coordinator's node serves (`ml.model`): its version, age and
/// holdout figures, or why it cannot serve (`fail`: the scans run with neutral alphas),
/// and the scans this process finished blended or neutral. Optional, like the cache: a
/// scan never fails for the model. A model served with `ml.force` although its holdout
/// did not earn it is `warn`, and so are up nodes that serve different models (a scan
/// spanning them runs with neutral alphas).
fn ml_check(state: &AppState, nodes: &[NodeInfo]) -> (Status, Value) {
    let counted = &metrics().ml_scans;
    let count = |outcome| counted.get_or_create(&OutcomeLabel { outcome }).get();
    let scans = json!({"blended": count("blended"), "neutral": count("neutral")});
    let current = state.cluster.as_ref().and_then(|c| c.ml().current());
    let source = current.as_ref().map(|(_, source)| source.as_str());
    let (status, output, fields) = match current.as_ref().map(|(s, _)| &**s) {
        None => (
            Status::Pass,
            Some("no model configured (ml.model): ranking uses TechRating only".to_string()),
            json!({"observedValue": "none"}),
        ),
        Some(Serving::Unavailable(r)) => (
            Status::Fail,
            Some(format!("{} (scans run with neutral alphas)", r.message)),
            json!({"observedValue": "unavailable", "suggestions": r.suggestions}),
        ),
        Some(Serving::Ready(served)) => {
            let m = &served.model;
            let horizons: serde_json::Map<String, Value> = m
                .horizons
                .iter()
                .map(|h| {
                    let mut v = json!(h.metrics);
                    v["accepted"] = json!(h.accepted);
                    v["holdout"] = json!(h.holdout);
                    (h.horizon.to_string(), v)
                })
                .collect();
            let (status, output) = if m.accepted {
                (Status::Pass, None)
            } else {
                (
                    Status::Warn,
                    Some("serving a model whose holdout did not earn it (ml.force)".to_string()),
                )
            };
            (
                status,
                output,
                json!({
                    "observedValue": served.version,
                    "componentId": served.version,
                    "trained_at": m.trained_at,
                    "age_seconds": (Utc::now() - m.trained_at).num_seconds(),
                    "accepted": m.accepted,
                    "architecture": m.architecture,
                    "namespace": m.namespace,
                    "horizons": horizons,
                }),
            )
        }
    };
    let mut fields = fields;
    fields["scans"] = scans;
    if let Some(source) = source {
        fields["source"] = source.into();
    }
    let up: BTreeMap<&str, &str> = nodes
        .iter()
        .filter(|n| n.state == "up")
        .map(|n| (n.id.as_str(), n.model.as_deref().unwrap_or("none")))
        .collect();
    let served: BTreeSet<&str> = up.values().copied().collect();
    let (status, output) = if served.len() > 1 {
        let list = served.into_iter().collect::<Vec<_>>().join(", ");
        let mixed = format!(
            "the up nodes serve different models ({list}): scans that span them run with \
             neutral alphas"
        );
        let output = match output {
            Some(o) => format!("{o}; {mixed}"),
            None => mixed,
        };
        (status.max(Status::Warn), Some(output))
    } else {
        (status, output)
    };
    if !up.is_empty() {
        fields["nodes"] = json!(up);
    }
    (status, check("component", status, output, fields))
}

/// The alpha model this coordinator serves, as `/health/detailed` reports it (check
/// `ml-model:status`): `status`, version (`observedValue`), `source` (file or published),
/// age, holdout figures per horizon, the scans blended and run neutral, each up node's
/// version (`nodes`); or why it cannot serve (`output`, `suggestions`).
#[utoipa::path(get, path = "/api/v1/ml/model", tag = "ml",
    responses((status = 200, body = Object)))]
pub async fn model(State(state): Shared) -> Json<Value> {
    let listed = cluster_nodes(&state).await;
    Json(ml_check(&state, listed.as_deref().unwrap_or_default()).1)
}

/// Per-component health, `application/health+json`; HTTP 503 when the whole is `fail`.
#[utoipa::path(get, path = "/health/detailed", tag = "health",
    responses((status = 200, body = Object, content_type = "application/health+json"),
        (status = 503, body = Object, content_type = "application/health+json")))]
pub async fn detailed(State(state): Shared) -> Response {
    let (cache_status, cache) = cache_check(&state).await;
    let (provider_status, provider) = provider_checks(&state);
    let listed = cluster_nodes(&state).await;
    let up = listed
        .as_ref()
        .map_or(0, |n| n.iter().filter(|n| n.state == "up").count());
    let down = listed
        .as_ref()
        .map_or(0, |n| n.iter().filter(|n| n.state == "down").count());
    let nodes_status = match up {
        0 => Status::Fail,
        _ if down > 0 => Status::Warn,
        _ => Status::Pass,
    };
    let nodes_check = check(
        "system",
        nodes_status,
        match (&listed, up, down) {
            (Err(e), _, _) => Some(format!("cannot list the nodes: {e}")),
            (_, 0, _) => Some("no workers are registered".to_string()),
            (_, _, d) if d > 0 => Some(format!("{d} node(s) down")),
            _ => None,
        },
        json!({"observedValue": up, "observedUnit": "nodes up"}),
    );
    let redis_queue = state
        .cluster
        .as_ref()
        .is_some_and(|c| c.registry().is_some());
    let queue_status = match (&state.cluster, &listed) {
        (None, _) | (_, Err(_)) => Status::Fail,
        _ => Status::Pass,
    };
    let queue_check = check(
        "component",
        queue_status,
        match (&state.cluster, &listed) {
            (None, _) => Some("no work queue: this coordinator runs no cluster".to_string()),
            (_, Err(_)) => Some("the Redis work queue does not answer".to_string()),
            _ => None,
        },
        json!({"observedValue": state.live.len(), "observedUnit": "active scans",
               "componentId": if redis_queue { "redis-streams" } else { "in-process" }}),
    );
    let (ml_status, ml_check) = ml_check(&state, listed.as_deref().unwrap_or_default());
    let optional = cache_status
        .max(provider_status)
        .max(ml_status)
        .min(Status::Warn);
    let overall = optional.max(nodes_status).max(queue_status);
    let mut body = json!({
        "status": overall,
        "version": "1",
        "releaseId": env!("CARGO_PKG_VERSION"),
        "serviceId": state.node_id,
        "description": "technic coordinator",
        "checks": {
            "cache:connection": [cache],
            "data-provider:circuit": provider,
            "cluster-nodes:count": [nodes_check],
            "work-queue:status": [queue_check],
            "ml-model:status": [ml_check],
        }
    });
    let code = if overall == Status::Fail {
        let reason = if nodes_status == Status::Fail || queue_status == Status::Fail {
            not_ready(&listed)
        } else {
            None
        };
        let err = reason.unwrap_or_else(|| {
            ApiError::new(
                ErrorCode::WorkersUnavailable,
                "a required component fails",
                vec!["see checks".into()],
            )
        });
        body["error"] = err.to_json()["error"].clone();
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/health+json")],
        body.to_string(),
    )
        .into_response()
}
