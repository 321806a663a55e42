//! Query strings: [`ApiQuery`] reads one like axum's `Query` but answers a malformed one
//! (a `limit` that is not a number, a `format` outside its enum) with the error body and
//! 400, and [`check_limit`] holds a `limit` to the bounds its OpenAPI parameter documents.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;

use super::error::ApiError;
use crate::error::ErrorCode;

/// The largest `limit` any list route takes (documented as each parameter's `maximum`).
pub const LIMIT_MAX: usize = 100_000;

/// How much of the parser's own message reaches the client (it may quote the value sent).
const DETAIL_MAX: usize = 400;

/// A query string deserialised into `T`; a malformed one is `INVALID_INPUT` (400).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(ApiQuery(q)),
            Err(rejection) => {
                let text = rejection.body_text();
                let detail: String = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text)
                    .chars()
                    .take(DETAIL_MAX)
                    .collect();
                Err(ApiError::new(
                    ErrorCode::InvalidInput,
                    format!("invalid query string: {detail}"),
                    vec!["see the route's parameters, their types and bounds in GET /api/v1/openapi.json".into()],
                ))
            }
        }
    }
}

/// `limit` within `1..=LIMIT_MAX`, or `default` when absent.
pub fn check_limit(limit: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=LIMIT_MAX).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::new(
            ErrorCode::InvalidInput,
            format!("limit must be between 1 and {LIMIT_MAX}"),
            vec!["omit limit for the default".into()],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_bounds_are_inclusive() {
        assert_eq!(check_limit(None, 7).ok(), Some(7));
        assert_eq!(check_limit(Some(1), 7).ok(), Some(1));
        assert_eq!(check_limit(Some(LIMIT_MAX), 7).ok(), Some(LIMIT_MAX));
        assert!(check_limit(Some(0), 7).is_err());
        assert!(check_limit(Some(LIMIT_MAX + 1), 7).is_err());
    }
}
