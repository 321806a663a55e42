//! Webhooks: where a screen's differences go. Each event is POSTed as JSON with
//! `X-Technic-Signature: sha256=<hex HMAC-SHA256 of the body, keyed by the webhook's
//! secret>`, retried with exponential backoff and jitter (backon) on a connection error,
//! a timeout, a 429 or a 5xx, and recorded as a dead letter after the last attempt.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Change, Run};
use crate::config::ScreenSettings;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Technic-Signature";

/// A registered receiver.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// Keys the signature. Never shown by the API.
    pub secret: String,
    /// The screens it follows; `None`: all.
    pub screens: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &redact_url(&self.url))
            .field("screens", &self.screens)
            .finish_non_exhaustive()
    }
}

/// A webhook URL as reads and logs show it: no user info, no query (either may carry a
/// credential, as chat services' webhook URLs do).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            if u.query().is_some() {
                u.set_query(Some("…"));
            }
            u.to_string()
        }
        Err(_) => "(invalid URL)".into(),
    }
}

impl Webhook {
    pub fn follows(&self, screen: &str) -> bool {
        self.screens
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == screen))
    }
}

/// What a webhook receives: one run's difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// The same for every delivery of this run's difference (and for a run of the same
    /// tick made again after a crash): receivers dedupe by it.
    pub id: String,
    pub screen: String,
    pub run_id: String,
    /// The schedule's tick (`null` for a run started by hand).
    pub tick: Option<DateTime<Utc>>,
    pub new: Vec<String>,
    pub dropped: Vec<String>,
    pub changed: Vec<Change>,
}

impl Event {
    /// The event of `run`. Its id is derived from the screen, the tick (or, for a run by
    /// hand, the run id) and the difference itself: a tick run again with the same outcome
    /// sends the same id, one that saw other data another.
    pub fn of(run: &Run) -> Self {
        let diff = serde_json::to_string(&run.diff).unwrap_or_default();
        let what = match run.tick {
            Some(t) => format!("{}\n{}\n{diff}", run.screen, t.timestamp_millis()),
            None => format!("{}\n{}\n{diff}", run.screen, run.run_id),
        };
        let digest = Sha256::digest(what.as_bytes());
        Event {
            id: format!("evt_{}", &hex::encode(digest)[..24]),
            screen: run.screen.clone(),
            run_id: run.run_id.clone(),
            tick: run.tick,
            new: run.diff.new.clone(),
            dropped: run.diff.dropped.clone(),
            changed: run.diff.changed.clone(),
        }
    }
}

/// One event's delivery to one webhook, as the log and the dead letters keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    pub webhook: String,
    pub url: String,
    pub event: Event,
    pub delivered: bool,
    pub attempts: u32,
    /// The last HTTP status, if the receiver answered.
    pub status: Option<u16>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

/// `sha256=<hex>` of `body` keyed by `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Debug)]
struct Failure {
    status: Option<u16>,
    message: String,
    retryable: bool,
}

/// POSTs `event` to `hook`, with the retries of `settings`; the outcome, for the log.
pub async fn deliver(
    client: &reqwest::Client,
    settings: &ScreenSettings,
    hook: &Webhook,
    event: &Event,
) -> Delivery {
    let body = serde_json::to_vec(event).unwrap_or_default();
    let signature = sign(&hook.secret, &body);
    let attempts = AtomicU32::new(0);
    let attempt = || async {
        attempts.fetch_add(1, Ordering::Relaxed);
        let sent = client
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, &signature)
            .header("X-Technic-Event", &event.id)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
            Ok(r) => {
                let s = r.status();
                Err(Failure {
                    status: Some(s.as_u16()),
                    message: format!("the receiver answered {s}"),
                    retryable: s.is_server_error() || s.as_u16() == 429 || s.as_u16() == 408,
                })
            }
            Err(e) => Err(Failure {
                status: None,
                message: if e.is_timeout() {
                    "the receiver did not answer in time".into()
                } else {
                    "cannot connect to the receiver".into()
                },
                retryable: true,
            }),
        }
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(settings.retry_base_ms))
        .with_max_delay(Duration::from_millis(settings.retry_max_ms))
        .with_max_times(settings.webhook_attempts.saturating_sub(1) as usize)
        .with_jitter();
    let outcome = attempt
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|f: &Failure| f.retryable)
        .notify(|f: &Failure, d| {
            crate::telemetry::metrics()
                .webhook_deliveries
                .get_or_create(&crate::telemetry::OutcomeLabel { outcome: "retried" })
                .inc();
            tracing::debug!(webhook = %hook.id, event = %event.id, error = %f.message, delay_ms = d.as_millis() as u64, "retrying a webhook delivery");
        })
        .await;
    let (delivered, status, error) = match outcome {
        Ok(s) => (true, Some(s), None),
        Err(f) => (false, f.status, Some(f.message)),
    };
    let m = crate::telemetry::metrics();
    m.webhook_deliveries
        .get_or_create(&crate::telemetry::OutcomeLabel {
            outcome: if delivered {
                "delivered"
            } else {
                "dead_letter"
            },
        })
        .inc();
    if !delivered {
        tracing::warn!(webhook = %hook.id, event = %event.id, error = ?error, "a webhook delivery failed its last attempt: kept as a dead letter");
    }
    Delivery {
        webhook: hook.id.clone(),
        url: redact_url(&hook.url),
        event: event.clone(),
        delivered,
        attempts: attempts.load(Ordering::Relaxed),
        status,
        error,
        at: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            redact_url("https://user:pw@hooks.example.com/T1/B2?token=abc"),
            "https://hooks.example.com/T1/B2?%E2%80%A6"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:9/hook"),
            "http://127.0.0.1:9/hook"
        );
    }

    #[test]
    fn the_signature_is_the_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
