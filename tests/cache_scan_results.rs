//! The scan-result cache through a real Redis and real `technic scan` processes over a
//! data directory: the same config on the same data is answered from the cached report;
//! another config, changed data or `cache.scan_results = false` computes again.

mod support;

use serde_json::Value;
use support::redis::{query, RedisServer};
use support::technic::{command, run_json};

fn from_cache(report: &Value) -> Option<&str> {
    report
        .get("from_cache")
        .map(|c| c["scan_id"].as_str().expect("scan_id"))
}

#[test]
fn a_repeated_scan_is_answered_from_its_report_until_the_config_or_the_data_change() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = command(
        &[
            "snapshot",
            "--out",
            dir.path().to_str().expect("utf-8 path"),
            "--universe-size",
            "30",
        ],
        &[],
    )
    .output()
    .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = format!("csv:{}", dir.path().display());
    let url = redis.url();
    let scan = |extra: &[&str], env: &[(&str, &str)]| {
        let args = [
            &[
                "scan", "--format", "json", "--quiet", "--data", &data, "--cache", &url,
            ][..],
            extra,
        ]
        .concat();
        run_json(&args, env)
    };

    let first = scan(&[], &[]);
    assert_eq!(first["scanned"], 30, "{first}");
    assert_eq!(from_cache(&first), None, "the first scan computes");

    let again = scan(&[], &[]);
    assert_eq!(from_cache(&again), first["id"].as_str(), "{again}");
    assert_ne!(again["id"], first["id"], "a scan of its own");
    for field in [
        "results",
        "failures",
        "filtered",
        "scanned",
        "universe_size",
    ] {
        assert_eq!(again[field], first[field], "{field}");
    }
    assert_eq!(again["timing"]["cache_hit_rate"], 1.0);
    let keys: Vec<String> = query(redis.port(), ::redis::cmd("KEYS").arg("technic:v1:scan:*"));
    assert_eq!(keys.len(), 1, "one cached report: {keys:?}");
    let ttl: i64 = query(redis.port(), ::redis::cmd("TTL").arg(&keys[0]));
    assert!(ttl > 0, "the report expires (scan TTL): {ttl}");

    // Another config over the same data computes (from cached features).
    let other = scan(&["--min-tech-rating", "-100"], &[]);
    assert_eq!(from_cache(&other), None, "{other}");
    assert_eq!(other["timing"]["cache_hit_rate"], 1.0);

    // Switched off, the same config computes too.
    let off = scan(&[], &[("TECHNIC_CACHE__SCAN_RESULTS", "false")]);
    assert_eq!(from_cache(&off), None, "{off}");

    // One file's last volume changes: a new data version, so the scan computes again,
    // and its own report answers the next one.
    let file = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "csv") && !p.ends_with("universe.csv"))
        .expect("a bars file");
    let text = std::fs::read_to_string(&file).expect("read");
    let (head, last) = text.trim_end().rsplit_once('\n').expect("two lines");
    let (fields, volume) = last.rsplit_once(',').expect("a volume");
    let volume: f64 = volume.parse().expect("a number");
    std::fs::write(&file, format!("{head}\n{fields},{}\n", volume + 1000.0)).expect("write");
    let changed = scan(&[], &[]);
    assert_eq!(from_cache(&changed), None, "new data: computed ({file:?})");
    let changed_again = scan(&[], &[]);
    assert_eq!(from_cache(&changed_again), changed["id"].as_str());
}

/// On a serve, the report it computed answers the next identical scan (held decoded in the
/// process), and a cleared cache is noticed: the scan after the clear computes again.
#[tokio::test]
async fn a_serve_answers_from_its_cached_report_until_the_cache_is_cleared() {
    let redis = RedisServer::start();
    let s = support::api::Server::start(&["--workers", "1", "--cache", &redis.url()], &[]).await;
    let body = r#"{"universe_size": 30}"#;
    let first = s.submit(body).await;
    s.wait_done(&first).await;
    let again = s.submit(body).await;
    let done = s.wait_done(&again).await;
    assert_eq!(done["from_cache"]["scan_id"], first.as_str(), "{done}");
    let (status, _) = s.post("/api/v1/cache/clear", "").await;
    assert_eq!(status, 200);
    let after = s.wait_done(&s.submit(body).await).await;
    assert!(
        after.get("from_cache").is_none(),
        "computed after the clear: {after}"
    );
    assert_eq!(after["timing"]["cache_hit_rate"], 0.0, "{after}");
}
