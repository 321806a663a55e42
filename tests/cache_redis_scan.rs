//! `technic scan` through a real Redis and a real Redis Cluster: a second scan is served
//! from the shared cache (every symbol's features, or the whole report for the same
//! config), and a Redis that is down degrades the scan instead of failing it.

mod support;

use assert_cmd::Command;
use serde_json::Value;
use support::redis::{RedisCluster, RedisServer};

const UNIVERSE: &str = "300";

fn scan(cache: &str) -> Value {
    scan_with(cache, &[])
}

fn scan_with(cache: &str, args: &[&str]) -> Value {
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
        .args(args)
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

    // Another config over the same symbols: computed again, from cached features.
    let warm = scan_with(target, &["--top", UNIVERSE]);
    assert_eq!(hit_rate(&warm), 1.0, "{target}: second scan is all hits");
    assert!(warning_codes(&warm).is_empty(), "{target}");
    assert!(warm.get("from_cache").is_none(), "{target}: computed");
    assert_eq!(
        cold["results"], warm["results"],
        "{target}: the cache changes nothing in the results"
    );
    // The first config again: its report, from the scan-result cache.
    let again = scan(target);
    assert_eq!(again["from_cache"]["scan_id"], cold["id"], "{target}");
    assert_ne!(again["id"], cold["id"], "{target}: a scan of its own");
    assert_eq!(again["results"], cold["results"], "{target}");
    assert_eq!(again["failures"], cold["failures"], "{target}");
    // The cold scan is the universe's baseline; the warm one is measured against it.
    let speedup = |r: &Value| r["timing"]["speedup"].as_f64();
    assert_eq!(speedup(&cold), Some(1.0), "{target}: {}", cold["timing"]);
    let cold_s = cold["timing"]["total_seconds"].as_f64().expect("seconds");
    let warm_s = warm["timing"]["total_seconds"].as_f64().expect("seconds");
    let want = cold_s / warm_s;
    assert!(
        speedup(&warm).is_some_and(|s| (s - want).abs() < 1e-9 * want.max(1.0)),
        "{target}: the warm scan's speedup is the cold time over its own: {}",
        warm["timing"]
    );
}

#[test]
fn scan_through_redis_is_warm_the_second_time() {
    let server = RedisServer::start();
    assert_cold_then_warm(&server.url());
    let out = technic(&[
        "scan",
        "--universe-size",
        UNIVERSE,
        "--cache",
        &server.url(),
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("× the first uncached scan's speed"),
        "the summary line has the speedup: {err}"
    );
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
    // The summary line says so too, with what to do.
    let out = technic(&["scan", "--universe-size", "20", "--cache", &server.url()]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning [CACHE_UNAVAILABLE]") && err.contains("hint: "),
        "{err}"
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

fn technic(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("technic")
        .expect("binary built")
        .env_clear()
        .envs(support::kept_env())
        .args(args)
        .output()
        .expect("runs")
}

fn stdout_json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// `technic cache warm|stats|clear` on a real Redis: warm loads the named symbols (an
/// unknown one counted as failed), stats counts their keys per kind, clear removes every
/// technic key and nothing else; bad symbols and an unreachable Redis are clear errors.
#[test]
fn the_cache_commands_warm_count_and_clear_a_shared_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut conn = redis.connection();
    ::redis::cmd("SET")
        .arg("someone-else:key")
        .arg("1")
        .query::<()>(&mut conn)
        .expect("set");
    let listed = scan("none");
    let symbols: Vec<&str> = listed["results"]
        .as_array()
        .expect("results")
        .iter()
        .take(3)
        .filter_map(|r| r["symbol"].as_str())
        .collect();
    assert_eq!(symbols.len(), 3);
    let list = format!("{},NOPE9", symbols.join(","));
    let warm = stdout_json(&technic(&[
        "cache",
        "warm",
        "--cache",
        &url,
        "--symbols",
        &list,
        "--json",
    ]));
    assert_eq!(warm["candidates"], 4, "{warm}");
    assert_eq!(warm["loaded"], 3, "{warm}");
    assert_eq!(warm["failed"], 1, "{warm}");
    let stats = stdout_json(&technic(&["cache", "stats", "--cache", &url, "--json"]));
    assert_eq!(stats["status"]["available"], true, "{stats}");
    assert_eq!(stats["keys_per_kind"]["bars"], 3, "{stats}");
    assert_eq!(stats["keys_per_kind"]["features"], 3, "{stats}");
    // The universe the warm read the symbols' metadata from, cached for the next one.
    assert_eq!(stats["keys_per_kind"]["meta"], 1, "{stats}");
    let table = technic(&["cache", "stats", "--cache", &url]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("cache: redis · available") && text.contains("bars"),
        "{text}"
    );
    // A second warm finds them fresh.
    let again = stdout_json(&technic(&[
        "cache",
        "warm",
        "--cache",
        &url,
        "--symbols",
        &symbols.join(","),
        "--json",
    ]));
    assert_eq!(again["fresh"], 3, "{again}");
    let cleared = stdout_json(&technic(&["cache", "clear", "--cache", &url, "--json"]));
    assert_eq!(cleared["removed"], 7, "{cleared}");
    let after = stdout_json(&technic(&["cache", "stats", "--cache", &url, "--json"]));
    assert_eq!(after["keys_per_kind"]["bars"], 0, "{after}");
    let other: String = ::redis::cmd("GET")
        .arg("someone-else:key")
        .query(&mut conn)
        .expect("get");
    assert_eq!(other, "1", "clear leaves other keys alone");

    let bad = technic(&[
        "cache",
        "warm",
        "--cache",
        &url,
        "--symbols",
        "../etc,OK,a b",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("../ETC") && err.contains("A B") && err.contains("2 problems"),
        "{err}"
    );
    let down = technic(&["cache", "stats", "--cache", "redis://127.0.0.1:1"]);
    assert_eq!(down.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&down.stderr).contains("CACHE_UNAVAILABLE"));
}
