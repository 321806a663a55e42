//! No single point of failure: a scan survives the death of its coordinator.
//!
//! Real processes on loopback: `technic serve --workers 0` coordinators and `technic
//! worker`s sharing a real 3-master Redis Cluster (the scan book's Lua scripts run there).
//! Every finished scan is compared with the embedded single-process scan of the same
//! synthetic universe. Timings are printed (`--nocapture`), not asserted, except where a
//! bound is the claim itself.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::api::{client, read_events_until, Server, SseEvent};
use support::redis::RedisCluster;
use support::reports::{assert_complete, embedded, ratings};
use support::technic::{run_json, Proc, FAST_CLUSTER};
use support::wait::{wait_for, wait_for_async};

const LONG: Duration = Duration::from_secs(120);
/// Per-symbol latency of the synthetic source: scans long enough to kill something in.
const LATENCY: (&str, &str) = ("TECHNIC_DATA__SYNTHETIC__LATENCY_MS", "20");

struct Rig {
    redis: RedisCluster,
    url: String,
}

impl Rig {
    fn start() -> Self {
        Self::on(RedisCluster::start())
    }

    fn on(redis: RedisCluster) -> Self {
        let url = redis.target();
        Rig { redis, url }
    }

    /// Every scan computes (no scan-result cache): the same config is scanned again and
    /// again, and each run must do the work that is killed or compared.
    fn env<'a>(&self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = FAST_CLUSTER.to_vec();
        env.push(LATENCY);
        env.push(("TECHNIC_CACHE__SCAN_RESULTS", "false"));
        env.extend_from_slice(extra);
        env
    }

    /// `n` workers of one actor each, without a cache: every scan does the same work.
    fn workers(&self, n: usize) -> Vec<Proc> {
        (1..=n)
            .map(|i| {
                let id = format!("w{i}");
                Proc::spawn(
                    &id,
                    &[
                        "worker",
                        "--redis",
                        &self.url,
                        "--workers",
                        "1",
                        "--cache",
                        "none",
                        "--node-id",
                        &id,
                    ],
                    &self.env(&[]),
                )
            })
            .collect()
    }

    /// A coordinator-only `technic serve` with node id `id`.
    async fn serve(&self, id: &str) -> Server {
        self.serve_with(id, &[]).await
    }

    /// [`Rig::serve`] with more settings in its environment.
    async fn serve_with(&self, id: &str, extra: &[(&str, &str)]) -> Server {
        let mut env = vec![("TECHNIC_CLUSTER__NODE_ID", id)];
        env.extend_from_slice(extra);
        Server::start(&["--redis", &self.url, "--workers", "0"], &self.env(&env)).await
    }

    /// `technic cluster nodes --json`: symbols done, summed over the workers.
    fn symbols_done(&self) -> u64 {
        self.activity().0
    }

    /// Symbols done, summed over the workers, and whether every worker is idle (load 0).
    fn activity(&self) -> (u64, bool) {
        let v = run_json(
            &["cluster", "nodes", "--redis", &self.url, "--json"],
            &self.env(&[]),
        );
        let nodes = v.as_array().expect("nodes");
        (
            nodes
                .iter()
                .filter_map(|n| n["symbols_done"].as_u64())
                .sum(),
            nodes.iter().all(|n| n["load"].as_f64() == Some(0.0)),
        )
    }

    fn wait_workers_up(&self, n: usize) {
        wait_for("the workers to register", LONG, || {
            let v = run_json(
                &["cluster", "nodes", "--redis", &self.url, "--json"],
                &self.env(&[]),
            );
            (v.as_array()
                .expect("nodes")
                .iter()
                .filter(|n| n["state"] == "up")
                .count()
                >= n)
                .then_some(())
        });
    }
}

async fn state(s: &Server, id: &str) -> Value {
    let (status, v) = s.get(&format!("/api/v1/scans/{id}")).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// Waits until the scan has at least `done` symbols, as `s` sees it.
async fn wait_progress(s: &Server, id: &str, done: u64) -> Value {
    wait_for_async(&format!("{done} symbols of {id}"), LONG, async || {
        let v = state(s, id).await;
        if v["progress"]["done"].as_u64() >= Some(done) {
            Ok(v)
        } else {
            Err(v)
        }
    })
    .await
}

/// Waits until `s` sees the scan owned by `owner` (or already done); its state then.
async fn taken_over_by(s: &Server, owner: &str, id: &str) -> Value {
    wait_for_async(
        &format!("{owner} to take the scan over"),
        LONG,
        async || {
            let v = state(s, id).await;
            if v["owner"] == owner || v["stage"] == "done" {
                Ok(v)
            } else {
                Err(v)
            }
        },
    )
    .await
}

/// The final report of a scan, from `s`'s event stream.
async fn report_from(s: &Server, id: &str) -> Value {
    let events = read_events_until(&s.url(&format!("/api/v1/scans/{id}/events")), None, |_| {
        false
    })
    .await;
    let last = events.last().expect("events");
    assert_eq!(last.event, "report", "{events:?}");
    last.data.clone()
}

/// The value of one unlabelled-or-labelled series (`name{labels}`) in a serve's `/metrics`
/// (0 when absent).
async fn metric(s: &Server, series: &str) -> u64 {
    let text = client()
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

/// `technic_scan_records_total{outcome}` of a serve.
async fn records(s: &Server, outcome: &str) -> u64 {
    metric(
        s,
        &format!("technic_scan_records_total{{outcome=\"{outcome}\"}}"),
    )
    .await
}

/// How often the scan is listed by `s`.
async fn listed(s: &Server, id: &str) -> usize {
    let (status, v) = s.get("/api/v1/scans").await;
    assert_eq!(status, 200, "{v}");
    v["scans"]
        .as_array()
        .expect("scans")
        .iter()
        .filter(|x| x["id"] == id)
        .count()
}

const UNIVERSE: usize = 1500;

/// Three workers, `serve-a` and `serve-b`, and a scan of [`UNIVERSE`] submitted to
/// `serve-a`: (workers, serve-a, serve-b, scan id).
async fn two_serves_and_a_scan(rig: &Rig) -> (Vec<Proc>, Server, Server, String) {
    let workers = rig.workers(3);
    let a = rig.serve("serve-a").await;
    let b = rig.serve("serve-b").await;
    rig.wait_workers_up(3);
    let id = a
        .submit(&format!("{{\"universe_size\": {UNIVERSE}}}"))
        .await;
    (workers, a, b, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_serve_costs_seconds_and_the_other_serve_finishes_the_scan() {
    let rig = Rig::start();
    let (_workers, mut a, b, id) = two_serves_and_a_scan(&rig).await;
    // Any serve answers for any running scan.
    let seen = wait_progress(&b, &id, 200).await;
    assert_eq!(seen["owner"], "serve-a", "{seen}");
    a.kill9();
    let killed = Instant::now();
    let taken = taken_over_by(&b, "serve-b", &id).await;
    let takeover = killed.elapsed();
    let done_then = taken["progress"]["done"].as_u64().unwrap_or(0);
    if taken["stage"] != "done" {
        wait_progress(&b, &id, done_then + 1).await;
    }
    let resumed = killed.elapsed();
    let report = report_from(&b, &id).await;
    println!(
        "kill -9 of the coordinator: taken over after {:.2} s, progress again after {:.2} s, scan total {:.2} s",
        takeover.as_secs_f64(),
        resumed.as_secs_f64(),
        report["timing"]["total_seconds"].as_f64().unwrap_or(0.0)
    );
    assert_complete(&report, UNIVERSE);
    assert_eq!(ratings(&report), ratings(&embedded(UNIVERSE)));
    assert_eq!(records(&b, "taken_over").await, 1);
    assert_eq!(records(&b, "written").await, 1, "one report");
    // Listed once by the survivor and by the restarted first serve.
    let a2 = rig.serve("serve-a2").await;
    assert_eq!(listed(&b, &id).await, 1);
    assert_eq!(listed(&a2, &id).await, 1);
    let (status, v) = a2.get(&format!("/api/v1/scans/{id}/results?limit=5")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"].as_array().map(Vec::len), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_serve_resumes_its_own_scan() {
    let rig = Rig::start();
    let _workers = rig.workers(2);
    let mut a = rig.serve("serve-a").await;
    rig.wait_workers_up(2);
    let id = a
        .submit(&format!("{{\"universe_size\": {UNIVERSE}}}"))
        .await;
    wait_progress(&a, &id, 100).await;
    a.kill9();
    let again = rig.serve("serve-a").await;
    let report = report_from(&again, &id).await;
    assert_complete(&report, UNIVERSE);
    assert_eq!(ratings(&report), ratings(&embedded(UNIVERSE)));
    assert_eq!(records(&again, "written").await, 1);
}

fn progress_done(e: &SseEvent) -> u64 {
    e.data["done"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_resumes_on_another_serve_with_last_event_id() {
    let rig = Rig::start();
    let (_workers, mut a, b, id) = two_serves_and_a_scan(&rig).await;
    let path = format!("/api/v1/scans/{id}/events");
    let first = read_events_until(&a.url(&path), None, |e| progress_done(e) >= 150).await;
    let last = first.last().expect("events").clone();
    assert!(
        first.iter().all(|e| e.id.is_some()),
        "every event has an id: {first:?}"
    );
    a.kill9();
    let rest = read_events_until(&b.url(&path), last.id.as_deref(), |_| false).await;
    let end = rest.last().expect("events");
    assert_eq!(end.event, "report", "{rest:?}");
    assert_eq!(end.id.as_deref(), Some("end"));
    assert_complete(&end.data, UNIVERSE);
    let progress: Vec<&SseEvent> = rest.iter().filter(|e| e.event == "progress").collect();
    assert!(
        progress.iter().all(|e| e.id != last.id),
        "the state the client had is not sent again"
    );
    assert!(
        progress
            .windows(2)
            .all(|w| progress_done(w[0]) <= progress_done(w[1])),
        "progress only moves forward"
    );
    assert!(progress_done(progress[0]) >= progress_done(&last));
    // A client that has the end is told to stop (204: EventSource does not reconnect).
    let r = client()
        .get(b.url(&path))
        .header("last-event-id", "end")
        .send()
        .await
        .expect("events");
    assert_eq!(r.status().as_u16(), 204);
}

/// A client following the scan on its owner keeps its stream when the scan is taken over
/// while the owner lives on (its lease lapsed: a stall): the owner's stream goes on from
/// the scan book and ends with the report the new owner wrote. Made deterministic by
/// settings: the owner renews its lease every 10 s, the other serve sweeps every 0.2 s,
/// and the test deletes the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_on_the_owner_goes_on_after_its_scan_was_taken_over() {
    let rig = Rig::start();
    let _workers = rig.workers(3);
    let a = rig
        .serve_with(
            "serve-a",
            &[
                ("TECHNIC_CLUSTER__LEASE_RENEW_MS", "10000"),
                ("TECHNIC_CLUSTER__LEASE_MS", "20000"),
            ],
        )
        .await;
    let b = rig
        .serve_with("serve-b", &[("TECHNIC_CLUSTER__LEASE_RENEW_MS", "200")])
        .await;
    rig.wait_workers_up(3);
    let id = a
        .submit(&format!("{{\"universe_size\": {UNIVERSE}}}"))
        .await;
    wait_progress(&a, &id, 150).await;
    let url = a.url(&format!("/api/v1/scans/{id}/events"));
    let reader = tokio::spawn(async move { read_events_until(&url, None, |_| false).await });
    let lease = format!("technic:v1:queue:{{technic}}:lease:{id}");
    let deleted: u32 =
        support::redis::query(rig.redis.master_of(&lease), ::redis::cmd("DEL").arg(&lease));
    assert_eq!(deleted, 1, "the scan had a lease");
    taken_over_by(&b, "serve-b", &id).await;
    let events = tokio::time::timeout(LONG, reader)
        .await
        .expect("the stream ends")
        .expect("reader");
    let end = events.last().expect("events");
    assert_eq!(
        (end.event.as_str(), end.id.as_deref()),
        ("report", Some("end")),
        "{events:?}"
    );
    assert_complete(&end.data, UNIVERSE);
    assert_eq!(ratings(&end.data), ratings(&embedded(UNIVERSE)));
    assert_eq!(
        records(&b, "written").await,
        1,
        "one report, by the new owner"
    );
    assert_eq!(records(&a, "written").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_cannot_report_after_its_scan_was_taken_over() {
    let rig = Rig::start();
    let (_workers, a, b, id) = two_serves_and_a_scan(&rig).await;
    wait_progress(&b, &id, 150).await;
    a.signal("STOP");
    let report = report_from(&b, &id).await;
    assert_complete(&report, UNIVERSE);
    a.signal("CONT");
    // The resumed owner learns it lost the lease (or its fenced write fails), and says so.
    wait_for("serve-a to give the scan up", LONG, || {
        let log = a.log();
        (log.contains("lost the scan's lease") || log.contains("taken over before its record"))
            .then_some(())
    });
    let v = wait_for_async("serve-a to show the scan done", LONG, async || {
        let v = state(&a, &id).await;
        if v["stage"] == "done" {
            Ok(v)
        } else {
            Err(v)
        }
    })
    .await;
    assert_eq!(v["scanned"], report["scanned"]);
    assert_eq!(records(&a, "written").await, 0, "no second report");
    assert_eq!(records(&b, "written").await, 1, "exactly one report");
    assert_eq!(listed(&a, &id).await, 1);
    assert_eq!(listed(&b, &id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_one_shot_scan_is_abandoned_and_its_work_stops() {
    let rig = Rig::start();
    let _workers = rig.workers(3);
    rig.wait_workers_up(3);
    let n = UNIVERSE.to_string();
    let scan = |name: &str| {
        Proc::spawn(
            name,
            &[
                "scan",
                "--redis",
                &rig.url,
                "--workers",
                "0",
                "--universe-size",
                &n,
                "--format",
                "json",
            ],
            &rig.env(&[]),
        )
    };
    let clean = scan("clean").json(LONG, 0);
    let clean_secs = clean["timing"]["total_seconds"].as_f64().expect("seconds");
    let before = rig.symbols_done();
    let mut doomed = scan("doomed");
    wait_for("the doomed scan to make progress", LONG, || {
        (rig.symbols_done() >= before + 150).then_some(())
    });
    doomed.kill9();
    let killed = Instant::now();
    // The workers stop: every one idle (no shard in flight) and symbols done unchanged,
    // for a second.
    let mut last = (rig.symbols_done(), Instant::now());
    let stopped = wait_for("the workers to drop the abandoned scan", LONG, || {
        let (now, idle) = rig.activity();
        if now != last.0 || !idle {
            last = (now, Instant::now());
            return None;
        }
        (last.1.elapsed() >= Duration::from_secs(1)).then(|| last.1 - killed)
    });
    let wasted = last.0 - before;
    assert!(
        wasted < UNIVERSE as u64,
        "the abandoned scan was not run to the end ({wasted} symbols)"
    );
    let next = scan("next").json(LONG, 0);
    let next_secs = next["timing"]["total_seconds"].as_f64().expect("seconds");
    println!(
        "kill -9 of a one-shot scan: workers stopped {:.2} s after the kill ({wasted} of {UNIVERSE} symbols run); clean scan {clean_secs:.2} s, the next scan {next_secs:.2} s",
        stopped.as_secs_f64()
    );
    assert!(
        stopped < Duration::from_secs(10),
        "workers drop an abandoned scan within lease_ms + a heartbeat + a shard"
    );
    // The record says abandoned, with the reason, on any serve.
    let s = rig.serve("serve-a").await;
    let (status, v) = s.get("/api/v1/scans?limit=10").await;
    assert_eq!(status, 200, "{v}");
    let abandoned: Vec<&Value> = v["scans"]
        .as_array()
        .expect("scans")
        .iter()
        .filter(|x| x["stage"] == "abandoned")
        .collect();
    assert_eq!(abandoned.len(), 1, "{v}");
    let id = abandoned[0]["id"].as_str().expect("id");
    let st = state(&s, id).await;
    assert_eq!(st["error"]["code"], "SCAN_ABANDONED", "{st}");
    let (status, _) = s.get(&format!("/api/v1/scans/{id}/results")).await;
    assert_eq!(status, 409);
    // Its results stream is gone.
    let key = format!("technic:v1:queue:{{technic}}:results:{id}");
    let port = rig.redis.master_of(&key);
    let mut exists = redis::cmd("EXISTS");
    exists.arg(&key);
    let exists: i64 = support::redis::query(port, &exists);
    assert_eq!(exists, 0);
}

/// `technic_cache_warm_runs_total` of a serve.
async fn warm_runs(s: &Server) -> u64 {
    metric(s, "technic_cache_warm_runs_total").await
}

/// The leader named by `/api/v1/cluster/nodes` of `s`.
async fn leader_of(s: &Server) -> Option<String> {
    let (status, v) = s.get("/api/v1/cluster/nodes").await;
    assert_eq!(status, 200, "{v}");
    v["leader"].as_str().map(String::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_lease_moves_when_the_leader_dies_and_one_serve_warms() {
    let rig = Rig::start();
    let names = ["serve-a", "serve-b"];
    let mut serves = Vec::new();
    for id in names {
        let env = rig.env(&[
            ("TECHNIC_CLUSTER__NODE_ID", id),
            ("TECHNIC_CACHE__WARM__INTERVAL_SECS", "1"),
        ]);
        serves.push(Server::start(&["--redis", &rig.url, "--workers", "0"], &env).await);
    }
    let first = wait_for_async("one leader, named by both serves", LONG, async || {
        match (leader_of(&serves[0]).await, leader_of(&serves[1]).await) {
            (Some(x), Some(y)) if x == y => Ok(x),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let l = names
        .iter()
        .position(|n| *n == first)
        .expect("a serve leads");
    let f = 1 - l;
    // Both serves run for a while; only the leader warms.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (lr, fr) = (warm_runs(&serves[l]).await, warm_runs(&serves[f]).await);
    println!("leader {first}: warm runs {lr} on the leader, {fr} on the other serve");
    assert!(lr >= 2 && fr == 0, "only the leader warms: {lr} vs {fr}");
    serves[l].kill9();
    let killed = Instant::now();
    wait_for_async("the other serve to lead", LONG, async || {
        match leader_of(&serves[f]).await {
            Some(x) if x == names[f] => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    println!(
        "the leader lease moved {:.2} s after kill -9",
        killed.elapsed().as_secs_f64()
    );
    let before = warm_runs(&serves[f]).await;
    wait_for_async("the new leader to warm", LONG, async || {
        let r = warm_runs(&serves[f]).await;
        if r > before {
            Ok(())
        } else {
            Err(r)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_master_failover_during_a_takeover_still_ends_in_one_correct_report() {
    let mut rig = Rig::on(RedisCluster::start_with_replicas(1));
    let (_workers, mut a, b, id) = two_serves_and_a_scan(&rig).await;
    wait_progress(&b, &id, 200).await;
    // The coordinator and the master of the queue's slot (scan book, queue, results) die
    // together: the takeover has to wait for the replica's promotion.
    let master = rig.redis.master_of("technic:v1:queue:{technic}:shards");
    a.kill9();
    rig.redis.kill_node(master);
    let killed = Instant::now();
    let done = wait_for_async("the scan to finish on serve-b", LONG, async || {
        let (status, v) = b.get(&format!("/api/v1/scans/{id}")).await;
        if status == 200 && v["stage"] == "done" {
            Ok(v)
        } else {
            Err(format!("{status} {v}"))
        }
    })
    .await;
    println!(
        "kill -9 of the coordinator and its Redis master: done {:.2} s later",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(done["status"], "completed", "{done}");
    let report = report_from(&b, &id).await;
    assert_complete(&report, UNIVERSE);
    assert_eq!(ratings(&report), ratings(&embedded(UNIVERSE)));
    assert_eq!(records(&b, "written").await, 1, "one report");
    assert_eq!(listed(&b, &id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_stall_longer_than_the_lease_mid_scan_ends_in_one_report() {
    let rig = Rig::start();
    let _workers = rig.workers(3);
    let a = rig.serve("serve-a").await;
    rig.wait_workers_up(3);
    let id = a
        .submit(&format!("{{\"universe_size\": {UNIVERSE}}}"))
        .await;
    wait_progress(&a, &id, 200).await;
    // The master of the queue's slot stalls for longer than the lease. Afterwards either
    // the owner's renewal comes first (it keeps its epoch) or its own sweep finds the scan
    // orphaned and takes it back at a newer epoch, while its older steward learns it lost
    // the lease; the newer ownership must survive that.
    let port = rig.redis.master_of("technic:v1:queue:{technic}:shards");
    let master = rig
        .redis
        .nodes()
        .iter()
        .find(|n| n.port() == port)
        .expect("the master");
    master.pause();
    tokio::time::sleep(Duration::from_secs(4)).await;
    master.resume();
    rig.redis.wait_ok();
    let report = report_from(&a, &id).await;
    assert_complete(&report, UNIVERSE);
    assert_eq!(ratings(&report), ratings(&embedded(UNIVERSE)));
    assert_eq!(records(&a, "written").await, 1, "one report");
    assert_eq!(listed(&a, &id).await, 1);
    // Whether the lease lapsed during the stall depends on which call reached Redis first
    // after it: either way the scan ends once, complete.
    println!(
        "a 4 s stall of the queue's master: the serve took its own scan back {} time(s)",
        records(&a, "taken_over").await
    );
}
