//! The control plane's error responses: every non-2xx body is
//! `{"error":{"code","message","suggestions":[...],"retryable"}}`, its status from
//! [`ErrorCode::http_status`] (the one table). Internal detail is logged here, once, and
//! replaced by a generic message before it reaches a client.

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ErrorCode, UserError};

/// An error answered over HTTP.
#[derive(Debug, Clone)]
pub struct ApiError(pub UserError);

/// The body of every non-2xx response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code, e.g. `INVALID_CONFIG`, `SCAN_NOT_FOUND`.
    pub code: String,
    pub message: String,
    /// What the caller can do about it.
    pub suggestions: Vec<String>,
    /// Whether the same request may succeed later without a change.
    pub retryable: bool,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>, suggestions: Vec<String>) -> Self {
        ApiError(UserError::new(code, message, suggestions))
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn scan_not_found(id: &str) -> Self {
        // The id is echoed only when it is a plausible id: no reflection of arbitrary input.
        let shown = if id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            format!("no scan with id {id}")
        } else {
            "no scan with this id".to_string()
        };
        ApiError::new(
            ErrorCode::ScanNotFound,
            shown,
            vec![
                "list scans with GET /api/v1/scans".into(),
                "finished scans leave the history after api.history_ttl_secs".into(),
            ],
        )
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            ErrorCode::Unauthorized,
            "this route needs a valid bearer token",
            vec![
                "send the header `Authorization: Bearer <token>` with the token the server was started with (--token / TECHNIC_API__TOKEN)".into(),
                "to read only, the read-only token (api.read_token / TECHNIC_API__READ_TOKEN) is enough".into(),
            ],
        )
    }

    pub fn forbidden() -> Self {
        ApiError::new(
            ErrorCode::Forbidden,
            "this token may only read: starting, cancelling, clearing and changing need the full token",
            vec!["send the server's full token (--token / TECHNIC_API__TOKEN) to make changes".into()],
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than the limit of {limit} bytes"),
            vec![
                "send a smaller body: a scan config is well under a kilobyte; list many symbols with a sector or universe_size filter instead".into(),
                "or raise api.max_body_bytes (TECHNIC_API__MAX_BODY_BYTES) on the server".into(),
            ],
        )
    }

    fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.0.code.as_str().to_string(),
                message: self.0.message.clone(),
                suggestions: self.0.suggestions.clone(),
                retryable: self.0.code.retryable(),
            },
        }
    }

    /// The JSON body, also embedded in a failing `/health/detailed` answer.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.body()).unwrap_or_default()
    }
}

impl From<UserError> for ApiError {
    /// Internal errors keep their detail in the log only.
    fn from(e: UserError) -> Self {
        if e.code == ErrorCode::Internal {
            tracing::error!(error = %e.message, "internal error");
            return ApiError::new(
                ErrorCode::Internal,
                "internal error",
                vec!["retry; if it persists, report it with the server logs".into()],
            );
        }
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut res = Response::new(Body::from(body));
        *res.status_mut() = status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res
    }
}

/// Middleware: a non-2xx answer that is not already JSON (axum's own 405, a body-limit
/// 413, a panic's 500) gets the error shape for its status, so clients parse one shape.
pub async fn normalize(req: Request<Body>, next: Next) -> Response {
    let limit = req.extensions().get::<BodyLimit>().map(|l| l.0);
    let res = next.run(req).await;
    let status = res.status();
    if status.is_success() || status.is_informational() || status.is_redirection() {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/json") || v.starts_with("application/health+json")
        });
    if is_json {
        return res;
    }
    let err = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(limit.unwrap_or_default()),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            ErrorCode::MethodNotAllowed,
            "this route does not take that method",
            vec!["see GET /api/v1/openapi.json for the routes and their methods".into()],
        ),
        StatusCode::NOT_FOUND => route_not_found(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::BAD_REQUEST
        | StatusCode::UNPROCESSABLE_ENTITY => ApiError::new(
            ErrorCode::InvalidInput,
            "the request could not be read",
            vec!["send a JSON body with `Content-Type: application/json`".into()],
        ),
        _ => {
            tracing::error!(
                status = status.as_u16(),
                "unstructured error response replaced"
            );
            ApiError::from(UserError::internal("unstructured error response"))
        }
    };
    let mut out = err.into_response();
    *out.status_mut() = status;
    out
}

/// The configured body limit, carried to [`normalize`] for its message.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

pub fn route_not_found() -> ApiError {
    ApiError::new(
        ErrorCode::RouteNotFound,
        "no such route",
        vec!["see GET /api/v1/openapi.json for the routes".into()],
    )
}

/// The router's fallback.
pub async fn fallback() -> ApiError {
    route_not_found()
}
