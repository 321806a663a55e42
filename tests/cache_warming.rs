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
