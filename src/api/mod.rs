//! The HTTP control plane: an axum router over the coordinator — scans (submit, history,
//! state, SSE events, results, cancel), cache, cluster nodes ([`nodes`]), performance
//! history ([`performance`]), health ([`health`]), metrics ([`metrics`]) and the OpenAPI
//! document generated from the handlers' annotations (utoipa), so the document and the
//! routes cannot drift apart.
//!
//! Every non-2xx body has one shape ([`error`]); mutating routes need the bearer token
//! when one is configured ([`auth`]); bodies are bounded (413). Must not: hold a lock
//! across `.await`, return internal error text, or log the token.

pub mod auth;
pub mod cache;
pub mod error;
pub mod events;
pub mod health;
pub mod history;
pub mod metrics;
pub mod nodes;
pub mod performance;
pub mod query;
pub mod scan_request;
pub mod scans;
pub mod state;

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

use crate::config::Secret;
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
    OpenApiRouter::with_openapi(ApiDoc::openapi())
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
        .routes(routes!(nodes::nodes))
        .routes(routes!(performance::performance))
        .routes(routes!(health::health))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::detailed))
        .routes(routes!(metrics::metrics))
        .routes(routes!(openapi))
        .split_for_parts()
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
    let token =
        auth::Token(Some(Arc::new(state.settings.api.token.clone())).filter(|t| !t.is_empty()));
    routes
        .merge(crate::web::router())
        .fallback(error::fallback)
        .with_state(state)
        .layer(Extension(doc))
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(middleware::from_fn_with_state(token, auth::require_token))
        .layer(middleware::from_fn(error::normalize))
        .layer(Extension(error::BodyLimit(limit)))
        .layer(TraceLayer::new_for_http())
}

/// Refuses a non-loopback bind without a token: the mutating routes would be open to the
/// network.
pub fn check_bind(addr: &SocketAddr, token: &Secret) -> Result<(), UserError> {
    if addr.ip().is_loopback() || !token.is_empty() {
        return Ok(());
    }
    Err(UserError::new(
        ErrorCode::InvalidConfig,
        format!(
            "refusing to listen on {addr} without a token: anyone who can reach it could start, cancel and clear"
        ),
        vec![
            "set a token: --token or TECHNIC_API__TOKEN (clients send `Authorization: Bearer <token>`)".into(),
            "or bind a loopback address such as 127.0.0.1:8080 and put a proxy in front".into(),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_a_token() {
        let public: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        assert!(check_bind(&public, &Secret::default()).is_err());
        assert!(check_bind(&public, &Secret::new("t")).is_ok());
        assert!(check_bind(&local, &Secret::default()).is_ok());
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
        assert_eq!(keys.len(), 10, "{sort}");
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
            ("/api/v1/performance/history", "get"),
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
