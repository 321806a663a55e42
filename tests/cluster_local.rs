//! The local cluster end to end, in process: real coordinator and worker actors, the
//! in-process work queue (and once the Redis Streams queue on a real redis-server), the
//! synthetic provider.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use support::redis::{query, RedisServer};
use technic::cache::ScanCache;
use technic::cluster::{Concluded, LocalCluster, QueueTarget, ScanKind, Stage};
use technic::config::Settings;
use technic::data::{MarketData, SyntheticProvider};
use technic::scan::{ScanConfig, ScanReport, ScanStatus};

fn settings(symbols: usize, env: &[(&str, &str)]) -> Settings {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut s = Settings::load(None, &env).expect("valid settings");
    s.data.synthetic.symbols = symbols;
    s
}

/// A local cluster over the synthetic provider of `settings`.
async fn start(settings: &Settings, cache: Option<Arc<ScanCache>>, workers: usize) -> LocalCluster {
    let provider: Arc<dyn MarketData> = Arc::new(SyntheticProvider::new(&settings.data.synthetic));
    LocalCluster::start(settings, provider, cache, workers)
        .await
        .expect("cluster starts")
}

async fn scan(settings: &Settings, workers: usize, config: ScanConfig) -> ScanReport {
    let cluster = start(settings, None, workers).await;
    let report = submit_and_wait(&cluster, config).await;
    cluster.shutdown().await;
    report
}

/// Submits a scan to a running cluster and waits for its report.
async fn submit_and_wait(cluster: &LocalCluster, config: ScanConfig) -> ScanReport {
    cluster
        .submit(config)
        .await
        .expect("valid")
        .report()
        .await
        .expect("done")
}

fn ratings(r: &ScanReport) -> Vec<(String, f64)> {
    r.results
        .iter()
        .map(|x| (x.symbol.clone(), x.tech_rating))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharding_and_worker_count_do_not_change_results() {
    let one = settings(400, &[("TECHNIC_CLUSTER__SHARD_SIZE", "1000")]);
    let many = settings(400, &[("TECHNIC_CLUSTER__SHARD_SIZE", "7")]);
    let cfg = ScanConfig::from_settings(&one.scan);
    let a = scan(&one, 1, cfg.clone()).await;
    let b = scan(&many, 4, cfg).await;
    assert_eq!(a.status, ScanStatus::Completed);
    assert_eq!(a.universe_size, 400);
    assert_eq!(a.scanned + a.failures.len(), 400);
    assert!(
        a.results.len() > 300,
        "most synthetic symbols pass the default filters"
    );
    assert_eq!(ratings(&a), ratings(&b));
    assert_eq!(a.results, b.results);
    // Ranked by TechRating descending, ties by symbol ascending.
    assert!(a
        .results
        .windows(2)
        .all(|w| w[0].tech_rating > w[1].tech_rating
            || (w[0].tech_rating == w[1].tech_rating && w[0].symbol < w[1].symbol)));
    let filtered: usize = a.filtered.values().sum();
    assert_eq!(a.results.len() + filtered, a.scanned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_published_until_done() {
    let s = settings(300, &[("TECHNIC_CLUSTER__SHARD_SIZE", "10")]);
    let cluster = start(&s, None, 2).await;
    let handle = cluster
        .submit(ScanConfig::from_settings(&s.scan))
        .await
        .expect("valid");
    let mut rx = handle.progress.clone();
    let mut stages = vec![rx.borrow().stage];
    while !rx.borrow().stage.is_terminal() {
        if rx.changed().await.is_err() {
            break;
        }
        stages.push(rx.borrow().stage);
    }
    let last = rx.borrow().clone();
    assert_eq!(last.stage, Stage::Done);
    assert_eq!((last.done, last.total), (300, 300));
    assert_eq!(last.fraction, 1.0);
    assert_eq!(last.per_node.get("local"), Some(&300));
    assert!(stages.iter().all(|s| *s != Stage::Failed));
    let report = handle.report().await.expect("completes");
    assert_eq!(report.universe_size, 300);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_scan_returns_a_partial_report() {
    // 20 ms per symbol, 4 symbols per shard, 2 workers: 400 symbols would take ~2 s.
    let s = settings(
        400,
        &[
            ("TECHNIC_DATA__SYNTHETIC__LATENCY_MS", "20"),
            ("TECHNIC_CLUSTER__SHARD_SIZE", "4"),
        ],
    );
    let cluster = start(&s, None, 2).await;
    let handle = cluster
        .submit(ScanConfig::from_settings(&s.scan))
        .await
        .expect("valid");
    let mut rx = handle.progress.clone();
    while rx.borrow().done == 0 {
        rx.changed().await.expect("progress flows");
    }
    handle.cancel();
    let report = handle.report().await.expect("partial report");
    assert_eq!(report.status, ScanStatus::Cancelled);
    assert!(
        report.scanned > 0 && report.scanned < 400,
        "partial: {}",
        report.scanned
    );
    assert_eq!(rx.borrow().stage, Stage::Cancelled);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_worker_is_restarted_and_only_the_poison_symbol_fails() {
    let probe = SyntheticProvider::new(&settings(200, &[]).data.synthetic);
    let victim = probe.universe().await.expect("universe")[37].symbol.clone();
    let s = settings(
        200,
        &[
            ("TECHNIC_DATA__SYNTHETIC__POISON_SYMBOLS", victim.as_str()),
            ("TECHNIC_CLUSTER__SHARD_SIZE", "10"),
            ("TECHNIC_CLUSTER__MAX_ATTEMPTS", "2"),
            ("TECHNIC_CLUSTER__RESTART_BACKOFF_BASE_MS", "1"),
        ],
    );
    let restarts_before = technic::telemetry::metrics().worker_restarts.get();
    let report = scan(&s, 2, ScanConfig::from_settings(&s.scan)).await;
    assert_eq!(report.status, ScanStatus::Completed);
    // The poisoned shard (symbols 30..40) is retried, then split into one-symbol shards:
    // only the poison symbol is reported, every other symbol completes.
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert_eq!(report.failures[0].symbol, victim);
    assert_eq!(report.failures[0].code, "SHARD_FAILED");
    assert_eq!(report.scanned, 199);
    // Two attempts of the shard, then the last attempt of the poison symbol alone.
    assert!(technic::telemetry::metrics().worker_restarts.get() >= restarts_before + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_symbols_fail_per_symbol_and_invalid_configs_are_rejected() {
    let s = settings(50, &[]);
    let probe = SyntheticProvider::new(&s.data.synthetic);
    let known = probe.universe().await.expect("universe")[3].symbol.clone();
    let cfg = ScanConfig {
        symbols: vec![known.clone(), "NOPE".into()],
        ..ScanConfig::from_settings(&s.scan)
    };
    let report = scan(&s, 2, cfg).await;
    assert_eq!(report.universe_size, 2);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(
        (
            report.failures[0].symbol.as_str(),
            report.failures[0].code.as_str()
        ),
        ("NOPE", "DATA_NOT_FOUND")
    );

    let cluster = start(&s, None, 1).await;
    let bad = ScanConfig {
        min_price: -1.0,
        top: Some(0),
        ..ScanConfig::from_settings(&s.scan)
    };
    let err = cluster.submit(bad).await.err().expect("rejected");
    assert_eq!(err.code, technic::error::ErrorCode::InvalidConfig);
    assert_eq!(
        err.suggestions.len(),
        2,
        "one fix per problem: {:?}",
        err.suggestions
    );
    cluster.shutdown().await;
}

async fn cached_cluster(s: &Settings) -> (LocalCluster, Arc<ScanCache>) {
    let target = "memory".parse().expect("target");
    let cache = technic::cache::build(&s.cache, &target)
        .await
        .expect("cache")
        .expect("memory cache");
    (start(s, Some(cache.clone()), 2).await, cache)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_scan_is_served_from_cached_features_with_identical_results() {
    // Every scan computes: the features path, not the scan-result cache.
    let mut s = settings(300, &[]);
    s.cache.scan_results = false;
    let (cluster, cache) = cached_cluster(&s).await;
    let cfg = ScanConfig::from_settings(&s.scan);
    let cold = submit_and_wait(&cluster, cfg.clone()).await;
    assert_eq!(cold.timing.cache_hit_rate, Some(0.0));
    let warm = submit_and_wait(&cluster, cfg.clone()).await;
    assert_eq!(warm.timing.cache_hit_rate, Some(1.0));
    assert_eq!(
        cold.results, warm.results,
        "cached features score exactly like fresh ones"
    );
    assert!(warm.warnings.is_empty());

    // Other weights and filters reuse the cached features: no bar is loaded again.
    let bars_misses = cache.kind_stats()[&technic::cache::Kind::Bars].misses;
    let reweighted = ScanConfig {
        min_price: 5.0,
        weights: technic::config::WeightSettings {
            trend: 1.0,
            ..cfg.weights
        },
        ..cfg
    };
    let r = submit_and_wait(&cluster, reweighted).await;
    assert_eq!(r.timing.cache_hit_rate, Some(1.0));
    assert_eq!(
        cache.kind_stats()[&technic::cache::Kind::Bars].misses,
        bars_misses
    );
    assert_ne!(ratings(&r), ratings(&warm));
    let stats = cache.kind_stats()[&technic::cache::Kind::Features];
    assert_eq!((stats.hits, stats.misses), (600, 300));
    // The most-requested ranking saw every symbol three times.
    let top = cache.analytics(3).await.most_requested;
    assert!(top.iter().all(|(_, n)| *n == 3), "{top:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warmer_loads_seeded_then_expected_this_hour_then_highest_dollar_volume_symbols() {
    use technic::cluster::{warm_once, PipelineContext};
    let s = settings(200, &[]);
    let target = "memory".parse().expect("target");
    let cache = technic::cache::build(&s.cache, &target)
        .await
        .expect("cache")
        .expect("memory");
    let provider: Arc<dyn MarketData> = Arc::new(SyntheticProvider::new(&s.data.synthetic));
    let universe = provider.universe().await.expect("universe");
    let seeds: Vec<String> = universe[..5].iter().map(|e| e.symbol.clone()).collect();
    // In each of the last three weeks, two symbols were requested 20 times in this hour
    // of the week, and two others 30 times six hours later: the model expects the first
    // two now, though plain frequency would pick the others.
    let now = chrono::Utc::now();
    let pick = |i: [usize; 2]| i.map(|i| universe[i].symbol.clone()).to_vec();
    for week in 1..=3 {
        let this_hour = now - chrono::Duration::weeks(week);
        let later = this_hour + chrono::Duration::hours(6);
        for (symbols, at, times) in [(pick([10, 11]), this_hour, 20), (pick([12, 13]), later, 30)] {
            for _ in 0..times {
                cache.record_requests_at(&symbols, "latest:500", at).await;
            }
        }
    }
    // Four symbols' dollar volumes are on record (from earlier scans' results).
    let volume = |i: usize, v: f64| (universe[i].symbol.clone(), v);
    cache
        .record_dollar_volumes(&[
            volume(20, 1e6),
            volume(21, 5e8),
            volume(22, 3e7),
            volume(23, 9e8),
        ])
        .await;
    let mut warm = s.cache.warm.clone();
    warm.symbols = seeds.clone();
    // Besides the seeds, three: the two expected now (the next two, tied with each other
    // at the cut, say nothing), then the highest dollar volume.
    warm.top_requested = 3;
    let ctx = PipelineContext {
        node_id: "t".into(),
        provider: provider.clone(),
        cache: Some(cache.clone()),
        queue: None,
        ml: Default::default(),
    };
    let cfg = ScanConfig::from_settings(&s.scan);
    let first = warm_once(&ctx, &warm, &cfg).await;
    assert_eq!(
        (first.candidates, first.loaded, first.fresh, first.failed),
        (8, 8, 0, 0)
    );
    // Fresh keys are not loaded again.
    let second = warm_once(&ctx, &warm, &cfg).await;
    assert_eq!((second.loaded, second.fresh), (0, 8));
    // A scan of exactly the warmed symbols is served entirely from the cache.
    let cluster = LocalCluster::start(&s, provider, Some(cache), 2)
        .await
        .expect("starts");
    let mut symbols = seeds;
    symbols.extend([10, 11, 23].map(|i| universe[i].symbol.clone()));
    let report = submit_and_wait(
        &cluster,
        ScanConfig {
            symbols,
            ..cfg.clone()
        },
    )
    .await;
    assert_eq!(report.timing.cache_hit_rate, Some(1.0));
    // Neither those requested at another hour nor the lower dollar volumes were warmed.
    let symbols = [12, 13, 20, 21, 22]
        .map(|i| universe[i].symbol.clone())
        .to_vec();
    let report = submit_and_wait(&cluster, ScanConfig { symbols, ..cfg }).await;
    assert_eq!(report.timing.cache_hit_rate, Some(0.0));
    cluster.shutdown().await;
}

/// A local cluster over a real redis-server, its scans owned through the scan book.
async fn start_on_redis(s: &Settings, server: &RedisServer, kind: ScanKind) -> LocalCluster {
    let provider: Arc<dyn MarketData> = Arc::new(SyntheticProvider::new(&s.data.synthetic));
    LocalCluster::start_on(
        s,
        provider,
        None,
        2,
        &QueueTarget::Redis(server.url()),
        kind,
        &technic::shutdown::Shutdown::new(),
    )
    .await
    .expect("cluster starts")
}

/// Over Redis, a scan started right after another gets its reports at once, although the
/// coordinator's results feed was blocked reading the first scan's stream: with a 20 s
/// `queue_block_ms`, a feed that waited out its blocked read would take 20 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_started_after_another_is_not_held_by_the_blocked_results_read() {
    let server = RedisServer::start();
    let mut s = settings(200, &[]);
    s.cluster.queue_block_ms = 20_000;
    s.cluster.visibility_timeout_ms = 60_000;
    let cluster = start_on_redis(&s, &server, ScanKind::OneShot).await;
    let config = ScanConfig::from_settings(&s.scan);
    for round in 0..3 {
        let report = tokio::time::timeout(
            Duration::from_secs(10),
            submit_and_wait(&cluster, config.clone()),
        )
        .await
        .unwrap_or_else(|_| panic!("scan {round} waited for the blocked read"));
        assert_eq!(report.universe_size, 200);
    }
    // No shutdown: closing waits out the workers' 20 s blocked reads.
}

/// A process whose own scan's lease lapsed (a Redis stall, a long pause) and that takes the
/// scan back itself, at the next epoch: the older handle is left without a verdict (its
/// steward stops with it), the newer one finishes with every symbol and writes the one
/// record at epoch 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_takes_its_own_scan_back_finishes_it_once() {
    let server = RedisServer::start();
    let mut s = settings(300, &[("TECHNIC_DATA__SYNTHETIC__LATENCY_MS", "20")]);
    // A long lease, renewed often: it lapses only because the test deletes it.
    s.cluster.lease_ms = 60_000;
    s.cluster.lease_renew_ms = 200;
    let want = ratings(&scan(&settings(300, &[]), 2, ScanConfig::from_settings(&s.scan)).await);
    let cluster = start_on_redis(&s, &server, ScanKind::Cluster).await;
    let first = cluster
        .submit(ScanConfig::from_settings(&s.scan))
        .await
        .expect("valid");
    let id = first.id.clone();
    let mut progress = first.progress.clone();
    progress.wait_for(|p| p.done >= 30).await.expect("progress");
    let prefix = "technic:v1:queue:{technic}";
    // The steward may renew between the delete and the sweep: then again.
    let second = loop {
        let deleted: u32 = query(
            server.port(),
            ::redis::cmd("DEL").arg(format!("{prefix}:lease:{id}")),
        );
        assert_eq!(deleted, 1, "the scan had a lease");
        let mut adopted = cluster.adopt_orphans().await;
        if let Some(h) = adopted.pop() {
            assert!(adopted.is_empty(), "one scan");
            break h;
        }
    };
    assert_eq!((second.id.as_str(), second.epoch), (id.as_str(), 2));
    match first.conclude().await {
        Concluded::Left(_) => {}
        Concluded::Ended(r) => panic!("the older ownership ended the scan: {:?}", r.progress),
    }
    let record = match second.conclude().await {
        Concluded::Ended(r) => r,
        Concluded::Left(e) => panic!("the newer ownership was dropped: {e:?}"),
    };
    let report = record.report.as_ref().expect("a report");
    assert_eq!(report.universe_size, 300);
    assert_eq!(report.scanned, 300, "every symbol once");
    assert_eq!(ratings(report), want);
    let (epoch, status): (String, String) = query(
        server.port(),
        ::redis::cmd("HMGET")
            .arg(format!("{prefix}:scan:{id}"))
            .arg("epoch")
            .arg("status"),
    );
    assert_eq!((epoch.as_str(), status.as_str()), ("2", "done"));
    let listed: u32 = query(
        server.port(),
        ::redis::cmd("ZCARD").arg(format!("{prefix}:history")),
    );
    assert_eq!(listed, 1, "one history entry");
    cluster.shutdown().await;
}
