//! What distribution costs: the same scan through the in-process queue and through the Redis
//! Streams queue (shards out by `XADD`/`XREADGROUP`, reports back through the scan's results
//! stream), coordinator and 3 worker actors in this process, no cache, no injected latency.
//!
//! - `cluster/{embedded,redis,redis_cluster}_3_workers_5000x500`: the default universe.
//!   Target: through Redis at most 2× embedded.
//! - `cluster/{embedded,redis}_1000_one_symbol_shards`: 1,000 shards of one symbol each, so
//!   the per-shard round trip dominates: (redis − embedded) / 1,000 is the dispatch
//!   overhead per shard. Target: at most 100 µs.
//!
//! `cargo bench --bench cluster` (needs `redis-server` and `redis-cli`; `scripts/test.sh`
//! installs them). Worker *processes* and injected latency: `scripts/bench_cluster.sh`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};

use support::redis::{RedisCluster, RedisServer};
use technic::cluster::{LocalCluster, QueueTarget, ScanKind};
use technic::config::Settings;
use technic::data::{MarketData, SyntheticProvider};
use technic::scan::ScanConfig;
use technic::shutdown::Shutdown;

fn start(rt: &tokio::runtime::Runtime, settings: &Settings, target: &QueueTarget) -> LocalCluster {
    rt.block_on(async {
        let provider: Arc<dyn MarketData> =
            Arc::new(SyntheticProvider::new(&settings.data.synthetic));
        LocalCluster::start_on(
            settings,
            provider,
            None,
            3,
            target,
            ScanKind::Cluster,
            &Shutdown::new(),
        )
        .await
        .expect("start")
    })
}

fn scan(rt: &tokio::runtime::Runtime, cluster: &LocalCluster, cfg: &ScanConfig, n: usize) {
    rt.block_on(async {
        let report = cluster.run(cfg.clone()).await.expect("scan");
        assert_eq!(report.universe_size, n);
        assert!(report.failures.is_empty());
    })
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = RedisServer::start();
    let redis_cluster = RedisCluster::start();
    let mut settings = Settings::defaults();
    settings.cluster.node_id = "bench".into();
    let cfg = ScanConfig::from_settings(&settings.scan);
    let targets = [
        ("embedded", QueueTarget::InProcess),
        ("redis", QueueTarget::Redis(server.url())),
        ("redis_cluster", QueueTarget::Redis(redis_cluster.target())),
    ];
    let mut g = c.benchmark_group("cluster");
    g.sample_size(10);
    for (name, target) in &targets {
        let cluster = start(&rt, &settings, target);
        g.bench_function(format!("{name}_3_workers_5000x500"), |b| {
            b.iter(|| scan(&rt, &cluster, &cfg, 5000))
        });
        rt.block_on(cluster.shutdown());
    }
    let mut one = settings.clone();
    one.cluster.shard_size = 1;
    let small = ScanConfig {
        universe_size: Some(1000),
        ..cfg.clone()
    };
    for (name, target) in &targets[..2] {
        let cluster = start(&rt, &one, target);
        g.bench_function(format!("{name}_1000_one_symbol_shards"), |b| {
            b.iter(|| scan(&rt, &cluster, &small, 1000))
        });
        rt.block_on(cluster.shutdown());
    }
    g.finish();
}

criterion_group!(cluster, benches);
criterion_main!(cluster);
