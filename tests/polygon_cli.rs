//! Polygon through the binary and the fallback chain: `technic snapshot` and `technic scan`
//! against a fake Polygon on loopback (the snapshot scans exactly like the live data), the
//! message without a key, the key absent from logs, errors and debug output, and the
//! fallback source (real CSV files) serving what Polygon cannot, flagged per symbol.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::time::Duration;

use support::fake_polygon::FakePolygon;
use support::polygon::{captured, market, range, same_prices, scan, serve, settings, KEY};
use technic::config::{BulkMode, PolygonSettings, Secret, Settings};
use technic::data::{self, CircuitState, DataError, DataSource, MarketData, PolygonProvider};
use technic::market::Origin;
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, ResponseTemplate};

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
