//! `/metrics`: the process's Prometheus metrics as OpenMetrics text.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Prometheus metrics, OpenMetrics text.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::telemetry::encode_metrics(),
    )
        .into_response()
}
