//! Bearer-token protection. With `api.token` set, every route needs a token, reads
//! included, so a route added later is protected by construction. What stays open is
//! what carries no data: the dashboard's page and assets (the page asks for the token,
//! so it must load without one), the OpenAPI document and CORS preflights, plus `/health*`
//! and `/metrics` while `api.open_health` / `api.open_metrics` say so (probes and
//! Prometheus). `api.read_token` reads (GET, HEAD) but cannot change anything: a change
//! with it is 403. Tokens are compared in constant time and never logged.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::{ApiSettings, Secret};

/// Who may do what: the tokens and the open probes, from `[api]`.
#[derive(Clone, Default)]
pub struct Access {
    /// `None`: no token is configured and every route is open (loopback binds only).
    token: Option<Arc<Secret>>,
    read_token: Option<Arc<Secret>>,
    open_health: bool,
    open_metrics: bool,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Nothing,
    /// The token or the read-only token.
    Read,
    /// The token.
    Change,
}

impl Access {
    pub fn new(api: &ApiSettings) -> Self {
        let some = |s: &Secret| (!s.is_empty()).then(|| Arc::new(s.clone()));
        Access {
            token: some(&api.token),
            read_token: some(&api.read_token),
            open_health: api.open_health,
            open_metrics: api.open_metrics,
        }
    }

    /// What `method path` needs.
    pub fn need(&self, method: &Method, path: &str) -> Need {
        if self.token.is_none() || *method == Method::OPTIONS {
            return Need::Nothing;
        }
        if !matches!(*method, Method::GET | Method::HEAD) {
            return Need::Change;
        }
        let open = carries_no_data(path)
            || (is_health(path) && self.open_health)
            || (is_metrics(path) && self.open_metrics);
        if open {
            Need::Nothing
        } else {
            Need::Read
        }
    }

    /// `Ok` when `presented` may do what `need` says; the error to answer otherwise.
    fn check(&self, need: Need, presented: Option<&str>) -> Result<(), ApiError> {
        let full = |p: &str| self.token.as_deref().is_some_and(|t| token_matches(t, p));
        let read = |p: &str| {
            self.read_token
                .as_deref()
                .is_some_and(|t| token_matches(t, p))
        };
        match (need, presented) {
            (Need::Nothing, _) => Ok(()),
            (_, Some(p)) if full(p) => Ok(()),
            (Need::Read, Some(p)) if read(p) => Ok(()),
            (Need::Change, Some(p)) if read(p) => Err(ApiError::forbidden()),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// The dashboard's page and assets, and the OpenAPI document: open to every reader.
pub fn carries_no_data(path: &str) -> bool {
    path == "/" || path.starts_with("/assets/") || path == "/api/v1/openapi.json"
}

pub fn is_health(path: &str) -> bool {
    path == "/health" || path.starts_with("/health/")
}

pub fn is_metrics(path: &str) -> bool {
    path == "/metrics"
}

/// Whether `presented` equals the token, in time independent of where they differ.
pub fn token_matches(expected: &Secret, presented: &str) -> bool {
    bool::from(expected.expose().as_bytes().ct_eq(presented.as_bytes()))
}

/// The token of an `Authorization: Bearer TOKEN` header (the scheme in any case).
fn bearer(req: &Request<Body>) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub async fn require_token(
    State(access): State<Access>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let need = access.need(req.method(), req.uri().path());
    match access.check(need, bearer(&req)) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            tracing::warn!(method = %req.method(), path = req.uri().path(), code = e.0.code.as_str(), "rejected: missing, wrong or read-only bearer token");
            e.into_response()
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

    fn access(open: bool) -> Access {
        let mut api = crate::config::Settings::defaults().api;
        api.token = Secret::new("full");
        api.read_token = Secret::new("read");
        api.open_health = open;
        api.open_metrics = open;
        Access::new(&api)
    }

    #[test]
    fn every_read_needs_a_token_but_pages_and_open_probes() {
        let a = access(true);
        for path in [
            "/",
            "/assets/app.js",
            "/api/v1/openapi.json",
            "/health",
            "/health/ready",
            "/metrics",
        ] {
            assert_eq!(a.need(&Method::GET, path), Need::Nothing, "{path}");
        }
        for path in [
            "/api/v1/scans",
            "/api/v1/scans/x/events",
            "/api/v1/cluster/nodes",
            "/healthz",
            "/nope",
        ] {
            assert_eq!(a.need(&Method::GET, path), Need::Read, "{path}");
        }
        assert_eq!(a.need(&Method::POST, "/health"), Need::Change);
        assert_eq!(a.need(&Method::DELETE, "/api/v1/scans"), Need::Change);
        let closed = access(false);
        assert_eq!(closed.need(&Method::GET, "/health/live"), Need::Read);
        assert_eq!(closed.need(&Method::GET, "/metrics"), Need::Read);
        let none = Access::new(&crate::config::Settings::defaults().api);
        assert_eq!(none.need(&Method::POST, "/api/v1/scans"), Need::Nothing);
    }

    #[test]
    fn the_read_token_reads_and_cannot_change() {
        let a = access(true);
        let code = |r: Result<(), ApiError>| r.err().map(|e| e.0.code.as_str());
        assert_eq!(code(a.check(Need::Read, Some("read"))), None);
        assert_eq!(code(a.check(Need::Read, Some("full"))), None);
        assert_eq!(code(a.check(Need::Change, Some("full"))), None);
        assert_eq!(code(a.check(Need::Change, Some("read"))), Some("FORBIDDEN"));
        assert_eq!(
            code(a.check(Need::Read, Some("other"))),
            Some("UNAUTHORIZED")
        );
        assert_eq!(code(a.check(Need::Read, None)), Some("UNAUTHORIZED"));
        assert_eq!(code(a.check(Need::Nothing, None)), None);
    }
}
