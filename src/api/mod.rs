//! The HTTP control plane: an axum router over the coordinator — scans (submit, history,
//! state, SSE events, results, cancel), saved screens and their schedules ([`screens`]),
//! watchlists and webhooks ([`lists`]), cache, cluster nodes ([`nodes`]), performance
//! history ([`performance`]), health ([`health`]), metrics ([`metrics`]) and the OpenAPI
//! document generated from the handlers' annotations (utoipa), so the document and the
//! routes cannot drift apart.
//!
//! Every non-2xx body has one shape ([`error`]); routes need the bearer token when one
//! is configured, reads the token or the read-only token ([`auth`]); bodies are bounded
//! (413). Must not: hold a lock
//! across `.await`, return internal error text, or log the token.

pub mod auth;
pub mod cache;
pub mod conn;
pub mod error;
pub mod events;
pub mod health;
pub mod history;
pub mod lists;
pub mod metrics;
pub mod nodes;
pub mod performance;
pub mod query;
pub mod scan_request;
pub mod scans;
pub mod screens;
pub mod state;
pub mod throughput;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Extension};
use axum::response::IntoResponse;
use axum::{middleware, Router};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use history::History;
pub use state::{cluster_nodes, AppState, LiveScans};

use crate::config::ApiSettings;
use crate::error::{ErrorCode, UserError};

#[derive(OpenApi)]
#[openapi(
    info(title = "technic control plane", description = "Scans, cache, cluster, health and metrics of a technic coordinator. Every non-2xx body is ErrorBody."),
    modifiers(&BearerScheme),
    components(schemas(error::ErrorBody, scans::ScanRequest))
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, body = Object, content_type = "application/json")))]
async fn openapi(Extension(doc): Extension<Arc<String>>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        (*doc).clone(),
    )
}

/// The routes and their OpenAPI document, built from the same list.
fn routes() -> (Router<Arc<AppState>>, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(scans::submit, scans::list))
        .routes(routes!(scans::get))
        .routes(routes!(events::events))
        .routes(routes!(scans::results))
        .routes(routes!(scans::cancel))
        .routes(routes!(cache::stats))
        .routes(routes!(cache::analytics))
        .routes(routes!(cache::clear))
        .routes(routes!(cache::warm))
        .routes(routes!(cache::get_ttl, cache::put_ttl))
        .routes(routes!(screens::create_screen, screens::list_screens))
        .routes(routes!(
            screens::get_screen,
            screens::put_screen,
            screens::delete_screen
        ))
        .routes(routes!(screens::run_screen))
        .routes(routes!(screens::screen_runs))
        .routes(routes!(lists::create_watchlist, lists::list_watchlists))
        .routes(routes!(
            lists::get_watchlist,
            lists::put_watchlist,
            lists::delete_watchlist
        ))
        .routes(routes!(lists::create_webhook, lists::list_webhooks))
        .routes(routes!(lists::delete_webhook))
        .routes(routes!(lists::deliveries))
        .routes(routes!(lists::dead_letters))
        .routes(routes!(nodes::nodes))
        .routes(routes!(throughput::throughput))
        .routes(routes!(performance::performance))
        .routes(routes!(health::model))
        .routes(routes!(health::health))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::detailed))
        .routes(routes!(metrics::metrics))
        .routes(routes!(openapi))
        .split_for_parts();
    (router, with_read_security(doc))
}

/// Documents the token on every read that needs it when one is configured (the
/// mutating routes say so in their annotations): optional security, since a server
/// without a token is open, and a 401 answer. Done here, over the generated document,
/// so a route added later is documented as protected, as the middleware protects it.
fn with_read_security(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    for (path, item) in doc.paths.paths.iter_mut() {
        let Some(get) = item.get.as_mut() else {
            continue;
        };
        // /health* and /metrics are open by default (api.open_health, api.open_metrics).
        let open = auth::carries_no_data(path) || auth::is_health(path) || auth::is_metrics(path);
        if open || get.security.is_some() {
            continue;
        }
        get.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new("bearer", Vec::<String>::new()),
        ]);
        let unauthorized = ResponseBuilder::new()
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        get.responses
            .responses
            .entry("401".to_string())
            .or_insert(unauthorized.into());
    }
    doc
}

/// The OpenAPI document as served at `/api/v1/openapi.json`.
pub fn openapi_json() -> String {
    routes().1.to_json().unwrap_or_default()
}

/// The whole application: routes, error shaping, token check, body limit, tracing.
pub fn router(state: Arc<AppState>) -> Router {
    let (routes, doc) = routes();
    let doc = Arc::new(doc.to_json().unwrap_or_default());
    let limit = state.settings.api.max_body_bytes;
    let access = auth::Access::new(&state.settings.api);
    routes
        .merge(crate::web::router())
        .fallback(error::fallback)
        .with_state(state)
        .layer(Extension(doc))
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(middleware::from_fn_with_state(access, auth::require_token))
        .layer(middleware::from_fn(error::normalize))
        .layer(Extension(error::BodyLimit(limit)))
        .layer(TraceLayer::new_for_http())
}

/// Refuses what would leave the control plane open or half-configured: a non-loopback
/// bind without a token (the routes would be open to the network), a read-only token
/// without the token (it would protect nothing) or equal to it. Checked once the flags
/// are applied (`--token` may set the token).
pub fn check_access(addr: &SocketAddr, api: &ApiSettings) -> Result<(), UserError> {
    let mut problems = Vec::new();
    let mut suggestions = Vec::new();
    if !addr.ip().is_loopback() && api.token.is_empty() {
        problems.push(format!(
            "refusing to listen on {addr} without a token: anyone who can reach it could read every result, start, cancel and clear"
        ));
        suggestions.push("set a token: --token or TECHNIC_API__TOKEN (clients send `Authorization: Bearer <token>`)".into());
        suggestions.push(
            "or bind a loopback address such as 127.0.0.1:8080 and put a proxy in front".into(),
        );
    }
    if !api.read_token.is_empty() {
        if api.token.is_empty() {
            problems.push("api.read_token needs api.token: without the token every route is open, so a read-only token would protect nothing".to_string());
            suggestions.push("set the token too (--token or TECHNIC_API__TOKEN), or drop TECHNIC_API__READ_TOKEN".into());
        } else if api.read_token.expose().trim() == api.token.expose().trim() {
            problems.push("api.read_token must differ from api.token: one token cannot both change and only read".to_string());
            suggestions.push("give the read-only token its own value".into());
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(UserError::new(
        ErrorCode::InvalidConfig,
        problems.join("; "),
        suggestions,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_a_token_and_a_read_token_needs_one() {
        use crate::config::{Secret, Settings};
        let public: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let api = |token: &str, read: &str| {
            let mut a = Settings::defaults().api;
            a.token = Secret::new(token);
            a.read_token = Secret::new(read);
            a
        };
        assert!(check_access(&public, &api("", "")).is_err());
        assert!(check_access(&public, &api("t", "")).is_ok());
        assert!(check_access(&local, &api("", "")).is_ok());
        assert!(check_access(&local, &api("t", "r")).is_ok());
        let both = check_access(&public, &api("", "r")).expect_err("two problems");
        assert!(
            both.message.contains("without a token") && both.message.contains("read_token needs"),
            "{}",
            both.message
        );
        assert!(check_access(&local, &api("t", " t")).is_err());
    }

    /// The query parameters are query parameters, their bounds those the handlers hold
    /// to, and the documented ranking keys the ones `sort` takes.
    #[test]
    fn openapi_query_parameters_match_the_handlers() {
        let doc: serde_json::Value = serde_json::from_str(&openapi_json()).expect("json");
        let params = |path: &str| doc["paths"][path]["get"]["parameters"].clone();
        for path in [
            "/api/v1/scans",
            "/api/v1/scans/{id}/results",
            "/api/v1/performance/history",
        ] {
            let ps = params(path);
            let limit = ps
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == "limit"))
                .unwrap_or_else(|| panic!("{path}: no limit in {ps}"));
            assert_eq!(limit["in"], "query", "{path}: {limit}");
            assert_eq!(limit["required"], false, "{path}: {limit}");
            assert_eq!(limit["schema"]["minimum"], 1, "{path}: {limit}");
            assert_eq!(
                limit["schema"]["maximum"],
                query::LIMIT_MAX,
                "{path}: {limit}"
            );
        }
        let ps = params("/api/v1/scans/{id}/results");
        let sort = ps
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "sort"))
            .expect("sort");
        assert_eq!(sort["in"], "query");
        let keys = sort["schema"]["enum"].as_array().expect("sort enum");
        // Every key, and only keys.
        assert_eq!(
            keys.len(),
            <crate::scan::SortKey as clap::ValueEnum>::value_variants().len(),
            "{sort}"
        );
        for k in keys {
            serde_json::from_value::<crate::scan::SortKey>(k.clone())
                .unwrap_or_else(|e| panic!("{k} is not a SortKey: {e}"));
        }
    }

    #[test]
    fn documented_ttl_bounds_are_the_settings_bounds() {
        let doc: serde_json::Value = serde_json::from_str(&openapi_json()).expect("json");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let ttl_fields: Vec<&serde_json::Value> = schemas
            .values()
            .filter_map(|s| s["properties"].as_object())
            .flat_map(|p| p.iter())
            .filter(|(name, _)| name.ends_with("_secs") && name.as_str() != "history_ttl_secs")
            .map(|(_, v)| v)
            .filter(|v| v.get("maximum").is_some())
            .collect();
        assert!(!ttl_fields.is_empty(), "the TTL body documents its bounds");
        for f in ttl_fields {
            assert_eq!(
                f["maximum"].as_u64(),
                Some(crate::config::TTL_SECS_MAX),
                "{f}"
            );
        }
    }

    #[test]
    fn openapi_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(&openapi_json()).expect("json");
        let paths = doc["paths"].as_object().expect("paths");
        for (path, method) in [
            ("/api/v1/scans", "post"),
            ("/api/v1/scans", "get"),
            ("/api/v1/scans/{id}", "get"),
            ("/api/v1/scans/{id}/events", "get"),
            ("/api/v1/scans/{id}/results", "get"),
            ("/api/v1/scans/{id}/cancel", "post"),
            ("/api/v1/cache/stats", "get"),
            ("/api/v1/cache/analytics", "get"),
            ("/api/v1/cache/clear", "post"),
            ("/api/v1/cache/warm", "post"),
            ("/api/v1/cache/ttl", "get"),
            ("/api/v1/cache/ttl", "put"),
            ("/api/v1/cluster/nodes", "get"),
            ("/api/v1/cluster/throughput", "get"),
            ("/api/v1/performance/history", "get"),
            ("/api/v1/ml/model", "get"),
            ("/api/v1/screens", "post"),
            ("/api/v1/screens", "get"),
            ("/api/v1/screens/{name}", "get"),
            ("/api/v1/screens/{name}", "put"),
            ("/api/v1/screens/{name}", "delete"),
            ("/api/v1/screens/{name}/run", "post"),
            ("/api/v1/screens/{name}/runs", "get"),
            ("/api/v1/watchlists", "post"),
            ("/api/v1/watchlists", "get"),
            ("/api/v1/watchlists/{name}", "get"),
            ("/api/v1/watchlists/{name}", "put"),
            ("/api/v1/watchlists/{name}", "delete"),
            ("/api/v1/webhooks", "post"),
            ("/api/v1/webhooks", "get"),
            ("/api/v1/webhooks/{id}", "delete"),
            ("/api/v1/webhooks/deliveries", "get"),
            ("/api/v1/webhooks/dead-letters", "get"),
            ("/health", "get"),
            ("/health/live", "get"),
            ("/health/ready", "get"),
            ("/health/detailed", "get"),
            ("/metrics", "get"),
            ("/api/v1/openapi.json", "get"),
        ] {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} missing"
            );
        }
    }
}
