//! Bearer-token protection of every mutating route (any method but GET, HEAD, OPTIONS),
//! so a route added later is protected by construction. The token is compared in
//! constant time and never logged.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::Secret;

/// The configured token; `None`: mutating routes are open (loopback binds only).
#[derive(Clone)]
pub struct Token(pub Option<Arc<Secret>>);

/// Whether `presented` equals the token, in time independent of where they differ.
pub fn token_matches(expected: &Secret, presented: &str) -> bool {
    bool::from(expected.expose().as_bytes().ct_eq(presented.as_bytes()))
}

pub async fn require_token(State(token): State<Token>, req: Request<Body>, next: Next) -> Response {
    let Some(expected) = token.0.as_deref() else {
        return next.run(req).await;
    };
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if token_matches(expected, p) => next.run(req).await,
        _ => {
            tracing::warn!(method = %req.method(), path = req.uri().path(), "rejected: missing or wrong bearer token");
            ApiError::unauthorized().into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        let t = Secret::new("s3cret-token");
        assert!(token_matches(&t, "s3cret-token"));
        assert!(!token_matches(&t, "s3cret-tokeN"));
        assert!(!token_matches(&t, "s3cret"));
        assert!(!token_matches(&t, ""));
    }
}
