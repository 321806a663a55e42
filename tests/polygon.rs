//! The Polygon provider and the resilience layer against a real HTTP server on loopback
//! (wiremock standing in for Polygon), the fallback chain over real CSV files, and scans
//! through the real local cluster. Durations are configured small; nothing sleeps to wait
//! for something it could await (the breaker's open period is the one wait by design).

#[path = "support/fake_polygon.rs"]
mod fake_polygon;

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use fake_polygon::{ms, FakePolygon};
use technic::cluster::LocalCluster;
use technic::config::{BulkMode, PolygonSettings, Secret, Settings};
use technic::data::{
    self, BarRange, CircuitState, DataError, DataSource, MarketData, PolygonProvider,
    SyntheticProvider,
};
use technic::market::{Bars, Origin};
use technic::scan::{ScanConfig, ScanReport};
use wiremock::matchers::{bearer_token, method, path_regex, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The one key every test uses, so the log-capture test can look for it everywhere.
const KEY: &str = "pk_TEST_s3cr3t_9f8e7d6c5b4a";

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 28).expect("date")
}

fn juneteenth() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 19).expect("date")
}

/// Every log line of this test binary (all levels, all crates), to search for the key.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buf);
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&writer)))
            .try_init();
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn settings(server: &MockServer) -> PolygonSettings {
    captured();
    let mut s = Settings::defaults().data.polygon;
    s.base_url = server.uri();
    s.api_key = Secret::new(KEY);
    s.requests_per_minute = 600_000;
    s.rate_limit_burst = 10_000;
    s.timeout_ms = 2_000;
    s.max_retries = 3;
    s.retry_base_ms = 5;
    s.retry_max_ms = 20;
    s.retry_after_max_ms = 5_000;
    s.breaker_failures = 1_000;
    s.breaker_open_ms = 200;
    s.breaker_open_max_ms = 400;
    s
}

fn range(lookback: usize) -> BarRange {
    BarRange::new(Some(as_of()), lookback)
}

/// `n` synthetic symbols × `days` bars ending at `as_of()`, with 2024-06-19 a holiday.
async fn market(n: usize, days: usize) -> BTreeMap<String, Bars> {
    let mut s = Settings::defaults().data.synthetic;
    s.symbols = n;
    s.days = days;
    s.end_date = as_of();
    let p = SyntheticProvider::new(&s);
    let symbols: Vec<String> = p
        .universe()
        .await
        .expect("universe")
        .into_iter()
        .map(|e| e.symbol)
        .collect();
    let loaded = p.load_many(&symbols, BarRange::new(None, days)).await;
    symbols
        .into_iter()
        .zip(loaded)
        .map(|(sym, b)| {
            let b = b.expect("synthetic bars");
            let mut out = Bars::default();
            for i in 0..b.len() {
                if b.dates[i] != juneteenth() {
                    out.push(
                        b.dates[i],
                        b.open[i],
                        b.high[i],
                        b.low[i],
                        b.close[i],
                        b.volume[i],
                    );
                }
            }
            (sym, out)
        })
        .collect()
}

async fn serve(fake: &FakePolygon) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    server
}

fn bars_json(bars: &[(NaiveDate, f64)]) -> String {
    let rows: Vec<String> = bars
        .iter()
        .map(|(d, c)| {
            format!(
                "{{\"v\":100,\"vw\":{c},\"o\":{c},\"c\":{c},\"h\":{},\"l\":{},\"t\":{},\"n\":3}}",
                c + 1.0,
                c - 0.5,
                ms(*d)
            )
        })
        .collect();
    format!("[{}]", rows.join(","))
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, d).expect("date")
}

fn requests_to(server_requests: &[Request], prefix: &str) -> usize {
    server_requests
        .iter()
        .filter(|r| r.url.path().starts_with(prefix))
        .count()
}

async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

fn code<T>(r: &Result<T, DataError>) -> &'static str {
    r.as_ref().err().map_or("OK", DataError::code)
}

#[tokio::test]
async fn pagination_follows_next_url_and_resends_the_key_in_the_header() {
    let server = MockServer::start().await;
    let next = format!(
        "{}/v2/aggs/ticker/AAPL/range/1/day/2024-06-11/2024-06-28?cursor=p2&apiKey=dropme",
        server.uri()
    );
    let first = format!(
        "{{\"status\":\"OK\",\"results\":{},\"next_url\":\"{next}\"}}",
        bars_json(&[(day(25), 10.0), (day(26), 11.0)])
    );
    Mock::given(method("GET"))
        .and(path_regex("^/v2/aggs/ticker/AAPL/range/1/day/"))
        .and(query_param_is_missing("cursor"))
        .and(query_param("adjusted", "true"))
        .and(query_param("sort", "asc"))
        .and(query_param("limit", "50000"))
        .and(bearer_token(KEY))
        .respond_with(ResponseTemplate::new(200).set_body_raw(first, "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let second = format!(
        "{{\"status\":\"OK\",\"results\":{}}}",
        bars_json(&[(day(27), 12.0), (day(28), 13.0)])
    );
    Mock::given(method("GET"))
        .and(query_param("cursor", "p2"))
        .and(query_param_is_missing("apiKey"))
        .and(bearer_token(KEY))
        .respond_with(ResponseTemplate::new(200).set_body_raw(second, "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let p = PolygonProvider::new(&settings(&server)).expect("provider");
    let bars = p.daily_bars("AAPL", range(5)).await.expect("two pages");
    assert_eq!(bars.dates, [day(25), day(26), day(27), day(28)]);
    assert_eq!(bars.close, [10.0, 11.0, 12.0, 13.0]);
    let reqs = received(&server).await;
    assert!(
        reqs.iter().all(|r| !r.url.as_str().contains(KEY)),
        "the key is never in a URL"
    );
    server.verify().await;
}

#[tokio::test]
async fn missing_results_is_not_found_and_a_next_url_elsewhere_is_refused() {
    let server = MockServer::start().await;
    Mock::given(path_regex("/ZZZ/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "{\"ticker\":\"ZZZ\",\"status\":\"OK\",\"queryCount\":0,\"resultsCount\":0}",
            "application/json",
        ))
        .mount(&server)
        .await;
    Mock::given(path_regex("/EVIL/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!("{{\"status\":\"OK\",\"results\":{},\"next_url\":\"http://example.invalid/steal\"}}", bars_json(&[(day(3), 1.0)])),
            "application/json",
        ))
        .mount(&server)
        .await;
    let p = PolygonProvider::new(&settings(&server)).expect("provider");
    let got = p.load_many(&["ZZZ".into(), "EVIL".into()], range(5)).await;
    assert_eq!(
        got[0].as_ref().err(),
        Some(&DataError::NotFound {
            symbol: "ZZZ".into()
        })
    );
    assert_eq!(code(&got[1]), "DATA_INVALID");
    assert!(got[1]
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default()
        .contains("another host"));
    assert_eq!(received(&server).await.len(), 2, "neither is retried");
}

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

fn same_prices(a: &Bars, b: &Bars) -> bool {
    a.dates == b.dates
        && a.open == b.open
        && a.high == b.high
        && a.low == b.low
        && a.close == b.close
        && a.volume == b.volume
}

#[tokio::test]
async fn grouped_daily_issues_one_request_per_date_and_gives_the_per_symbol_bars() {
    let fake = FakePolygon::new(market(40, 60).await, HashSet::new(), Duration::ZERO)
        .omitting_from_grouped(HashSet::new());
    let symbols = fake.symbols();
    let server = serve(&fake).await;
    let p = Arc::new(PolygonProvider::new(&settings(&server)).expect("provider"));
    // Two shards of one 40-symbol scan, loaded concurrently: lookback 20 bars is a
    // 38-day window, 28 weekdays < 40 symbols, so "auto" goes bulk.
    let scan = |shard: &[String]| {
        let p = Arc::clone(&p);
        let shard = shard.to_vec();
        async move { p.load_many(&shard, range(20).with_scan_symbols(40)).await }
    };
    let (a, b) = tokio::join!(scan(&symbols[..20]), scan(&symbols[20..]));
    let bulk: Vec<Bars> = a
        .into_iter()
        .chain(b)
        .map(|r| r.expect("bulk bars"))
        .collect();
    let (from, to) = range(20).calendar_window(as_of());
    let weekdays = from
        .iter_days()
        .take_while(|d| *d <= to)
        .filter(|d| chrono::Datelike::weekday(d).number_from_monday() <= 5)
        .count();
    let grouped: Vec<String> = fake
        .hits()
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| p.contains("/grouped/"))
        .collect();
    assert_eq!(
        grouped.len(),
        weekdays,
        "one request per weekday of the window"
    );
    assert_eq!(
        grouped.iter().collect::<HashSet<_>>().len(),
        weekdays,
        "no date twice, even across shards"
    );
    assert!(
        grouped.iter().all(|p| p.ends_with("?adjusted=true")),
        "{:?}",
        grouped[0]
    );
    assert_eq!(fake.count("/v2/aggs/ticker/"), 0, "no per-symbol requests");
    assert!(bulk
        .iter()
        .all(|b| b.origin == Origin::Bulk && !b.dates.contains(&juneteenth())));
    assert_eq!(p.stats().grouped_days as usize, weekdays);

    let mut s = settings(&server);
    s.bulk = BulkMode::Never;
    let per_symbol = PolygonProvider::new(&s)
        .expect("provider")
        .load_many(&symbols, range(20).with_scan_symbols(40))
        .await;
    for ((sym, g), one) in symbols.iter().zip(&bulk).zip(per_symbol) {
        let one = one.expect("per-symbol bars");
        assert_eq!(one.origin, Origin::Primary);
        assert!(
            same_prices(g, &one),
            "{sym}: grouped and per-symbol bars differ"
        );
        let source = fake
            .bars(sym)
            .expect("known")
            .window(Some(as_of()), usize::MAX);
        assert_eq!(g.close.last(), source.close.last());
    }
    assert_eq!(fake.count("/v2/aggs/ticker/"), 40);

    // A small scan stays per symbol under "auto", and the held days make a later big
    // one free.
    let before = fake.hits().len();
    let small = p
        .load_many(&symbols[..3], range(200).with_scan_symbols(3))
        .await;
    assert!(small
        .iter()
        .all(|r| r.as_ref().is_ok_and(|b| b.origin == Origin::Primary)));
    assert_eq!(fake.hits().len() - before, 3);
    let again = p
        .load_many(&symbols[..3], range(20).with_scan_symbols(3))
        .await;
    assert!(
        again
            .iter()
            .all(|r| r.as_ref().is_ok_and(|b| b.origin == Origin::Bulk)),
        "held days cost nothing"
    );
    assert_eq!(fake.hits().len() - before, 3);
}

#[tokio::test]
async fn symbols_missing_from_grouped_days_are_loaded_per_symbol() {
    let market = market(12, 40).await;
    let otc = market.keys().next().expect("a symbol").clone();
    let fake = FakePolygon::new(market, HashSet::new(), Duration::ZERO)
        .omitting_from_grouped(HashSet::from([otc.clone()]));
    let server = serve(&fake).await;
    let mut s = settings(&server);
    s.bulk = BulkMode::Always;
    let p = PolygonProvider::new(&s).expect("provider");
    let symbols = fake.symbols();
    let got = p.load_many(&symbols, range(10)).await;
    for (sym, r) in symbols.iter().zip(&got) {
        let b = r.as_ref().expect("every symbol served");
        assert_eq!(
            b.origin,
            if *sym == otc {
                Origin::Primary
            } else {
                Origin::Bulk
            },
            "{sym}"
        );
    }
    assert_eq!(fake.count("/v2/aggs/ticker/"), 1, "only the gap");
}

#[tokio::test]
async fn the_fallback_source_serves_what_polygon_cannot_and_is_flagged_per_symbol() {
    let synthetic = market(3, 300).await;
    let mut it = synthetic.into_values();
    let (aapl, msft, nvda) = (
        it.next().expect("bars"),
        it.next().expect("bars"),
        it.next().expect("bars"),
    );
    let fake = FakePolygon::new(
        BTreeMap::from([
            ("AAPL".to_string(), aapl),
            ("MSFT".to_string(), msft.clone()),
        ]),
        HashSet::from(["MSFT".to_string()]),
        Duration::ZERO,
    );
    let server = serve(&fake).await;
    let dir = tempfile::tempdir().expect("tempdir");
    for (sym, b) in [("MSFT", &msft), ("NVDA", &nvda)] {
        let mut f = std::fs::File::create(dir.path().join(format!("{sym}.csv"))).expect("create");
        writeln!(f, "date,open,high,low,close,volume").expect("write");
        for i in 0..b.len() {
            writeln!(
                f,
                "{},{},{},{},{},{}",
                b.dates[i], b.open[i], b.high[i], b.low[i], b.close[i], b.volume[i]
            )
            .expect("write");
        }
    }
    let mut settings_all = Settings::defaults();
    settings_all.data.polygon = settings(&server);
    settings_all.data.polygon.max_retries = 1;
    settings_all.data.polygon.symbols =
        vec!["AAPL".into(), "MSFT".into(), "NVDA".into(), "NOPE".into()];
    let chain = DataSource::parse_chain("polygon", &[format!("csv:{}", dir.path().display())])
        .expect("chain");
    let provider = data::open_chain(&chain, &settings_all.data, None).expect("chain opens");

    let symbols: Vec<String> = ["AAPL", "MSFT", "NVDA", "NOPE"].map(String::from).to_vec();
    let got = provider.load_many(&symbols, range(250)).await;
    assert_eq!(
        got[0].as_ref().map(|b| b.origin.clone()),
        Ok(Origin::Primary)
    );
    let m = got[1].as_ref().expect("MSFT from the csv fallback");
    assert_eq!(m.origin, Origin::Fallback("csv".into()));
    assert!(same_prices(m, &msft));
    assert_eq!(
        got[2].as_ref().map(|b| b.origin.clone()),
        Ok(Origin::Fallback("csv".into()))
    );
    assert_eq!(
        got[3].as_ref().err(),
        Some(&DataError::NotFound {
            symbol: "NOPE".into()
        })
    );
    assert_eq!(provider.circuits(), [("polygon", CircuitState::Closed)]);

    // Through a whole scan: results flag the fallback, the report counts it.
    let report = scan(&settings_all, provider, 250).await;
    let flagged: Vec<(&str, Option<&str>)> = report
        .results
        .iter()
        .map(|r| (r.symbol.as_str(), r.fallback_source.as_deref()))
        .collect();
    assert!(flagged.contains(&("AAPL", None)), "{flagged:?}");
    assert!(flagged.contains(&("MSFT", Some("csv"))), "{flagged:?}");
    assert!(flagged.contains(&("NVDA", Some("csv"))), "{flagged:?}");
    assert_eq!(report.timing.stages.fallback_symbols, 2);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(
        (
            report.failures[0].symbol.as_str(),
            report.failures[0].code.as_str()
        ),
        ("NOPE", "DATA_NOT_FOUND")
    );
    let json = serde_json::to_value(&report).expect("json");
    let aapl_row = json["results"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["symbol"] == "AAPL")
        .expect("AAPL");
    assert!(
        aapl_row.get("fallback_source").is_none(),
        "no new key unless a fallback was used"
    );
}

async fn scan(settings: &Settings, provider: Arc<dyn MarketData>, lookback: usize) -> ScanReport {
    let mut cfg = ScanConfig::from_settings(&settings.scan);
    cfg.as_of = Some(as_of());
    cfg.lookback_days = lookback;
    cfg.min_price = 0.0;
    cfg.min_dollar_volume = 0.0;
    let cluster = LocalCluster::start(settings, provider, None, 2)
        .await
        .expect("cluster starts");
    let report = cluster
        .submit(cfg)
        .await
        .expect("valid scan")
        .report()
        .await
        .expect("scan completes");
    cluster.shutdown().await;
    report
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

#[tokio::test]
async fn the_reference_universe_is_paged_and_filtered_by_type() {
    let server = MockServer::start().await;
    let next = format!("{}/v3/reference/tickers?cursor=c2", server.uri());
    Mock::given(path_regex("^/v3/reference/tickers$"))
        .and(query_param("type", "CS"))
        .and(query_param("market", "stocks"))
        .and(query_param("active", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!("{{\"results\":[{{\"ticker\":\"AAPL\",\"name\":\"Apple Inc.\"}}],\"next_url\":\"{next}\"}}"),
            "application/json",
        ))
        .mount(&server)
        .await;
    Mock::given(query_param("cursor", "c2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("{\"results\":[{\"ticker\":\"MSFT\"}]}", "application/json"),
        )
        .mount(&server)
        .await;
    let p = PolygonProvider::new(&settings(&server)).expect("provider");
    let u = p.universe().await.expect("listed");
    assert_eq!(
        u.iter().map(|e| e.symbol.as_str()).collect::<Vec<_>>(),
        ["AAPL", "MSFT"]
    );
    assert_eq!(u[0].name, "Apple Inc.");
    assert_eq!(p.universe().await.expect("memoised").len(), 2);
    assert_eq!(received(&server).await.len(), 2, "listed once a day");
}

#[tokio::test]
async fn the_key_is_absent_from_logs_errors_and_debug_output() {
    let logs = captured();
    let server = MockServer::start().await;
    Mock::given(path_regex("/AUTH/"))
        .respond_with(ResponseTemplate::new(401).set_body_string(format!("bad key {KEY}")))
        .mount(&server)
        .await;
    Mock::given(path_regex("/FAIL/"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    Mock::given(path_regex("/grouped/"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.bulk = BulkMode::Always;
    s.max_retries = 1;
    let p = PolygonProvider::new(&s).expect("provider");
    let got = p.load_many(&["AUTH".into(), "FAIL".into()], range(3)).await;
    let errors: Vec<String> = got
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| format!("{e} {e:?} {}", e.suggestion()))
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0].contains("<redacted>"),
        "a key echoed by the upstream is scrubbed: {}",
        errors[0]
    );
    let everything = format!("{errors:?} {p:?} {s:?} {:?}", Settings::defaults());
    assert!(!everything.contains(KEY), "{everything}");
    let missing = PolygonProvider::new(&PolygonSettings {
        api_key: Secret::new(""),
        ..s.clone()
    })
    .expect_err("no key");
    assert_eq!(missing.code(), "DATA_AUTH");
    let text = String::from_utf8_lossy(&logs.lock().expect("log buffer")).into_owned();
    assert!(
        text.contains("retrying"),
        "the capture sees this crate's logs"
    );
    assert!(!text.contains(KEY), "the key leaked into the logs");
}

#[test]
fn a_polygon_scan_without_a_key_says_how_to_set_one() {
    let out = assert_cmd::Command::cargo_bin("technic")
        .expect("binary built")
        .args(["scan", "--data", "polygon", "--symbols", "AAPL"])
        .env_remove("POLYGON_API_KEY")
        .env("TECHNIC_DATA__POLYGON__API_KEY", "")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no Polygon API key is configured") && err.contains("POLYGON_API_KEY"),
        "{err}"
    );
}

fn technic(server: &MockServer, args: &[&str]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("technic")
        .expect("binary built")
        .args(args)
        .env("RUST_LOG", "trace")
        .env("TECHNIC_DATA__POLYGON__BASE_URL", server.uri())
        .env("TECHNIC_DATA__POLYGON__API_KEY", KEY)
        .env("TECHNIC_DATA__POLYGON__REQUESTS_PER_MINUTE", "600000")
        .env("TECHNIC_DATA__POLYGON__RATE_LIMIT_BURST", "1000")
        .timeout(Duration::from_secs(60))
        .output()
        .expect("runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_and_snapshot_from_polygon_through_the_binary() {
    let fake = FakePolygon::new(market(8, 120).await, HashSet::new(), Duration::ZERO);
    let server = serve(&fake).await;
    let list = fake.symbols().join(",");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf8");
    let snap = technic(
        &server,
        &[
            "snapshot",
            "--data",
            "polygon",
            "--out",
            d,
            "--symbols",
            &list,
            "--from",
            "2024-03-01",
            "--to",
            "2024-06-28",
        ],
    );
    let err = String::from_utf8_lossy(&snap.stderr).into_owned();
    assert!(snap.status.success(), "{err}");
    assert!(!err.contains(KEY), "key in the snapshot's trace logs");
    assert!(err.contains("wrote 8 symbols"), "{err}");
    let universe = std::fs::read_to_string(dir.path().join("universe.csv")).expect("universe.csv");
    assert_eq!(universe.lines().count(), 9);
    let first = std::fs::read_to_string(dir.path().join(format!("{}.csv", fake.symbols()[0])))
        .expect("bars");
    assert!(
        first
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("2024-03-01,")),
        "{}",
        &first[..80]
    );
    assert!(first
        .trim_end()
        .lines()
        .last()
        .is_some_and(|l| l.starts_with("2024-06-28,")));

    let common = [
        "--as-of",
        "2024-06-28",
        "--lookback-days",
        "60",
        "--min-dollar-volume",
        "0",
        "--min-price",
        "0",
        "--format",
        "json",
        "-q",
    ];
    let live = technic(
        &server,
        &[
            &["scan", "--data", "polygon", "--symbols", &list][..],
            &common[..],
        ]
        .concat(),
    );
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    assert!(!String::from_utf8_lossy(&live.stderr).contains(KEY));
    let offline = technic(
        &server,
        &[&["scan", "--data", &format!("csv:{d}")][..], &common[..]].concat(),
    );
    let (live, offline): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&live.stdout).expect("json"),
        serde_json::from_slice(&offline.stdout).expect("json"),
    );
    assert_eq!(live["results"].as_array().map(Vec::len), Some(8));
    assert_eq!(
        live["results"], offline["results"],
        "the snapshot scans exactly like the live data"
    );
}
