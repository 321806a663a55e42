//! `/api/v1/watchlists` (named symbol lists, JSON or CSV in and out) and
//! `/api/v1/webhooks` (receivers of screens' differences, their delivery log and dead
//! letters).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::query::{check_limit, ApiQuery};
use super::scans::{ResultFormat, Shared};
use crate::error::ErrorCode;
use crate::scan::name_problems;
use crate::screens::{
    dedup_symbols, symbols_from_csv, symbols_to_csv, Delivery, Watchlist, Webhook,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct WatchlistList {
    pub watchlists: Vec<Watchlist>,
}

/// `{"name", "symbols"}` (the name in the path for PUT). PUT also takes `text/csv`: one
/// symbol per row in the first column, an optional `symbol` header.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchlistRequest {
    name: Option<String>,
    symbols: Vec<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `json` (default) or `csv` (also chosen by `Accept: text/csv`).
    #[param(inline)]
    format: Option<ResultFormat>,
}

fn bad(problems: Vec<String>) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidInput,
        format!(
            "invalid watchlist ({} problem{}): {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("; ")
        ),
        vec!["symbols are 1-16 letters, digits, '.', '-' or '_'; a CSV has one per row in its first column".into()],
    )
}

/// The name and symbols of a watchlist body, or every problem.
fn watchlist_body(
    headers: &HeaderMap,
    body: &[u8],
    path_name: Option<&str>,
) -> Result<(String, Vec<String>), ApiError> {
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    let mut problems = Vec::new();
    let (name, symbols) = if csv {
        let text = String::from_utf8_lossy(body);
        let symbols = symbols_from_csv(&text, "the CSV body").unwrap_or_else(|p| {
            problems.extend(p);
            Vec::new()
        });
        (path_name.map(str::to_string), symbols)
    } else {
        match serde_json::from_slice::<WatchlistRequest>(body) {
            Ok(r) => {
                let symbols: Vec<String> = r
                    .symbols
                    .iter()
                    .map(|s| s.trim().to_ascii_uppercase())
                    .collect();
                problems.extend(crate::market::symbol_problems(
                    symbols.iter().map(String::as_str),
                ));
                (r.name, dedup_symbols(symbols))
            }
            Err(e) => return Err(bad(vec![format!("the body: {e}")])),
        }
    };
    let name = match (name, path_name) {
        (Some(n), Some(p)) if n != p => {
            problems.push(format!(
                "name {n:?} differs from the name in the path {p:?}"
            ));
            p.to_string()
        }
        (_, Some(p)) => p.to_string(),
        (Some(n), None) => n,
        (None, None) => {
            problems.push("name is required".into());
            String::new()
        }
    };
    problems.extend(name_problems("watchlist", &name));
    if problems.is_empty() {
        Ok((name, symbols))
    } else {
        Err(bad(problems))
    }
}

/// Saves a new watchlist.
#[utoipa::path(post, path = "/api/v1/watchlists", tag = "watchlists",
    request_body(content = WatchlistRequest, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses((status = 201, body = Watchlist), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn create_watchlist(
    State(state): Shared,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (name, symbols) = watchlist_body(&headers, &body, None)?;
    let list = state.library.save_watchlist(&name, symbols, true).await?;
    Ok((StatusCode::CREATED, Json(list)).into_response())
}

/// Every watchlist, by name.
#[utoipa::path(get, path = "/api/v1/watchlists", tag = "watchlists",
    responses((status = 200, body = WatchlistList), (status = 503, body = ErrorBody)))]
pub async fn list_watchlists(State(state): Shared) -> Result<Json<WatchlistList>, ApiError> {
    Ok(Json(WatchlistList {
        watchlists: state.library.watchlists().await?,
    }))
}

/// One watchlist, as JSON or CSV (`?format=csv` or `Accept: text/csv`).
#[utoipa::path(get, path = "/api/v1/watchlists/{name}", tag = "watchlists",
    params(("name" = String, Path), ExportQuery),
    responses((status = 200, description = "the watchlist, as `format` asks",
            content((Watchlist = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn get_watchlist(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let csv = match q.format {
        Some(f) => f == ResultFormat::Csv,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/csv")),
    };
    let list = state.library.watchlist(&name).await?;
    Ok(if csv {
        (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}.csv\""),
                ),
            ],
            symbols_to_csv(&list.symbols),
        )
            .into_response()
    } else {
        Json(list).into_response()
    })
}

/// Saves a watchlist under this name (JSON, or `text/csv` to import a CSV).
#[utoipa::path(put, path = "/api/v1/watchlists/{name}", tag = "watchlists",
    params(("name" = String, Path)),
    request_body(content = WatchlistRequest, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses((status = 200, body = Watchlist), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn put_watchlist(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Watchlist>, ApiError> {
    let (name, symbols) = watchlist_body(&headers, &body, Some(&name))?;
    Ok(Json(
        state.library.save_watchlist(&name, symbols, false).await?,
    ))
}

/// Deletes a watchlist.
#[utoipa::path(delete, path = "/api/v1/watchlists/{name}", tag = "watchlists",
    params(("name" = String, Path)),
    security((), ("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn delete_watchlist(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.library.delete_watchlist(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook as the API shows it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    /// The screens it follows; absent: all.
    pub screens: Option<Vec<String>>,
    pub created_at: chrono::DateTime<Utc>,
}

impl From<Webhook> for WebhookView {
    fn from(h: Webhook) -> Self {
        WebhookView {
            id: h.id,
            url: crate::screens::webhook::redact_url(&h.url),
            screens: h.screens,
            created_at: h.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

/// `{"url", "secret", "screens": [names] or "all"}` (screens absent: all).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// http:// or https://.
    url: String,
    /// Keys the `X-Technic-Signature` HMAC-SHA256 of each body (at least 16 characters).
    secret: String,
    #[schema(value_type = Option<Object>)]
    screens: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Most entries returned, newest first (default 50).
    #[param(minimum = 1, maximum = 100_000)]
    limit: Option<usize>,
}

/// Registers a webhook.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    request_body(content = WebhookRequest, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses((status = 201, body = WebhookView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_webhook(State(state): Shared, body: Bytes) -> Result<Response, ApiError> {
    let r: WebhookRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidInput,
            format!("invalid webhook: {e}"),
            vec![
                r#"send {"url": "https://…", "secret": "…", "screens": ["name"] or "all"}"#.into(),
            ],
        )
    })?;
    let mut problems = Vec::new();
    match reqwest::Url::parse(&r.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => problems.push("url must be an http:// or https:// URL".to_string()),
    }
    if r.secret.chars().count() < 16 {
        problems.push("secret must have at least 16 characters".into());
    }
    let screens = match r.screens {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "all" => None,
        Some(Value::Array(items)) => {
            let names: Vec<String> = items
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect();
            problems.extend(names.iter().filter_map(|n| name_problems("screen", n)));
            Some(names)
        }
        Some(_) => {
            problems.push(r#"screens must be a list of screen names or "all""#.into());
            None
        }
    };
    if !problems.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidInput,
            format!("invalid webhook: {}", problems.join("; ")),
            vec!["see WebhookRequest in GET /api/v1/openapi.json".into()],
        ));
    }
    let hook = Webhook {
        id: format!("wh_{:016x}", rand::random::<u64>()),
        url: r.url,
        secret: r.secret,
        screens,
        created_at: Utc::now(),
    };
    state.library.add_webhook(&hook).await?;
    Ok((StatusCode::CREATED, Json(WebhookView::from(hook))).into_response())
}

/// Every webhook (without secrets).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList), (status = 503, body = ErrorBody)))]
pub async fn list_webhooks(State(state): Shared) -> Result<Json<WebhookList>, ApiError> {
    Ok(Json(WebhookList {
        webhooks: state
            .library
            .webhooks()
            .await?
            .into_iter()
            .map(WebhookView::from)
            .collect(),
    }))
}

/// Removes a webhook.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    security((), ("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn delete_webhook(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.library.delete_webhook(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The delivery log: every delivery's outcome, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/deliveries", tag = "webhooks",
    params(LogQuery),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn deliveries(
    State(state): Shared,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let n = check_limit(q.limit, 50)?;
    Ok(Json(DeliveryList {
        deliveries: state.library.deliveries(n).await?,
    }))
}

/// Dead letters: deliveries whose every attempt failed, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/dead-letters", tag = "webhooks",
    params(LogQuery),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn dead_letters(
    State(state): Shared,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let n = check_limit(q.limit, 50)?;
    Ok(Json(DeliveryList {
        deliveries: state.library.dead_letters(n).await?,
    }))
}
