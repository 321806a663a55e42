//! One conformance suite for every `Cache` backend (memory, Redis, Redis Cluster) against
//! real `redis-server` processes, plus what only Redis can show: `clear` sparing foreign keys
//! on every master, and outages that fail fast and heal without re-creating the cache.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use support::redis::{query, RedisCluster, RedisServer};
use support::wait::wait_for_async;
use technic::cache::predict::{self, Slot};
use technic::cache::{
    open, Cache, CacheError, CacheTarget, Counts, Kind, KindCounts, MemoryCache, OpenOptions,
    RedisCache, RedisClusterCache, RedisOptions,
};

const BARS: usize = 30;
const FEATURES: usize = 20;
/// How long an operation on an unreachable Redis may take (timeouts are 250 ms / 1 s).
const FAIL_FAST: Duration = Duration::from_secs(3);
/// How long a cache may take to work again once Redis is back.
const RECOVERY: Duration = Duration::from_secs(15);

fn opts() -> RedisOptions {
    RedisOptions {
        connect_timeout: Duration::from_millis(250),
        response_timeout: Duration::from_secs(1),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn bars_key(i: usize) -> String {
    Kind::Bars.key(&format!("SYM{i}:2024-06-28:500"))
}

fn features_key(i: usize) -> String {
    Kind::Features.key(&format!("SYM{i}:2024-06-28:500:v1"))
}

/// ~20 KB, different per symbol, with zero bytes in it (values are binary).
fn bars_value(i: usize) -> Vec<u8> {
    (0..20_000).map(|j| ((i * 31 + j) % 251) as u8).collect()
}

fn assert_within(what: &str, got: Option<Duration>, want: Duration) {
    let got = got.unwrap_or_else(|| panic!("{what}: no TTL"));
    assert!(
        got <= want && got + Duration::from_secs(2) >= want,
        "{what}: TTL {got:?}, expected about {want:?}"
    );
}

/// The contract every backend keeps.
async fn conformance(cache: &dyn Cache) {
    let b = cache.backend();
    assert_eq!(cache.clear().await.unwrap(), 0, "{b}: starts empty");

    // Misses.
    let probe = vec![bars_key(0), features_key(0), Kind::Scan.key("nothing")];
    assert_eq!(
        cache.get_many(&probe).await.unwrap(),
        vec![None, None, None],
        "{b}: misses"
    );
    assert_eq!(
        cache.get_many(&[]).await.unwrap(),
        Vec::<Option<Vec<u8>>>::new()
    );
    assert_eq!(
        cache.ttl(&bars_key(0)).await.unwrap(),
        None,
        "{b}: no TTL for a missing key"
    );

    // Round trip, each entry with its own TTL.
    let mut entries = Vec::new();
    for i in 0..BARS {
        entries.push((bars_key(i), bars_value(i), Duration::from_secs(3600)));
    }
    for i in 0..FEATURES {
        entries.push((
            features_key(i),
            format!("features {i}").into_bytes(),
            Duration::from_secs(300),
        ));
    }
    entries.push((Kind::Scan.key("empty"), Vec::new(), Duration::from_secs(60)));
    cache.set_many(entries).await.unwrap();
    cache.set_many(Vec::new()).await.unwrap();

    let keys = vec![
        bars_key(7),
        Kind::Bars.key("MISSING"),
        features_key(3),
        Kind::Scan.key("empty"),
    ];
    assert_eq!(
        cache.get_many(&keys).await.unwrap(),
        vec![
            Some(bars_value(7)),
            None,
            Some(b"features 3".to_vec()),
            Some(Vec::new())
        ],
        "{b}: values come back in key order, misses as None"
    );
    let all: Vec<String> = (0..BARS).map(bars_key).collect();
    let got = cache.get_many(&all).await.unwrap();
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, v)| v.as_deref() == Some(&bars_value(i)[..])),
        "{b}: every bar set"
    );

    // TTLs as the backend reports them.
    assert_within(
        &format!("{b} bars"),
        cache.ttl(&bars_key(1)).await.unwrap(),
        Duration::from_secs(3600),
    );
    assert_within(
        &format!("{b} features"),
        cache.ttl(&features_key(1)).await.unwrap(),
        Duration::from_secs(300),
    );
    assert_within(
        &format!("{b} scan"),
        cache.ttl(&Kind::Scan.key("empty")).await.unwrap(),
        Duration::from_secs(60),
    );

    // Overwriting replaces the value and the TTL.
    cache
        .set_many(vec![(
            bars_key(0),
            b"fresh".to_vec(),
            Duration::from_secs(10),
        )])
        .await
        .unwrap();
    assert_eq!(
        cache.get_many(&[bars_key(0)]).await.unwrap(),
        vec![Some(b"fresh".to_vec())]
    );
    assert_within(
        &format!("{b} overwritten"),
        cache.ttl(&bars_key(0)).await.unwrap(),
        Duration::from_secs(10),
    );

    // A short TTL expires.
    let short = Kind::Ml.key("short");
    cache
        .set_many(vec![(
            short.clone(),
            b"x".to_vec(),
            Duration::from_millis(150),
        )])
        .await
        .unwrap();
    let start = Instant::now();
    while cache.get_many(std::slice::from_ref(&short)).await.unwrap()[0].is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{b}: a 150 ms TTL did not expire"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(cache.ttl(&short).await.unwrap(), None);

    // Keys per kind, every kind listed.
    let expected: BTreeMap<Kind, u64> = BTreeMap::from([
        (Kind::Bars, BARS as u64),
        (Kind::Features, FEATURES as u64),
        (Kind::Ml, 0),
        (Kind::Scan, 1),
        (Kind::Meta, 0),
    ]);
    assert_eq!(
        cache.keys_per_kind().await.unwrap(),
        expected,
        "{b}: keys per kind"
    );

    // Most requested, most first; the ranking is not a cache entry.
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    cache
        .record_requests(
            &s(&["AAPL", "MSFT", "AAPL", "TSLA", "AAPL", "MSFT"]),
            "latest:500",
            now_ms(),
        )
        .await
        .unwrap();
    cache
        .record_requests(&s(&["NVDA"]), "latest:500", now_ms())
        .await
        .unwrap();
    cache
        .record_requests(&[], "latest:500", now_ms())
        .await
        .unwrap();
    let pairs = |v: &[(&str, u64)]| {
        v.iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        cache.most_requested(2).await.unwrap(),
        pairs(&[("AAPL", 3), ("MSFT", 2)]),
        "{b}"
    );
    assert_eq!(
        cache.most_requested(10).await.unwrap(),
        pairs(&[("AAPL", 3), ("MSFT", 2), ("NVDA", 1), ("TSLA", 1)]),
        "{b}: ties by symbol"
    );
    assert_eq!(
        cache.most_requested(3).await.unwrap(),
        pairs(&[("AAPL", 3), ("MSFT", 2), ("NVDA", 1)]),
        "{b}: a tie at the cut goes to the first symbol"
    );
    assert_eq!(cache.most_requested(0).await.unwrap(), vec![]);
    // Recency: the last request of each symbol, newest first.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let before = chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    cache
        .record_requests(&s(&["TSLA"]), "2024-06-03:250", now_ms())
        .await
        .unwrap();
    let v = |variant: &str, symbol: &str| (variant.to_string(), symbol.to_string());
    assert_eq!(
        cache.recently_requested(before, 10).await.unwrap(),
        vec![v("2024-06-03:250", "TSLA")],
        "{b}: only what was requested since, with its variant"
    );
    let all = cache.recently_requested(0, 10).await.unwrap();
    assert_eq!(
        all.first(),
        Some(&v("2024-06-03:250", "TSLA")),
        "{b}: {all:?}"
    );
    assert!(
        all.contains(&v("latest:500", "TSLA")),
        "{b}: per variant: {all:?}"
    );
    assert_eq!(all.len(), 5, "{b}: {all:?}");
    assert_eq!(
        cache.recently_requested(0, 2).await.unwrap().len(),
        2,
        "{b}"
    );
    assert_eq!(
        cache.most_requested(1).await.unwrap(),
        pairs(&[("AAPL", 3)]),
        "{b}: recency leaves the counts"
    );
    // Dollar volumes: the latest per symbol, highest first.
    let dv = |v: &[(&str, f64)]| {
        v.iter()
            .map(|(s, x)| (s.to_string(), *x))
            .collect::<Vec<_>>()
    };
    cache
        .record_dollar_volumes(&dv(&[("AAPL", 5e9), ("TSLA", 2e9), ("NVDA", 9e9)]))
        .await
        .unwrap();
    cache
        .record_dollar_volumes(&dv(&[("TSLA", 7e9)]))
        .await
        .unwrap();
    assert_eq!(
        cache.top_dollar_volume(2).await.unwrap(),
        s(&["NVDA", "TSLA"]),
        "{b}"
    );
    assert_eq!(
        cache.top_dollar_volume(0).await.unwrap(),
        Vec::<String>::new()
    );
    // The request model: each request adds its forward-decayed weight to its era's global
    // slot and to its hour of the week's slot. 2024-06-03 is a Monday, in era 0 (which
    // ends in November 2024).
    let monday = chrono::DateTime::parse_from_rfc3339("2024-06-03T14:30:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let next = monday + chrono::Duration::days(7) + chrono::Duration::hours(1);
    let mut observed = predict::Weights::default();
    observed.observe(
        &s(&["AMD", "AMD", "INTC"]),
        monday,
        predict::DEFAULT_HALF_LIFE,
    );
    cache.add_request_weights(&observed).await.unwrap();
    let mut observed = predict::Weights::default();
    observed.observe(&s(&["AMD"]), next, predict::DEFAULT_HALF_LIFE);
    cache.add_request_weights(&observed).await.unwrap();
    let half_life = predict::DEFAULT_HALF_LIFE;
    let (era, w) = predict::stored_weight(monday, half_life);
    let (era_next, w_next) = predict::stored_weight(next, half_life);
    assert_eq!((era, era_next), (0, 0));
    let ratio = w_next / w;
    assert!(
        (ratio - 2f64.powf(1.0 + 1.0 / 168.0)).abs() < 1e-9,
        "a week and an hour later: twice and a little: {ratio}"
    );
    let slots = cache
        .request_slots(&[
            (0, Slot::All),
            (0, Slot::Hour(14)),
            (0, Slot::Hour(15)),
            (0, Slot::Hour(16)),
        ])
        .await
        .unwrap();
    let sorted = |mut v: Vec<(String, f64)>| {
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let got: Vec<_> = slots.into_iter().map(sorted).collect();
    assert_eq!(
        got,
        vec![
            dv(&[("AMD", 2.0 * w + w_next), ("INTC", w)]),
            dv(&[("AMD", 2.0 * w), ("INTC", w)]),
            dv(&[("AMD", w_next)]),
            vec![],
        ],
        "{b}"
    );
    assert_eq!(
        cache.keys_per_kind().await.unwrap(),
        expected,
        "{b}: ranking is not counted"
    );

    // Memory.
    let mem = cache.memory().await.unwrap();
    assert!(mem.used_bytes > 0, "{b}: memory used after writes: {mem:?}");
    assert!(
        mem.peak_bytes >= mem.used_bytes,
        "{b}: peak >= used: {mem:?}"
    );

    // Clear removes every entry (and the ranking).
    let removed = cache.clear().await.unwrap();
    assert_eq!(
        removed,
        (BARS + FEATURES + 1) as u64,
        "{b}: entries cleared"
    );
    let zero: BTreeMap<Kind, u64> = Kind::ALL.iter().map(|k| (*k, 0)).collect();
    assert_eq!(
        cache.keys_per_kind().await.unwrap(),
        zero,
        "{b}: nothing left"
    );
    assert_eq!(
        cache.get_many(&keys).await.unwrap(),
        vec![None, None, None, None]
    );
    assert_eq!(
        cache.most_requested(10).await.unwrap(),
        vec![],
        "{b}: ranking cleared"
    );
    assert_eq!(
        cache.recently_requested(0, 10).await.unwrap(),
        Vec::<(String, String)>::new(),
        "{b}: recency cleared"
    );
    assert_eq!(
        cache.top_dollar_volume(10).await.unwrap(),
        Vec::<String>::new(),
        "{b}: dollar volumes cleared"
    );
    assert_eq!(cache.clear().await.unwrap(), 0, "{b}: clear is idempotent");
}

/// The cluster's statistics on a shared backend: two nodes' deltas add up per node and per
/// kind, the buckets hold the hits and misses of their 10 seconds, `clear` (the cache's
/// entries) leaves them, and the memory backend keeps none (its process's counters are
/// the whole story).
async fn shared_stats_conformance(cache: &dyn Cache) {
    let b = cache.backend();
    let counts = |hits, misses, errors| -> Counts {
        [(
            Kind::Features,
            KindCounts {
                hits,
                misses,
                errors,
                decode_errors: 0,
            },
        )]
        .into_iter()
        .collect()
    };
    let t0: i64 = 1_800_000_003_000; // 10 s bucket starting at 1_800_000_000 s
    cache.add_stats("w1", &counts(5, 2, 0), t0).await.unwrap();
    cache
        .add_stats("w2", &counts(7, 0, 0), t0 + 1_000)
        .await
        .unwrap();
    cache
        .add_stats("w1", &counts(3, 1, 1), t0 + 12_000)
        .await
        .unwrap();
    if b == "memory" {
        assert_eq!(
            cache.shared_stats(t0).await.unwrap(),
            None,
            "{b}: per process"
        );
        return;
    }
    let s = cache
        .shared_stats(t0 + 12_000)
        .await
        .unwrap()
        .expect("shared");
    assert_eq!(s.nodes.len(), 2, "{b}: {s:?}");
    let w1 = s.nodes["w1"].per_kind[&Kind::Features];
    assert_eq!((w1.hits, w1.misses, w1.errors), (8, 3, 1), "{b}");
    assert_eq!(s.nodes["w1"].at_ms, t0 + 12_000, "{b}");
    assert_eq!(s.nodes["w2"].per_kind[&Kind::Features].hits, 7, "{b}");
    assert_eq!(
        s.nodes["w2"].per_kind[&Kind::Bars].hits,
        0,
        "{b}: every kind listed"
    );
    assert_eq!(s.buckets.len(), 360, "{b}: an hour of 10 s buckets");
    let tail: Vec<(i64, u64, u64)> = s.buckets[358..].to_vec();
    assert_eq!(
        tail,
        vec![(1_800_000_000, 12, 2), (1_800_000_010, 3, 1)],
        "{b}: hits and misses per bucket"
    );
    cache.clear().await.unwrap();
    let after = cache
        .shared_stats(t0 + 12_000)
        .await
        .unwrap()
        .expect("shared");
    assert_eq!(
        after.nodes.len(),
        2,
        "{b}: clear removes cache entries only"
    );
}

#[tokio::test]
async fn conformance_memory() {
    let cache = MemoryCache::new(64 * 1024 * 1024);
    conformance(&cache).await;
    shared_stats_conformance(&cache).await;
}

#[tokio::test]
async fn conformance_redis() {
    let server = RedisServer::start();
    let cache = RedisCache::new(&server.url(), opts()).unwrap();
    conformance(&cache).await;
    shared_stats_conformance(&cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_redis_cluster() {
    let cluster = RedisCluster::start();
    let cache = RedisClusterCache::new(&cluster.urls(), opts()).unwrap();
    conformance(&cache).await;
    shared_stats_conformance(&cache).await;
}

#[tokio::test]
async fn open_builds_each_backend() {
    let o = OpenOptions::default();
    assert!(open(&CacheTarget::None, &o).await.unwrap().is_none());
    let memory = open(&CacheTarget::Memory, &o).await.unwrap().unwrap();
    assert_eq!(memory.backend(), "memory");
    // Nothing listens on these ports: opening must not connect.
    let redis = open(&"redis://127.0.0.1:1".parse().unwrap(), &o)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(redis.backend(), "redis");
    let cluster = open(
        &"redis-cluster://127.0.0.1:1,127.0.0.1:2".parse().unwrap(),
        &o,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(cluster.backend(), "redis-cluster");
    let bad = open(&CacheTarget::Redis("redis://user:secret@".into()), &o).await;
    match bad {
        Err(CacheError::InvalidUrl { url, .. }) => assert!(!url.contains("secret"), "{url}"),
        other => panic!(
            "expected InvalidUrl, got {:?}",
            other.map(|c| c.map(|c| c.backend()))
        ),
    }
}

fn foreign_write(port: u16, key: &str) {
    let _: () = query(port, ::redis::cmd("SET").arg(key).arg("not ours"));
}

fn foreign_read(port: u16, key: &str) -> Option<String> {
    query(port, ::redis::cmd("GET").arg(key))
}

fn technic_keys_on(port: u16) -> usize {
    let keys: Vec<String> = query(port, ::redis::cmd("KEYS").arg("technic:*"));
    keys.len()
}

async fn fill(cache: &dyn Cache) -> Vec<String> {
    let keys: Vec<String> = (0..BARS).map(bars_key).collect();
    let entries = keys
        .iter()
        .map(|k| (k.clone(), b"v".to_vec(), Duration::from_secs(600)))
        .collect();
    cache.set_many(entries).await.unwrap();
    keys
}

#[tokio::test]
async fn clear_spares_foreign_keys_redis() {
    let server = RedisServer::start();
    let cache = RedisCache::new(&server.url(), opts()).unwrap();
    foreign_write(server.port(), "other:key");
    foreign_write(server.port(), "technic"); // a prefix of ours, but not `technic:*`
                                             // The cluster's keys share the prefix but are not cache: the work queue (its in-flight
                                             // shards) and the node registry must survive a cache clear.
    let cluster_keys = [
        "technic:v1:queue:{technic}:shards",
        "technic:v1:nodes:{technic}:info",
    ];
    for k in cluster_keys {
        foreign_write(server.port(), k);
    }
    fill(&cache).await;
    cache
        .record_requests(&["AAPL".into()], "latest:500", now_ms())
        .await
        .unwrap();
    // The entries, the two request-tracking sets, the cluster's keys.
    assert_eq!(
        technic_keys_on(server.port()),
        BARS + 2 + cluster_keys.len()
    );

    assert_eq!(cache.clear().await.unwrap(), BARS as u64);
    assert_eq!(technic_keys_on(server.port()), cluster_keys.len());
    for k in cluster_keys {
        assert_eq!(
            foreign_read(server.port(), k).as_deref(),
            Some("not ours"),
            "{k}"
        );
    }
    assert_eq!(
        foreign_read(server.port(), "other:key").as_deref(),
        Some("not ours")
    );
    assert_eq!(
        foreign_read(server.port(), "technic").as_deref(),
        Some("not ours")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_spares_foreign_keys_cluster() {
    let cluster = RedisCluster::start();
    let cache = RedisClusterCache::new(&cluster.urls(), opts()).unwrap();
    let keys = fill(&cache).await;

    // Our keys live on all three masters, and so do foreign ones.
    let masters: BTreeSet<u16> = keys.iter().map(|k| cluster.master_of(k)).collect();
    assert_eq!(masters.len(), 3, "keys spread over every master");
    let mut foreign = Vec::new();
    for i in 0.. {
        let key = format!("other:key:{i}");
        let port = cluster.master_of(&key);
        if !foreign.iter().any(|(_, p)| *p == port) {
            foreign_write(port, &key);
            foreign.push((key, port));
        }
        if foreign.len() == 3 {
            break;
        }
    }
    let before: usize = cluster.ports().iter().map(|p| technic_keys_on(*p)).sum();
    assert_eq!(before, BARS);

    assert_eq!(cache.clear().await.unwrap(), BARS as u64);
    for port in cluster.ports() {
        assert_eq!(
            technic_keys_on(port),
            0,
            "master {port} still holds technic keys"
        );
    }
    for (key, port) in &foreign {
        assert_eq!(
            foreign_read(*port, key).as_deref(),
            Some("not ours"),
            "{key} on {port}"
        );
    }
}

/// Every operation fails with `Unavailable` within [`FAIL_FAST`].
async fn assert_unavailable_fast(cache: &dyn Cache) {
    let b = cache.backend();
    macro_rules! check {
        ($name:literal, $op:expr) => {{
            let start = Instant::now();
            let r = $op.await;
            let took = start.elapsed();
            assert!(
                matches!(r, Err(CacheError::Unavailable(_))),
                "{b} {}: expected Unavailable, got {r:?}",
                $name
            );
            assert!(took < FAIL_FAST, "{b} {}: took {took:?}", $name);
            println!("{b} {} with Redis down: Unavailable in {took:?}", $name);
        }};
    }
    check!("get_many", cache.get_many(&[bars_key(0)]));
    check!(
        "set_many",
        cache.set_many(vec![(bars_key(0), b"v".to_vec(), Duration::from_secs(60))])
    );
    check!("ttl", cache.ttl(&bars_key(0)));
    check!("keys_per_kind", cache.keys_per_kind());
    check!("memory", cache.memory());
    check!("clear", cache.clear());
    check!(
        "record_requests",
        cache.record_requests(&["AAPL".into()], "latest:500", now_ms())
    );
    check!("most_requested", cache.most_requested(5));
    check!("recently_requested", cache.recently_requested(0, 5));
    check!("top_dollar_volume", cache.top_dollar_volume(5));
}

/// Waits until the cache works again, then proves a write and a read go through.
async fn assert_recovers(cache: &dyn Cache) {
    let key = bars_key(42);
    wait_for_async("set after restart", RECOVERY, || {
        cache.set_many(vec![(
            key.clone(),
            b"back".to_vec(),
            Duration::from_secs(60),
        )])
    })
    .await;
    assert_eq!(
        cache.get_many(std::slice::from_ref(&key)).await.unwrap(),
        vec![Some(b"back".to_vec())]
    );
    assert!(cache.keys_per_kind().await.unwrap()[&Kind::Bars] >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_fails_fast_and_recovers() {
    let mut server = RedisServer::start();
    let cache = RedisCache::new(&server.url(), opts()).unwrap();
    fill(&cache).await;

    server.kill();
    assert_unavailable_fast(&cache).await;
    // Still failing fast on a second round (the reconnect attempts are bounded too).
    assert_unavailable_fast(&cache).await;

    server.restart();
    assert_recovers(&cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_hung_times_out_and_recovers() {
    let server = RedisServer::start();
    let cache = RedisCache::new(&server.url(), opts()).unwrap();
    fill(&cache).await;

    // Connections stay open but nothing answers: the response timeout, not the OS, ends it.
    server.pause();
    assert_unavailable_fast(&cache).await;

    server.resume();
    assert_recovers(&cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_then_up() {
    let mut server = RedisServer::start();
    server.kill();
    let cache = RedisCache::new(&server.url(), opts()).expect("constructing never connects");
    assert_unavailable_fast(&cache).await;

    server.restart();
    assert_recovers(&cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_down_at_start_killed_and_restarted() {
    let mut cluster = RedisCluster::start();
    cluster.kill();
    let cache = open(&cluster.target().parse().unwrap(), &OpenOptions::default())
        .await
        .expect("opening never connects")
        .expect("a cache");
    assert_unavailable_fast(cache.as_ref()).await;

    cluster.restart();
    assert_recovers(cache.as_ref()).await;

    // Killed while the cache holds a working connection.
    cluster.kill();
    assert_unavailable_fast(cache.as_ref()).await;
    cluster.restart();
    assert_recovers(cache.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_hung_times_out_and_recovers() {
    let cluster = RedisCluster::start();
    let cache = RedisClusterCache::new(&cluster.urls(), opts()).unwrap();
    fill(&cache).await;

    cluster.pause();
    assert_unavailable_fast(&cache).await;

    cluster.resume();
    cluster.wait_ok();
    assert_recovers(&cache).await;
}

/// Reads are batched per master from a cached slot map; after a reshard the map is stale,
/// and reads must still return every value (through the fallback) and then the new map.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_reads_survive_a_reshard() {
    let cluster = RedisCluster::start();
    let cache = RedisClusterCache::new(&cluster.urls(), opts()).unwrap();
    let keys: Vec<String> = (0..2_000).map(bars_key).collect();
    let value = |i: usize| format!("v{i}").into_bytes();
    let entries = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), value(i), Duration::from_secs(600)))
        .collect();
    cache.set_many(entries).await.unwrap();
    let want: Vec<Option<Vec<u8>>> = (0..keys.len()).map(|i| Some(value(i))).collect();
    assert_eq!(cache.get_many(&keys).await.unwrap(), want);

    let before: Vec<u16> = keys.iter().map(|k| cluster.master_of(k)).collect();
    cluster.reshard(300);
    let moved = keys
        .iter()
        .zip(&before)
        .filter(|(k, port)| cluster.master_of(k) != **port)
        .count();
    assert!(moved > 0, "the reshard moved none of our keys");

    assert_eq!(cache.get_many(&keys).await.unwrap(), want, "stale map");
    assert_eq!(cache.get_many(&keys).await.unwrap(), want, "refreshed map");
}
