//! The [`WorkQueue`] trait workers pull shards from, and its in-process implementation.
//!
//! Semantics every implementation keeps (the Redis Streams one included, and
//! `tests/queue_conformance.rs` checks them on both): at-least-once delivery; a pulled shard
//! is in flight for its consumer until acked; a consumer that dies has its in-flight shards
//! re-delivered with `attempt + 1`, up to a limit, after which they come back to the caller
//! as exhausted (from `requeue_consumer`, or, when nobody saw the death, from `pull` as a
//! [`Delivery`] with `exhausted` set); cancelling a scan drops its queued shards; closing
//! wakes every waiting consumer with `None`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::shard::Shard;

/// A pulled shard and the receipt needed to ack it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: u64,
    pub shard: Shard,
    /// The shard used up its delivery attempts while its consumers died without a word (the
    /// Redis queue finds these by `XAUTOCLAIM`): report its symbols failed and ack it, do not
    /// run it. Always `false` from the in-process queue, whose consumers die in this process
    /// and go through `requeue_consumer`.
    pub exhausted: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueueError {
    #[error("work queue is full ({capacity} shards waiting)")]
    Full { capacity: usize },
    #[error("work queue is closed")]
    Closed,
    #[error("invalid work queue url {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("work queue unavailable: {0}")]
    Unavailable(String),
    #[error("work queue consumer group is missing (was redis restarted?)")]
    NoGroup,
}

impl From<crate::redis_link::LinkError> for QueueError {
    fn from(e: crate::redis_link::LinkError) -> Self {
        use crate::redis_link::LinkError;
        if e.is_reply("NOGROUP") {
            return QueueError::NoGroup;
        }
        match e {
            LinkError::InvalidUrl { url, reason } => QueueError::InvalidUrl { url, reason },
            e => QueueError::Unavailable(e.to_string()),
        }
    }
}

/// Shards in the queue now, by where they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, utoipa::ToSchema)]
pub struct QueueDepth {
    /// New shards not handed out yet.
    pub pending: u64,
    /// Handed out (or read ahead) and not acked yet.
    pub in_flight: u64,
    /// Re-queued after a worker died or gave them back, not handed out yet.
    pub retry: u64,
}

#[async_trait]
pub trait WorkQueue: Send + Sync + 'static {
    /// Enqueues shards of a scan.
    async fn push(&self, shards: Vec<Shard>) -> Result<(), QueueError>;
    /// Waits for the next shard for `consumer`; `None` once the queue is closed.
    async fn pull(&self, consumer: &str) -> Option<Delivery>;
    /// Marks a delivery done. Acking an unknown or already-acked delivery is a no-op.
    async fn ack(&self, delivery_id: u64);
    /// Gives a delivery up without acking it (its result could not be reported): it is
    /// delivered again later, to this or another consumer.
    async fn release(&self, delivery_id: u64);
    /// Keeps this handle's deliveries from looking abandoned and refreshes the cancelled
    /// scans `is_cancelled` sees. A node calls it every heartbeat; a no-op in process.
    async fn renew(&self) -> Result<(), QueueError> {
        Ok(())
    }
    /// Re-queues every shard in flight for `consumer` (it died). Shards that already had
    /// `max_attempts` deliveries are returned instead, for the caller to report failed.
    async fn requeue_consumer(&self, consumer: &str, max_attempts: u32) -> Vec<Shard>;
    /// Drops a scan's queued shards and marks it cancelled.
    async fn cancel(&self, scan_id: &str);
    /// Whether a scan was cancelled (workers check between symbols).
    fn is_cancelled(&self, scan_id: &str) -> bool;
    /// Whether a shard of this scan and epoch should not run (any more): its scan was
    /// cancelled or abandoned, or taken over by an owner of a newer epoch.
    fn is_dropped(&self, scan_id: &str, _epoch: u64) -> bool {
        self.is_cancelled(scan_id)
    }
    /// The current epoch of each running scan (from the scan book, every heartbeat).
    fn fence(&self, _epochs: HashMap<String, u64>) {}
    /// Stops handing out shards; waiting consumers get `None`.
    fn close(&self);
    /// How many shards wait, run and wait again, over every scan.
    async fn depth(&self) -> Result<QueueDepth, QueueError>;
}

/// In-process queue: a bounded deque under a mutex plus a [`Notify`] for waiting
/// consumers. The mutex is never held across an await.
pub struct InProcessQueue {
    state: Mutex<State>,
    notify: Notify,
    capacity: usize,
}

#[derive(Default)]
struct State {
    queued: VecDeque<Shard>,
    in_flight: HashMap<u64, (String, Shard)>,
    cancelled: HashSet<String>,
    next_id: u64,
    closed: bool,
}

impl InProcessQueue {
    pub fn new(capacity: usize) -> Self {
        InProcessQueue {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain collections in a consistent state
        // (every mutation is a single push/pop/insert), so poisoning carries no meaning.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl WorkQueue for InProcessQueue {
    async fn push(&self, shards: Vec<Shard>) -> Result<(), QueueError> {
        {
            let mut s = self.lock();
            if s.closed {
                return Err(QueueError::Closed);
            }
            if s.queued.len() + shards.len() > self.capacity {
                return Err(QueueError::Full {
                    capacity: self.capacity,
                });
            }
            s.queued.extend(shards);
        }
        self.notify.notify_waiters();
        Ok(())
    }

    async fn pull(&self, consumer: &str) -> Option<Delivery> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Register interest before checking, so a push between the check and the
            // await is not missed.
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if s.closed {
                    return None;
                }
                while let Some(shard) = s.queued.pop_front() {
                    if s.cancelled.contains(&shard.scan_id) {
                        continue;
                    }
                    s.next_id += 1;
                    let id = s.next_id;
                    s.in_flight
                        .insert(id, (consumer.to_string(), shard.clone()));
                    return Some(Delivery {
                        id,
                        shard,
                        exhausted: false,
                    });
                }
            }
            notified.await;
        }
    }

    async fn ack(&self, delivery_id: u64) {
        self.lock().in_flight.remove(&delivery_id);
    }

    async fn release(&self, delivery_id: u64) {
        {
            let mut s = self.lock();
            if let Some((_, shard)) = s.in_flight.remove(&delivery_id) {
                s.queued.push_front(shard);
            }
        }
        self.notify.notify_waiters();
    }

    async fn requeue_consumer(&self, consumer: &str, max_attempts: u32) -> Vec<Shard> {
        let mut exhausted = Vec::new();
        {
            let mut s = self.lock();
            let ids: Vec<u64> = s
                .in_flight
                .iter()
                .filter(|(_, (c, _))| c == consumer)
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                let Some((_, mut shard)) = s.in_flight.remove(&id) else {
                    continue;
                };
                if s.cancelled.contains(&shard.scan_id) {
                    continue;
                }
                if shard.attempt >= max_attempts {
                    exhausted.push(shard);
                } else {
                    shard.attempt += 1;
                    s.queued.push_front(shard);
                }
            }
        }
        self.notify.notify_waiters();
        exhausted
    }

    async fn cancel(&self, scan_id: &str) {
        let mut s = self.lock();
        s.cancelled.insert(scan_id.to_string());
        s.queued.retain(|sh| sh.scan_id != scan_id);
    }

    fn is_cancelled(&self, scan_id: &str) -> bool {
        self.lock().cancelled.contains(scan_id)
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let s = self.lock();
        let retry = s.queued.iter().filter(|sh| sh.attempt > 1).count() as u64;
        Ok(QueueDepth {
            pending: s.queued.len() as u64 - retry,
            in_flight: s.in_flight.len() as u64,
            retry,
        })
    }

    fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    //! The conformance suite every implementation passes is `tests/queue_conformance.rs`.
    use super::*;
    use crate::cluster::shard::plan_shards;
    use crate::config::Settings;
    use crate::market::UniverseEntry;
    use crate::scan::ScanConfig;
    use std::sync::Arc;

    #[tokio::test]
    async fn in_process_queue_is_bounded() {
        let entries: Vec<UniverseEntry> = (0..3)
            .map(|i| UniverseEntry::bare(format!("a{i}")))
            .collect();
        let cfg = Arc::new(ScanConfig::from_settings(&Settings::defaults().scan));
        let q = InProcessQueue::new(2);
        assert_eq!(
            q.push(plan_shards("a", &entries, 1, &cfg)).await,
            Err(QueueError::Full { capacity: 2 })
        );
    }
}
