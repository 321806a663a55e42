//! One conformance suite for every `WorkQueue` (in-process, Redis Streams on a standalone
//! `redis-server`, Redis Streams on a 3-master Redis Cluster), plus what only the Redis queue
//! has to show: a consumer that dies without a word (kill -9) has its shard claimed by a live
//! one after the visibility timeout, attempts run out, a blocked pull notices `close()` within
//! the BLOCK bound, a cancel made on one node reaches another, and small shards are read
//! ahead (several per round trip) without being lost, hoarded or charged an attempt.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::redis::{query, RedisCluster, RedisServer};
use technic::cluster::{
    plan_shards, InProcessQueue, QueueError, RedisQueueOptions, RedisStreamsQueue, Shard, WorkQueue,
};
use technic::config::Settings;
use technic::market::UniverseEntry;
use technic::scan::ScanConfig;

/// Upper bound on anything that should happen "at once" on a loaded CI machine.
const PROMPT: Duration = Duration::from_secs(5);

fn shards(scan: &str, n: usize) -> Vec<Shard> {
    sized_shards(scan, n, 1)
}

/// `n` shards of `size` symbols each.
fn sized_shards(scan: &str, n: usize, size: usize) -> Vec<Shard> {
    let entries: Vec<UniverseEntry> = (0..n * size)
        .map(|i| UniverseEntry::bare(format!("{scan}{i}")))
        .collect();
    let cfg = Arc::new(ScanConfig::from_settings(&Settings::defaults().scan));
    plan_shards(scan, &entries, size, &cfg)
}

/// `XREADGROUP` calls Redis has served so far.
fn xreadgroup_calls(port: u16) -> u64 {
    let info: String = query(port, ::redis::cmd("INFO").arg("commandstats"));
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_xreadgroup:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("calls"))
}

/// Shard indices pending (read, not acked) for a consumer on the shard stream.
fn pending_for(port: u16, consumer: &str) -> usize {
    let pending: Vec<(String, String, u64, u64)> = query(
        port,
        ::redis::cmd("XPENDING")
            .arg("technic:v1:queue:{technic}:shards")
            .arg("workers")
            .arg("-")
            .arg("+")
            .arg(1000)
            .arg(consumer),
    );
    pending.len()
}

/// The semantics at the top of `src/cluster/queue.rs`, for any implementation.
async fn conformance(q: &dyn WorkQueue) {
    // FIFO delivery, distinct delivery ids.
    q.push(shards("a", 3)).await.expect("push");
    let d1 = q.pull("w1").await.expect("shard");
    let d2 = q.pull("w2").await.expect("shard");
    assert_eq!((d1.shard.index, d2.shard.index), (0, 1));
    assert_eq!(
        d1.shard,
        shards("a", 3)[0],
        "a shard arrives as it was pushed"
    );
    assert!(!d1.exhausted && !d2.exhausted);
    assert_ne!(d1.id, d2.id);
    q.ack(d1.id).await;
    q.ack(d1.id).await; // double ack is harmless

    // A dead consumer's in-flight shard is re-delivered with attempt + 1, before newer work.
    assert!(q.requeue_consumer("w2", 3).await.is_empty());
    let again = q.pull("w3").await.expect("re-delivered");
    assert_eq!((again.shard.index, again.shard.attempt), (1, 2));
    // ... and after max attempts it comes back exhausted instead.
    let exhausted = q.requeue_consumer("w3", 2).await;
    assert_eq!(exhausted.len(), 1);
    assert_eq!(exhausted[0].index, 1);

    // Cancel drops queued shards of that scan only.
    q.push(shards("b", 2)).await.expect("push");
    q.cancel("a").await;
    assert!(q.is_cancelled("a") && !q.is_cancelled("b"));
    let next = q.pull("w1").await.expect("b shard");
    assert_eq!(next.shard.scan_id, "b");
    q.ack(next.id).await;

    // A waiting consumer is woken by a push, then by close.
    let waiter = q.pull("w4");
    let pusher = async {
        tokio::task::yield_now().await;
        q.push(shards("c", 1)).await.expect("push");
    };
    let (got, ()) = tokio::join!(waiter, pusher);
    let got = got.expect("woken by push");
    assert!(got.shard.scan_id == "b" || got.shard.scan_id == "c");
    q.close();
    assert!(
        q.pull("w5").await.is_none(),
        "closed queue hands out nothing"
    );
    assert_eq!(q.push(shards("d", 1)).await, Err(QueueError::Closed));
}

fn opts(block_ms: u64, visibility_ms: u64, max_attempts: u32) -> RedisQueueOptions {
    RedisQueueOptions {
        block: Duration::from_millis(block_ms),
        visibility_timeout: Duration::from_millis(visibility_ms),
        max_attempts,
        // Read-ahead bounded by symbols only, so a stall of a loaded machine cannot change
        // how many shards a read takes (the time bound has its own test).
        read_ahead: Duration::from_secs(3600),
        ..RedisQueueOptions::from_settings(&Settings::defaults().cluster)
    }
}

fn open(url: &str, o: RedisQueueOptions) -> RedisStreamsQueue {
    RedisStreamsQueue::open(url, o).expect("open queue")
}

#[tokio::test]
async fn in_process_queue_passes_conformance() {
    conformance(&InProcessQueue::new(100)).await;
}

#[tokio::test]
async fn redis_queue_passes_conformance() {
    let server = RedisServer::start();
    conformance(&open(&server.url(), opts(100, 30_000, 3))).await;
    // Consumers declared dead were dropped from the group; live ones stay.
    for stream in ["shards", "retry"] {
        let key = format!("technic:v1:queue:{{technic}}:{stream}");
        let consumers: Vec<HashMap<String, String>> = query(
            server.port(),
            ::redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(&key)
                .arg("workers"),
        );
        let names: Vec<&str> = consumers.iter().map(|c| c["name"].as_str()).collect();
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("w2") || n.starts_with("w3")),
            "{key}: {names:?}"
        );
        assert!(names.contains(&"w1"), "{key}: {names:?}");
    }
}

#[tokio::test]
async fn redis_cluster_queue_passes_conformance() {
    let cluster = RedisCluster::start();
    conformance(&open(&cluster.target(), opts(100, 30_000, 3))).await;
}

/// Worker 1 pulls and never acks (killed with -9: it calls nothing); worker 2, on another
/// node, gets the shard with attempt 2 once it has been idle for the visibility timeout.
async fn dead_consumer_is_claimed(url: &str) {
    let visibility = Duration::from_millis(400);
    let node_a = open(url, opts(50, 400, 3));
    let node_b = open(url, opts(50, 400, 3));
    let pushed = shards("k", 1);
    node_a.push(pushed.clone()).await.expect("push");
    let lost = node_a.pull("a-w1").await.expect("shard");
    assert_eq!(lost.shard.attempt, 1);
    drop(node_a);

    let start = Instant::now();
    let got = tokio::time::timeout(visibility + PROMPT, node_b.pull("b-w1"))
        .await
        .expect("claimed within the visibility timeout and a bound")
        .expect("a shard");
    assert!(
        start.elapsed() + Duration::from_millis(50) >= visibility,
        "claimed after {:?}, before the visibility timeout",
        start.elapsed()
    );
    assert!(!got.exhausted);
    let mut want = pushed[0].clone();
    want.attempt = 2;
    assert_eq!(got.shard, want);
    node_b.ack(got.id).await;
    // Acks ride with the handle's next call; a renew sends them.
    node_b.renew().await.expect("renew");
}

#[tokio::test]
async fn redis_dead_consumer_shard_is_claimed_after_visibility_timeout() {
    let server = RedisServer::start();
    dead_consumer_is_claimed(&server.url()).await;
    // Acked entries are deleted: nothing is left in either stream.
    for stream in ["shards", "retry"] {
        let key = format!("technic:v1:queue:{{technic}}:{stream}");
        let len: usize = query(server.port(), ::redis::cmd("XLEN").arg(&key));
        assert_eq!(len, 0, "{key} holds entries after every ack");
    }
}

#[tokio::test]
async fn redis_cluster_dead_consumer_shard_is_claimed_after_visibility_timeout() {
    let cluster = RedisCluster::start();
    dead_consumer_is_claimed(&cluster.target()).await;
}

/// With max_attempts = 2: delivered, lost, claimed (attempt 2), lost again: the third pull
/// hands it out exhausted, and once acked it is gone.
#[tokio::test]
async fn redis_shard_is_exhausted_after_max_attempts() {
    let server = RedisServer::start();
    let q = open(&server.url(), opts(50, 200, 2));
    q.push(shards("x", 1)).await.expect("push");
    let first = q.pull("w1").await.expect("first delivery");
    assert_eq!(first.shard.attempt, 1);
    let second = tokio::time::timeout(PROMPT, q.pull("w2"))
        .await
        .expect("claimed")
        .expect("second delivery");
    assert_eq!((second.shard.attempt, second.exhausted), (2, false));
    let third = tokio::time::timeout(PROMPT, q.pull("w3"))
        .await
        .expect("claimed")
        .expect("exhausted delivery");
    assert!(third.exhausted, "attempts used up: {third:?}");
    assert_eq!(
        (third.shard.scan_id.as_str(), third.shard.attempt),
        ("x", 2)
    );
    q.ack(third.id).await;

    q.push(shards("y", 1)).await.expect("push");
    let next = tokio::time::timeout(PROMPT, q.pull("w3"))
        .await
        .expect("pull")
        .expect("y shard");
    assert_eq!(
        next.shard.scan_id, "y",
        "the exhausted shard is not handed out again"
    );
}

#[tokio::test]
async fn redis_close_wakes_a_blocked_pull_within_the_block_bound() {
    let server = RedisServer::start();
    let block = Duration::from_millis(300);
    let q = Arc::new(open(&server.url(), opts(300, 30_000, 3)));
    let puller = tokio::spawn({
        let q = Arc::clone(&q);
        async move { q.pull("w1").await }
    });
    // Let the pull reach its blocking read; nothing to await for that from outside.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    q.close();
    let got = tokio::time::timeout(block + Duration::from_secs(2), puller)
        .await
        .expect("woken within the block bound")
        .expect("pull task");
    assert!(got.is_none());
    assert!(start.elapsed() <= block + Duration::from_secs(2));
}

/// A cancel made on one node reaches another node's `is_cancelled` by its next pull, and
/// that node never hands out the cancelled scan's queued shards.
#[tokio::test]
async fn redis_cancel_reaches_other_nodes_on_their_next_pull() {
    let server = RedisServer::start();
    let coordinator = open(&server.url(), opts(50, 30_000, 3));
    let worker = open(&server.url(), opts(50, 30_000, 3));
    coordinator.push(shards("s", 2)).await.expect("push");
    coordinator.push(shards("t", 1)).await.expect("push");
    coordinator.cancel("s").await;
    assert!(coordinator.is_cancelled("s"));
    assert!(!worker.is_cancelled("s"), "no pull yet: the cache is stale");
    let got = tokio::time::timeout(PROMPT, worker.pull("w1"))
        .await
        .expect("pull")
        .expect("t shard");
    assert_eq!(
        got.shard.scan_id, "t",
        "cancelled shards are dropped, not delivered"
    );
    assert!(worker.is_cancelled("s"));
}

#[tokio::test]
async fn redis_queue_is_bounded_and_reports_an_unreachable_redis() {
    let server = RedisServer::start();
    let q = open(
        &server.url(),
        RedisQueueOptions {
            capacity: 2,
            ..opts(50, 30_000, 3)
        },
    );
    assert_eq!(
        q.push(shards("a", 3)).await,
        Err(QueueError::Full { capacity: 2 })
    );
    let down = support::ports::Port::reserve();
    let url = format!("redis://user:secret@{}/", down.addr());
    let down = open(&url, opts(50, 30_000, 3));
    let start = Instant::now();
    match down.push(shards("a", 1)).await {
        Err(QueueError::Unavailable(m)) => assert!(!m.contains("secret"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(start.elapsed() < PROMPT);
}

/// Redis restarts empty (no persistence) under a waiting worker: the pull keeps trying,
/// re-creates the lost consumer group (NOGROUP) and delivers the next shard pushed.
#[tokio::test]
async fn redis_pull_survives_a_restarted_redis() {
    let mut server = RedisServer::start();
    let q = Arc::new(open(&server.url(), opts(100, 30_000, 3)));
    q.push(shards("before", 1)).await.expect("push");
    let d = q.pull("w1").await.expect("shard");
    q.ack(d.id).await;

    server.restart();
    let puller = tokio::spawn({
        let q = Arc::clone(&q);
        async move { q.pull("w1").await }
    });
    let pushed = tokio::time::timeout(PROMPT * 3, async {
        loop {
            match q.push(shards("after", 1)).await {
                Ok(()) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    assert!(pushed.is_ok(), "push works again after the restart");
    let got = tokio::time::timeout(PROMPT * 3, puller)
        .await
        .expect("pull recovers")
        .expect("pull task")
        .expect("a shard");
    assert_eq!(got.shard.scan_id, "after");
}

/// One-symbol shards are read `prefetch_symbols` at a time: 40 shards cost a handful of
/// `XREADGROUP`s, not 40, and come out in order, each once.
#[tokio::test]
async fn redis_small_shards_are_read_ahead_in_few_round_trips() {
    let server = RedisServer::start();
    let q = open(
        &server.url(),
        RedisQueueOptions {
            prefetch_symbols: 16,
            ..opts(50, 30_000, 3)
        },
    );
    q.push(shards("p", 40)).await.expect("push");
    let before = xreadgroup_calls(server.port());
    for want in 0..40 {
        let d = q.pull("w1").await.expect("shard");
        assert_eq!((d.shard.index, d.shard.attempt), (want, 1));
        q.ack(d.id).await;
    }
    let reads = xreadgroup_calls(server.port()) - before;
    // 1 (size unknown yet) + 16 + 16 + 7 = 4 reads; 40 without read-ahead.
    assert!(
        reads <= 4,
        "{reads} XREADGROUP calls for 40 one-symbol shards"
    );
    q.renew().await.expect("renew sends the last acks");
    let len: usize = query(
        server.port(),
        ::redis::cmd("XLEN").arg("technic:v1:queue:{technic}:shards"),
    );
    assert_eq!(len, 0, "every shard acked and deleted");
}

/// Shards larger than `prefetch_symbols` go out one per pull: a second worker gets the next
/// one instead of finding it held by the first.
#[tokio::test]
async fn redis_large_shards_are_not_hoarded() {
    let server = RedisServer::start();
    let q = open(&server.url(), opts(50, 30_000, 3));
    q.push(sized_shards("big", 3, 100)).await.expect("push");
    let a = q.pull("w1").await.expect("shard");
    let b = q.pull("w1").await.expect("shard");
    assert_eq!((a.shard.index, b.shard.index), (0, 1));
    assert_eq!(pending_for(server.port(), "w1"), 2, "only what it pulled");
    let c = tokio::time::timeout(PROMPT, q.pull("w2"))
        .await
        .expect("not held by w1")
        .expect("shard");
    assert_eq!(c.shard.index, 2);
}

/// Small shards that take long (a data source with latency) are not read ahead either: a
/// worker holds only about 10 ms of work beyond the shard it runs.
#[tokio::test]
async fn redis_slow_shards_are_not_read_ahead() {
    let server = RedisServer::start();
    let q = open(
        &server.url(),
        RedisQueueOptions {
            read_ahead: Duration::from_millis(10),
            ..opts(50, 30_000, 3)
        },
    );
    q.push(shards("slow", 4)).await.expect("push");
    for want in 0..2 {
        let d = q.pull("w1").await.expect("shard");
        assert_eq!(d.shard.index, want);
        tokio::time::sleep(Duration::from_millis(30)).await;
        q.ack(d.id).await;
    }
    assert_eq!(pending_for(server.port(), "w1"), 1, "only the one it runs");
    let other = tokio::time::timeout(PROMPT, q.pull("w2"))
        .await
        .expect("not held by w1")
        .expect("shard");
    assert_eq!(other.shard.index, 2);
}

/// A consumer that dies holding read-ahead shards: the one it ran comes back with attempt 2,
/// the ones it never started with attempt 1, the run one first.
#[tokio::test]
async fn redis_requeue_gives_back_read_ahead_shards_unchanged() {
    let server = RedisServer::start();
    let q = open(&server.url(), opts(50, 30_000, 3));
    q.push(shards("r", 6)).await.expect("push");
    let first = q.pull("w1").await.expect("shard");
    assert_eq!(first.shard.index, 0);
    q.ack(first.id).await;
    // The second read takes the other five ahead; w1 runs shard 1 and dies.
    let running = q.pull("w1").await.expect("shard");
    assert_eq!(running.shard.index, 1);
    assert_eq!(pending_for(server.port(), "w1"), 5);
    assert!(q.requeue_consumer("w1", 3).await.is_empty());
    let mut got = Vec::new();
    for _ in 0..5 {
        let d = tokio::time::timeout(PROMPT, q.pull("w2"))
            .await
            .expect("pull")
            .expect("shard");
        got.push((d.shard.index, d.shard.attempt));
        q.ack(d.id).await;
    }
    assert_eq!(got, [(1, 2), (2, 1), (3, 1), (4, 1), (5, 1)]);
}

/// A consumer stopping with read-ahead shards (the queue closed under it) gives them back:
/// another node runs them at once, attempt unchanged, without waiting out the visibility
/// timeout.
#[tokio::test]
async fn redis_close_gives_read_ahead_shards_back() {
    let server = RedisServer::start();
    let node_a = open(&server.url(), opts(50, 30_000, 3));
    let node_b = open(&server.url(), opts(50, 30_000, 3));
    node_a.push(shards("g", 5)).await.expect("push");
    let d = node_a.pull("a-w1").await.expect("shard");
    node_a.ack(d.id).await;
    let d = node_a.pull("a-w1").await.expect("shard");
    node_a.ack(d.id).await;
    assert_eq!(
        pending_for(server.port(), "a-w1"),
        4,
        "one acked late, three ahead"
    );
    node_a.close();
    assert!(node_a.pull("a-w1").await.is_none());
    assert_eq!(
        pending_for(server.port(), "a-w1"),
        0,
        "acks sent, read-ahead given back"
    );
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = tokio::time::timeout(PROMPT, node_b.pull("b-w1"))
            .await
            .expect("given back, not left to the visibility timeout")
            .expect("shard");
        got.push((d.shard.index, d.shard.attempt));
    }
    assert_eq!(got, [(2, 1), (3, 1), (4, 1)]);
}

/// Read-ahead shards are renewed like the running one: past the visibility timeout, another
/// node claims none of them.
#[tokio::test]
async fn redis_read_ahead_shards_are_renewed() {
    let server = RedisServer::start();
    let node_a = open(&server.url(), opts(50, 400, 3));
    let node_b = open(&server.url(), opts(50, 400, 3));
    node_a.push(shards("n", 4)).await.expect("push");
    let d = node_a.pull("a-w1").await.expect("shard");
    node_a.ack(d.id).await;
    let running = node_a.pull("a-w1").await.expect("shard");
    assert_eq!(
        pending_for(server.port(), "a-w1"),
        3,
        "the running one and two ahead"
    );
    let until = Instant::now() + Duration::from_millis(1_200);
    while Instant::now() < until {
        node_a.renew().await.expect("renew");
        assert!(
            tokio::time::timeout(Duration::from_millis(100), node_b.pull("b-w1"))
                .await
                .is_err(),
            "node b claimed a shard node a holds and renews"
        );
    }
    assert_eq!(pending_for(server.port(), "a-w1"), 3, "still held");
    node_a.ack(running.id).await;
    for want in [2, 3] {
        let d = node_a.pull("a-w1").await.expect("shard");
        assert_eq!((d.shard.index, d.shard.attempt), (want, 1));
    }
}
