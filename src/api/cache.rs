//! `/api/v1/cache/*`: stats, analytics, clear, warm and TTL settings of the cache. Over a
//! shared cache the statistics are the cluster's: every node adds its counters to Redis
//! every heartbeat (`cache::shared_stats`), so any serve shows every node's lookups.
//!
//! A TTL change is stored in the cache as a versioned record: this process applies it at
//! once, every other node of the cache within a heartbeat, each reporting the version it
//! writes with (`ttl_version` in `/api/v1/cluster/nodes`). Keys already written keep
//! their TTL.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::scans::Shared;
use crate::cache::{ScanCache, SmartTtl, SystemClock};
use crate::cluster::{warm_once, PipelineContext};
use crate::config::TtlSettings;
use crate::error::ErrorCode;
use crate::scan::ScanConfig;

fn no_cache() -> ApiError {
    ApiError::new(
        ErrorCode::CacheUnavailable,
        "this server runs without a cache",
        vec!["start technic serve with --redis redis://HOST:PORT, or set cache.url (memory, redis://…)".into()],
    )
}

fn unreachable_cache() -> ApiError {
    ApiError::new(
        ErrorCode::CacheUnavailable,
        "the cache does not answer",
        vec![
            "check that Redis is running and reachable at the configured cache url".into(),
            "scans go on uncached meanwhile; caching resumes by itself when Redis is back".into(),
        ],
    )
}

fn cache(state: &super::state::AppState) -> Result<&Arc<ScanCache>, ApiError> {
    state.cache.as_ref().ok_or_else(no_cache)
}

/// The cache, once this node's lookups so far are in the shared statistics: a read right
/// after a scan here counts that scan, not only what the last heartbeat published.
async fn counted(state: &super::state::AppState) -> Result<&Arc<ScanCache>, ApiError> {
    let c = cache(state)?;
    c.publish_stats(&state.node_id).await;
    Ok(c)
}

/// Hit rates per kind, keys per kind and memory. Over a shared (Redis) cache the counters
/// are the whole cluster's (`scope: cluster`), each node's in `per_node`; else this
/// process's (`scope: process`).
#[utoipa::path(get, path = "/api/v1/cache/stats", tag = "cache",
    responses((status = 200, body = Object), (status = 503, body = ErrorBody)))]
pub async fn stats(State(state): Shared) -> Result<Json<Value>, ApiError> {
    let c = counted(&state).await?;
    let a = c.analytics(0).await;
    if a.keys_per_kind.is_none() {
        if let Some(e) = &a.status.last_error {
            tracing::warn!(error = %e, "cache stats: backend unavailable");
        }
        return Err(unreachable_cache());
    }
    let (hits, misses) = a
        .per_kind
        .values()
        .fold((0, 0), |(h, m), k| (h + k.hits, m + k.misses));
    let per_node = with_ttl_versions(
        &state,
        serde_json::to_value(&a.per_node).unwrap_or_default(),
    )
    .await;
    Ok(Json(json!({
        "backend": a.status.backend,
        "available": a.status.available,
        "degraded_since": a.status.degraded_since,
        "hits": hits,
        "misses": misses,
        "hit_rate": (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
        "scope": a.scope,
        "ttl_version": c.ttl_version(),
        "per_kind": a.per_kind,
        "per_node": per_node,
        "keys_per_kind": a.keys_per_kind,
        "memory": a.memory,
    })))
}

/// Everything in stats, plus most-requested symbols, hit rate over time and base TTLs.
#[utoipa::path(get, path = "/api/v1/cache/analytics", tag = "cache",
    responses((status = 200, body = Object), (status = 503, body = ErrorBody)))]
pub async fn analytics(State(state): Shared) -> Result<Json<Value>, ApiError> {
    let c = counted(&state).await?;
    let mut a = c.analytics(20).await;
    // The backend's own error text stays in the log.
    if let Some(e) = a.status.last_error.take() {
        tracing::warn!(error = %e, "cache analytics: last backend error");
    }
    let mut v = serde_json::to_value(a).unwrap_or_default();
    v["per_node"] = with_ttl_versions(&state, v["per_node"].take()).await;
    Ok(Json(v))
}

/// `per_node` with each node's `ttl_version` (the shared TTL settings it writes with, from
/// its heartbeat; null for a node no longer in the registry).
async fn with_ttl_versions(state: &super::state::AppState, mut per_node: Value) -> Value {
    let Some(rows) = per_node.as_object_mut() else {
        return per_node;
    };
    let nodes = super::state::cluster_nodes(state).await.unwrap_or_default();
    for (id, row) in rows.iter_mut() {
        row["ttl_version"] = nodes
            .iter()
            .find(|n| &n.id == id)
            .map_or(Value::Null, |n| n.ttl_version.into());
    }
    per_node
}

/// Removes every technic cache key (`technic:v1:*`), nothing else.
#[utoipa::path(post, path = "/api/v1/cache/clear", tag = "cache", security((), ("bearer" = [])),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn clear(State(state): Shared) -> Result<Json<Value>, ApiError> {
    let n = cache(&state)?.clear().await.map_err(|e| {
        tracing::warn!(error = %e, "cache clear failed");
        unreachable_cache()
    })?;
    tracing::info!(removed = n, "cache cleared over http");
    Ok(Json(json!({ "removed": n })))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmRequest {
    /// Extra symbols to warm, besides the configured and most-requested ones (at most 1,000).
    #[serde(default)]
    #[schema(max_items = 1000)]
    symbols: Vec<String>,
}

/// Loads the configured and most-requested symbols (and any listed) into the cache now.
#[utoipa::path(post, path = "/api/v1/cache/warm", tag = "cache", security((), ("bearer" = [])),
    request_body(content = Option<WarmRequest>, content_type = "application/json",
        description = "extra symbols; an empty body warms the configured and most-requested ones"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn warm(State(state): Shared, body: Bytes) -> Result<Json<Value>, ApiError> {
    let c = cache(&state)?.clone();
    let req: WarmRequest = if body.iter().all(u8::is_ascii_whitespace) {
        WarmRequest::default()
    } else {
        // `null` is the absent body of the OpenAPI document (the body is optional).
        serde_json::from_slice::<Option<WarmRequest>>(&body)
            .map(Option::unwrap_or_default)
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::InvalidInput,
                    format!("invalid warm request: {e}"),
                    vec![r#"send {"symbols": ["AAPL", "MSFT"]} or an empty body"#.into()],
                )
            })?
    };
    if req.symbols.len() > 1000 {
        return Err(ApiError::new(
            ErrorCode::InvalidInput,
            "at most 1,000 symbols per warm request",
            vec!["split the list".into()],
        ));
    }
    let mut warm = state.settings.cache.warm.clone();
    warm.symbols.extend(
        req.symbols
            .iter()
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty()),
    );
    let ctx = PipelineContext {
        node_id: state.node_id.clone(),
        provider: state.provider.clone(),
        cache: Some(c.clone()),
        queue: None,
        ml: Default::default(),
    };
    let report = warm_once(
        &ctx,
        &warm,
        &ScanConfig::from_settings(&state.settings.scan),
    )
    .await;
    if !c.status().available {
        return Err(unreachable_cache());
    }
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

/// The TTL settings in force (`[cache.ttl]`).
#[utoipa::path(get, path = "/api/v1/cache/ttl", tag = "cache",
    responses((status = 200, body = Object), (status = 503, body = ErrorBody)))]
pub async fn get_ttl(State(state): Shared) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        serde_json::to_value(cache(&state)?.smart_ttl().settings()).unwrap_or_default(),
    ))
}

/// The body of `PUT /api/v1/cache/ttl`: any of the `[cache.ttl]` fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documentation only: the body is merged over the settings in force
pub struct TtlRequest {
    #[schema(nullable = false, minimum = 1, maximum = 31_536_000)]
    bars_secs: Option<u64>,
    #[schema(nullable = false, minimum = 1, maximum = 31_536_000)]
    features_secs: Option<u64>,
    #[schema(nullable = false, minimum = 1, maximum = 31_536_000)]
    ml_secs: Option<u64>,
    #[schema(nullable = false, minimum = 1, maximum = 31_536_000)]
    scan_secs: Option<u64>,
    #[schema(nullable = false, minimum = 1, maximum = 31_536_000)]
    meta_secs: Option<u64>,
    /// Daily volatility above which TTLs are halved (above low_vol_daily).
    #[schema(nullable = false)]
    high_vol_daily: Option<f64>,
    /// Daily volatility below which TTLs are doubled.
    #[schema(nullable = false)]
    low_vol_daily: Option<f64>,
    /// An IANA time zone, e.g. `America/New_York`.
    #[schema(nullable = false)]
    market_timezone: Option<String>,
    /// `HH:MM`, exchange time, before market_close.
    #[schema(nullable = false)]
    market_open: Option<String>,
    /// `HH:MM`, exchange time.
    #[schema(nullable = false)]
    market_close: Option<String>,
}

/// Replaces the TTL settings of every node of this cache (a partial object keeps the other
/// fields; every problem listed): stored versioned in the cache, applied here at once and
/// by the other nodes within a heartbeat. 503 when the cache cannot store them.
#[utoipa::path(put, path = "/api/v1/cache/ttl", tag = "cache", security((), ("bearer" = [])),
    request_body(content = TtlRequest, content_type = "application/json"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn put_ttl(State(state): Shared, body: Bytes) -> Result<Json<Value>, ApiError> {
    let c = cache(&state)?;
    let invalid = |problems: Vec<String>| {
        ApiError::new(
            ErrorCode::InvalidConfig,
            format!("invalid ttl settings: {}", problems.join("; ")),
            problems
                .iter()
                .map(|p| format!("fix: {p}"))
                .chain(["GET /api/v1/cache/ttl shows the fields and current values".to_string()])
                .collect(),
        )
    };
    let mut current = match serde_json::to_value(c.smart_ttl().settings()) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let over = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(over)) => over,
        Ok(_) => return Err(invalid(vec!["the body must be a JSON object".into()])),
        Err(e) => return Err(invalid(vec![format!("the body is not valid JSON: {e}")])),
    };
    // Every problem at once: each field is type-checked on its own over the settings in
    // force, and the range checks then run on the fields that were well-typed.
    let base = current.clone();
    let mut problems = Vec::new();
    for (k, v) in over {
        if !base.contains_key(&k) {
            problems.push(format!("unknown field {k:?}"));
            continue;
        }
        let mut one = base.clone();
        one.insert(k.clone(), v.clone());
        match serde_json::from_value::<TtlSettings>(Value::Object(one)) {
            Ok(_) => {
                current.insert(k, v);
            }
            Err(e) => problems.push(format!("{k}: {e}")),
        }
    }
    let settings: TtlSettings =
        serde_json::from_value(Value::Object(current)).map_err(|e| invalid(vec![e.to_string()]))?;
    let ttl = match SmartTtl::new(settings, Arc::new(SystemClock)) {
        Ok(ttl) if problems.is_empty() => ttl,
        Ok(_) => return Err(invalid(problems)),
        Err(e) => {
            problems.extend(e.problems);
            return Err(invalid(problems));
        }
    };
    let version = c.share_ttl(ttl).await.map_err(|e| {
        tracing::warn!(error = %e, "cache ttl settings: cannot store them");
        unreachable_cache()
    })?;
    tracing::info!(version, "cache ttl settings replaced over http");
    Ok(Json(
        serde_json::to_value(c.smart_ttl().settings()).unwrap_or_default(),
    ))
}
