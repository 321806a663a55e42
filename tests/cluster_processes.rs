//! The cluster as operators run it: real `technic worker` processes and a `technic scan
//! --redis … --workers 0` coordinator on loopback, sharing a real 3-master Redis Cluster.
//!
//! Every scan here is compared with the embedded single-process scan of the same synthetic
//! universe: the same symbols, in the same order, with the same TechRatings, whatever
//! happened to the workers on the way.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use support::ports::Port;
use support::redis::{query, RedisCluster, RedisServer};
use support::reports::{assert_complete, embedded, ratings};
use support::technic::{run_json, Proc, FAST_CLUSTER};
use support::wait::wait_for;

const LONG: Duration = Duration::from_secs(90);

struct Cluster {
    redis: RedisCluster,
    url: String,
}

impl Cluster {
    fn start() -> Self {
        let redis = RedisCluster::start();
        let url = redis.target();
        Cluster { redis, url }
    }

    fn env<'a>(&self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = FAST_CLUSTER.to_vec();
        env.extend_from_slice(extra);
        env
    }

    /// `technic worker` with one worker actor (three of them fit two cores).
    fn worker(&self, id: &str, extra: &[(&str, &str)]) -> Proc {
        self.worker_with(id, extra, &[])
    }

    fn worker_with(&self, id: &str, extra: &[(&str, &str)], more_args: &[&str]) -> Proc {
        Proc::worker(id, &self.url, more_args, &self.env(extra))
    }

    /// A coordinator-only scan of the first `universe` synthetic symbols, as JSON.
    fn scan(&self, universe: usize) -> Proc {
        let n = universe.to_string();
        let args = [
            "scan",
            "--redis",
            &self.url,
            "--workers",
            "0",
            "--universe-size",
            &n,
            "--format",
            "json",
        ];
        Proc::spawn("coordinator", &args, &self.env(&[]))
    }

    /// `technic cluster nodes --json`, by node id.
    fn nodes(&self) -> BTreeMap<String, Value> {
        let v = run_json(
            &["cluster", "nodes", "--redis", &self.url, "--json"],
            &self.env(&[]),
        );
        v.as_array()
            .expect("a JSON array of nodes")
            .iter()
            .map(|n| (n["id"].as_str().unwrap_or_default().to_string(), n.clone()))
            .collect()
    }

    fn wait_state(&self, ids: &[&str], state: &str) {
        wait_for(&format!("{ids:?} {state}"), LONG, || {
            let nodes = self.nodes();
            ids.iter()
                .all(|id| nodes.get(*id).is_some_and(|n| n["state"] == state))
                .then_some(())
        });
    }

    /// Waits until node `id` has finished at least one shard.
    fn wait_first_shard(&self, id: &str) {
        wait_for(&format!("{id} to finish a shard"), LONG, || {
            self.nodes()
                .get(id)
                .is_some_and(|n| n["shards_done"].as_u64() > Some(0))
                .then_some(())
        });
    }
}

#[test]
fn three_workers_scan_like_one_process() {
    let c = Cluster::start();
    let w1 = c.worker_with("w1", &[], &["--metrics-bind", "127.0.0.1:0"]);
    let _others: Vec<Proc> = ["w2", "w3"].iter().map(|id| c.worker(id, &[])).collect();
    c.wait_state(&["w1", "w2", "w3"], "up");
    let report = c.scan(2000).json(LONG, 0);
    assert_complete(&report, 2000);
    assert_eq!(ratings(&report), ratings(&embedded(2000)));
    let nodes = report["nodes"].as_object().expect("nodes");
    assert_eq!(
        nodes.keys().collect::<Vec<_>>(),
        ["w1", "w2", "w3"],
        "every worker took shards"
    );
    let registry = c.nodes();
    for id in ["w1", "w2", "w3"] {
        assert_eq!(
            registry[id]["symbols_done"].as_u64(),
            nodes[id].as_u64(),
            "{id}: the registry counts what the report credits"
        );
    }
    // A worker's own metrics (its cache lookups) are scraped from its --metrics-bind port.
    let metrics = w1.metrics();
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    let misses = metrics
        .lines()
        .find(|l| l.starts_with("technic_cache_misses_total{kind=\"features\"}"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("features misses in w1's metrics:\n{metrics}"));
    assert_eq!(
        misses as u64,
        nodes["w1"].as_u64().expect("w1's symbols"),
        "w1 looked up the features of every symbol it scanned, all cold"
    );
}

#[test]
fn a_killed_worker_costs_seconds_not_symbols() {
    let c = Cluster::start();
    // 5 ms per symbol: a 64-symbol shard holds a worker for about 0.3 s.
    let slow = [("TECHNIC_DATA__SYNTHETIC__LATENCY_MS", "5")];
    let mut workers: Vec<Proc> = ["w1", "w2", "w3"]
        .iter()
        .map(|id| c.worker(id, &slow))
        .collect();
    c.wait_state(&["w1", "w2", "w3"], "up");
    let mut coordinator = c.scan(1500);
    c.wait_first_shard("w2");
    workers[1].kill9();
    let report = coordinator.json(LONG, 0);
    assert_complete(&report, 1500);
    assert!(
        report["failures"].as_array().expect("failures").is_empty(),
        "nothing failed: {}",
        report["failures"]
    );
    assert_eq!(ratings(&report), ratings(&embedded(1500)));
    // The registry shows the killed node down once its heartbeat expired.
    c.wait_state(&["w2"], "down");
    let nodes = c.nodes();
    assert_eq!(nodes["w1"]["state"], "up");
    assert_eq!(nodes["w3"]["state"], "up");
}

/// With one delivery attempt per shard, the shard a killed worker held comes back to a live
/// worker as exhausted (found by `XAUTOCLAIM`): it is split into one-symbol shards, each
/// given a last attempt, so its symbols still complete.
#[test]
fn a_dead_workers_exhausted_shard_is_split_and_completed() {
    let c = Cluster::start();
    let env = [
        ("TECHNIC_DATA__SYNTHETIC__LATENCY_MS", "5"),
        ("TECHNIC_CLUSTER__MAX_ATTEMPTS", "1"),
    ];
    let mut workers: Vec<Proc> = ["w1", "w2"].iter().map(|id| c.worker(id, &env)).collect();
    c.wait_state(&["w1", "w2"], "up");
    let mut coordinator = c.scan(800);
    wait_for("w2 busy", LONG, || {
        (c.nodes()["w2"]["busy"].as_u64() > Some(0)).then_some(())
    });
    workers[1].kill9();
    let report = coordinator.json(LONG, 0);
    assert_complete(&report, 800);
    assert!(
        report["failures"].as_array().expect("failures").is_empty(),
        "{}",
        report["failures"]
    );
    assert_eq!(ratings(&report), ratings(&embedded(800)));
    assert!(
        workers[0]
            .stderr()
            .contains("shard exhausted its attempts; retrying its symbols one by one"),
        "w1 took the exhausted shard:\n{}",
        workers[0].stderr()
    );
}

#[test]
fn a_worker_that_joins_mid_scan_takes_shards() {
    let c = Cluster::start();
    let slow = [("TECHNIC_DATA__SYNTHETIC__LATENCY_MS", "5")];
    let _w1 = c.worker("w1", &slow);
    c.wait_state(&["w1"], "up");
    let mut coordinator = c.scan(1200);
    c.wait_first_shard("w1");
    let _w2 = c.worker("w2", &slow);
    let report = coordinator.json(LONG, 0);
    assert_complete(&report, 1200);
    assert!(
        report["nodes"]["w2"].as_u64() > Some(0),
        "the late worker took shards: {}",
        report["nodes"]
    );
    assert_eq!(ratings(&report), ratings(&embedded(1200)));
}

#[test]
fn cancel_stops_every_worker_and_reports_partial() {
    let c = Cluster::start();
    let slow = [("TECHNIC_DATA__SYNTHETIC__LATENCY_MS", "10")];
    let _workers: Vec<Proc> = ["w1", "w2"].iter().map(|id| c.worker(id, &slow)).collect();
    c.wait_state(&["w1", "w2"], "up");
    let mut coordinator = c.scan(2000);
    c.wait_first_shard("w1");
    coordinator.signal("INT");
    let report = coordinator.json(LONG, 130);
    assert_eq!(report["status"], "cancelled");
    let scanned = report["scanned"].as_u64().expect("scanned");
    assert!(scanned > 0 && scanned < 2000, "partial: {scanned}");
    let id = report["id"].as_str().expect("scan id");
    let key = "technic:v1:queue:{technic}:cancelled";
    let cancelled: Vec<String> = query(c.redis.master_of(key), ::redis::cmd("SMEMBERS").arg(key));
    assert!(cancelled.iter().any(|s| s == id), "{id} in {cancelled:?}");
    // Every worker stops: nothing in flight, and no symbol of the scan processed any more
    // (two unchanged readings a few heartbeats apart).
    let idle_total = || {
        let nodes = c.nodes();
        let busy: u64 = nodes.values().filter_map(|n| n["busy"].as_u64()).sum();
        let done: u64 = nodes
            .values()
            .filter_map(|n| n["symbols_done"].as_u64())
            .sum();
        (busy == 0).then_some(done)
    };
    let first = wait_for("workers idle", LONG, idle_total);
    std::thread::sleep(Duration::from_millis(1000));
    let second = wait_for("workers idle", LONG, idle_total);
    assert_eq!(first, second, "workers kept processing after the cancel");
    assert!(
        second < 2000,
        "the workers did not finish the scan: {second}"
    );
}

#[test]
fn a_poison_symbol_restarts_the_actor_and_fails_alone() {
    let c = Cluster::start();
    let reference = embedded(300);
    let poison = ratings(&reference)[0].0.clone();
    let env = [("TECHNIC_DATA__SYNTHETIC__POISON_SYMBOLS", poison.as_str())];
    let _workers: Vec<Proc> = ["w1", "w2"].iter().map(|id| c.worker(id, &env)).collect();
    c.wait_state(&["w1", "w2"], "up");
    let report = c.scan(300).json(LONG, 0);
    assert_complete(&report, 300);
    let failures = report["failures"].as_array().expect("failures");
    assert_eq!(
        failures.len(),
        1,
        "only the poison symbol fails: {failures:?}"
    );
    assert_eq!(failures[0]["symbol"], poison.as_str());
    assert_eq!(failures[0]["code"], "SHARD_FAILED");
    let expected: Vec<(String, f64)> = ratings(&reference)
        .into_iter()
        .filter(|(s, _)| *s != poison)
        .collect();
    assert_eq!(ratings(&report), expected);
    let restarts: u64 = c
        .nodes()
        .values()
        .filter_map(|n| n["restarts"].as_u64())
        .sum();
    assert!(
        restarts >= 3,
        "each attempt on the poison shard restarted an actor: {restarts}"
    );
}

#[test]
fn sigterm_drains_a_worker() {
    let c = Cluster::start();
    // 30 ms per symbol: a shard takes about 2 s, long enough to see the drain.
    let slow = [("TECHNIC_DATA__SYNTHETIC__LATENCY_MS", "30")];
    let mut w1 = c.worker("w1", &slow);
    let _w2 = c.worker("w2", &slow);
    c.wait_state(&["w1", "w2"], "up");
    let mut coordinator = c.scan(600);
    wait_for("w1 busy", LONG, || {
        (c.nodes()["w1"]["busy"].as_u64() > Some(0)).then_some(())
    });
    w1.signal("TERM");
    c.wait_state(&["w1"], "draining");
    let status = w1.wait(LONG);
    assert_eq!(status.code(), Some(0), "stderr:\n{}", w1.stderr());
    assert!(
        w1.stderr()
            .contains("drained; every in-flight shard finished"),
        "{}",
        w1.stderr()
    );
    let report = coordinator.json(LONG, 0);
    assert_complete(&report, 600);
    assert!(
        report["nodes"]["w1"].as_u64() > Some(0),
        "the draining worker's shard counted: {}",
        report["nodes"]
    );
    assert_eq!(ratings(&report), ratings(&embedded(600)));
    // A node that left on purpose is no longer listed (only a dead one shows `down`).
    wait_for("w1 to leave the registry", LONG, || {
        (!c.nodes().contains_key("w1")).then_some(())
    });
}

/// `technic scan --redis URL` with local workers: its workers are a node like any other, and
/// the same Redis is the cache, so the second scan is served from it.
#[test]
fn a_coordinator_with_local_workers_is_a_node_and_caches_in_redis() {
    let server = RedisServer::start();
    let mut env = FAST_CLUSTER.to_vec();
    env.push(("TECHNIC_CLUSTER__NODE_ID", "coord"));
    let url = server.url();
    let args = [
        "scan",
        "--redis",
        &url,
        "--workers",
        "2",
        "--universe-size",
        "300",
        "--format",
        "json",
        "--quiet",
    ];
    let first = run_json(&args, &env);
    assert_complete(&first, 300);
    assert_eq!(first["nodes"]["coord"], 300);
    assert_eq!(first["timing"]["cache_hit_rate"], 0.0);
    let second = run_json(&args, &env);
    assert_eq!(second["timing"]["cache_hit_rate"], 1.0);
    assert_eq!(ratings(&second), ratings(&embedded(300)));
}

/// A coordinator whose Redis is down fails the scan with a clear error (exit 3), and a
/// worker whose Redis is down waits for it instead of exiting.
#[test]
fn redis_down_is_a_clear_error_for_the_coordinator_and_a_wait_for_workers() {
    // Reserved so nothing else listens there while the test expects Redis to be down.
    let down = Port::reserve();
    let url = format!("redis://{}", down.addr());
    let mut coordinator = Proc::spawn(
        "coordinator",
        &["scan", "--redis", &url, "--workers", "0", "--quiet"],
        FAST_CLUSTER,
    );
    let status = coordinator.wait(LONG);
    assert_eq!(status.code(), Some(3), "{}", coordinator.stderr());
    let err = coordinator.stderr();
    assert!(err.contains("QUEUE_UNAVAILABLE"), "{err}");
    assert!(
        err.contains("check that the Redis given with --redis is running"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let mut worker = Proc::spawn(
        "w1",
        &["worker", "--redis", &url, "--node-id", "w1"],
        FAST_CLUSTER,
    );
    wait_for("the worker to log the outage", LONG, || {
        worker
            .stderr()
            .contains("redis work queue unavailable; retrying")
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(worker.running(), "{}", worker.stderr());
    worker.signal("TERM");
    let status = worker.wait(LONG);
    assert_eq!(status.code(), Some(0), "{}", worker.stderr());
}
