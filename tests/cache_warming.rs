//! The warmer of a real `technic serve` on a real Redis: refresh ahead keeps a repeated scan
//! fully cached across several expiry boundaries of short TTLs, and a serve that starts
//! leading warms the most requested symbols on its own.

mod support;

use std::time::{Duration, Instant};

use support::api::Server;
use support::redis::RedisServer;

/// Short TTLs: features and bars live 4 s (2 s for a volatile symbol, 8 s for a calm one).
/// Scans ask for a past date, so no key is kept until the next open. Every scan computes
/// (no scan-result cache), so each one looks every symbol's features up.
const SHORT_TTLS: &[(&str, &str)] = &[
    ("TECHNIC_CACHE__TTL__FEATURES_SECS", "4"),
    ("TECHNIC_CACHE__TTL__BARS_SECS", "4"),
    ("TECHNIC_CACHE__SCAN_RESULTS", "false"),
];

const SCAN: &str = r#"{"universe_size": 80, "as_of": "2026-06-01"}"#;

#[tokio::test]
async fn refresh_ahead_keeps_a_repeated_scan_fully_cached_across_expiries() {
    let redis = RedisServer::start();
    let s = Server::start(&["--workers", "2", "--cache", &redis.url()], SHORT_TTLS).await;
    let first = s.wait_done(&s.submit(SCAN).await).await;
    assert_eq!(first["timing"]["cache_hit_rate"], 0.0, "cold: {first}");
    // 12 s of scans: three lifetimes of a 4 s key, six of a volatile symbol's 2 s.
    let started = Instant::now();
    let mut rates = Vec::new();
    while started.elapsed() < Duration::from_secs(12) {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let done = s.wait_done(&s.submit(SCAN).await).await;
        rates.push(
            done["timing"]["cache_hit_rate"]
                .as_f64()
                .expect("a hit rate"),
        );
    }
    assert!(rates.len() >= 6, "{rates:?}");
    assert!(
        rates.iter().all(|r| *r == 1.0),
        "every repeated scan is all hits: {rates:?}\n{}",
        s.log()
    );
}

/// A serve that starts leading warms the popular set learned from earlier scans (their
/// requests, then their dollar volumes) before anyone asks; a later scan of part of it is
/// all hits, and the analytics measure the warm pass's precision.
#[tokio::test]
async fn a_new_leader_warms_what_was_popular_and_measures_its_precision() {
    let redis = RedisServer::start();
    let url = redis.url();
    // An earlier scan: 40 symbols requested once, their dollar volumes on record.
    support::technic::scan_through(&url, 40);
    let mut con = redis.connection();
    // The scan process added its requests to the request model as it stopped.
    let model: Vec<String> = ::redis::cmd("KEYS")
        .arg("technic:v1:meta:{requests}:w:*:all")
        .query(&mut con)
        .expect("keys");
    assert_eq!(model.len(), 1, "{model:?}");
    let symbols: u64 = ::redis::cmd("ZCARD")
        .arg(&model[0])
        .query(&mut con)
        .expect("zcard");
    assert_eq!(symbols, 40);
    // The values expire (here: are removed); what was learned stays.
    for pattern in [
        "technic:v1:features:*",
        "technic:v1:bars:*",
        "technic:v1:scan:*",
    ] {
        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut con)
            .expect("keys");
        if !keys.is_empty() {
            let _: () = ::redis::cmd("UNLINK")
                .arg(&keys)
                .query(&mut con)
                .expect("unlink");
        }
    }
    let s = Server::start(
        &["--workers", "1", "--cache", &url],
        &[("TECHNIC_CACHE__WARM__TOP_REQUESTED", "40")],
    )
    .await;
    let analytics = support::wait::wait_for_async(
        "the start-up warm pass in the analytics",
        Duration::from_secs(30),
        async || {
            let (_, a) = s.get("/api/v1/cache/analytics").await;
            if a["warming"]["warmed"] == 40 {
                Ok(a)
            } else {
                Err(a)
            }
        },
    )
    .await;
    assert_eq!(analytics["warming"]["requested"], 0, "{analytics}");
    let (_, stats) = s.get("/api/v1/cache/stats").await;
    assert!(
        stats["keys_per_kind"]["features"].as_u64() >= Some(40),
        "warmed before any scan: {stats}"
    );

    // A scan of a quarter of them finds every one cached.
    let done = s
        .wait_done(&s.submit(r#"{"universe_size": 10}"#).await)
        .await;
    assert_eq!(done["timing"]["cache_hit_rate"], 1.0, "{done}");
    let (_, a) = s.get("/api/v1/cache/analytics").await;
    assert_eq!(a["warming"]["requested"], 10, "{a}");
    assert_eq!(a["warming"]["precision"], 0.25, "{a}");
    // The cold scan and the fully cached one measured the time a hit saves.
    let t = &a["time_saved"];
    let f = |k: &str| t[k].as_f64().unwrap_or_else(|| panic!("{k}: {t}"));
    let (cold, warm, per_hit) = (
        f("cold_secs_per_symbol"),
        f("warm_secs_per_symbol"),
        f("secs_per_hit"),
    );
    assert!(cold > 0.0 && warm > 0.0, "{t}");
    assert!((per_hit - (cold - warm).max(0.0)).abs() < 1e-12, "{t}");
    let hits: u64 = a["per_kind"]
        .as_object()
        .expect("per_kind")
        .values()
        .map(|k| k["hits"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        (f("total_secs") - per_hit * hits as f64).abs() < 1e-9,
        "{t}"
    );
}
