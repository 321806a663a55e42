//! `/api/v1/performance/history`: finished scans' timing and their speedup against the
//! same universe's first uncached scan.

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::history::ScanSummary;
use super::query::{check_limit, ApiQuery};
use super::scans::Shared;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PerfQuery {
    /// Most scans (default 100; the history keeps at most api.history_max_scans).
    #[param(minimum = 1, maximum = 100_000)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PerfPoint {
    pub id: String,
    pub finished_at: Option<chrono::DateTime<Utc>>,
    pub scanned: Option<usize>,
    pub total_seconds: f64,
    pub symbols_per_second: f64,
    pub cache_hit_rate: Option<f64>,
    /// Against the first uncached scan of the same universe on record; `None` without one.
    pub speedup: Option<f64>,
}

/// Finished scans' timing, oldest first, with the speedup against the same universe's
/// first uncached scan in the history.
#[utoipa::path(get, path = "/api/v1/performance/history", tag = "performance", params(PerfQuery),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody)))]
pub async fn performance(
    State(state): Shared,
    ApiQuery(q): ApiQuery<PerfQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = check_limit(q.limit, 100)?.min(state.settings.api.history_max_scans.max(1));
    let mut scans: Vec<ScanSummary> = state
        .history
        .list(limit)
        .await
        .into_iter()
        .filter(|s| s.timing.is_some())
        .collect();
    scans.reverse();
    let points: Vec<PerfPoint> = scans
        .iter()
        .filter_map(|s| {
            let t = s.timing.as_ref()?;
            let baseline = scans.iter().find(|b| {
                b.universe_key == s.universe_key
                    && b.timing.as_ref().is_some_and(|bt| {
                        bt.cache_hit_rate.unwrap_or(0.0) == 0.0 && bt.total_seconds > 0.0
                    })
            });
            Some(PerfPoint {
                id: s.id.clone(),
                finished_at: s.finished_at,
                scanned: s.scanned,
                total_seconds: t.total_seconds,
                symbols_per_second: t.symbols_per_second,
                cache_hit_rate: t.cache_hit_rate,
                speedup: baseline
                    .and_then(|b| b.timing.as_ref())
                    .filter(|_| t.total_seconds > 0.0)
                    .map(|bt| bt.total_seconds / t.total_seconds),
            })
        })
        .collect();
    Ok(Json(json!({ "scans": points })))
}
