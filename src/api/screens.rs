//! `/api/v1/screens`: saved screens (create, list, read, replace, delete), running one now,
//! its run history; and the scheduler that runs them on their ticks, on the leader only.
//!
//! A screen runs on the cluster like any submitted scan. Its runs are serialised per screen
//! in this process (each diff is against the run before it). A scheduled tick is claimed in
//! the library first (one claim per screen and tick, renewed while the run lasts, marked
//! done at the end): a tick runs once in the cluster, and one whose runner died is run again
//! by the next leader once the claim lapses, within `screens.misfire_grace_secs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::query::{check_limit, ApiQuery};
use super::scan_request::{fields, invalid, object};
use super::scans::{start_scan, Shared};
use super::state::AppState;
use crate::error::ErrorCode;
use crate::scan::{name_problems, ScanConfig};
use crate::screens::{Outcome, Run, RunStart, Schedule, Screen, Trigger, TICK_DONE};

/// A screen with its next tick and its last run.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScreenView {
    #[serde(flatten)]
    pub screen: Screen,
    /// The schedule's next tick.
    pub next_tick: Option<DateTime<Utc>>,
    pub last_run: Option<Run>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScreenList {
    pub screens: Vec<ScreenView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<Run>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunStarted {
    /// The run's scan (follow it under /api/v1/scans/{id}).
    pub run_id: String,
}

/// A screen: `name` (create only), the scan fields of `POST /api/v1/scans` at the top level
/// or under `config`, and an optional `schedule`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // documentation only: the body is parsed by `screen_body`
pub struct ScreenRequest {
    /// 1-64 letters, digits, `.`, `-` or `_` (in the path for PUT).
    name: Option<String>,
    schedule: Option<Schedule>,
    /// The scan config (ScanRequest); its fields may also be given at the top level.
    #[schema(value_type = Option<Object>)]
    config: Option<Value>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Most runs returned, newest first (default 20).
    #[param(minimum = 1, maximum = 100_000)]
    limit: Option<usize>,
}

/// Fields of a screen's JSON that are the server's, not the client's: ignored on input, so
/// a screen read can be sent back.
const READ_ONLY: [&str; 5] = [
    "version",
    "created_at",
    "updated_at",
    "next_tick",
    "last_run",
];

/// The name, config and schedule of a screen body, or every problem with it.
async fn screen_body(
    state: &AppState,
    body: &[u8],
    path_name: Option<&str>,
) -> Result<(String, ScanConfig, Option<Schedule>), ApiError> {
    let mut map = object(body).map_err(|p| invalid(vec![p]))?;
    let mut problems = Vec::new();
    for k in READ_ONLY {
        map.remove(k);
    }
    let name = match (map.remove("name"), path_name) {
        (Some(Value::String(n)), Some(p)) if n != p => {
            problems.push(format!(
                "name {n:?} differs from the name in the path {p:?}"
            ));
            p.to_string()
        }
        (None | Some(Value::String(_)), Some(p)) => p.to_string(),
        (Some(Value::String(n)), None) => n,
        (Some(_), _) => {
            problems.push("name must be a string".into());
            String::new()
        }
        (None, None) => {
            problems.push("name is required".into());
            String::new()
        }
    };
    problems.extend(name_problems("screen", &name));
    let schedule = match map.remove("schedule") {
        None | Some(Value::Null) => None,
        Some(v) => match serde_json::from_value::<Schedule>(v) {
            Ok(s) => {
                if let Err(p) = s.parse() {
                    problems.extend(p);
                }
                Some(s)
            }
            Err(e) => {
                problems.push(format!("schedule: {e}"));
                None
            }
        },
    };
    let given = match map.remove("config") {
        Some(Value::Object(c)) if map.is_empty() => c,
        Some(Value::Object(c)) => {
            let extra: Vec<&String> = map.keys().collect();
            problems.push(format!(
                "the scan fields are under config: {extra:?} must be there too"
            ));
            c
        }
        Some(_) => {
            problems.push("config must be an object".into());
            Map::new()
        }
        None => map,
    };
    if let Some(Value::String(w)) = given.get("watchlist") {
        if name_problems("watchlist", w).is_none() {
            if let Err(e) = state.library.watchlist(w).await {
                if e.code != ErrorCode::NotFound {
                    return Err(e.into());
                }
                problems.push(format!("watchlist {w:?} does not exist"));
            }
        }
    }
    let config = match fields(given, &state.settings) {
        Ok(c) => Some(c),
        Err(p) => {
            problems.extend(p);
            None
        }
    };
    match config {
        Some(c) if problems.is_empty() => Ok((name, c, schedule)),
        _ => Err(invalid(problems)),
    }
}

fn view(screen: Screen, last_run: Option<Run>) -> ScreenView {
    let next_tick = screen
        .schedule
        .as_ref()
        .and_then(|s| s.parse().ok())
        .and_then(|t| t.next_after(Utc::now()));
    ScreenView {
        screen,
        next_tick,
        last_run,
    }
}

/// Saves a new screen.
#[utoipa::path(post, path = "/api/v1/screens", tag = "screens",
    request_body(content = ScreenRequest, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses((status = 201, body = Screen), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn create_screen(State(state): Shared, body: Bytes) -> Result<Response, ApiError> {
    let (name, config, schedule) = screen_body(&state, &body, None).await?;
    let screen = state
        .library
        .save_screen(&name, config, schedule, true)
        .await?;
    Ok((StatusCode::CREATED, Json(screen)).into_response())
}

/// Every screen, by name, with its next tick and last run.
#[utoipa::path(get, path = "/api/v1/screens", tag = "screens",
    responses((status = 200, body = ScreenList), (status = 503, body = ErrorBody)))]
pub async fn list_screens(State(state): Shared) -> Result<Json<ScreenList>, ApiError> {
    let mut screens = Vec::new();
    for s in state.library.screens().await? {
        let last = state.library.runs(&s.name, 1).await?.pop();
        screens.push(view(s, last));
    }
    Ok(Json(ScreenList { screens }))
}

/// One screen, with its next tick and last run.
#[utoipa::path(get, path = "/api/v1/screens/{name}", tag = "screens",
    params(("name" = String, Path)),
    responses((status = 200, body = ScreenView), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn get_screen(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<Json<ScreenView>, ApiError> {
    let s = state.library.screen(&name).await?;
    let last = state.library.runs(&name, 1).await?.pop();
    Ok(Json(view(s, last)))
}

/// Saves a screen under this name: a new version of it, or a new screen.
#[utoipa::path(put, path = "/api/v1/screens/{name}", tag = "screens",
    params(("name" = String, Path)),
    request_body(content = Option<ScreenRequest>, content_type = "application/json",
        description = "the screen; an empty body saves every scan default without a schedule"),
    security((), ("bearer" = [])),
    responses((status = 200, body = Screen), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn put_screen(
    State(state): Shared,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Screen>, ApiError> {
    let (name, config, schedule) = screen_body(&state, &body, Some(&name)).await?;
    Ok(Json(
        state
            .library
            .save_screen(&name, config, schedule, false)
            .await?,
    ))
}

/// Deletes a screen, its run history and its last matches.
#[utoipa::path(delete, path = "/api/v1/screens/{name}", tag = "screens",
    params(("name" = String, Path)),
    security((), ("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn delete_screen(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.library.delete_screen(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs a screen now; its difference from the last run goes to the webhooks.
#[utoipa::path(post, path = "/api/v1/screens/{name}/run", tag = "screens",
    params(("name" = String, Path)),
    security((), ("bearer" = [])),
    responses((status = 202, body = RunStarted), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn run_screen(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let screen = state.library.screen(&name).await?;
    let Ok(lock) = state.runner.lock(&name).try_lock_owned() else {
        return Err(ApiError::new(
            ErrorCode::ScreenBusy,
            format!("a run of screen {name:?} is in progress on this server"),
            vec![format!(
                "retry when it has finished (GET /api/v1/screens/{name}/runs)"
            )],
        ));
    };
    let (run_id, done) = start(&state, screen, Trigger::Manual, None).await?;
    tokio::spawn(async move {
        let _lock = lock;
        let _ = done.await;
    });
    Ok((StatusCode::ACCEPTED, Json(RunStarted { run_id })).into_response())
}

/// A screen's runs, newest first.
#[utoipa::path(get, path = "/api/v1/screens/{name}/runs", tag = "screens",
    params(("name" = String, Path), RunsQuery),
    responses((status = 200, body = RunList), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn screen_runs(
    State(state): Shared,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Json<RunList>, ApiError> {
    let limit = check_limit(q.limit, 20)?;
    state.library.screen(&name).await?;
    Ok(Json(RunList {
        runs: state.library.runs(&name, limit).await?,
    }))
}

/// One lock per screen: its runs in this process go one after the other.
#[derive(Default)]
pub struct Runner {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Runner {
    fn lock(&self, screen: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(screen.to_string()).or_default())
    }
}

/// Submits a run of `screen` to the cluster. The task it returns ends with the run
/// recorded (and its difference delivered), or `None` when this process lost the scan to
/// another coordinator before it finished, or could not record it.
async fn start(
    state: &Arc<AppState>,
    screen: Screen,
    trigger: Trigger,
    tick: Option<DateTime<Utc>>,
) -> Result<(String, tokio::task::JoinHandle<Option<Run>>), ApiError> {
    let config = state
        .library
        .resolve(screen.config.clone(), state.settings.scan.max_universe_size)
        .await?;
    let live = start_scan(state, config).await?;
    let run_id = live.id.clone();
    let st = Arc::clone(state);
    let task = tokio::spawn(async move {
        let mut finished = live.finished.clone();
        let record = finished
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|r| r.clone())?;
        let stage = record.progress.stage.as_str();
        let report = record.report.as_ref();
        let failed: Vec<String> = report
            .map(|r| r.failures.iter().map(|f| f.symbol.clone()).collect())
            .unwrap_or_default();
        let start = RunStart {
            run_id: live.id.clone(),
            trigger,
            tick,
            claim: tick.map(|_| st.node_id.clone()),
            started_at: live.submitted_at,
        };
        let out = Outcome {
            stage,
            // A cancelled scan's partial results are not compared.
            results: report
                .filter(|_| stage == "done")
                .map(|r| r.results.as_slice()),
            failed: &failed,
            error: record.error.as_ref().map(|e| e.message.clone()),
        };
        match st.library.conclude(&screen, start, out).await {
            Ok(run) => Some(run),
            Err(e) => {
                tracing::warn!(screen = %screen.name, error = %e, "cannot record a screen's run");
                None
            }
        }
    });
    Ok((run_id, task))
}

/// Runs the schedules, every `screens.tick_ms`, while this process leads; until `shutdown`.
pub async fn schedule(state: Weak<AppState>, shutdown: crate::shutdown::Shutdown) {
    // The newest tick of each screen this process saw done (ticks after it are still to
    // claim).
    let mut seen: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut failing = false;
    loop {
        let Some(st) = state.upgrade() else {
            return;
        };
        let every = Duration::from_millis(st.settings.screens.tick_ms);
        if st.leader.leads() {
            match st.library.screens().await {
                Ok(screens) => {
                    failing = false;
                    for screen in screens {
                        fire_due(&st, screen, &mut seen).await;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e.message, "cannot read the screens: schedules wait");
                    }
                    failing = true;
                }
            }
        } else {
            seen.clear();
        }
        drop(st);
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.triggered() => return,
        }
    }
}

/// Claims and starts the oldest due tick of `screen` that nobody ran, unless a run of it is
/// in progress here.
async fn fire_due(
    state: &Arc<AppState>,
    screen: Screen,
    seen: &mut HashMap<String, DateTime<Utc>>,
) {
    let Some(ticks) = screen.schedule.as_ref().and_then(|s| s.parse().ok()) else {
        return;
    };
    let Ok(lock) = state.runner.lock(&screen.name).try_lock_owned() else {
        return;
    };
    let now = Utc::now();
    let grace = chrono::Duration::seconds(state.settings.screens.misfire_grace_secs as i64);
    let mut from = (now - grace).max(screen.updated_at);
    if let Some(s) = seen.get(&screen.name) {
        from = from.max(*s);
    }
    let lib = &state.library;
    for tick in ticks.between(from, now, 10_000) {
        match lib.claim_tick(&screen.name, tick, &state.node_id).await {
            // Not `seen` yet: a run that does not finish leaves its claim to lapse, and the
            // tick is claimed again.
            Ok(None) => {
                crate::telemetry::metrics().screen_ticks.inc();
                tracing::info!(screen = %screen.name, %tick, "schedule tick");
                tokio::spawn(run_tick(Arc::clone(state), screen, tick, lock));
                return;
            }
            Ok(Some(holder)) if holder == TICK_DONE => {
                seen.insert(screen.name.clone(), tick);
            }
            // Another process runs it; if it dies, its claim lapses and this tick is due
            // again.
            Ok(Some(_)) => return,
            Err(e) => {
                tracing::warn!(screen = %screen.name, error = %e, "cannot claim a schedule tick");
                return;
            }
        }
    }
}

/// Runs a claimed tick, renewing the claim from the start; the run's record marks it done.
async fn run_tick(
    state: Arc<AppState>,
    screen: Screen,
    tick: DateTime<Utc>,
    _lock: tokio::sync::OwnedMutexGuard<()>,
) {
    let lib = &state.library;
    let name = screen.name.clone();
    let work = async {
        match start(&state, screen.clone(), Trigger::Schedule, Some(tick)).await {
            Ok((_, task)) => {
                let _ = task.await;
            }
            // A dependency that may come back (the queue, the store, a full server): the
            // claim lapses and the tick is claimed again, within the grace.
            Err(e) if e.0.code.retryable() => {
                tracing::warn!(screen = %name, %tick, error = %e.0.message, "a schedule tick could not start: it is tried again");
            }
            // One that cannot start as it is (its watchlist gone, no workers here) is
            // recorded as failed, and the tick is done.
            Err(e) => {
                let start = RunStart {
                    run_id: String::new(),
                    trigger: Trigger::Schedule,
                    tick: Some(tick),
                    claim: Some(state.node_id.clone()),
                    started_at: Utc::now(),
                };
                let out = Outcome {
                    stage: "failed",
                    results: None,
                    failed: &[],
                    error: Some(e.0.message),
                };
                if let Err(e) = lib.conclude(&screen, start, out).await {
                    tracing::warn!(screen = %name, error = %e, "cannot record a screen's run");
                }
            }
        }
    };
    lib.renewing_tick(&name, tick, &state.node_id, work).await;
}
