//! The Polygon HTTP client: one GET per page through the [`Resilience`] layer, `next_url`
//! pagination (same origin only, the key re-sent with every page), bounded bodies, and
//! the mapping from a failed request to a [`DataError`].
//!
//! The API key travels in an `Authorization: Bearer` header marked sensitive, never in a
//! URL, so no URL, log line or error message can carry it; every text that came from the
//! upstream is also scrubbed of it before it goes anywhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tracing::warn;

use crate::config::{PolygonSettings, Secret};
use crate::data::resilience::{
    parse_retry_after, AttemptError, Policy, Resilience, ResilienceStats,
};
use crate::data::DataError;

/// Bodies above this are parsed on rayon rather than on the async worker thread.
const PARSE_INLINE_MAX: usize = 128 * 1024;
/// How much of an error body is read for its message.
const ERROR_BODY_MAX: usize = 4096;

/// One page of a Polygon list response. `results` may be absent or null (no data).
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de>"))]
pub(super) struct Page<R> {
    pub results: Option<Vec<R>>,
    #[serde(default)]
    pub next_url: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

pub(super) struct Client {
    http: reqwest::Client,
    base: Url,
    key: Secret,
    auth: HeaderValue,
    resilience: Resilience,
    max_pages: usize,
    max_response_bytes: usize,
    /// Set by the first 401: the key is wrong for every request, so later ones fail at
    /// once instead of each waiting for the rate limiter to be refused again.
    unauthorized: AtomicBool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("key", &self.key)
            .field("resilience", &self.resilience)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(s: &PolygonSettings) -> Result<Self, DataError> {
        if s.api_key.is_empty() {
            return Err(DataError::Auth {
                message: "no Polygon API key is configured".into(),
            });
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", s.api_key.expose().trim()))
            .map_err(|_| DataError::Auth {
                message:
                    "the Polygon API key contains characters that cannot be sent in an HTTP header"
                        .into(),
            })?;
        auth.set_sensitive(true);
        let base =
            Url::parse(s.base_url.trim_end_matches('/')).map_err(|e| DataError::Unavailable {
                message: format!("data.polygon.base_url is not a valid URL: {e}"),
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(s.timeout_ms.max(1)))
            .user_agent(concat!("technic/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DataError::Unavailable {
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Client {
            http,
            base,
            key: s.api_key.clone(),
            auth,
            resilience: Resilience::new(Policy::from_polygon(s)),
            max_pages: s.max_pages.max(1),
            max_response_bytes: s.max_response_bytes.max(1),
            unauthorized: AtomicBool::new(false),
        })
    }

    /// `host[:port]` of `base_url`, for cache namespaces.
    pub fn origin(&self) -> String {
        match (self.base.host_str(), self.base.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => "unknown".to_string(),
        }
    }

    pub fn resilience(&self) -> &Resilience {
        &self.resilience
    }

    pub fn stats(&self) -> ResilienceStats {
        self.resilience.stats()
    }

    /// `base` + path segments (each percent-encoded) + query.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Every `results` entry of a list endpoint, following `next_url` (at most
    /// `max_pages` pages). `what` names the request in logs and errors.
    pub async fn get_all<R>(&self, first: Url, what: &str) -> Result<Vec<R>, AttemptError>
    where
        R: DeserializeOwned + Send + 'static,
    {
        let mut url = first;
        let mut out = Vec::new();
        for _ in 0..self.max_pages {
            let page: Page<R> = self.page(&url, what).await?;
            match page.status.as_deref() {
                Some("NOT_AUTHORIZED") => {
                    return Err(self.status_error(403, page.message.or(page.error)))
                }
                Some("ERROR") => return Err(self.status_error(500, page.error.or(page.message))),
                _ => {}
            }
            out.extend(page.results.unwrap_or_default());
            match page.next_url {
                None => return Ok(out),
                Some(next) => url = self.follow(&next)?,
            }
        }
        Err(AttemptError::Invalid(format!(
            "{what}: more than {} pages (data.polygon.max_pages)",
            self.max_pages
        )))
    }

    /// The next page's URL: same origin as `base_url` (the key is never sent elsewhere),
    /// with any key parameter dropped since the key goes in the header.
    fn follow(&self, next: &str) -> Result<Url, AttemptError> {
        let url = self
            .base
            .join(next)
            .map_err(|_| AttemptError::Invalid("next_url is not a URL".into()))?;
        if url.origin() != self.base.origin() {
            return Err(AttemptError::Invalid(
                "next_url points to another host; not followed".into(),
            ));
        }
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("apikey"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut url = url;
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept);
        }
        Ok(url)
    }

    async fn page<R>(&self, url: &Url, what: &str) -> Result<Page<R>, AttemptError>
    where
        R: DeserializeOwned + Send + 'static,
    {
        if self.unauthorized.load(Ordering::Relaxed) {
            return Err(self.status_error(
                401,
                Some("the API key was refused earlier in this run; not retried".into()),
            ));
        }
        let result = self
            .resilience
            .call(what, || async {
                let response = self
                    .http
                    .get(url.clone())
                    .header(AUTHORIZATION, self.auth.clone())
                    .send()
                    .await
                    .map_err(|e| self.transport_error(e))?;
                let status = response.status();
                if !status.is_success() {
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                    let body = self
                        .read(response, ERROR_BODY_MAX, true)
                        .await
                        .unwrap_or_default();
                    let mut e = self.status_error(status.as_u16(), error_detail(&body));
                    if let AttemptError::Status {
                        retry_after: ra, ..
                    } = &mut e
                    {
                        *ra = retry_after;
                    }
                    return Err(e);
                }
                let body = self.read(response, self.max_response_bytes, false).await?;
                parse(body).await
            })
            .await;
        if let Err(AttemptError::Status { status: 401, .. }) = &result {
            if !self.unauthorized.swap(true, Ordering::Relaxed) {
                warn!("polygon refused the API key (HTTP 401); failing further requests at once");
            }
        }
        result
    }

    /// Reads a body up to `max` bytes; past it, an error (or, for error bodies, the prefix).
    async fn read(
        &self,
        mut response: reqwest::Response,
        max: usize,
        truncate: bool,
    ) -> Result<Vec<u8>, AttemptError> {
        let too_big = || {
            AttemptError::Invalid(format!(
                "response larger than {max} bytes (data.polygon.max_response_bytes)"
            ))
        };
        let hint = response.content_length().unwrap_or(0) as usize;
        if hint > max && !truncate {
            return Err(too_big());
        }
        let mut buf = Vec::with_capacity(hint.min(max));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            if buf.len() + chunk.len() > max {
                if truncate {
                    buf.extend_from_slice(&chunk[..max - buf.len()]);
                    break;
                }
                return Err(too_big());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }

    fn status_error(&self, status: u16, detail: Option<String>) -> AttemptError {
        let detail = detail.map(|d| self.scrub(&d)).unwrap_or_default();
        AttemptError::Status {
            status,
            retry_after: None,
            detail: detail.chars().take(200).collect(),
        }
    }

    fn transport_error(&self, e: reqwest::Error) -> AttemptError {
        if e.is_timeout() {
            return AttemptError::Timeout(self.resilience.policy().timeout);
        }
        // The URL carries no key, but drop it anyway: messages stay short and uniform.
        let e = e.without_url();
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        AttemptError::Connect(self.scrub(&text))
    }

    /// Removes the key from text that came from elsewhere (defence in depth).
    pub fn scrub(&self, text: &str) -> String {
        let key = self.key.expose().trim();
        if key.is_empty() {
            text.to_string()
        } else {
            text.replace(key, "<redacted>")
        }
    }

    /// The user-facing error for a request that failed after the whole policy.
    /// `symbol` is the symbol a per-symbol request was for.
    pub fn data_error(&self, e: AttemptError, what: &str, symbol: Option<&str>) -> DataError {
        let attempts = self.resilience.policy().max_retries + 1;
        let message = self.scrub(&format!("polygon {what}: {e}"));
        match e {
            AttemptError::Status {
                status: 401 | 403, ..
            } => DataError::Auth { message },
            AttemptError::Status { status: 404, .. } => match symbol {
                Some(s) => DataError::NotFound {
                    symbol: s.to_string(),
                },
                None => DataError::Unavailable { message },
            },
            AttemptError::Status { status: 429, .. } => DataError::RateLimited {
                message: format!("{message} (after up to {attempts} attempts)"),
            },
            AttemptError::Status { status, .. } if (400..500).contains(&status) => match symbol {
                Some(s) => DataError::Invalid {
                    symbol: s.to_string(),
                    message,
                },
                None => DataError::Unavailable { message },
            },
            AttemptError::Invalid(_) => match symbol {
                Some(s) => DataError::Invalid {
                    symbol: s.to_string(),
                    message,
                },
                None => DataError::Unavailable { message },
            },
            AttemptError::CircuitOpen => DataError::Unavailable { message },
            AttemptError::Status { .. } | AttemptError::Timeout(_) | AttemptError::Connect(_) => {
                DataError::Unavailable {
                    message: format!("{message} (after up to {attempts} attempts)"),
                }
            }
        }
    }
}

/// Parses a page, on rayon when the body is large.
async fn parse<R>(body: Vec<u8>) -> Result<Page<R>, AttemptError>
where
    R: DeserializeOwned + Send + 'static,
{
    let large = body.len() > PARSE_INLINE_MAX;
    let decode = move || {
        serde_json::from_slice::<Page<R>>(&body)
            .map_err(|e| AttemptError::Invalid(format!("cannot decode the JSON body: {e}")))
    };
    if large {
        crate::cpu::run(decode).await
    } else {
        decode()
    }
}

/// The `error` or `message` field of a Polygon error body, else its first line.
fn error_detail(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: Option<String>,
        message: Option<String>,
    }
    if let Ok(b) = serde_json::from_slice::<ErrorBody>(body) {
        if let Some(text) = b.error.or(b.message) {
            return Some(text);
        }
    }
    let text = String::from_utf8_lossy(body);
    let line = text.lines().next().unwrap_or("").trim();
    (!line.is_empty()).then(|| line.to_string())
}
