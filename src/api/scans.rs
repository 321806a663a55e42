//! `/api/v1/scans`: submit, history, state, results (JSON or CSV) and cancel.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::history::{ScanRecord, ScanSummary};
use super::query::{check_limit, ApiQuery};
use super::state::{AppState, LiveScan};
use crate::cluster::{BookEntry, Concluded, Progress, RunningScan, ScanHandle};
use crate::error::{ErrorCode, UserError};
use crate::scan::export::json_rows_to_csv;
use crate::scan::{rank, ScanConfig, SortKey};

pub type Shared = State<Arc<AppState>>;

#[derive(Debug, Serialize, ToSchema)]
pub struct Submitted {
    pub id: String,
}

/// The scan config (all fields optional; absent ones take the server's defaults). A
/// `null` is accepted where the field itself may be empty (`universe_size`, `top`, …).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documentation only: the body is parsed by `scan_request::parse`
pub struct ScanRequest {
    /// At most the server's scan.max_universe_size.
    #[schema(minimum = 1)]
    universe_size: Option<usize>,
    /// Letters, digits, `.`, `-` or `_` (1–16 characters); at most scan.max_universe_size.
    #[schema(nullable = false)]
    symbols: Option<Vec<String>>,
    #[schema(nullable = false)]
    sectors: Option<Vec<String>>,
    #[schema(nullable = false)]
    industries: Option<Vec<String>>,
    #[schema(minimum = 0)]
    min_market_cap: Option<f64>,
    /// At most lookback_days.
    #[schema(nullable = false, maximum = 20_000)]
    min_bars: Option<usize>,
    #[schema(nullable = false, minimum = 0)]
    min_price: Option<f64>,
    #[schema(nullable = false, minimum = 0)]
    min_dollar_volume: Option<f64>,
    min_tech_rating: Option<f64>,
    /// Keep only these signals (empty: all).
    #[schema(nullable = false, inline)]
    signals: Option<Vec<crate::scan::Signal>>,
    /// At most api.max_lookback_days (5,000 by default).
    #[schema(nullable = false, minimum = 1, maximum = 20_000)]
    lookback_days: Option<usize>,
    /// YYYY-MM-DD, from api.min_as_of to today.
    #[schema(format = Date)]
    as_of: Option<String>,
    #[schema(minimum = 1)]
    top: Option<usize>,
    #[schema(nullable = false, inline)]
    sort: Option<crate::scan::SortKey>,
    #[schema(minimum = 1)]
    sector_cap: Option<usize>,
    /// A partial object keeps the other weights.
    #[schema(nullable = false)]
    weights: Option<ScanWeights>,
    #[schema(nullable = false, exclusive_minimum = 0)]
    account_size: Option<f64>,
    #[schema(nullable = false, exclusive_minimum = 0, maximum = 100)]
    risk_pct: Option<f64>,
    #[schema(nullable = false, exclusive_minimum = 0)]
    target_rr: Option<f64>,
    #[schema(nullable = false, minimum = 0.5, maximum = 3)]
    stop_atr_multiple: Option<f64>,
}

/// The weights of the sub-scores in TechRating.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documentation only
pub struct ScanWeights {
    #[schema(nullable = false)]
    trend: Option<f64>,
    #[schema(nullable = false)]
    momentum: Option<f64>,
    #[schema(nullable = false)]
    volume: Option<f64>,
    #[schema(nullable = false)]
    volatility: Option<f64>,
    #[schema(nullable = false)]
    oscillator: Option<f64>,
    #[schema(nullable = false)]
    breakout: Option<f64>,
}

/// Submits a scan.
#[utoipa::path(post, path = "/api/v1/scans", tag = "scans",
    request_body(content = Option<ScanRequest>, content_type = "application/json",
        description = "the scan config; an empty body takes every default"),
    security((), ("bearer" = [])),
    responses((status = 202, body = Submitted), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn submit(State(state): Shared, body: Bytes) -> Result<Response, ApiError> {
    let config = super::scan_request::parse(&body, &state.settings)?;
    let config = state
        .library
        .resolve(config, state.settings.scan.max_universe_size)
        .await?;
    let live = start_scan(&state, config).await?;
    tracing::info!(scan_id = %live.id, "scan submitted over http");
    Ok((
        StatusCode::ACCEPTED,
        Json(Submitted {
            id: live.id.clone(),
        }),
    )
        .into_response())
}

/// Submits `config` to this serve's cluster and follows it ([`track`]): refused without
/// workers, and at `api.max_active_scans`.
pub async fn start_scan(
    state: &Arc<AppState>,
    config: ScanConfig,
) -> Result<Arc<LiveScan>, ApiError> {
    let Some(cluster) = state.cluster.as_ref() else {
        return Err(ApiError::new(
            ErrorCode::WorkersUnavailable,
            "no workers are registered to run scans",
            vec![
                "start this server with --workers N (N ≥ 1)".into(),
                "check readiness with GET /health/ready".into(),
            ],
        ));
    };
    let max = state.settings.api.max_active_scans;
    if state.live.len() >= max {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            format!("{max} scans are already running (api.max_active_scans)"),
            vec!["retry when a running scan has finished (GET /api/v1/scans)".into()],
        ));
    }
    let handle = cluster.submit(config).await.map_err(ApiError::from)?;
    Ok(track(state, handle))
}

/// Follows a scan this process owns (submitted here, or taken over) until it ends: cancel
/// requests go to its coordinator, and its record goes to the history. A scan taken over
/// by another serve just leaves: its new owner records it.
pub fn track(state: &Arc<AppState>, handle: ScanHandle) -> Arc<LiveScan> {
    let (finished_tx, finished_rx) = watch::channel(None);
    let live = Arc::new(LiveScan {
        id: handle.id.clone(),
        submitted_at: handle.submitted_at,
        config: Arc::clone(&handle.config),
        progress: handle.progress.clone(),
        finished: finished_rx,
        cancel: Arc::new(Notify::new()),
    });
    state.live.insert(live.clone());
    let st = state.clone();
    let following = Arc::clone(&live);
    tokio::spawn(async move {
        let live = following;
        let mut progress = handle.progress.clone();
        loop {
            if progress.borrow_and_update().stage.is_terminal() {
                break;
            }
            tokio::select! {
                changed = progress.changed() => if changed.is_err() { break },
                _ = live.cancel.notified() => handle.cancel(),
            }
        }
        match handle.conclude().await {
            Concluded::Ended(record) => {
                // The record is in the history before the live entry goes (no reader
                // misses it), and the live entry is gone before anyone is told the scan
                // finished (a client that saw it finish may submit again without meeting
                // api.max_active_scans).
                st.history.put(record.clone()).await;
                st.live.remove(&live);
                let _ = finished_tx.send(Some(record));
            }
            // Readers find it in the book, under its new owner; this process's followers
            // see their stream end and reconnect.
            Concluded::Left(e) => {
                tracing::info!(scan_id = %live.id, reason = %e.message, "scan left to the cluster");
                st.live.remove(&live);
            }
        }
    });
    live
}

/// Takes over, every `cluster.lease_renew_ms`, the cluster's scans whose owner stopped
/// renewing its lease, until `shutdown`.
pub async fn adopt_orphans(state: std::sync::Weak<AppState>, shutdown: crate::shutdown::Shutdown) {
    loop {
        let Some(state) = state.upgrade() else {
            return;
        };
        let Some(cluster) = state.cluster.as_ref() else {
            return;
        };
        for handle in cluster.adopt_orphans().await {
            tracing::info!(scan_id = %handle.id, epoch = handle.epoch, "resuming a scan whose coordinator stopped");
            let _ = track(&state, handle);
        }
        let every = std::time::Duration::from_millis(state.settings.cluster.lease_renew_ms);
        drop(state);
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.triggered() => return,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Most scans returned (default 50; there are at most api.history_max_scans finished
    /// plus the running ones).
    #[param(minimum = 1, maximum = 100_000)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScanList {
    pub scans: Vec<ScanSummary>,
}

/// Running scans, then the history (newest first), with timing.
#[utoipa::path(get, path = "/api/v1/scans", tag = "scans", params(ListQuery),
    responses((status = 200, body = ScanList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): Shared,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ScanList>, ApiError> {
    let limit = check_limit(q.limit, 50)?
        .min(state.settings.api.history_max_scans + state.settings.api.max_active_scans);
    let mut scans: Vec<ScanSummary> = state.live.all().iter().map(|l| live_summary(l)).collect();
    for r in state.history.running().await {
        if !scans.iter().any(|x| x.id == r.id) {
            scans.push(running_summary(
                &r.id,
                r.submitted_at,
                &r.progress,
                &r.config,
            ));
        }
    }
    for s in state.history.list(limit).await {
        if !scans.iter().any(|x| x.id == s.id) {
            scans.push(s);
        }
    }
    scans.truncate(limit);
    Ok(Json(ScanList { scans }))
}

fn live_summary(l: &LiveScan) -> ScanSummary {
    if let Some(r) = l.finished.borrow().as_ref() {
        return r.summary();
    }
    let p = l.progress.borrow().clone();
    running_summary(&l.id, l.submitted_at, &p, &l.config)
}

fn running_summary(
    id: &str,
    submitted_at: chrono::DateTime<Utc>,
    p: &Progress,
    config: &ScanConfig,
) -> ScanSummary {
    ScanSummary {
        id: id.to_string(),
        stage: p.stage.as_str().into(),
        submitted_at,
        finished_at: None,
        universe_size: (p.total > 0).then_some(p.total),
        scanned: None,
        results: None,
        failures: None,
        timing: None,
        error_code: None,
        universe_key: super::history::universe_key(config),
    }
}

/// A scan, live here, running under another owner, or from the history.
pub enum Found {
    Live(Arc<LiveScan>),
    /// Running under another coordinator (or between two owners), as the book has it.
    Elsewhere(Box<RunningScan>),
    Done(Arc<ScanRecord>),
}

/// How long a reader waits for the record of a scan whose progress is already terminal
/// (the report follows the last progress event within milliseconds).
const RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The scan `id`. A scan whose progress is terminal is answered from its record, so
/// `stage: done` always comes with its timing.
pub async fn find(state: &AppState, id: &str) -> Result<Found, ApiError> {
    if let Some(l) = state.live.get(id) {
        let terminal = l.progress.borrow().stage.is_terminal();
        let mut finished = l.finished.clone();
        let record = if terminal {
            tokio::time::timeout(RECORD_WAIT, finished.wait_for(Option::is_some))
                .await
                .ok()
                .and_then(|r| r.ok().and_then(|r| r.clone()))
        } else {
            finished.borrow().clone()
        };
        return Ok(match record {
            Some(r) => Found::Done(r),
            None => Found::Live(l),
        });
    }
    match state.history.get(id).await {
        Ok(Some(BookEntry::Finished(r))) => Ok(Found::Done(r)),
        Ok(Some(BookEntry::Running(r))) => Ok(Found::Elsewhere(r)),
        Ok(None) => Err(ApiError::scan_not_found(id)),
        Err(e) => Err(book_unavailable(e)),
    }
}

/// The state of a finished scan: stage, progress, report fields but the results.
pub fn record_view(r: &ScanRecord) -> Value {
    let mut v = json!({
        "id": r.id,
        "stage": r.progress.stage.as_str(),
        "progress": r.progress,
        "submitted_at": r.submitted_at,
        "finished_at": r.finished_at,
        "config": r.config,
    });
    if let Some(rep) = &r.report {
        v["status"] = json!(rep.status);
        v["universe_size"] = json!(rep.universe_size);
        v["scanned"] = json!(rep.scanned);
        v["results_count"] = json!(rep.results.len());
        v["failures"] = json!(rep.failures);
        v["filtered"] = json!(rep.filtered);
        v["timing"] = json!(rep.timing);
        v["warnings"] = json!(rep.warnings);
        if let Some(c) = &rep.from_cache {
            v["from_cache"] = json!(c);
        }
        if let Some(m) = &rep.model {
            v["model"] = json!(m);
        }
    }
    if let Some(e) = &r.error {
        v["error"] = ApiError(e.clone()).to_json()["error"].clone();
    }
    v
}

pub fn live_view(l: &LiveScan, owner: &str) -> Value {
    let p = l.progress.borrow().clone();
    running_view(&l.id, &p, l.submitted_at, &l.config, owner)
}

fn running_view(
    id: &str,
    p: &Progress,
    submitted_at: chrono::DateTime<Utc>,
    config: &ScanConfig,
    owner: &str,
) -> Value {
    json!({
        "id": id,
        "stage": p.stage.as_str(),
        "progress": p,
        "submitted_at": submitted_at,
        "finished_at": null,
        "config": config,
        "owner": owner,
    })
}

/// Status, progress, timing and failures of one scan (`stage` is `done` when finished).
#[utoipa::path(get, path = "/api/v1/scans/{id}", tag = "scans",
    params(("id" = String, Path, description = "scan id")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): Shared, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(match find(&state, &id).await? {
        Found::Live(l) => live_view(&l, &state.node_id),
        Found::Elsewhere(r) => {
            running_view(&r.id, &r.progress, r.submitted_at, &r.config, &r.owner)
        }
        Found::Done(r) => record_view(&r),
    }))
}

/// The representation of a scan's results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResultFormat {
    #[default]
    Json,
    Csv,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultsQuery {
    /// `json` (default) or `csv`.
    #[param(inline)]
    format: Option<ResultFormat>,
    /// A ranking key (as the scan's `sort`): results re-ranked by it, descending.
    #[param(value_type = Option<crate::scan::SortKey>, inline)]
    sort: Option<SortKey>,
    /// Keep the first N rows (default: every row).
    #[param(minimum = 1, maximum = 100_000)]
    limit: Option<usize>,
}

/// The ranked results, as JSON `{"results": [...]}` or CSV with a header row.
#[utoipa::path(get, path = "/api/v1/scans/{id}/results", tag = "scans",
    params(("id" = String, Path, description = "scan id"), ResultsQuery),
    responses((status = 200, description = "the results, as `format` asks",
            content((Object = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn results(
    State(state): Shared,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ResultsQuery>,
) -> Result<Response, ApiError> {
    let csv = q.format.unwrap_or_default() == ResultFormat::Csv;
    let sort = q.sort;
    let limit = q.limit.map(|n| check_limit(Some(n), n)).transpose()?;
    let record = match find(&state, &id).await? {
        Found::Done(r) => r,
        Found::Live(l) => {
            let stage = l.progress.borrow().stage;
            return Err(not_finished(&l.id, stage));
        }
        Found::Elsewhere(r) => return Err(not_finished(&r.id, r.progress.stage)),
    };
    let Some(report) = &record.report else {
        let why = record
            .error
            .as_ref()
            .map_or("unknown error".to_string(), |e| e.message.clone());
        return Err(ApiError::new(
            ErrorCode::ScanFailed,
            format!("scan {} failed and has no results: {why}", record.id),
            vec![format!(
                "see GET /api/v1/scans/{} for the error and its suggestions",
                record.id
            )],
        ));
    };
    let mut rows = report.results.clone();
    if let Some(key) = sort {
        let cfg = ScanConfig {
            sort: key,
            top: None,
            sector_cap: None,
            ..record.config.clone()
        };
        rank(&mut rows, &cfg);
    }
    if let Some(n) = limit {
        rows.truncate(n);
    }
    let values: Vec<Value> = rows
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    if csv {
        let body = json_rows_to_csv(&values);
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response());
    }
    Ok(Json(json!({ "results": values })).into_response())
}

/// The scan book (in the cluster's Redis) does not answer: the scan may exist.
fn book_unavailable(e: crate::redis_link::LinkError) -> ApiError {
    ApiError::from(UserError::from(crate::cluster::QueueError::from(e)))
}

fn not_finished(id: &str, stage: crate::cluster::Stage) -> ApiError {
    ApiError::new(
        ErrorCode::ScanNotFinished,
        format!("scan {id} is still {}", stage.as_str()),
        vec![format!(
            "follow it with GET /api/v1/scans/{id}/events, then retry"
        )],
    )
}

/// `202 {"id", "cancelling": true}`: the cancel is on its way to the scan's coordinator.
fn cancelling(id: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "cancelling": true})),
    )
        .into_response()
}

/// Cancels a running scan; its report comes back partial, stage `cancelled`.
#[utoipa::path(post, path = "/api/v1/scans/{id}/cancel", tag = "scans",
    params(("id" = String, Path, description = "scan id")), security((), ("bearer" = [])),
    responses((status = 202, body = Object), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(State(state): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    match find(&state, &id).await? {
        Found::Live(l) => {
            l.cancel.notify_one();
            tracing::info!(scan_id = %l.id, "cancel requested over http");
            Ok(cancelling(&l.id))
        }
        Found::Elsewhere(r) => {
            let asked = state
                .history
                .request_cancel(&r.id)
                .await
                .map_err(book_unavailable)?;
            if !asked {
                return Err(ApiError::new(
                    ErrorCode::ScanNotRunning,
                    format!("scan {} already finished", r.id),
                    vec![format!(
                        "its results are at GET /api/v1/scans/{}/results",
                        r.id
                    )],
                ));
            }
            tracing::info!(scan_id = %r.id, owner = %r.owner, "cancel requested over http for a scan owned by another serve");
            Ok(cancelling(&r.id))
        }
        Found::Done(r) => Err(ApiError::new(
            ErrorCode::ScanNotRunning,
            format!(
                "scan {} already finished ({})",
                r.id,
                r.progress.stage.as_str()
            ),
            vec![format!(
                "its results are at GET /api/v1/scans/{}/results",
                r.id
            )],
        )),
    }
}
