//! `technic_provider_requests_total{provider,outcome}` and `technic_circuit_state{provider}`
//! recorded by the resilience layer, read back from the real exposition text while the
//! Polygon provider talks to a fake Polygon on loopback (wiremock).
//!
//! One test in its own binary on purpose: the registry is process-wide, so another test
//! making Polygon requests in parallel would move the same counters and the same gauge.

use std::time::Duration;

use chrono::NaiveDate;
use technic::config::{Secret, Settings};
use technic::data::{BarRange, CircuitState, MarketData, PolygonProvider};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The value of one sample in the exposition text, if the series exists.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

fn requests(text: &str, outcome: &str) -> f64 {
    sample(
        text,
        &format!("technic_provider_requests_total{{provider=\"polygon\",outcome=\"{outcome}\"}}"),
    )
    .unwrap_or(0.0)
}

fn circuit(text: &str) -> Option<f64> {
    sample(text, "technic_circuit_state{provider=\"polygon\"}")
}

/// Counter deltas since `before`, for every outcome label.
fn deltas(before: &str) -> [(&'static str, f64); 5] {
    let now = technic::telemetry::encode_metrics();
    ["ok", "error", "timeout", "rate_limited", "rejected"]
        .map(|o| (o, requests(&now, o) - requests(before, o)))
}

fn bars_body() -> String {
    let day = NaiveDate::from_ymd_opt(2024, 6, 3).expect("date");
    let ms = day
        .and_hms_opt(4, 0, 0)
        .expect("time")
        .and_utc()
        .timestamp_millis();
    format!("{{\"results\":[{{\"t\":{ms},\"o\":10,\"h\":11,\"l\":9,\"c\":10.5,\"v\":1000}}]}}")
}

/// Tells the test when the request arrived (the breaker is half-open while it is served).
struct Signal {
    template: ResponseTemplate,
    arrived: tokio::sync::mpsc::UnboundedSender<()>,
}

impl Respond for Signal {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let _ = self.arrived.send(());
        self.template.clone()
    }
}

async fn mount(server: &MockServer, symbol: &str, response: impl Respond + 'static) {
    Mock::given(method("GET"))
        .and(path_regex(format!("/ticker/{symbol}/range/")))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn attempts_are_counted_by_outcome_and_the_gauge_follows_the_breaker() {
    let server = MockServer::start().await;
    let ok = ResponseTemplate::new(200).set_body_raw(bars_body(), "application/json");
    mount(&server, "OK", ok.clone()).await;
    mount(&server, "LIMITED", ResponseTemplate::new(429)).await;
    mount(&server, "MISSING", ResponseTemplate::new(404)).await;
    mount(&server, "DOWN", ResponseTemplate::new(503)).await;
    mount(
        &server,
        "SLOW",
        ok.clone().set_delay(Duration::from_secs(10)),
    )
    .await;
    let (tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    mount(
        &server,
        "TRIAL",
        Signal {
            // Long enough to read the gauge while the trial is in flight, within the timeout.
            template: ok.set_delay(Duration::from_millis(300)),
            arrived: tx,
        },
    )
    .await;

    let mut s = Settings::defaults().data.polygon;
    s.base_url = server.uri();
    s.api_key = Secret::new("pk_metrics_test");
    s.requests_per_minute = 600_000;
    s.rate_limit_burst = 10_000;
    s.timeout_ms = 1_000;
    s.max_retries = 0; // one attempt per call: the counts below are exact
    s.breaker_failures = 3;
    s.breaker_open_ms = 400;
    s.breaker_open_max_ms = 800;
    let before = technic::telemetry::encode_metrics();
    let p = PolygonProvider::new(&s).expect("provider");
    let range = BarRange::new(NaiveDate::from_ymd_opt(2024, 6, 28), 5);

    // A new breaker is closed, and says so before any request.
    assert_eq!(circuit(&technic::telemetry::encode_metrics()), Some(0.0));

    // Answers the breaker counts as success: ok, 429, 404.
    assert!(p.daily_bars("OK", range).await.is_ok());
    assert!(p.daily_bars("LIMITED", range).await.is_err());
    assert!(p.daily_bars("MISSING", range).await.is_err());
    assert_eq!(
        deltas(&before),
        [
            ("ok", 1.0),
            ("error", 1.0),
            ("timeout", 0.0),
            ("rate_limited", 1.0),
            ("rejected", 0.0)
        ]
    );
    assert_eq!(circuit(&technic::telemetry::encode_metrics()), Some(0.0));

    // Three upstream failures in a row (a timeout, two 503s) open the breaker.
    assert!(p.daily_bars("SLOW", range).await.is_err());
    assert!(p.daily_bars("DOWN", range).await.is_err());
    assert_eq!(p.circuit_state(), CircuitState::Closed);
    assert!(p.daily_bars("DOWN", range).await.is_err());
    assert_eq!(p.circuit_state(), CircuitState::Open);
    let text = technic::telemetry::encode_metrics();
    assert_eq!(circuit(&text), Some(2.0), "open reads 2:\n{text}");

    // While open, calls are rejected without a request and counted as such.
    let sent = server.received_requests().await.expect("recording").len();
    assert!(p.daily_bars("OK", range).await.is_err());
    assert!(p.daily_bars("OK", range).await.is_err());
    assert_eq!(
        server.received_requests().await.expect("recording").len(),
        sent,
        "an open breaker sends nothing"
    );
    assert_eq!(
        deltas(&before),
        [
            ("ok", 1.0),
            ("error", 3.0),
            ("timeout", 1.0),
            ("rate_limited", 1.0),
            ("rejected", 2.0)
        ]
    );

    // After the open period the next call is a trial (half-open, 1), and its success
    // closes the breaker (0). The open period is the one wait by design.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let trial = tokio::spawn(async move {
        let ok = p.daily_bars("TRIAL", range).await.is_ok();
        (p, ok)
    });
    arrived.recv().await.expect("the trial reached the server");
    assert_eq!(circuit(&technic::telemetry::encode_metrics()), Some(1.0));
    let (p, ok) = trial.await.expect("task");
    assert!(ok, "the upstream recovered");
    assert_eq!(p.circuit_state(), CircuitState::Closed);
    assert_eq!(circuit(&technic::telemetry::encode_metrics()), Some(0.0));
    assert_eq!(deltas(&before)[0], ("ok", 2.0));

    // Label values stay in the fixed sets: no symbol ever becomes a label.
    let text = technic::telemetry::encode_metrics();
    for line in text
        .lines()
        .filter(|l| l.starts_with("technic_provider_requests_total{"))
    {
        assert!(
            !["OK", "LIMITED", "MISSING", "DOWN", "SLOW", "TRIAL"]
                .iter()
                .any(|s| line.contains(s)),
            "{line}"
        );
    }
}
