//! The [`WorkQueue`] trait workers pull shards from, and its in-process implementation.
//!
//! Semantics every implementation keeps (the Redis Streams one included): at-least-once
//! delivery; a pulled shard is in flight for its consumer until acked; a consumer that
//! dies has its in-flight shards re-delivered with `attempt + 1`, up to a limit, after
//! which they come back to the caller as exhausted; cancelling a scan drops its queued
//! shards; closing wakes every waiting consumer with `None`.

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
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueueError {
    #[error("work queue is full ({capacity} shards waiting)")]
    Full { capacity: usize },
    #[error("work queue is closed")]
    Closed,
}

#[async_trait]
pub trait WorkQueue: Send + Sync + 'static {
    /// Enqueues shards of a scan.
    async fn push(&self, shards: Vec<Shard>) -> Result<(), QueueError>;
    /// Waits for the next shard for `consumer`; `None` once the queue is closed.
    async fn pull(&self, consumer: &str) -> Option<Delivery>;
    /// Marks a delivery done. Acking an unknown or already-acked delivery is a no-op.
    async fn ack(&self, delivery_id: u64);
    /// Re-queues every shard in flight for `consumer` (it died). Shards that already had
    /// `max_attempts` deliveries are returned instead, for the caller to report failed.
    async fn requeue_consumer(&self, consumer: &str, max_attempts: u32) -> Vec<Shard>;
    /// Drops a scan's queued shards and marks it cancelled.
    async fn cancel(&self, scan_id: &str);
    /// Whether a scan was cancelled (workers check between symbols).
    fn is_cancelled(&self, scan_id: &str) -> bool;
    /// Stops handing out shards; waiting consumers get `None`.
    fn close(&self);
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
                    return Some(Delivery { id, shard });
                }
            }
            notified.await;
        }
    }

    async fn ack(&self, delivery_id: u64) {
        self.lock().in_flight.remove(&delivery_id);
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

    fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    //! The conformance suite every `WorkQueue` implementation must pass.
    use super::*;
    use crate::cluster::shard::plan_shards;
    use crate::config::Settings;
    use crate::market::UniverseEntry;
    use crate::scan::ScanConfig;
    use std::sync::Arc;

    fn shards(scan: &str, n: usize) -> Vec<Shard> {
        let entries: Vec<UniverseEntry> = (0..n)
            .map(|i| UniverseEntry::bare(format!("{scan}{i}")))
            .collect();
        let cfg = Arc::new(ScanConfig::from_settings(&Settings::defaults().scan));
        plan_shards(scan, &entries, 1, &cfg)
    }

    pub async fn conformance(q: &dyn WorkQueue) {
        // FIFO delivery, distinct delivery ids.
        q.push(shards("a", 3)).await.expect("push");
        let d1 = q.pull("w1").await.expect("shard");
        let d2 = q.pull("w2").await.expect("shard");
        assert_eq!((d1.shard.index, d2.shard.index), (0, 1));
        assert_ne!(d1.id, d2.id);
        q.ack(d1.id).await;
        q.ack(d1.id).await; // double ack is harmless

        // A dead consumer's in-flight shard is re-delivered with attempt + 1.
        assert!(q.requeue_consumer("w2", 3).await.is_empty());
        let again = q.pull("w3").await.expect("re-delivered");
        assert_eq!((again.shard.index, again.shard.attempt), (1, 2));
        // ... and after max attempts it comes back exhausted instead.
        let exhausted = q.requeue_consumer("w3", 2).await;
        assert_eq!(exhausted.len(), 1);
        assert_eq!(exhausted[0].index, 1);

        // Cancel drops queued shards of that scan only.
        q.push(shards("b", 2)).await.expect("push");
        q.cancel("a").await;
        assert!(q.is_cancelled("a") && !q.is_cancelled("b"));
        let next = q.pull("w1").await.expect("b shard");
        assert_eq!(next.shard.scan_id, "b");
        q.ack(next.id).await;

        // A waiting consumer is woken by a push, then by close.
        let waiter = q.pull("w4");
        let pusher = async {
            tokio::task::yield_now().await;
            q.push(shards("c", 1)).await.expect("push");
        };
        let (got, ()) = tokio::join!(waiter, pusher);
        let got = got.expect("woken by push");
        assert!(got.shard.scan_id == "b" || got.shard.scan_id == "c");
        q.close();
        assert!(
            q.pull("w5").await.is_none(),
            "closed queue hands out nothing"
        );
        assert_eq!(q.push(shards("d", 1)).await, Err(QueueError::Closed));
    }

    #[tokio::test]
    async fn in_process_queue_passes_conformance() {
        conformance(&InProcessQueue::new(100)).await;
    }

    #[tokio::test]
    async fn in_process_queue_is_bounded() {
        let q = InProcessQueue::new(2);
        assert_eq!(
            q.push(shards("a", 3)).await,
            Err(QueueError::Full { capacity: 2 })
        );
    }
}
