//! Cold Polygon scans against a local fake upstream (a bench, not a timed test).
//!
//! `cargo bench --bench polygon_load` builds a 5,000-symbol × 250-day synthetic market,
//! serves it on loopback as Polygon's per-symbol and grouped-daily endpoints with 20 ms of
//! latency per request, and runs a whole cold scan (`LocalCluster`, fresh provider) per
//! mode: `bulk = "auto"` (grouped daily) and `bulk = "never"` (one request per symbol).
//! It prints requests, wall time and the fraction of the configured rate limit the client
//! sustained while requests flowed. Options (after `--`): `--symbols N` (5000),
//! `--days N` (250), `--rpm N` (30000), `--latency-ms N` (20), `--in-flight N`
//! (`data.polygon.max_in_flight`, 32).

#[path = "../tests/support/fake_polygon.rs"]
mod fake_polygon;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use fake_polygon::FakePolygon;
use technic::cluster::LocalCluster;
use technic::config::{BulkMode, Secret, Settings};
use technic::data::{BarRange, MarketData, PolygonProvider, SyntheticProvider};
use technic::market::Bars;
use technic::scan::ScanConfig;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer};

struct Options {
    symbols: usize,
    days: usize,
    rpm: u32,
    latency_ms: u64,
    in_flight: usize,
}

fn options() -> Options {
    let mut o = Options {
        symbols: 5000,
        days: 250,
        rpm: 30_000,
        latency_ms: 20,
        in_flight: Settings::defaults().data.polygon.max_in_flight,
    };
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it,
    // and then a small smoke run checks the bench still works without taking a minute.
    if !args.iter().any(|a| a == "--bench") {
        o.symbols = 60;
        o.days = 40;
        o.latency_ms = 1;
    }
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(v) = get("--symbols") {
        o.symbols = v as usize;
    }
    if let Some(v) = get("--days") {
        o.days = v as usize;
    }
    if let Some(v) = get("--rpm") {
        o.rpm = v as u32;
    }
    if let Some(v) = get("--latency-ms") {
        o.latency_ms = v;
    }
    if let Some(v) = get("--in-flight") {
        o.in_flight = v as usize;
    }
    o
}

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 28).expect("date")
}

async fn market(o: &Options) -> BTreeMap<String, Bars> {
    let mut s = Settings::defaults().data.synthetic;
    s.symbols = o.symbols;
    s.days = o.days;
    s.end_date = as_of();
    let p = SyntheticProvider::new(&s);
    let symbols: Vec<String> = p
        .universe()
        .await
        .expect("universe")
        .into_iter()
        .map(|e| e.symbol)
        .collect();
    let bars = p.load_many(&symbols, BarRange::new(None, o.days)).await;
    symbols
        .into_iter()
        .zip(bars.into_iter().map(|b| b.expect("synthetic bars")))
        .collect()
}

struct Run {
    mode: &'static str,
    seconds: f64,
    requests: usize,
    grouped: usize,
    per_symbol: usize,
    sustained: f64,
    scanned: usize,
    failed: usize,
    bulk_symbols: usize,
}

async fn cold_scan(
    o: &Options,
    fake: &FakePolygon,
    server: &MockServer,
    bulk: BulkMode,
    mode: &'static str,
) -> Run {
    let mut settings = Settings::defaults();
    let pg = &mut settings.data.polygon;
    pg.base_url = server.uri();
    pg.api_key = Secret::new("bench-key");
    pg.requests_per_minute = o.rpm;
    pg.rate_limit_burst = 1;
    pg.max_in_flight = o.in_flight;
    pg.bulk = bulk;
    pg.symbols = fake.symbols();
    let provider: Arc<dyn MarketData> = Arc::new(PolygonProvider::new(pg).expect("provider"));
    let mut cfg = ScanConfig::from_settings(&settings.scan);
    cfg.as_of = Some(as_of());
    cfg.lookback_days = o.days;
    let before = fake.hits().len();
    let t = Instant::now();
    let cluster = LocalCluster::start(&settings, provider, None, settings.local_workers())
        .await
        .expect("cluster");
    let report = cluster
        .submit(cfg)
        .await
        .expect("scan")
        .report()
        .await
        .expect("report");
    let seconds = t.elapsed().as_secs_f64();
    cluster.shutdown().await;
    let hits: Vec<(Instant, String)> = fake.hits().into_iter().skip(before).collect();
    let span = match (hits.first(), hits.last()) {
        (Some(a), Some(b)) if hits.len() > 1 => (b.0 - a.0).as_secs_f64(),
        _ => 0.0,
    };
    let allowed = f64::from(o.rpm) / 60.0;
    Run {
        mode,
        seconds,
        requests: hits.len(),
        grouped: hits.iter().filter(|(_, p)| p.contains("/grouped/")).count(),
        per_symbol: hits
            .iter()
            .filter(|(_, p)| p.contains("/aggs/ticker/"))
            .count(),
        sustained: if span > 0.0 {
            (hits.len() - 1) as f64 / span / allowed
        } else {
            0.0
        },
        scanned: report.scanned,
        failed: report.failures.len(),
        bulk_symbols: report.timing.stages.bulk_symbols,
    }
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let t = Instant::now();
        let fake = FakePolygon::new(market(&o).await, HashSet::new(), Duration::from_millis(o.latency_ms));
        let (from, to) = BarRange::new(Some(as_of()), o.days).calendar_window(as_of());
        fake.warm_grouped(from, to);
        let server = MockServer::builder().disable_request_recording().start().await;
        Mock::given(method("GET")).respond_with(fake.clone()).mount(&server).await;
        eprintln!("market of {} symbols × {} days ready in {:.1} s", o.symbols, o.days, t.elapsed().as_secs_f64());
        let runs = [
            cold_scan(&o, &fake, &server, BulkMode::Auto, "bulk (grouped daily, auto)").await,
            cold_scan(&o, &fake, &server, BulkMode::Never, "per symbol (bulk = never)").await,
        ];
        println!(
            "\ncold scan, {} symbols × {} days, {} ms upstream latency, limit {} requests/min ({:.0}/s), {} in flight\n",
            o.symbols,
            o.days,
            o.latency_ms,
            o.rpm,
            f64::from(o.rpm) / 60.0,
            o.in_flight
        );
        println!("| mode | requests | grouped | per-symbol | wall time | rate sustained | scanned | failed |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &runs {
            println!(
                "| {} | {} | {} | {} | {:.2} s | {:.1} % | {} | {} |",
                r.mode,
                r.requests,
                r.grouped,
                r.per_symbol,
                r.seconds,
                r.sustained * 100.0,
                r.scanned,
                r.failed
            );
            assert_eq!(r.failed, 0, "{}: a healthy upstream fails no symbol", r.mode);
        }
        assert_eq!(runs[0].bulk_symbols, o.symbols, "auto chose the bulk path");
    });
    rt.shutdown_background();
}
