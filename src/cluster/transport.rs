//! How shard results travel from workers to the coordinator.
//!
//! In one process ([`ActorReporter`]) a worker sends its report to the coordinator actor.
//! Across processes ([`RedisReporter`]) it appends the report, MessagePack-encoded, to the
//! scan's results stream in Redis, and the coordinator's [`ResultsFeed`] reads the streams
//! of its running scans and hands the reports to the coordinator actor. Either way the
//! coordinator sees the same messages and deduplicates by (scan id, symbol), so a shard
//! that is re-delivered, or reported twice, never double-counts.
//!
//! A worker acks a shard only after its report was accepted: a report that cannot be sent
//! leaves the shard to be delivered again, so no result is lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use ractor::ActorRef;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::{error, warn};

use super::coordinator::CoordinatorMsg;
use super::pipeline::ShardReport;
use super::queue::QueueError;
use super::redis_queue::{RedisStreamsQueue, ResultEntry};
use super::shard::Shard;
use crate::shutdown::Shutdown;

/// Why a report was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    /// The in-process coordinator stopped: the worker should stop too.
    #[error("the coordinator is gone")]
    CoordinatorGone,
    /// The results channel failed (after retries): leave the shard for re-delivery.
    #[error("cannot report results: {0}")]
    Unavailable(String),
}

/// Where a worker's reports go.
#[async_trait]
pub trait Reporter: Send + Sync + 'static {
    async fn shard_done(&self, report: ShardReport) -> Result<(), ReportError>;
    /// Shards whose delivery attempts ran out, and why: their symbols are reported failed.
    async fn shards_exhausted(&self, shards: Vec<Shard>, reason: String)
        -> Result<(), ReportError>;
    /// Every worker of this node failed and the restart limit was reached.
    fn workers_lost(&self, reason: &str);
}

/// A report on the wire (one results-stream entry).
#[derive(Debug, Serialize, Deserialize)]
enum WorkerEvent {
    ShardDone(ShardReport),
    Exhausted { shards: Vec<Shard>, reason: String },
}

/// Reports to the coordinator actor of this process.
pub struct ActorReporter(pub ActorRef<CoordinatorMsg>);

#[async_trait]
impl Reporter for ActorReporter {
    async fn shard_done(&self, report: ShardReport) -> Result<(), ReportError> {
        self.0
            .send_message(CoordinatorMsg::ShardDone(report))
            .map_err(|_| ReportError::CoordinatorGone)
    }

    async fn shards_exhausted(
        &self,
        shards: Vec<Shard>,
        reason: String,
    ) -> Result<(), ReportError> {
        self.0
            .send_message(CoordinatorMsg::ShardsExhausted(shards, reason))
            .map_err(|_| ReportError::CoordinatorGone)
    }

    fn workers_lost(&self, reason: &str) {
        let _ = self
            .0
            .send_message(CoordinatorMsg::WorkersLost(reason.to_string()));
    }
}

/// Reports through the scans' results streams in Redis.
pub struct RedisReporter(pub Arc<RedisStreamsQueue>);

impl RedisReporter {
    async fn publish(&self, scan_id: &str, event: &WorkerEvent) -> Result<(), ReportError> {
        let payload = rmp_serde::to_vec_named(event)
            .map_err(|e| ReportError::Unavailable(format!("encode report: {e}")))?;
        (|| self.0.publish_result(scan_id, &payload))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_delay(Duration::from_secs(1))
                    .with_max_times(5)
                    .with_jitter(),
            )
            .notify(|e: &QueueError, after| {
                warn!(scan_id, error = %e, retry_in_ms = after.as_millis() as u64, "cannot publish a shard report; retrying");
            })
            .await
            .map_err(|e| ReportError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl Reporter for RedisReporter {
    /// Staged in the queue handle's outbox: it rides, with the shard's ack, in the worker's
    /// next pull (one round trip per shard), and is retried with the one after if that fails.
    async fn shard_done(&self, report: ShardReport) -> Result<(), ReportError> {
        let scan_id = report.scan_id.clone();
        let payload = rmp_serde::to_vec_named(&WorkerEvent::ShardDone(report))
            .map_err(|e| ReportError::Unavailable(format!("encode report: {e}")))?;
        self.0.stage_result(&scan_id, payload);
        Ok(())
    }

    async fn shards_exhausted(
        &self,
        shards: Vec<Shard>,
        reason: String,
    ) -> Result<(), ReportError> {
        let mut by_scan: HashMap<String, Vec<Shard>> = HashMap::new();
        for s in shards {
            by_scan.entry(s.scan_id.clone()).or_default().push(s);
        }
        for (scan_id, shards) in by_scan {
            let event = WorkerEvent::Exhausted {
                shards,
                reason: reason.clone(),
            };
            self.publish(&scan_id, &event).await?;
        }
        Ok(())
    }

    fn workers_lost(&self, reason: &str) {
        // The node stops (its pool is empty); its registry entry expires and shows it down.
        error!(reason, "every worker of this node failed");
    }
}

/// A results stream entry as the coordinator's message.
pub fn decode(entry: &ResultEntry) -> CoordinatorMsg {
    match rmp_serde::from_slice::<WorkerEvent>(&entry.payload) {
        Ok(WorkerEvent::ShardDone(r)) => CoordinatorMsg::ShardDone(r),
        Ok(WorkerEvent::Exhausted { shards, reason }) => {
            CoordinatorMsg::ShardsExhausted(shards, reason)
        }
        Err(e) => {
            // Most likely a worker of another version. Its shard was acked, so the scan
            // could never complete: fail it, visibly.
            error!(scan_id = %entry.scan_id, error = %e, "unreadable shard report");
            CoordinatorMsg::ReportUnreadable(entry.scan_id.clone(), e.to_string())
        }
    }
}

/// A scan's reports so far, for its new owner: the messages and the entry they end at.
pub async fn read_past(
    queue: &RedisStreamsQueue,
    scan_id: &str,
) -> Result<(Vec<CoordinatorMsg>, String), QueueError> {
    let entries = queue.read_all_results(scan_id).await?;
    let cursor = entries
        .last()
        .map_or_else(|| "0-0".into(), |e| e.id.clone());
    Ok((entries.iter().map(decode).collect(), cursor))
}

/// The coordinator's side of the Redis results streams: one task reads the streams of the
/// followed scans and forwards each report to the coordinator actor.
pub struct ResultsFeed {
    queue: Arc<RedisStreamsQueue>,
    /// Followed scan ids and the last entry id read from each.
    cursors: Mutex<HashMap<String, String>>,
    wake: Notify,
    reader: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Single inserts/removes only: a panic cannot leave the map inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ResultsFeed {
    /// `reader` names the blocking connection the reads use.
    pub fn new(queue: Arc<RedisStreamsQueue>, reader: String) -> Arc<Self> {
        Arc::new(ResultsFeed {
            queue,
            cursors: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            reader,
        })
    }

    /// Starts the reading task, forwarding to `coordinator`; it ends when `shutdown` is
    /// triggered (within one blocking read) or when the coordinator stops.
    pub fn start(self: &Arc<Self>, coordinator: ActorRef<CoordinatorMsg>, shutdown: &Shutdown) {
        let me = Arc::clone(self);
        let stop = shutdown.clone();
        shutdown.spawn(async move { me.run(coordinator, stop).await });
    }

    /// Starts reading a scan's results after the entry `cursor` (`0-0`: from the start).
    pub fn follow(&self, scan_id: &str, cursor: &str) {
        lock(&self.cursors).insert(scan_id.to_string(), cursor.to_string());
        self.wake.notify_one();
    }

    /// Stops reading a scan's results; deletes its stream when `delete` (the scan ended
    /// here, rather than moved to another owner).
    pub fn unfollow(&self, scan_id: &str, delete: bool) {
        if lock(&self.cursors).remove(scan_id).is_some() && delete {
            let queue = Arc::clone(&self.queue);
            let scan_id = scan_id.to_string();
            tokio::spawn(async move { queue.drop_results(&scan_id).await });
        }
    }

    /// Whether a scan is followed now that `read` (the cursors of a read) does not cover.
    fn follows_more_than(&self, read: &[(String, String)]) -> bool {
        lock(&self.cursors)
            .keys()
            .any(|scan| !read.iter().any(|(s, _)| s == scan))
    }

    async fn run(&self, coordinator: ActorRef<CoordinatorMsg>, shutdown: Shutdown) {
        while !shutdown.is_triggered() {
            let cursors: Vec<(String, String)> = lock(&self.cursors)
                .iter()
                .map(|(s, id)| (s.clone(), id.clone()))
                .collect();
            if cursors.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = shutdown.triggered() => {}
                }
                continue;
            }
            let read = self.queue.read_results(&self.reader, &cursors);
            tokio::pin!(read);
            let read = loop {
                tokio::select! {
                    read = &mut read => break Some(read),
                    _ = self.wake.notified() => if self.follows_more_than(&cursors) {
                        break None;
                    },
                }
            };
            let Some(read) = read else {
                // A new scan to follow: the blocked read would keep it waiting up to the
                // block time. Its connection stays busy with the dropped read until then,
                // so the next read opens a fresh one.
                self.queue.close_reader(&self.reader).await;
                continue;
            };
            let entries = match read {
                Ok(entries) => entries,
                Err(_) => {
                    // Logged once per outage by the queue; workers keep their shards
                    // un-acked until their reports are accepted, so nothing is lost.
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = shutdown.triggered() => {}
                    }
                    continue;
                }
            };
            for entry in entries {
                {
                    let mut c = lock(&self.cursors);
                    match c.get_mut(&entry.scan_id) {
                        Some(cursor) => *cursor = entry.id.clone(),
                        None => continue,
                    }
                }
                if coordinator.send_message(decode(&entry)).is_err() {
                    return;
                }
            }
        }
        self.queue.close_reader(&self.reader).await;
    }
}
