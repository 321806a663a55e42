//! One cache for the whole cluster, with real processes: a coordinator without workers
//! (`--workers 0`, it only looks up each scan's speedup baseline) shows what its worker
//! processes counted, in total and per node (on a 3-master Redis Cluster), and its TTL
//! change is what the workers write with (on a standalone Redis).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::api::Server;
use support::redis::{RedisCluster, RedisServer};
use support::technic::{run_json, Proc, FAST_CLUSTER};
use support::wait::wait_for_async;

const UNIVERSE: u64 = 200;

/// A `technic serve --workers 0` and two `technic worker`s (one actor each) on `url`.
async fn coordinator_and_workers(url: &str, ids: [&str; 2]) -> (Server, Vec<Proc>) {
    let s = Server::start(&["--redis", url, "--workers", "0"], FAST_CLUSTER).await;
    let workers = ids
        .iter()
        .map(|id| Proc::worker(id, url, &[], FAST_CLUSTER))
        .collect();
    (s, workers)
}

fn sum(nodes: &serde_json::Map<String, Value>, field: &str) -> u64 {
    nodes.values().filter_map(|n| n[field].as_u64()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_shows_every_workers_cache_lookups() {
    let redis = RedisCluster::start();
    let url = redis.target();
    let env = FAST_CLUSTER.to_vec();
    let (s, _workers) = coordinator_and_workers(&url, ["stats-w1", "stats-w2"]).await;
    // The second scan asks for another cut of the same universe: a config the scan-result
    // cache has not seen, so the workers look every symbol's features up again.
    let mut rates = Vec::new();
    for top in [None, Some(50)] {
        let body = match top {
            None => format!(r#"{{"universe_size": {UNIVERSE}}}"#),
            Some(n) => format!(r#"{{"universe_size": {UNIVERSE}, "top": {n}}}"#),
        };
        let id = s.submit(&body).await;
        let done = s.wait_done(&id).await;
        assert_eq!(done["stage"], "done", "{done}");
        rates.push(done["timing"]["cache_hit_rate"].as_f64());
    }
    assert_eq!(rates, [Some(0.0), Some(1.0)], "cold, then warm");

    // Within a heartbeat or two every worker has added its counts: the second scan's
    // UNIVERSE feature hits among them.
    let stats = wait_for_async(
        "the workers' lookups in the coordinator's stats",
        Duration::from_secs(30),
        async || {
            let (st, v) = s.get("/api/v1/cache/stats").await;
            assert_eq!(st, 200, "{v}");
            let hits = v["per_kind"]["features"]["hits"].as_u64().unwrap_or(0);
            let workers_in = v["per_node"]
                .as_object()
                .is_some_and(|n| n.contains_key("stats-w1") && n.contains_key("stats-w2"));
            if hits >= UNIVERSE && workers_in {
                Ok(v)
            } else {
                Err(v)
            }
        },
    )
    .await;
    assert_eq!(stats["scope"], "cluster", "{stats}");
    let nodes = stats["per_node"].as_object().expect("per_node");
    assert!(
        ["stats-w1", "stats-w2"]
            .iter()
            .all(|w| nodes[*w]["per_kind"]["features"]["hits"].as_u64() > Some(0)),
        "both workers served hits: {stats}"
    );
    assert_eq!(
        sum(nodes, "hits"),
        stats["hits"].as_u64().expect("hits"),
        "{stats}"
    );
    assert_eq!(
        sum(nodes, "misses"),
        stats["misses"].as_u64().expect("misses"),
        "{stats}"
    );
    let features = &stats["per_kind"]["features"];
    assert_eq!(
        features["hits"].as_u64().unwrap_or(0) + features["misses"].as_u64().unwrap_or(0),
        2 * UNIVERSE,
        "one features lookup per symbol and scan: {stats}"
    );

    // The analytics' series holds the same lookups, and the CLI shows the same figures.
    let (_, a) = s.get("/api/v1/cache/analytics").await;
    let last = a["hit_rate_history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .expect("a series");
    // (from the same read: the coordinator may have added a lookup since `stats`)
    let hits: u64 = a["per_kind"]
        .as_object()
        .expect("per_kind")
        .values()
        .filter_map(|k| k["hits"].as_u64())
        .sum();
    assert_eq!(last["hits"].as_u64(), Some(hits), "{a}");
    let cli = run_json(&["cache", "stats", "--redis", &url, "--json"], &env);
    assert_eq!(cli["scope"], "cluster");
    assert_eq!(
        cli["per_node"]["stats-w1"]["hits"], nodes["stats-w1"]["hits"],
        "{cli}"
    );
}

/// Every remaining TTL (seconds) of the keys matching `pattern`.
fn ttls(redis: &RedisServer, pattern: &str) -> Vec<i64> {
    let mut conn = redis.connection();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut conn)
        .expect("keys");
    keys.iter()
        .map(|k| ::redis::cmd("TTL").arg(k).query(&mut conn).expect("ttl"))
        .collect()
}

/// Whether `ttl` is `base` as SmartTtl scales it by volatility (× ½, × 1 or × 2), written
/// within the last minute.
fn scaled_from(ttl: i64, base: i64) -> bool {
    [base / 2, base, base * 2]
        .iter()
        .any(|want| (want - 60..=*want).contains(&ttl))
}

/// A TTL change on the coordinator reaches the workers: each reports the new version
/// within a heartbeat, and the keys they write afterwards carry the new TTLs, scaled by
/// volatility as documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_change_on_the_coordinator_is_what_the_workers_write_with() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (s, _workers) = coordinator_and_workers(&url, ["ttl-w1", "ttl-w2"]).await;
    let versions = async |want: u64| {
        wait_for_async(
            &format!("both workers at ttl version {want}"),
            Duration::from_secs(30),
            async || {
                let (_, v) = s.get("/api/v1/cluster/nodes").await;
                let at: Vec<u64> = v["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|n| n["id"].as_str().is_some_and(|id| id.starts_with("ttl-w")))
                    .filter_map(|n| n["ttl_version"].as_u64())
                    .collect();
                if at == [want, want] {
                    Ok(())
                } else {
                    Err(v)
                }
            },
        )
        .await
    };
    versions(0).await;
    let r = support::api::client()
        .put(s.url("/api/v1/cache/ttl"))
        .header("content-type", "application/json")
        .body(r#"{"features_secs": 1234, "bars_secs": 4321}"#)
        .send()
        .await
        .expect("put");
    let (st, v) = support::api::json_of(r).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["features_secs"], 1234, "{v}");
    versions(1).await;
    let (_, stats) = s.get("/api/v1/cache/stats").await;
    assert_eq!(stats["ttl_version"], 1, "{stats}");

    // A past as_of: the bars are not the last session, so no until-the-open rule applies.
    let id = s
        .submit(r#"{"universe_size": 40, "as_of": "2025-06-30"}"#)
        .await;
    assert_eq!(s.wait_done(&id).await["stage"], "done");
    for (pattern, base) in [("technic:v1:features:*", 1234), ("technic:v1:bars:*", 4321)] {
        let got = ttls(&redis, pattern);
        assert_eq!(got.len(), 40, "{pattern}: one key per symbol");
        assert!(
            got.iter().all(|t| scaled_from(*t, base)),
            "{pattern}: every TTL from the new base {base}: {got:?}"
        );
    }
}

/// A node's own lookups are in its stats as soon as its scan ends, without waiting for
/// the next heartbeat to publish them (here a minute away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_own_lookups_count_before_its_next_heartbeat() {
    let redis = RedisServer::start();
    let s = Server::start(
        &["--redis", &redis.url(), "--workers", "2"],
        &[
            ("TECHNIC_CLUSTER__HEARTBEAT_MS", "60000"),
            ("TECHNIC_CLUSTER__NODE_TTL_MS", "120000"),
            ("TECHNIC_CLUSTER__VISIBILITY_TIMEOUT_MS", "120000"),
        ],
    )
    .await;
    for body in [
        r#"{"universe_size": 50}"#,
        r#"{"universe_size": 50, "top": 5}"#,
    ] {
        let id = s.submit(body).await;
        assert_eq!(s.wait_done(&id).await["stage"], "done");
    }
    let (st, stats) = s.get("/api/v1/cache/stats").await;
    assert_eq!(st, 200, "{stats}");
    assert_eq!(stats["scope"], "cluster", "{stats}");
    let features = &stats["per_kind"]["features"];
    assert_eq!(
        (features["hits"].as_u64(), features["misses"].as_u64()),
        (Some(50), Some(50)),
        "the cold scan's misses and the second scan's hits: {stats}"
    );
}
