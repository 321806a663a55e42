//! `technic scan` through a real Redis and a real Redis Cluster: the second scan is served
//! from the shared cache, and a Redis that is down degrades the scan instead of failing it.

mod support;

use assert_cmd::Command;
use serde_json::Value;
use support::redis::{RedisCluster, RedisServer};

const UNIVERSE: &str = "300";

fn scan(cache: &str) -> Value {
    let out = Command::cargo_bin("technic")
        .expect("binary built")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args([
            "scan",
            "--format",
            "json",
            "--quiet",
            "--universe-size",
            UNIVERSE,
        ])
        .args(["--cache", cache])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "scan --cache {cache} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

fn hit_rate(report: &Value) -> f64 {
    report["timing"]["cache_hit_rate"]
        .as_f64()
        .expect("a hit rate")
}

fn warning_codes(report: &Value) -> Vec<String> {
    report["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|x| x["code"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_cold_then_warm(target: &str) {
    let cold = scan(target);
    assert_eq!(cold["scanned"], 300, "{target}");
    assert_eq!(hit_rate(&cold), 0.0, "{target}: first scan is cold");
    assert!(warning_codes(&cold).is_empty(), "{target}: {cold}");

    let warm = scan(target);
    assert_eq!(hit_rate(&warm), 1.0, "{target}: second scan is all hits");
    assert!(warning_codes(&warm).is_empty(), "{target}");
    assert_eq!(
        cold["results"], warm["results"],
        "{target}: the cache changes nothing in the results"
    );
}

#[test]
fn scan_through_redis_is_warm_the_second_time() {
    let server = RedisServer::start();
    assert_cold_then_warm(&server.url());
}

#[test]
fn scan_through_redis_cluster_is_warm_the_second_time() {
    let cluster = RedisCluster::start();
    assert_cold_then_warm(&cluster.target());
}

#[test]
fn scan_with_redis_down_completes_uncached_with_a_warning() {
    let mut server = RedisServer::start();
    server.kill();
    let report = scan(&server.url());
    assert_eq!(report["status"], "completed");
    assert_eq!(report["scanned"], 300);
    assert_eq!(hit_rate(&report), 0.0);
    assert_eq!(
        warning_codes(&report),
        vec!["CACHE_UNAVAILABLE".to_string()]
    );

    // Back up: the next scan caches again (and the one after is warm).
    server.restart();
    assert_cold_then_warm(&server.url());
}
