//! What the Polygon tests share: the one API key they all use, provider settings against
//! a wiremock server (small durations, generous limits), synthetic markets with a holiday,
//! canned bar bodies, the requests a server received, and a scan through the real local
//! cluster. Calling [`settings`] also captures every log line of the test binary
//! ([`captured`]), so a test can look for the key in everything logged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::NaiveDate;
use technic::cluster::LocalCluster;
use technic::config::{PolygonSettings, Secret, Settings};
use technic::data::{BarRange, DataError, MarketData, SyntheticProvider};
use technic::market::Bars;
use technic::scan::{ScanConfig, ScanReport};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request};

use super::fake_polygon::{ms, FakePolygon};

/// The one key every Polygon test uses, so the log-capture and CLI tests can look for it.
pub const KEY: &str = "pk_TEST_s3cr3t_9f8e7d6c5b4a";

pub fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 28).expect("date")
}

pub fn juneteenth() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 19).expect("date")
}

/// Every log line of this test binary (all levels, all crates), to search for the key.
pub fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
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

pub fn settings(server: &MockServer) -> PolygonSettings {
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

pub fn range(lookback: usize) -> BarRange {
    BarRange::new(Some(as_of()), lookback)
}

/// `n` synthetic symbols × `days` bars ending at `as_of()`, with 2024-06-19 a holiday.
pub async fn market(n: usize, days: usize) -> BTreeMap<String, Bars> {
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

pub async fn serve(fake: &FakePolygon) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    server
}

pub fn bars_json(bars: &[(NaiveDate, f64)]) -> String {
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

pub fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, d).expect("date")
}

pub fn requests_to(server_requests: &[Request], prefix: &str) -> usize {
    server_requests
        .iter()
        .filter(|r| r.url.path().starts_with(prefix))
        .count()
}

pub async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

pub fn code<T>(r: &Result<T, DataError>) -> &'static str {
    r.as_ref().err().map_or("OK", DataError::code)
}

pub fn same_prices(a: &Bars, b: &Bars) -> bool {
    a.dates == b.dates
        && a.open == b.open
        && a.high == b.high
        && a.low == b.low
        && a.close == b.close
        && a.volume == b.volume
}

pub async fn scan(
    settings: &Settings,
    provider: Arc<dyn MarketData>,
    lookback: usize,
) -> ScanReport {
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
