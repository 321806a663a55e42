//! The control plane with a real `redis-server`: `/health/detailed` follows the cache
//! going down and coming back, scan history and results survive a coordinator restart
//! (and a cache clear), and the cache routes act on Redis.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::api::{assert_error, client, read_events, Server, DEADLINE};
use support::redis::{RedisCluster, RedisServer};
use support::wait::wait_for_async;

async fn detailed(s: &Server) -> (u16, Value) {
    let r = client()
        .get(s.url("/health/detailed"))
        .send()
        .await
        .expect("detailed");
    assert_eq!(r.headers()["content-type"], "application/health+json");
    support::api::json_of(r).await
}

async fn wait_cache_status(s: &Server, want: &str) -> (u16, Value) {
    wait_for_async(&format!("cache {want}"), DEADLINE, async || {
        let (st, d) = detailed(s).await;
        if d["checks"]["cache:connection"][0]["status"] == want {
            Ok((st, d))
        } else {
            Err(d)
        }
    })
    .await
}

#[tokio::test]
async fn detailed_health_shows_the_cache_failing_and_recovering() {
    let mut redis = RedisServer::start();
    // A cache-only Redis (`--cache`): the work queue stays in process, so losing Redis
    // only degrades the scans. (With `--redis` it is also the cluster's queue: see
    // `readiness_flips_as_worker_processes_come_and_go`.)
    let s = Server::start(&["--workers", "1", "--cache", &redis.url()], &[]).await;
    let (st, d) = wait_cache_status(&s, "pass").await;
    assert_eq!((st, d["status"].as_str()), (200, Some("pass")), "{d}");
    assert_eq!(d["checks"]["cache:connection"][0]["observedValue"], "redis");

    redis.kill();
    let (st, d) = wait_cache_status(&s, "fail").await;
    // The cache is optional: the whole degrades to warn, still 200, and scans go on.
    assert_eq!((st, d["status"].as_str()), (200, Some("warn")), "{d}");
    assert!(
        !d.to_string().contains("127.0.0.1"),
        "no internal detail: {d}"
    );
    let id = s.submit(r#"{"universe_size": 30}"#).await;
    let done = s.wait_done(&id).await;
    assert_eq!(done["stage"], "done");
    assert!(
        done["warnings"].to_string().contains("CACHE_UNAVAILABLE"),
        "{done}"
    );
    let (st, v) = s.get("/api/v1/cache/stats").await;
    assert_error(st, &v, 503, "CACHE_UNAVAILABLE");

    redis.restart();
    let (st, d) = wait_cache_status(&s, "pass").await;
    assert_eq!((st, d["status"].as_str()), (200, Some("pass")), "{d}");
}

#[tokio::test]
async fn history_and_results_survive_a_restart_and_a_cache_clear() {
    let redis = RedisServer::start();
    let args = ["--workers", "1", "--redis", &redis.url()];
    let mut first = Server::start(&args, &[]).await;
    let id = first.submit(r#"{"universe_size": 120, "top": 40}"#).await;
    let state = first.wait_done(&id).await;
    let (_, results) = first.get(&format!("/api/v1/scans/{id}/results")).await;
    assert_eq!(results["results"].as_array().map(Vec::len), Some(40));
    assert_eq!(
        first.stop().map(|s| s.success()),
        Some(true),
        "{}",
        first.log()
    );

    let second = Server::start(&args, &[]).await;
    let (_, list) = second.get("/api/v1/scans").await;
    let listed = list["scans"]
        .as_array()
        .expect("scans")
        .iter()
        .find(|s| s["id"] == id.as_str())
        .cloned();
    let listed = listed.unwrap_or_else(|| panic!("{id} not listed after restart: {list}"));
    assert_eq!(listed["stage"], "done");
    assert_eq!(listed["timing"], state["timing"]);
    let (st, again) = second.get(&format!("/api/v1/scans/{id}")).await;
    assert_eq!(st, 200);
    assert_eq!(again["timing"], state["timing"]);
    assert_eq!(again["stage"], "done");
    let (_, results2) = second.get(&format!("/api/v1/scans/{id}/results")).await;
    assert_eq!(results2, results);
    let events = read_events(&second.url(&format!("/api/v1/scans/{id}/events"))).await;
    assert_eq!(events.last().map(|e| e.event.as_str()), Some("report"));
    assert_eq!(
        events.last().map(|e| &e.data["results"]),
        Some(&results["results"])
    );

    // The history is stored with a TTL.
    let ttl: i64 = support::redis::query(
        redis.port(),
        redis::cmd("TTL").arg(format!("technic:v1:queue:{{technic}}:scan:{id}")),
    );
    assert!(ttl > 0, "{ttl}");

    // Clearing the cache keeps the history.
    let r = client()
        .post(second.url("/api/v1/cache/clear"))
        .send()
        .await
        .expect("clear");
    let (st, cleared) = support::api::json_of(r).await;
    assert_eq!(st, 200, "{cleared}");
    assert!(
        cleared["removed"].as_u64().expect("removed") > 0,
        "{cleared}"
    );
    assert_eq!(second.get(&format!("/api/v1/scans/{id}")).await.0, 200);
}

#[tokio::test]
async fn cache_routes_act_on_redis() {
    let redis = RedisServer::start();
    let s = Server::start(&["--workers", "1", "--redis", &redis.url()], &[]).await;
    let id = s.submit(r#"{"universe_size": 40}"#).await;
    s.wait_done(&id).await;
    let (st, stats) = s.get("/api/v1/cache/stats").await;
    assert_eq!(st, 200, "{stats}");
    assert_eq!(stats["backend"], "redis");
    assert_eq!(stats["keys_per_kind"]["features"], 40, "{stats}");
    let (st, a) = s.get("/api/v1/cache/analytics").await;
    assert_eq!(st, 200);
    assert!(
        a["most_requested"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "{a}"
    );

    let (_, ttl) = s.get("/api/v1/cache/ttl").await;
    assert!(ttl["bars_secs"].as_u64().is_some(), "{ttl}");
    let put = |body: &'static str| {
        let url = s.url("/api/v1/cache/ttl");
        async move {
            support::api::json_of(client().put(url).body(body).send().await.expect("put")).await
        }
    };
    // Every problem at once: an unknown field, wrong types and values out of range.
    let (st, v) = put(
        r#"{"bars_secs": -5, "features_secs": "x", "scan_secs": 0, "market_open": "9h", "nope": 1}"#,
    )
    .await;
    assert_error(st, &v, 400, "INVALID_CONFIG");
    let msg = v["error"]["message"].as_str().expect("message");
    for needle in [
        "bars_secs",
        "features_secs",
        "_secs must be at least 1",
        "market_open",
        "nope",
    ] {
        assert!(msg.contains(needle), "{needle} not in {msg}");
    }
    let (st, v) = put(r#"{"bars_secs": 0, "market_open": "9h"}"#).await;
    assert_error(st, &v, 400, "INVALID_CONFIG");
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains("_secs") && msg.contains("market_open"),
        "{msg}"
    );
    let (st, v) = put(r#"{"features_secs": 123}"#).await;
    assert_eq!((st, v["features_secs"].as_u64()), (200, Some(123)), "{v}");
    assert_eq!(v["bars_secs"], ttl["bars_secs"]);
    let (_, a) = s.get("/api/v1/cache/analytics").await;
    assert_eq!(a["ttl_secs"]["features"], 123);
    // The new TTL applies to the next writes (an old as_of: no "until the next open" rule).
    s.post("/api/v1/cache/clear", "").await;
    let id = s
        .submit(r#"{"universe_size": 5, "as_of": "2025-06-30"}"#)
        .await;
    s.wait_done(&id).await;
    let keys: Vec<String> = support::redis::query(
        redis.port(),
        redis::cmd("KEYS").arg("technic:v1:features:*"),
    );
    let t: i64 = support::redis::query(redis.port(), redis::cmd("TTL").arg(&keys[0]));
    assert!(t > 0 && t <= 123 * 2, "features ttl {t}");

    let (st, w) = s
        .post("/api/v1/cache/warm", r#"{"symbols": ["AAAA"]}"#)
        .await;
    assert_eq!(st, 200, "{w}");
    assert!(w["candidates"].as_u64().expect("candidates") >= 1, "{w}");
}

#[tokio::test]
async fn history_survives_a_restart_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let target = cluster.target();
    let args = ["--workers", "1", "--cache", &target];
    let mut first = Server::start(&args, &[]).await;
    let id = first.submit(r#"{"universe_size": 30}"#).await;
    let state = first.wait_done(&id).await;
    assert_eq!(
        first.stop().map(|s| s.success()),
        Some(true),
        "{}",
        first.log()
    );
    let second = Server::start(&args, &[]).await;
    let (_, list) = second.get("/api/v1/scans").await;
    assert!(
        list["scans"]
            .as_array()
            .expect("scans")
            .iter()
            .any(|s| s["id"] == id.as_str()),
        "{list}"
    );
    let (st, again) = second.get(&format!("/api/v1/scans/{id}")).await;
    assert_eq!((st, &again["timing"]), (200, &state["timing"]));
}

/// A coordinator-only `technic serve --redis URL --workers 0`: not ready until a `technic
/// worker` process joins, ready while it is up (and a scan submitted over HTTP runs on it),
/// and not ready again once the worker is killed and its heartbeat expires.
#[tokio::test]
async fn readiness_flips_as_worker_processes_come_and_go() {
    use support::technic::{Proc, FAST_CLUSTER};
    let redis = RedisServer::start();
    let url = redis.url();
    let server = Server::start(&["--redis", &url, "--workers", "0"], FAST_CLUSTER).await;
    let (st, v) = server.get("/health/ready").await;
    assert_error(st, &v, 503, "WORKERS_UNAVAILABLE");

    let mut worker = Proc::worker("w1", &url, &[], FAST_CLUSTER);
    let start = Instant::now();
    while server.get("/health/ready").await.0 != 200 {
        assert!(
            start.elapsed() < DEADLINE,
            "never ready: {}",
            worker.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = server.submit(r#"{"universe_size": 200}"#).await;
    let done = server.wait_done(&id).await;
    assert_eq!(done["stage"], "done", "{done}");
    // The registry entry lags by up to one heartbeat.
    let start = Instant::now();
    loop {
        let (st, nodes) = server.get("/api/v1/cluster/nodes").await;
        assert_eq!(st, 200);
        let w1 = &nodes["nodes"][0];
        assert_eq!(
            (w1["id"].as_str(), w1["state"].as_str()),
            (Some("w1"), Some("up"))
        );
        assert_eq!(w1["role"], "worker");
        if w1["symbols_done"] == 200 {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the worker ran the scan: {nodes}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    worker.kill9();
    let start = Instant::now();
    loop {
        let (st, v) = server.get("/health/ready").await;
        if st == 503 {
            assert_error(st, &v, 503, "WORKERS_UNAVAILABLE");
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "still ready after the worker died"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, nodes) = server.get("/api/v1/cluster/nodes").await;
    assert_eq!(nodes["nodes"][0]["state"], "down", "{nodes}");
    let (st, d) = detailed(&server).await;
    assert_eq!(st, 503);
    assert_eq!(d["checks"]["cluster-nodes:count"][0]["status"], "fail");
    assert_eq!(
        d["checks"]["work-queue:status"][0]["componentId"],
        "redis-streams"
    );
}
