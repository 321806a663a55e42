//! The scan book's protocol on a real redis-server and a real 3-master Redis Cluster:
//! leases, epochs and fencing, takeover, one-shot abandonment, the leader lease.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use support::redis::{RedisCluster, RedisServer};
use technic::cluster::{BookEntry, Lease, Progress, ScanBook, ScanKind, ScanRecord, Stage};
use technic::config::Settings;
use technic::redis_link::RedisUrl;
use technic::scan::ScanConfig;

/// A book on `url` for node `owner`, with a short lease.
fn book(url: &str, owner: &str) -> ScanBook {
    let mut settings = Settings::defaults();
    settings.cluster.lease_ms = 300;
    settings.cluster.lease_renew_ms = 100;
    ScanBook::open(&RedisUrl::parse(url).expect("url"), &settings, owner).expect("book")
}

fn config() -> ScanConfig {
    ScanConfig::from_settings(&Settings::defaults().scan)
}

fn record(id: &str, stage: Stage) -> ScanRecord {
    let mut progress = Progress::queued(id);
    progress.stage = stage;
    ScanRecord {
        id: id.into(),
        submitted_at: Utc::now(),
        finished_at: Utc::now(),
        config: config(),
        progress,
        report: None,
        error: None,
        report_json: Default::default(),
    }
}

/// Waits past a lease of 300 ms.
async fn lapse() {
    tokio::time::sleep(Duration::from_millis(450)).await;
}

async fn protocol(url: &str) {
    let a = Arc::new(book(url, "a"));
    let b = Arc::new(book(url, "b"));
    let p = Progress::queued("s1");

    a.create("s1", ScanKind::Cluster, Utc::now(), &config())
        .await
        .expect("create");
    assert_eq!(a.renew("s1", 1).await.expect("renew"), Lease::Held);
    assert!(a.progress("s1", 1, &p, None).await.expect("progress"));
    // Nobody takes a scan whose lease holds.
    assert!(b.take("s1").await.expect("take").is_none());
    let sweep = b.sweep().await.expect("sweep");
    assert_eq!(sweep.epochs.get("s1"), Some(&1));
    assert!(sweep.orphans.is_empty());
    lapse().await;
    let sweep = b.sweep().await.expect("sweep");
    assert_eq!(sweep.orphans, ["s1"], "a lapsed cluster scan is an orphan");
    assert!(
        sweep.abandoned.is_empty(),
        "a cluster scan is not abandoned"
    );
    let t = b.take("s1").await.expect("take").expect("taken");
    assert_eq!(t.epoch, 2);
    assert!(a.take("s1").await.expect("take").is_none(), "one taker");
    // The old owner is fenced off everything.
    assert_eq!(a.renew("s1", 1).await.expect("renew"), Lease::Lost);
    assert!(!a.progress("s1", 1, &p, None).await.expect("progress"));
    assert!(!a
        .finish(&record("s1", Stage::Done), 1)
        .await
        .expect("finish"));
    // The new owner ends it exactly once.
    assert_eq!(b.request_cancel("s1").await.ok(), Some(true));
    assert_eq!(b.renew("s1", 2).await.expect("renew"), Lease::CancelAsked);
    assert!(b
        .finish(&record("s1", Stage::Cancelled), 2)
        .await
        .expect("finish"));
    assert!(!b
        .finish(&record("s1", Stage::Cancelled), 2)
        .await
        .expect("finish"));
    assert_eq!(b.request_cancel("s1").await.ok(), Some(false));
    match a.get("s1").await.expect("get") {
        Some(BookEntry::Finished(r)) => assert_eq!(r.progress.stage, Stage::Cancelled),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.finished(10).await.expect("history")[0].id, "s1");
    assert!(a.sweep().await.expect("sweep").epochs.is_empty());

    // A one-shot scan whose lease lapsed is abandoned by the first sweep, not taken.
    a.create("s2", ScanKind::OneShot, Utc::now(), &config())
        .await
        .expect("create");
    lapse().await;
    assert!(b.take("s2").await.expect("take").is_none());
    let sweep = b.sweep().await.expect("sweep");
    assert_eq!(sweep.abandoned, ["s2"]);
    assert!(b.sweep().await.expect("sweep").abandoned.is_empty(), "once");
    match b.get("s2").await.expect("get") {
        Some(BookEntry::Finished(r)) => {
            assert_eq!(r.progress.stage, Stage::Abandoned);
            assert_eq!(
                r.error.as_ref().map(|e| e.code.as_str()),
                Some("SCAN_ABANDONED")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!a
        .finish(&record("s2", Stage::Done), 1)
        .await
        .expect("finish"));

    // The leader lease: one holder, renewed by it, taken by another once it lapses.
    assert!(a.lead().await.expect("lead"));
    assert!(!b.lead().await.expect("lead"));
    assert!(a.lead().await.expect("lead"));
    assert_eq!(b.leader().await.expect("leader").as_deref(), Some("a"));
    lapse().await;
    assert!(b.lead().await.expect("lead"));
    assert!(!a.lead().await.expect("lead"));
}

#[tokio::test]
async fn the_protocol_on_one_redis() {
    let redis = RedisServer::start();
    protocol(&redis.url()).await;
}

#[tokio::test]
async fn the_protocol_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    protocol(&cluster.target()).await;
}
