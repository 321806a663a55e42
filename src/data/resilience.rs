//! The one resilience layer every remote provider calls through: a bound on requests in
//! flight, a client-side rate limit (governor), a circuit breaker per provider (failsafe),
//! a timeout per attempt, and retries with exponential backoff and jitter (backon) that
//! honour `Retry-After`.
//!
//! What is retried: 429, 5xx, timeouts and connection errors. Never: other 4xx (400, 401,
//! 403, 404 …), undecodable responses, or a call the open breaker rejected. What trips the
//! breaker: 5xx, timeouts and connection errors — an upstream that answers, even with a
//! 4xx or a 429, is alive. The layer knows nothing of HTTP clients or of bars: an attempt
//! reports an [`AttemptError`] and the provider maps the final one to a `DataError`.
//!
//! Metrics are recorded here, where the events happen: every attempt (and every call the
//! open breaker rejects) counts once in `technic_provider_requests_total{provider,outcome}`
//! ([`ProviderOutcome`]), and every breaker transition sets `technic_circuit_state{provider}`
//! ([`CircuitState::as_gauge`]).

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use failsafe::failure_policy::{consecutive_failures, ConsecutiveFailures};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::telemetry::{metrics, ProviderLabel, ProviderOutcomeLabels};

/// The knobs of the layer, in the units they are used in.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Provider name, for logs and [`Resilience::circuit_state`] consumers.
    pub provider: &'static str,
    pub timeout: Duration,
    pub max_retries: usize,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// A `Retry-After` longer than this is not waited for: the call fails instead.
    pub retry_after_max: Duration,
    pub requests_per_minute: NonZeroU32,
    pub burst: NonZeroU32,
    /// Consecutive failed attempts that open the breaker.
    pub breaker_failures: u32,
    pub breaker_open: Duration,
    pub breaker_open_max: Duration,
    pub max_in_flight: usize,
}

impl Policy {
    pub fn from_polygon(s: &crate::config::PolygonSettings) -> Self {
        let nz = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        Policy {
            provider: "polygon",
            timeout: Duration::from_millis(s.timeout_ms.max(1)),
            max_retries: s.max_retries,
            retry_base: Duration::from_millis(s.retry_base_ms),
            retry_max: Duration::from_millis(s.retry_max_ms.max(s.retry_base_ms)),
            retry_after_max: Duration::from_millis(s.retry_after_max_ms),
            requests_per_minute: nz(s.requests_per_minute),
            burst: nz(s.rate_limit_burst),
            breaker_failures: s.breaker_failures.max(1),
            breaker_open: Duration::from_millis(s.breaker_open_ms.max(1)),
            breaker_open_max: Duration::from_millis(
                s.breaker_open_max_ms.max(s.breaker_open_ms.max(1)),
            ),
            max_in_flight: s.max_in_flight.max(1),
        }
    }
}

/// The state of a provider's circuit breaker, for health checks and the
/// `technic_circuit_state{provider}` gauge ([`CircuitState::as_gauge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls flow normally.
    Closed,
    /// Calls are rejected at once until the open period ends.
    Open,
    /// The open period ended; trial calls are let through, and the first outcome closes
    /// or re-opens the breaker.
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    /// The `technic_circuit_state` value: 0 closed, 1 half-open, 2 open — ordered by
    /// severity, so `max` over providers or nodes is the worst state and an alert is
    /// `== 2`. (Not the enum's discriminant, which is an internal storage code.)
    pub fn as_gauge(self) -> i64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => CircuitState::Open,
            2 => CircuitState::HalfOpen,
            _ => CircuitState::Closed,
        }
    }
}

/// The outcome of one attempt, the `outcome` label of `technic_provider_requests_total`.
/// A fixed set, so the label stays bounded whatever the upstream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderOutcome {
    /// A usable answer (2xx, decoded).
    Ok,
    /// Any other failure: 5xx, other 4xx (a bad key, an unknown symbol), a connection
    /// error, an undecodable body.
    Error,
    /// The attempt did not finish within the timeout.
    Timeout,
    /// The upstream answered 429.
    RateLimited,
    /// The open breaker refused the call: no request was sent.
    Rejected,
}

impl ProviderOutcome {
    pub const ALL: [ProviderOutcome; 5] = [
        ProviderOutcome::Ok,
        ProviderOutcome::Error,
        ProviderOutcome::Timeout,
        ProviderOutcome::RateLimited,
        ProviderOutcome::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderOutcome::Ok => "ok",
            ProviderOutcome::Error => "error",
            ProviderOutcome::Timeout => "timeout",
            ProviderOutcome::RateLimited => "rate_limited",
            ProviderOutcome::Rejected => "rejected",
        }
    }

    /// Classifies one attempt's result.
    pub fn of<T>(result: &Result<T, AttemptError>) -> Self {
        match result {
            Ok(_) => ProviderOutcome::Ok,
            Err(AttemptError::Timeout(_)) => ProviderOutcome::Timeout,
            Err(AttemptError::Status { status: 429, .. }) => ProviderOutcome::RateLimited,
            Err(AttemptError::CircuitOpen) => ProviderOutcome::Rejected,
            Err(_) => ProviderOutcome::Error,
        }
    }
}

fn record_outcome(provider: &'static str, outcome: ProviderOutcome) {
    metrics()
        .provider_requests
        .get_or_create(&ProviderOutcomeLabels {
            provider,
            outcome: outcome.as_str(),
        })
        .inc();
}

/// Why one attempt failed, as much as the layer needs to decide what comes next.
/// Messages never carry a URL with credentials: providers build them from status codes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AttemptError {
    #[error("HTTP {status}{}", if .detail.is_empty() { String::new() } else { format!(": {}", .detail) })]
    Status {
        status: u16,
        retry_after: Option<Duration>,
        detail: String,
    },
    #[error("timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("invalid response: {0}")]
    Invalid(String),
    #[error("circuit breaker open after repeated failures")]
    CircuitOpen,
}

impl AttemptError {
    /// Worth another attempt: 429, 5xx, timeouts, connection errors.
    pub fn is_retryable(&self) -> bool {
        match self {
            AttemptError::Status { status, .. } => *status == 429 || (500..=599).contains(status),
            AttemptError::Timeout(_) | AttemptError::Connect(_) => true,
            AttemptError::Invalid(_) | AttemptError::CircuitOpen => false,
        }
    }

    /// A sign the upstream is unhealthy (counts towards opening the breaker).
    fn is_upstream_failure(&self) -> bool {
        match self {
            AttemptError::Status { status, .. } => (500..=599).contains(status),
            AttemptError::Timeout(_) | AttemptError::Connect(_) => true,
            AttemptError::Invalid(_) | AttemptError::CircuitOpen => false,
        }
    }
}

/// Counters of the layer since it was built (requests actually sent, retries, calls the
/// breaker rejected, time spent waiting for the rate limiter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResilienceStats {
    pub attempts: u64,
    pub retries: u64,
    pub rejected: u64,
    pub rate_limited_wait_ms: u64,
}

#[derive(Debug, Default)]
struct Counters {
    attempts: AtomicU64,
    retries: AtomicU64,
    rejected: AtomicU64,
    wait_us: AtomicU64,
}

/// Tracks the breaker's transitions (failsafe does not expose its state), logs them and
/// sets the `technic_circuit_state{provider}` gauge. The gauge is per provider name and
/// process: with several layers of one provider in a process, the last transition wins.
#[derive(Debug, Clone)]
struct Tracker {
    provider: &'static str,
    state: Arc<AtomicU8>,
}

impl Tracker {
    /// Sets the gauge from the atomic rather than from the transition being reported:
    /// failsafe calls instruments outside its lock, so when two transitions race the
    /// later store is what both publish.
    fn publish(&self) {
        let state = CircuitState::from_u8(self.state.load(Ordering::Acquire));
        metrics()
            .circuit_state
            .get_or_create(&ProviderLabel {
                provider: self.provider,
            })
            .set(state.as_gauge());
    }
}

impl failsafe::Instrument for Tracker {
    fn on_call_rejected(&self) {}

    fn on_open(&self) {
        self.state
            .store(CircuitState::Open as u8, Ordering::Release);
        self.publish();
        warn!(
            provider = self.provider,
            "circuit breaker opened: the upstream keeps failing"
        );
    }

    fn on_half_open(&self) {
        self.state
            .store(CircuitState::HalfOpen as u8, Ordering::Release);
        self.publish();
        info!(
            provider = self.provider,
            "circuit breaker half-open: trying the upstream again"
        );
    }

    fn on_closed(&self) {
        let was = self
            .state
            .swap(CircuitState::Closed as u8, Ordering::AcqRel);
        // Also called when the breaker is built, so the series exists (at 0) from the start.
        self.publish();
        if was != CircuitState::Closed as u8 {
            info!(
                provider = self.provider,
                "circuit breaker closed: the upstream recovered"
            );
        }
    }
}

/// The breaker's open periods: `start`, doubling per failed trial, capped at `max`
/// (failsafe's own backoffs insist on whole seconds; tests need milliseconds).
#[derive(Debug, Clone)]
struct OpenPeriods {
    next: Duration,
    max: Duration,
}

impl Iterator for OpenPeriods {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        Some(d)
    }
}

type Breaker = failsafe::StateMachine<ConsecutiveFailures<OpenPeriods>, Tracker>;

/// One provider's resilience layer; share it (`Arc`) between every request of the
/// provider so the rate limit, the in-flight bound and the breaker are per provider.
pub struct Resilience {
    policy: Policy,
    limiter: DefaultDirectRateLimiter,
    breaker: Breaker,
    state: Arc<AtomicU8>,
    in_flight: Semaphore,
    counters: Counters,
}

impl std::fmt::Debug for Resilience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resilience")
            .field("policy", &self.policy)
            .field("circuit", &self.circuit_state())
            .finish_non_exhaustive()
    }
}

impl Resilience {
    pub fn new(policy: Policy) -> Self {
        let state = Arc::new(AtomicU8::new(CircuitState::Closed as u8));
        let breaker = failsafe::StateMachine::new(
            consecutive_failures(
                policy.breaker_failures,
                OpenPeriods {
                    next: policy.breaker_open,
                    max: policy.breaker_open_max.max(policy.breaker_open),
                },
            ),
            Tracker {
                provider: policy.provider,
                state: Arc::clone(&state),
            },
        );
        let quota = Quota::per_minute(policy.requests_per_minute).allow_burst(policy.burst);
        Resilience {
            limiter: RateLimiter::direct(quota),
            in_flight: Semaphore::new(policy.max_in_flight),
            breaker,
            state,
            counters: Counters::default(),
            policy,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The breaker's state as of its last transition (an open breaker turns half-open
    /// when the first call after its open period is let through).
    pub fn circuit_state(&self) -> CircuitState {
        CircuitState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub fn stats(&self) -> ResilienceStats {
        ResilienceStats {
            attempts: self.counters.attempts.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            rejected: self.counters.rejected.load(Ordering::Relaxed),
            rate_limited_wait_ms: self.counters.wait_us.load(Ordering::Relaxed) / 1000,
        }
    }

    /// Runs `op` (one HTTP attempt) under the whole policy and returns its value, or the
    /// error of the last attempt. `what` names the request in logs (never a URL).
    pub async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T, AttemptError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.policy.retry_base)
            .with_max_delay(self.policy.retry_max)
            .with_max_times(self.policy.max_retries)
            .with_jitter();
        let retry_after_max = self.policy.retry_after_max;
        (|| self.attempt(&op))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(AttemptError::is_retryable)
            .adjust(move |e, next| match (e, next) {
                (_, None) => None,
                (AttemptError::Status { retry_after: Some(ra), .. }, Some(d)) => {
                    // Honour the server's wait; past our cap, give up rather than stall.
                    (*ra <= retry_after_max).then(|| (*ra).max(d))
                }
                (_, Some(d)) => Some(d),
            })
            .notify(|e, d| {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                debug!(provider = self.policy.provider, request = what, error = %e, delay_ms = d.as_millis() as u64, "retrying");
            })
            .await
    }

    async fn attempt<T, F, Fut>(&self, op: &F) -> Result<T, AttemptError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        if !self.breaker.is_call_permitted() {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            record_outcome(self.policy.provider, ProviderOutcome::Rejected);
            return Err(AttemptError::CircuitOpen);
        }
        // The semaphore is owned by `self` and never closed, so acquiring cannot fail.
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| AttemptError::CircuitOpen)?;
        let t = std::time::Instant::now();
        self.limiter.until_ready().await;
        self.counters
            .wait_us
            .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.counters.attempts.fetch_add(1, Ordering::Relaxed);
        let result = match tokio::time::timeout(self.policy.timeout, op()).await {
            Ok(r) => r,
            Err(_) => Err(AttemptError::Timeout(self.policy.timeout)),
        };
        record_outcome(self.policy.provider, ProviderOutcome::of(&result));
        match &result {
            Err(e) if e.is_upstream_failure() => self.breaker.on_error(),
            // Any answer from the upstream, even a 4xx, shows it is alive.
            _ => self.breaker.on_success(),
        }
        result
    }
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = (at.with_timezone(&chrono::Utc) - now)
        .num_milliseconds()
        .max(0);
    Some(Duration::from_millis(ms as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn policy() -> Policy {
        Policy {
            provider: "test",
            timeout: Duration::from_millis(200),
            max_retries: 3,
            retry_base: Duration::from_millis(1),
            retry_max: Duration::from_millis(4),
            retry_after_max: Duration::from_millis(50),
            requests_per_minute: NonZeroU32::new(60_000).expect("non-zero"),
            burst: NonZeroU32::new(1000).expect("non-zero"),
            breaker_failures: 100,
            breaker_open: Duration::from_millis(50),
            breaker_open_max: Duration::from_millis(100),
            max_in_flight: 4,
        }
    }

    fn status(status: u16) -> AttemptError {
        AttemptError::Status {
            status,
            retry_after: None,
            detail: String::new(),
        }
    }

    async fn run(
        r: &Resilience,
        fail_first: usize,
        err: AttemptError,
    ) -> (Result<u32, AttemptError>, usize) {
        let calls = AtomicUsize::new(0);
        let out = r
            .call("t", || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let err = err.clone();
                async move {
                    if n < fail_first {
                        Err(err)
                    } else {
                        Ok(7)
                    }
                }
            })
            .await;
        (out, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn retries_what_is_retryable_and_nothing_else() {
        let r = Resilience::new(policy());
        for code in [429, 500, 502, 503] {
            assert_eq!(run(&r, 2, status(code)).await, (Ok(7), 3), "{code}");
        }
        for code in [400, 401, 403, 404] {
            assert_eq!(
                run(&r, 1, status(code)).await,
                (Err(status(code)), 1),
                "{code}"
            );
        }
        assert_eq!(
            run(&r, 9, status(503)).await,
            (Err(status(503)), 4),
            "1 + max_retries attempts"
        );
        assert_eq!(run(&r, 1, AttemptError::Invalid("x".into())).await.1, 1);
        assert_eq!(
            run(&r, 1, AttemptError::Connect("x".into())).await,
            (Ok(7), 2)
        );
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_cap_is_not_waited_for() {
        let r = Resilience::new(policy());
        let long = AttemptError::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(3600)),
            detail: String::new(),
        };
        let t = std::time::Instant::now();
        assert_eq!(run(&r, 1, long.clone()).await, (Err(long), 1));
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn retry_after_forms() {
        let now = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .expect("date")
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Mon, 01 Jan 2024 00:00:03 GMT", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after("Sun, 31 Dec 2023 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn open_periods_double_up_to_the_cap() {
        let p = OpenPeriods {
            next: Duration::from_millis(10),
            max: Duration::from_millis(35),
        };
        let v: Vec<u128> = p.take(4).map(|d| d.as_millis()).collect();
        assert_eq!(v, [10, 20, 35, 35]);
    }

    #[test]
    fn circuit_state_codes_are_stable() {
        for s in [
            CircuitState::Closed,
            CircuitState::Open,
            CircuitState::HalfOpen,
        ] {
            assert_eq!(CircuitState::from_u8(s as u8), s);
        }
        assert_eq!(CircuitState::HalfOpen.as_str(), "half_open");
        // The exported encoding (alert rules and dashboards depend on it).
        assert_eq!(CircuitState::Closed.as_gauge(), 0);
        assert_eq!(CircuitState::HalfOpen.as_gauge(), 1);
        assert_eq!(CircuitState::Open.as_gauge(), 2);
    }

    #[test]
    fn attempt_outcomes_map_to_the_fixed_label_set() {
        let of = |r: Result<(), AttemptError>| ProviderOutcome::of(&r).as_str();
        assert_eq!(of(Ok(())), "ok");
        assert_eq!(of(Err(status(429))), "rate_limited");
        assert_eq!(of(Err(status(503))), "error");
        assert_eq!(of(Err(status(401))), "error");
        assert_eq!(of(Err(AttemptError::Connect("x".into()))), "error");
        assert_eq!(of(Err(AttemptError::Invalid("x".into()))), "error");
        assert_eq!(
            of(Err(AttemptError::Timeout(Duration::from_millis(1)))),
            "timeout"
        );
        assert_eq!(of(Err(AttemptError::CircuitOpen)), "rejected");
        let names: std::collections::HashSet<&str> =
            ProviderOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(names.len(), ProviderOutcome::ALL.len());
    }
}
