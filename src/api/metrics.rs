//! `/metrics`: the process's Prometheus metrics, in the format the scrape's `Accept` asks
//! for (see [`Exposition::negotiate`]): OpenMetrics when asked for, else the Prometheus
//! text format 0.0.4.

use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use crate::telemetry::Exposition;

/// Prometheus metrics: OpenMetrics when `Accept` asks for `application/openmetrics-text`,
/// else the Prometheus text format 0.0.4.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, content(
        (String = "text/plain; version=0.0.4; charset=utf-8"),
        (String = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
    ))))]
pub async fn metrics(headers: HeaderMap) -> Response {
    let format = Exposition::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    (
        [(header::CONTENT_TYPE, format.content_type())],
        format.encode(),
    )
        .into_response()
}
