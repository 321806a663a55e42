//! A repeated (warm) scan of the default universe (5,000 symbols × 500 synthetic bars)
//! through each cache backend, side by side: in-process memory, a local redis-server, and a
//! local 3-master Redis Cluster (started by the test harness, `tests/support/redis.rs`).
//! Every symbol's features are cached before the measurement (hit rate 100 %), and every
//! scan computes (the scan-result cache is off). Then the same config answered from the
//! scan-result cache on each backend.
//!
//! `cargo bench --bench cache_redis` (needs `redis-server` and `redis-cli`; `scripts/test.sh`
//! installs them). Targets: the cluster within 3× the memory backend; a scan-result hit
//! under 5 ms; counting statistics (`stats/*`: a counted against an uncounted lookup of a
//! shard's features) at most 2 % of a warm scan.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use support::redis::{RedisCluster, RedisServer};
use technic::cache::CacheTarget;
use technic::cluster::LocalCluster;
use technic::config::Settings;
use technic::data::{BarRange, MarketData, SyntheticProvider};
use technic::scan::ScanConfig;

/// A local cluster on the cache `target`, after one scan of `cfg` (what the measured
/// iterations repeat).
async fn started(settings: &Settings, target: &CacheTarget, cfg: &ScanConfig) -> LocalCluster {
    let cache = technic::cache::build(&settings.cache, target)
        .await
        .expect("cache");
    let provider: Arc<dyn MarketData> = Arc::new(SyntheticProvider::new(&settings.data.synthetic));
    let cluster = LocalCluster::start(settings, provider, cache, settings.local_workers())
        .await
        .expect("start");
    cluster.run(cfg.clone()).await.expect("scan");
    cluster
}

fn benches(c: &mut Criterion) {
    let mut settings = Settings::defaults();
    settings.cache.scan_results = false;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cfg = ScanConfig::from_settings(&settings.scan);
    let server = RedisServer::start();
    let redis_cluster = RedisCluster::start();
    let targets = [
        ("memory", CacheTarget::Memory),
        ("redis", CacheTarget::Redis(server.url())),
        (
            "redis_cluster",
            CacheTarget::RedisCluster(redis_cluster.urls()),
        ),
    ];
    let mut g = c.benchmark_group("cache");
    g.sample_size(20);
    for (backend, target) in &targets {
        let name = format!("warm_{backend}_5000x500");
        let name = name.as_str();
        let warm = rt.block_on(started(&settings, target, &cfg));
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let report = warm.run(cfg.clone()).await.expect("scan");
                    assert_eq!(report.timing.cache_hit_rate, Some(1.0), "{name}");
                    report.results.len()
                })
            })
        });
        if name == "warm_redis_5000x500" {
            // Bars cached, features not: every iteration starts with the features removed
            // (outside the measurement), so the scan decodes bars and computes.
            let client = redis::Client::open(server.url()).expect("client");
            g.bench_function("bars_cached_features_cold_redis_5000x500", |b| {
                b.iter_batched(
                    || {
                        let mut con = client.get_connection().expect("connection");
                        let keys: Vec<String> = redis::cmd("KEYS")
                            .arg("technic:v1:features:*")
                            .query(&mut con)
                            .expect("keys");
                        for chunk in keys.chunks(500) {
                            let _: () = redis::cmd("UNLINK")
                                .arg(chunk)
                                .query(&mut con)
                                .expect("unlink");
                        }
                    },
                    |()| {
                        rt.block_on(async {
                            let report = warm.run(cfg.clone()).await.expect("scan");
                            assert_eq!(
                                report.timing.cache_hit_rate,
                                Some(1.0),
                                "bars served from the cache"
                            );
                            report.results.len()
                        })
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        rt.block_on(warm.shutdown());
    }
    // The same config again: answered from its cached report.
    settings.cache.scan_results = true;
    for (backend, target) in &targets {
        let answered = rt.block_on(started(&settings, target, &cfg));
        g.bench_function(format!("scan_result_hit_{backend}_5000"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let report = answered.run(cfg.clone()).await.expect("scan");
                    assert!(report.from_cache.is_some(), "{backend}: answered");
                    report.results.len()
                })
            })
        });
        rt.block_on(answered.shutdown());
    }
    g.finish();

    // What counting statistics costs a lookup: a shard's features read through ScanCache
    // (counted per kind, sampled for the history, Prometheus counters) against the same
    // read and decode straight from the backend. Times the shards of a 5,000-symbol scan
    // (79 of 64 symbols), the difference is what counting adds to a warm scan.
    let backend = std::sync::Arc::new(technic::cache::MemoryCache::new(64 << 20));
    let counted = technic::cache::ScanCache::new(
        backend.clone(),
        technic::cache::SmartTtl::new(
            settings.cache.ttl.clone(),
            Arc::new(technic::cache::SystemClock),
        )
        .expect("ttl"),
        std::time::Duration::from_secs(1),
    );
    let keys: Vec<String> = (0..64)
        .map(|i| technic::cache::Kind::Features.key(&format!("S{i}")))
        .collect();
    let value = vec![1.5f64; 16];
    rt.block_on(async {
        let items: Vec<_> = keys
            .iter()
            .map(|k| (k.clone(), &value, None, None))
            .collect();
        assert!(counted.put(technic::cache::Kind::Features, &items).await);
    });
    let mut g = c.benchmark_group("stats");
    g.bench_function("counted_get_64", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (v, _) = counted
                    .get::<Vec<f64>>(technic::cache::Kind::Features, &keys)
                    .await;
                v.len()
            })
        })
    });
    g.bench_function("uncounted_get_64", |b| {
        b.iter(|| {
            rt.block_on(async {
                use technic::cache::Cache;
                let raw = backend.get_many(&keys).await.expect("get");
                raw.into_iter()
                    .flatten()
                    .filter_map(|b| technic::cache::decode::<Vec<f64>>(&b).ok())
                    .count()
            })
        })
    });
    g.finish();

    // The codec on one symbol's 500 bars (about 24 KB).
    let provider = SyntheticProvider::new(&settings.data.synthetic);
    let bars = rt.block_on(async {
        let sym = provider.universe().await.expect("universe")[0]
            .symbol
            .clone();
        provider
            .daily_bars(&sym, BarRange::new(None, 500))
            .await
            .expect("bars")
    });
    let bytes = technic::cache::encode(&bars).expect("encode");
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode_bars_500", |b| {
        b.iter(|| technic::cache::encode(&bars).expect("encode"))
    });
    g.bench_function("decode_bars_500", |b| {
        b.iter(|| technic::cache::decode::<technic::market::Bars>(&bytes).expect("decode"))
    });
    g.finish();
}

criterion_group!(cache, benches);
criterion_main!(cache);
