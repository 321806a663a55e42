//! One conformance suite for every `WorkQueue` (in-process, Redis Streams on a standalone
//! `redis-server`, Redis Streams on a 3-master Redis Cluster), plus what only the Redis queue
//! has to show: a consumer that dies without a word (kill -9) has its shard claimed by a live
//! one after the visibility timeout, attempts run out, a blocked pull notices `close()` within
//! the BLOCK bound, and a cancel made on one node reaches another.

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
    let entries: Vec<UniverseEntry> = (0..n)
        .map(|i| UniverseEntry::bare(format!("{scan}{i}")))
        .collect();
    let cfg = Arc::new(ScanConfig::from_settings(&Settings::defaults().scan));
    plan_shards(scan, &entries, 1, &cfg)
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
