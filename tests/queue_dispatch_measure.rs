//! Per-shard dispatch cost through the queue: push N shards of 64 symbols, then W consumers
//! pull + ack until the queue is drained; wall time / N. In-process vs Redis Streams on a
//! local redis-server and on the local 3-master cluster. A measurement, not a test, so it is
//! ignored:
//!
//! `cargo test --release --test queue_dispatch_measure -- --ignored --nocapture`

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use support::redis::{RedisCluster, RedisServer};
use technic::cluster::{
    plan_shards, InProcessQueue, RedisQueueOptions, RedisStreamsQueue, Shard, WorkQueue,
};
use technic::config::Settings;
use technic::market::UniverseEntry;
use technic::scan::ScanConfig;

const SHARDS: usize = 2_000;

fn shards(scan: &str) -> Vec<Shard> {
    let entries: Vec<UniverseEntry> = (0..SHARDS * 64)
        .map(|i| UniverseEntry::bare(format!("S{i}")))
        .collect();
    let cfg = Arc::new(ScanConfig::from_settings(&Settings::defaults().scan));
    plan_shards(scan, &entries, 64, &cfg)
}

/// Microseconds per shard: push all (in batches of 256), then `workers` consumers drain.
async fn per_shard_us(q: Arc<dyn WorkQueue>, scan: &str, workers: usize) -> f64 {
    let all = shards(scan);
    let start = Instant::now();
    for batch in all.chunks(256) {
        q.push(batch.to_vec()).await.expect("push");
    }
    let left = Arc::new(AtomicUsize::new(SHARDS));
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (q, left) = (Arc::clone(&q), Arc::clone(&left));
            tokio::spawn(async move {
                let me = format!("m{w}");
                // The consumer that takes the last shard notes the time and closes the queue,
                // which sends the others home (within one BLOCK for Redis).
                while let Some(d) = q.pull(&me).await {
                    q.ack(d.id).await;
                    if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                        q.close();
                        return Some(start.elapsed());
                    }
                }
                None
            })
        })
        .collect();
    let mut done = None;
    for t in tasks {
        done = done.or(t.await.expect("consumer"));
    }
    let elapsed = done.expect("every shard delivered");
    elapsed.as_secs_f64() * 1e6 / SHARDS as f64
}

fn opts() -> RedisQueueOptions {
    RedisQueueOptions {
        capacity: 100_000,
        ..RedisQueueOptions::from_settings(&Settings::defaults().cluster)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
async fn dispatch_round_trip_per_shard() {
    let server = RedisServer::start();
    let cluster = RedisCluster::start();
    for workers in [1, 4] {
        let mem: Arc<dyn WorkQueue> = Arc::new(InProcessQueue::new(100_000));
        let us = per_shard_us(mem, "mem", workers).await;
        println!("in-process    {workers} consumers: {us:8.1} µs/shard");
        let redis: Arc<dyn WorkQueue> =
            Arc::new(RedisStreamsQueue::open(&server.url(), opts()).expect("open"));
        let us = per_shard_us(redis, &format!("r{workers}"), workers).await;
        println!("redis         {workers} consumers: {us:8.1} µs/shard");
        let rc: Arc<dyn WorkQueue> =
            Arc::new(RedisStreamsQueue::open(&cluster.target(), opts()).expect("open"));
        let us = per_shard_us(rc, &format!("c{workers}"), workers).await;
        println!("redis-cluster {workers} consumers: {us:8.1} µs/shard");
    }
}
