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
        .envs(support::kept_env())
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

#[test]
fn redis_killed_mid_scan_the_scan_completes_uncached() {
    use std::time::{Duration, Instant};
    let mut server = RedisServer::start();
    // 10 ms per symbol load: the scan takes seconds, long enough to lose Redis in the middle.
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("technic"))
        .env_clear()
        .envs(support::kept_env())
        .env("TECHNIC_DATA__SYNTHETIC__LATENCY_MS", "10")
        .args([
            "scan",
            "--format",
            "json",
            "--quiet",
            "--universe-size",
            UNIVERSE,
        ])
        .args(["--cache", &server.url()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");

    // Kill Redis once the scan has written its first shard to it.
    let start = Instant::now();
    loop {
        let keys: u64 = support::redis::query(server.port(), &::redis::cmd("DBSIZE"));
        if keys > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the scan never wrote to Redis"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill();

    let out = child.wait_with_output().expect("scan finishes");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(report["status"], "completed");
    assert_eq!(report["scanned"], 300);
    assert_eq!(report["failures"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        warning_codes(&report),
        vec!["CACHE_UNAVAILABLE".to_string()]
    );
}
