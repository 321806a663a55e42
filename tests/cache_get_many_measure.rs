//! The measurement behind `get_many` (ARCHITECTURE.md): 5,000 values of 20 KB read back
//! with MGET vs pipelined GETs (whole, in batches one after another, in batches at once) from
//! a local redis-server, and with MGET vs concurrent GETs vs the backend's own per-master
//! pipelines from the local 3-master cluster. A measurement, not a test, so it is ignored:
//!
//! `cargo test --release --test cache_get_many_measure -- --ignored --nocapture`

mod support;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use support::redis::{RedisCluster, RedisServer};
use technic::cache::{Cache, Kind, RedisCache, RedisClusterCache, RedisOptions};

fn opts() -> RedisOptions {
    RedisOptions {
        connect_timeout: Duration::from_millis(250),
        response_timeout: Duration::from_secs(1),
    }
}

fn bars_key(i: usize) -> String {
    Kind::Bars.key(&format!("SYM{i}:2024-06-28:500"))
}

fn bars_value(i: usize) -> Vec<u8> {
    (0..20_000).map(|j| ((i * 31 + j) % 251) as u8).collect()
}

type Variant<'a> = (
    &'static str,
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = usize> + Send + 'a>> + 'a>,
);

/// Runs every variant `runs` times, interleaved (so a burst of load elsewhere on the machine
/// hits them alike), and prints min and median per variant.
async fn measure(runs: usize, variants: &[Variant<'_>]) {
    let mut ms: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..runs {
        for (i, (_, f)) in variants.iter().enumerate() {
            let start = Instant::now();
            let n = f().await;
            ms[i].push(start.elapsed().as_secs_f64() * 1e3);
            assert_eq!(n, 5_000, "every value read");
        }
    }
    for ((name, _), mut v) in variants.iter().zip(ms) {
        v.sort_by(f64::total_cmp);
        println!(
            "{name:<52} min {:7.1} ms  median {:7.1} ms",
            v[0],
            v[runs / 2]
        );
    }
}

fn count(v: Vec<Option<Vec<u8>>>) -> usize {
    v.iter()
        .filter(|x| x.as_ref().is_some_and(|x| x.len() == 20_000))
        .count()
}

async fn mget<C: ::redis::aio::ConnectionLike + Send>(c: &mut C, keys: &[String]) -> usize {
    count(::redis::cmd("MGET").arg(keys).query_async(c).await.unwrap())
}

async fn pipelined_gets<C: ::redis::aio::ConnectionLike + Send>(
    c: &mut C,
    keys: &[String],
) -> usize {
    let mut pipe = ::redis::pipe();
    for k in keys {
        pipe.get(k);
    }
    count(pipe.query_async(c).await.unwrap())
}

async fn concurrent_gets(
    c: &::redis::cluster_async::ClusterConnection,
    keys: &[String],
    in_flight: usize,
) -> usize {
    use futures_util::stream::{self, StreamExt};
    let got: Vec<Option<Vec<u8>>> = stream::iter(keys.to_vec())
        .map(|key| {
            let mut c = c.clone();
            async move {
                ::redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut c)
                    .await
                    .unwrap()
            }
        })
        .buffered(in_flight)
        .collect()
        .await;
    count(got)
}

/// The measurement behind `get_many`'s choice (ARCHITECTURE.md): 5,000 values of 20 KB,
/// MGET vs pipelined GETs (whole, in chunks one after another, in chunks concurrently), on a
/// local redis-server and on the local 3-master cluster.
/// `cargo test --release --test cache_get_many_measure -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run it with --release --ignored --nocapture"]
async fn mget_vs_pipelined_get() {
    use futures_util::future::join_all;
    const RUNS: usize = 9;
    let keys: Vec<String> = (0..5_000).map(bars_key).collect();
    let entries: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), bars_value(i), Duration::from_secs(600)))
        .collect();

    let server = RedisServer::start();
    let cache = RedisCache::new(&server.url(), opts()).unwrap();
    cache.set_many(entries.clone()).await.unwrap();
    let client = ::redis::Client::open(server.url()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let timed = client
        .get_multiplexed_async_connection_with_config(
            &::redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(Duration::from_secs(1))),
        )
        .await
        .unwrap();
    let manager = ::redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    let (t, m) = (&timed, &manager);
    let (k, c, cache) = (&keys, &conn, &cache);
    let mut standalone: Vec<Variant> = vec![
        (
            "standalone: one MGET of 5,000",
            Box::new(move || Box::pin(async move { mget(&mut c.clone(), k).await })),
        ),
        (
            "standalone: one pipeline of 5,000 GETs",
            Box::new(move || Box::pin(async move { pipelined_gets(&mut c.clone(), k).await })),
        ),
    ];
    for (name, size) in [
        ("standalone: MGETs of 100, one after another", 100),
        ("standalone: MGETs of 250, one after another", 250),
        ("standalone: MGETs of 500, one after another", 500),
        ("standalone: MGETs of 1,000, one after another", 1_000),
    ] {
        standalone.push((
            name,
            Box::new(move || {
                Box::pin(async move {
                    let mut n = 0;
                    for chunk in k.chunks(size) {
                        n += mget(&mut c.clone(), chunk).await;
                    }
                    n
                })
            }),
        ));
    }
    for (name, size) in [
        ("standalone: pipelines of 100 GETs, one after another", 100),
        ("standalone: pipelines of 250 GETs, one after another", 250),
        ("standalone: pipelines of 500 GETs, one after another", 500),
        (
            "standalone: pipelines of 1,000 GETs, one after another",
            1_000,
        ),
    ] {
        standalone.push((
            name,
            Box::new(move || {
                Box::pin(async move {
                    let mut n = 0;
                    for chunk in k.chunks(size) {
                        n += pipelined_gets(&mut c.clone(), chunk).await;
                    }
                    n
                })
            }),
        ));
    }
    standalone.push((
        "standalone: MGETs of 500, concurrently",
        Box::new(move || {
            Box::pin(async move {
                join_all(
                    k.chunks(500)
                        .map(|chunk| async move { mget(&mut c.clone(), chunk).await }),
                )
                .await
                .into_iter()
                .sum()
            })
        }),
    ));
    standalone.push((
        "standalone: MGETs of 250, response timeout set",
        Box::new(move || {
            Box::pin(async move {
                let mut n = 0;
                for chunk in k.chunks(250) {
                    n += mget(&mut t.clone(), chunk).await;
                }
                n
            })
        }),
    ));
    standalone.push((
        "standalone: MGETs of 250, ConnectionManager",
        Box::new(move || {
            Box::pin(async move {
                let mut n = 0;
                for chunk in k.chunks(250) {
                    n += mget(&mut m.clone(), chunk).await;
                }
                n
            })
        }),
    ));
    standalone.push((
        "standalone: RedisCache::get_many",
        Box::new(move || Box::pin(async move { count(cache.get_many(k).await.unwrap()) })),
    ));
    measure(RUNS, &standalone).await;

    let cluster = RedisCluster::start();
    let ccache = RedisClusterCache::new(&cluster.urls(), opts()).unwrap();
    ccache.set_many(entries).await.unwrap();
    let cclient = ::redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    let cconn = cclient.get_async_connection().await.unwrap();
    let (cc, ccache) = (&cconn, &ccache);
    let clustered: Vec<Variant> = vec![
        (
            "cluster: one MGET of 5,000 (split per slot)",
            Box::new(move || Box::pin(async move { mget(&mut cc.clone(), k).await })),
        ),
        (
            "cluster: MGETs of 500, concurrently",
            Box::new(move || {
                Box::pin(async move {
                    join_all(
                        k.chunks(500)
                            .map(|chunk| async move { mget(&mut cc.clone(), chunk).await }),
                    )
                    .await
                    .into_iter()
                    .sum()
                })
            }),
        ),
        (
            "cluster: 5,000 GETs, 16 in flight",
            Box::new(move || Box::pin(concurrent_gets(cc, k, 16))),
        ),
        (
            "cluster: 5,000 GETs, 64 in flight",
            Box::new(move || Box::pin(concurrent_gets(cc, k, 64))),
        ),
        (
            "cluster: 5,000 GETs, 256 in flight",
            Box::new(move || Box::pin(concurrent_gets(cc, k, 256))),
        ),
        (
            "cluster: RedisClusterCache::get_many",
            Box::new(move || Box::pin(async move { count(ccache.get_many(k).await.unwrap()) })),
        ),
    ];
    measure(RUNS, &clustered).await;
}
