//! A repeated (warm) scan of the default universe (5,000 symbols × 500 synthetic bars)
//! through each cache backend, side by side: in-process memory, a local redis-server, and a
//! local 3-master Redis Cluster (started by the test harness, `tests/support/redis.rs`).
//! Every symbol's features are cached before the measurement (hit rate 100 %).
//!
//! `cargo bench --bench cache_redis` (needs `redis-server` and `redis-cli`; `scripts/test.sh`
//! installs them). Target (issue 4): the cluster within 3× the memory backend.

#[path = "../tests/support/redis.rs"]
#[allow(dead_code)]
mod redis_support;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};

use redis_support::{RedisCluster, RedisServer};
use technic::cache::CacheTarget;
use technic::cluster::LocalCluster;
use technic::config::Settings;
use technic::data::{MarketData, SyntheticProvider};
use technic::scan::ScanConfig;

fn benches(c: &mut Criterion) {
    let settings = Settings::defaults();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cfg = ScanConfig::from_settings(&settings.scan);
    let server = RedisServer::start();
    let redis_cluster = RedisCluster::start();
    let targets = [
        ("warm_memory_5000x500", CacheTarget::Memory),
        ("warm_redis_5000x500", CacheTarget::Redis(server.url())),
        (
            "warm_redis_cluster_5000x500",
            CacheTarget::RedisCluster(redis_cluster.urls()),
        ),
    ];
    let mut g = c.benchmark_group("cache");
    g.sample_size(20);
    for (name, target) in targets {
        let warm = rt.block_on(async {
            let cache = technic::cache::build(&settings.cache, &target)
                .await
                .expect("cache");
            let provider: Arc<dyn MarketData> =
                Arc::new(SyntheticProvider::new(&settings.data.synthetic));
            let cluster = LocalCluster::start(&settings, provider, cache, settings.local_workers())
                .await
                .expect("start");
            cluster
                .submit(cfg.clone())
                .await
                .expect("submit")
                .report()
                .await
                .expect("report");
            cluster
        });
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let report = warm
                        .submit(cfg.clone())
                        .await
                        .expect("submit")
                        .report()
                        .await
                        .expect("report");
                    assert_eq!(report.timing.cache_hit_rate, Some(1.0), "{name}");
                    report.results.len()
                })
            })
        });
        rt.block_on(warm.shutdown());
    }
    g.finish();
}

criterion_group!(cache, benches);
criterion_main!(cache);
