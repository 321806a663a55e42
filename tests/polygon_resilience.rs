//! The resilience layer of the Polygon provider against a real HTTP server on loopback
//! (wiremock standing in for Polygon): 429 with Retry-After, bursts of 5xx, 401, timeouts,
//! the circuit breaker and the rate limit; and scans through the real local cluster that
//! complete while some symbols fail upstream. Durations are configured small; nothing
//! sleeps to wait for something it could await (the breaker's open period is the one wait
//! by design).

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::fake_polygon::FakePolygon;
use support::polygon::{
    bars_json, code, day, market, range, received, requests_to, scan, serve, settings, KEY,
};
use technic::config::{BulkMode, Settings};
use technic::data::{
    self, CircuitState, DataSource, MarketData, PolygonProvider, SyntheticProvider,
};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!("{{\"results\":{}}}", bars_json(&[(day(3), 5.0)])),
            "application/json",
        ))
        .mount(&server)
        .await;
    let p = PolygonProvider::new(&settings(&server)).expect("provider");
    let t = Instant::now();
    let bars = p
        .daily_bars("AAPL", range(5))
        .await
        .expect("succeeds after the wait");
    let waited = t.elapsed();
    assert_eq!(bars.close, [5.0]);
    assert_eq!(received(&server).await.len(), 2);
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(p.stats().http.retries, 1);
}

#[tokio::test]
async fn a_burst_of_500s_is_retried_and_a_longer_one_is_unavailable() {
    let server = MockServer::start().await;
    Mock::given(path_regex("/OK3/"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path_regex("/OK3/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!("{{\"results\":{}}}", bars_json(&[(day(3), 5.0)])),
            "application/json",
        ))
        .mount(&server)
        .await;
    Mock::given(path_regex("/DOWN/"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let p = PolygonProvider::new(&settings(&server)).expect("provider");
    assert!(
        p.daily_bars("OK3", range(5)).await.is_ok(),
        "3 failures < 1 + 3 attempts"
    );
    let err = p
        .daily_bars("DOWN", range(5))
        .await
        .expect_err("still down");
    assert_eq!(err.code(), "DATA_UNAVAILABLE");
    assert!(
        err.to_string().contains("HTTP 503") && err.to_string().contains("4 attempts"),
        "{err}"
    );
    let reqs = received(&server).await;
    assert_eq!(requests_to(&reqs, "/v2/aggs/ticker/OK3"), 4);
    assert_eq!(
        requests_to(&reqs, "/v2/aggs/ticker/DOWN"),
        4,
        "1 + max_retries"
    );
}

#[tokio::test]
async fn a_401_is_not_retried_and_says_to_check_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_raw(
            "{\"status\":\"ERROR\",\"request_id\":\"r1\",\"error\":\"Unknown API Key\"}",
            "application/json",
        ))
        .mount(&server)
        .await;
    let p = PolygonProvider::new(&settings(&server)).expect("provider");
    let err = p
        .daily_bars("AAPL", range(5))
        .await
        .expect_err("unauthorized");
    assert_eq!(err.code(), "DATA_AUTH");
    let text = format!("{err}; {}", err.suggestion());
    assert!(
        text.contains("HTTP 401") && text.contains("Unknown API Key"),
        "{text}"
    );
    assert!(text.contains("check the API key"), "{text}");
    assert!(!text.contains(KEY));
    assert_eq!(received(&server).await.len(), 1, "never retried");
    let rest = p.load_many(&["MSFT".into(), "NVDA".into()], range(5)).await;
    assert!(
        rest.iter().all(|r| code(r) == "DATA_AUTH"),
        "a bad key fails every symbol"
    );
    assert_eq!(
        received(&server).await.len(),
        1,
        "and costs no further request"
    );
}

#[tokio::test]
async fn a_timeout_is_retried_then_reported_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("{}")
                .set_delay(Duration::from_secs(2)),
        )
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.timeout_ms = 100;
    s.max_retries = 1;
    let p = PolygonProvider::new(&s).expect("provider");
    let t = Instant::now();
    let err = p.daily_bars("SLOW", range(5)).await.expect_err("times out");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(err.code(), "DATA_UNAVAILABLE");
    assert!(err.to_string().contains("timed out after 100 ms"), "{err}");
    assert_eq!(received(&server).await.len(), 2);
}

/// Answers with `template` and reports each request as it arrives.
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

#[tokio::test]
async fn the_breaker_opens_after_its_threshold_then_half_opens_and_recovers() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    let (tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let ok = ResponseTemplate::new(200)
        .set_body_raw(
            format!("{{\"results\":{}}}", bars_json(&[(day(3), 5.0)])),
            "application/json",
        )
        .set_delay(Duration::from_millis(200));
    Mock::given(method("GET"))
        .respond_with(Signal {
            template: ok,
            arrived: tx,
        })
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.breaker_failures = 3;
    s.max_retries = 0;
    s.breaker_open_ms = 300;
    s.breaker_open_max_ms = 600;
    let p = Arc::new(PolygonProvider::new(&s).expect("provider"));
    for _ in 0..3 {
        assert_eq!(
            p.daily_bars("AAPL", range(5))
                .await
                .map(|_| ())
                .expect_err("500")
                .code(),
            "DATA_UNAVAILABLE"
        );
    }
    assert_eq!(p.circuit_state(), CircuitState::Open);
    assert_eq!(p.circuits(), [("polygon", CircuitState::Open)]);
    let t = Instant::now();
    let err = p
        .daily_bars("AAPL", range(5))
        .await
        .expect_err("rejected while open");
    assert!(err.to_string().contains("circuit breaker open"), "{err}");
    assert!(t.elapsed() < Duration::from_millis(100), "fails fast");
    assert_eq!(
        received(&server).await.len(),
        3,
        "an open breaker sends nothing"
    );

    // The open period is time-based: wait it out, then the next call is a trial.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let trial = tokio::spawn({
        let p = Arc::clone(&p);
        async move { p.daily_bars("AAPL", range(5)).await }
    });
    arrived
        .recv()
        .await
        .expect("the trial request reached the server");
    assert_eq!(p.circuit_state(), CircuitState::HalfOpen);
    assert!(trial.await.expect("task").is_ok(), "the upstream recovered");
    assert_eq!(p.circuit_state(), CircuitState::Closed);
    assert!(p.daily_bars("AAPL", range(5)).await.is_ok());
}

#[tokio::test]
async fn the_rate_limit_spaces_requests() {
    let fake = FakePolygon::new(market(6, 30).await, HashSet::new(), Duration::ZERO);
    let server = serve(&fake).await;
    let mut s = settings(&server);
    s.requests_per_minute = 600; // one every 100 ms
    s.rate_limit_burst = 1;
    s.bulk = BulkMode::Never;
    let p = PolygonProvider::new(&s).expect("provider");
    let symbols: Vec<String> = fake.symbols();
    let t = Instant::now();
    let got = p.load_many(&symbols, range(10)).await;
    assert!(got.iter().all(Result::is_ok));
    let times: Vec<Instant> = fake.hits().into_iter().map(|(t, _)| t).collect();
    assert_eq!(times.len(), 6);
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(90),
            "requests {gap:?} apart, limit is 100 ms"
        );
    }
    let span = times[5] - times[0];
    assert!(
        span < Duration::from_millis(1000),
        "the limit is used, not undershot: {span:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_where_10_percent_fail_upstream_completes_and_lists_the_failures() {
    let market = market(50, 60).await;
    let failing: HashSet<String> = market.keys().step_by(10).cloned().collect();
    let fake = FakePolygon::new(market, failing.clone(), Duration::ZERO);
    let server = serve(&fake).await;
    let mut settings_all = Settings::defaults();
    settings_all.data.polygon = settings(&server);
    settings_all.data.polygon.max_retries = 1;
    settings_all.data.polygon.symbols = fake.symbols();
    let provider =
        data::open_chain(&[DataSource::Polygon], &settings_all.data, None).expect("opens");
    let report = scan(&settings_all, provider, 30).await;
    assert_eq!(report.universe_size, 50);
    assert_eq!(report.scanned, 45, "every other symbol is scanned");
    let failed: HashSet<String> = report.failures.iter().map(|f| f.symbol.clone()).collect();
    assert_eq!(failed, failing);
    for f in &report.failures {
        assert_eq!(f.code, "DATA_UNAVAILABLE");
        assert!(
            f.message.contains("HTTP 500")
                && f.message.contains("check the data source is reachable"),
            "{}",
            f.message
        );
    }
    // 30 bars is a 52-day window (38 weekdays) < 50 symbols: the bulk path served the rest.
    assert_eq!(report.timing.stages.bulk_symbols, 45);
    assert_eq!(
        fake.count("/v2/aggs/ticker/"),
        5 * 2,
        "only the gaps, each 1 + 1 retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_synthetic_failure_rate_fails_symbols_as_unavailable_without_stopping_the_scan() {
    let mut s = Settings::defaults();
    s.data.synthetic.symbols = 300;
    s.data.synthetic.failure_rate = 0.1;
    let provider: Arc<dyn MarketData> = Arc::new(SyntheticProvider::new(&s.data.synthetic));
    let report = scan(&s, provider, 500).await;
    assert!(
        (15..=45).contains(&report.failures.len()),
        "{} of 300",
        report.failures.len()
    );
    assert_eq!(report.scanned + report.failures.len(), 300);
    assert!(report
        .failures
        .iter()
        .all(|f| f.code == "DATA_UNAVAILABLE" && f.message.contains("retry")));
}
