//! [`RedisStreamsQueue`]: the [`WorkQueue`] on Redis Streams, shared by every node of a
//! cluster. It owns the queue's keys and their protocol; it must not know what a worker does
//! with a shard, nor deduplicate results (the coordinator does, by scan id and symbol).
//!
//! Layout (one hash tag, so every key lives in one slot of a Redis Cluster):
//! - `technic:v1:queue:{NAME}:shards`: the stream new shards are `XADD`ed to;
//! - `technic:v1:queue:{NAME}:retry`: re-queued shards, read before new ones;
//! - `technic:v1:queue:{NAME}:cancelled`: a SET of cancelled scan ids (its TTL is refreshed on
//!   each cancel);
//! - `technic:v1:queue:{NAME}:results:SCAN`: the results stream of one scan, which workers
//!   `XADD` shard reports to and its coordinator `XREAD`s (see `results.rs`).
//!
//! Both streams have the consumer group `workers`. A read is one `XREADGROUP ... COUNT n BLOCK
//! block_ms STREAMS retry shards > >` on the consumer's own connection, where `n` is as many
//! shards as fit in `prefetch_symbols` symbols (learned from the shards last read, at least
//! one): shards read ahead wait in the consumer's [`Prefetch`] and are handed out by the next
//! pulls without a round trip. They are in flight for that consumer like the shard it runs
//! (renewed, re-queued if it dies, given back with the same attempt when it stops or is
//! re-queued). An ack is `XACK` + `XDEL`, deferred to ride in the same round trip as the
//! handle's next read or `renew` (or sent once it has waited `OUTBOX_MAX_AGE`), behind the
//! shard's report (the `Outbox`): a busy worker pays one round trip per read for every report,
//! ack and next pull, not three per shard. A process that dies with its outbox unsent leaves
//! those shards to be claimed and run again, which idempotent results absorb. A shard's
//! `attempt` field is the truth about deliveries: re-queuing (by `requeue_consumer`, or after
//! `XAUTOCLAIM` finds an entry idle longer than the visibility timeout) writes a copy with
//! `attempt + 1` to the retry stream and acks the old entry; a shard whose attempts are used
//! up is handed out once more as `Delivery { exhausted: true }` for the caller to report
//! failed and ack.

mod claim;
mod results;

pub use results::ResultEntry;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ::redis::streams::{StreamId, StreamReadReply};
use async_trait::async_trait;
use tracing::{debug, error, info, warn};

use super::queue::{Delivery, QueueDepth, QueueError, WorkQueue};
use super::shard::Shard;
use crate::config::ClusterSettings;
use crate::redis_link::RedisOptions;
use crate::redis_link::{Links, Use};

/// The consumer group of both streams.
const GROUP: &str = "workers";
/// Pending entries examined per `XAUTOCLAIM` / `XPENDING` call.
const CLAIM_COUNT: usize = 16;
/// `XAUTOCLAIM` calls per stream per claim pass.
const CLAIM_CALLS: usize = 8;
const PENDING_COUNT: usize = 1_000;
/// Pause after a failed pull before trying again.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Longest a report or ack waits for the next read while a worker runs shards read ahead:
/// older, the outbox is sent on its own round trip.
const OUTBOX_MAX_AGE: Duration = Duration::from_millis(100);
/// The default of [`RedisQueueOptions::read_ahead`].
const READ_AHEAD: Duration = Duration::from_millis(10);

/// How the queue behaves; see `[cluster]` in `configs/default.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisQueueOptions {
    /// The hash tag of every key: queues with different names are independent.
    pub name: String,
    /// Longest `XREADGROUP BLOCK`: bounds how long `close()` takes to reach a waiting pull.
    pub block: Duration,
    /// Symbols of shards a consumer reads ahead (always at least one shard).
    pub prefetch_symbols: usize,
    /// At most about this much work (at the pace of the consumer's last shard) is read
    /// ahead: slow shards, e.g. on a data source with latency, go out one at a time so no
    /// worker holds work another could start. 10 ms.
    pub read_ahead: Duration,
    /// A pulled entry idle this long is claimed by the next live puller (its consumer is
    /// presumed dead). A live node renews its entries (`renew`) well within it.
    pub visibility_timeout: Duration,
    /// Deliveries of a shard (claims included) before it comes back exhausted.
    pub max_attempts: u32,
    /// Bound on entries in the shard stream (queued + in flight).
    pub capacity: usize,
    /// How long a scan stays marked cancelled.
    pub cancelled_ttl: Duration,
    /// Bound on the life of a scan's results stream (its coordinator deletes it at the end).
    pub results_ttl: Duration,
    pub redis: RedisOptions,
}

impl RedisQueueOptions {
    pub fn from_settings(c: &ClusterSettings) -> Self {
        RedisQueueOptions {
            name: c.queue_name.clone(),
            block: Duration::from_millis(c.queue_block_ms),
            prefetch_symbols: c.prefetch_symbols,
            read_ahead: READ_AHEAD,
            visibility_timeout: Duration::from_millis(c.visibility_timeout_ms),
            max_attempts: c.max_attempts,
            capacity: c.queue_capacity,
            cancelled_ttl: Duration::from_secs(c.cancelled_ttl_secs),
            results_ttl: Duration::from_secs(c.results_ttl_secs),
            redis: RedisOptions::default(),
        }
    }
}

struct Keys {
    /// `technic:v1:queue:{NAME}`: every key starts with it.
    prefix: String,
    shards: String,
    retry: String,
    cancelled: String,
}

/// Where a delivered entry lives, so `ack` can remove it.
struct Receipt {
    stream: String,
    entry: String,
    consumer: String,
}

/// An entry read or claimed from a stream.
struct Entry {
    stream: String,
    id: String,
    shard: Option<Shard>,
}

pub struct RedisStreamsQueue {
    links: Links,
    keys: Keys,
    opts: RedisQueueOptions,
    groups_ready: AtomicBool,
    closed: AtomicBool,
    /// Whether the last call failed, so an outage is logged once.
    failing: AtomicBool,
    next_id: AtomicU64,
    /// Std locks, never held across an await.
    receipts: Mutex<HashMap<u64, Receipt>>,
    /// Reports and acks not yet sent to Redis.
    outbox: Mutex<Outbox>,
    /// Scan ids known cancelled, refreshed from Redis on every pull round trip.
    cancelled: Mutex<HashSet<String>>,
    /// The current epoch of each running scan, as last fenced.
    epochs: Mutex<HashMap<String, u64>>,
    /// Claimed entries whose attempts are used up, waiting to be handed out as exhausted.
    exhausted: Mutex<VecDeque<(Entry, Shard)>>,
    /// Per consumer: shards read ahead, not handed out yet.
    prefetched: Mutex<HashMap<String, Prefetch>>,
    last_claim: Mutex<Option<Instant>>,
    /// Where the next `XAUTOCLAIM` pass resumes, per stream (retry, shards).
    claim_cursors: Mutex<[String; 2]>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every mutation under these locks is a single insert/remove, so a panic elsewhere
    // cannot leave them inconsistent: poisoning carries no meaning.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Work done but not yet told to Redis: shard reports to publish, then acks. Sent at the
/// head of the handle's next round trip (a pull, at the latest a renew), reports first, so an
/// ack never reaches Redis before its report: a busy worker pays one round trip per shard
/// for report + ack + next pull.
#[derive(Default)]
struct Outbox {
    /// (scan id, encoded report).
    reports: Vec<(String, Vec<u8>)>,
    /// (stream, entry id).
    acks: Vec<(String, String)>,
    /// When the oldest item was added.
    since: Option<Instant>,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.reports.is_empty() && self.acks.is_empty()
    }

    fn report(&mut self, scan_id: String, payload: Vec<u8>) {
        self.since.get_or_insert_with(Instant::now);
        self.reports.push((scan_id, payload));
    }

    fn ack(&mut self, stream: String, entry: String) {
        self.since.get_or_insert_with(Instant::now);
        self.acks.push((stream, entry));
    }

    fn is_stale(&self) -> bool {
        self.since.is_some_and(|t| t.elapsed() >= OUTBOX_MAX_AGE)
    }
}

/// Shards read ahead for one consumer: pending for it in Redis, not handed out yet, and what
/// sizes its next read.
#[derive(Default)]
struct Prefetch {
    shards: VecDeque<(Entry, Shard)>,
    /// Symbols of the largest shard of the last read.
    largest: usize,
    /// When the last shard was handed out, and how long the one before took (from hand-out
    /// to the consumer's next pull).
    handed_out: Option<Instant>,
    shard_time: Option<Duration>,
}

impl Prefetch {
    /// Shards the next read asks for: as many as fit in `prefetch_symbols` symbols and in
    /// `read_ahead` of work at the pace of the last shard; one until a shard was timed.
    fn count(&self, prefetch_symbols: usize, read_ahead: Duration) -> usize {
        let Some(took) = self.shard_time else {
            return 1;
        };
        let by_symbols = prefetch_symbols / self.largest.max(1);
        let by_time = read_ahead.as_micros() / took.as_micros().max(1);
        by_symbols
            .min(usize::try_from(by_time).unwrap_or(usize::MAX))
            .max(1)
    }
}

/// Appends `XACK` + `XDEL` of each entry to a pipeline (replies ignored).
fn add_removals<'a>(
    pipe: &mut ::redis::Pipeline,
    entries: impl Iterator<Item = (&'a str, &'a str)>,
) {
    for (stream, id) in entries {
        pipe.cmd("XACK").arg(stream).arg(GROUP).arg(id).ignore();
        pipe.cmd("XDEL").arg(stream).arg(id).ignore();
    }
}

fn encode(shard: &Shard) -> Result<Vec<u8>, QueueError> {
    serde_json::to_vec(shard).map_err(|e| QueueError::Unavailable(format!("encode shard: {e}")))
}

/// A shard entry's payload read back; `None` when it is not one (another version, damage):
/// the caller drops such an entry, visibly.
pub fn decode_shard(bytes: &[u8]) -> Option<Shard> {
    serde_json::from_slice(bytes).ok()
}

fn entries_of(stream: &str, ids: Vec<StreamId>) -> Vec<Entry> {
    ids.into_iter()
        .map(|sid| {
            let shard = sid.get::<Vec<u8>>("shard").and_then(|b| decode_shard(&b));
            Entry {
                stream: stream.to_string(),
                id: sid.id,
                shard,
            }
        })
        .collect()
}

impl RedisStreamsQueue {
    /// One Redis call through the queue's links, its failure as a [`QueueError`].
    async fn call<T, F, Fut>(&self, op: &str, using: Use<'_>, f: F) -> Result<T, QueueError>
    where
        F: FnOnce(crate::redis_link::Conn) -> Fut,
        Fut: std::future::Future<Output = ::redis::RedisResult<T>>,
    {
        Ok(self.links.call(op, using, f).await?)
    }

    /// `url`: `redis://HOST:PORT[/DB]` or `redis-cluster://HOST:PORT[,HOST:PORT...]`. Never
    /// connects (the first operation does); must be called inside a tokio runtime.
    pub fn open(url: &str, opts: RedisQueueOptions) -> Result<Self, QueueError> {
        let links = Links::new(url, opts.redis, opts.block)?;
        let prefix = format!("technic:v1:queue:{{{}}}", opts.name);
        Ok(RedisStreamsQueue {
            links,
            keys: Keys {
                prefix: prefix.clone(),
                shards: format!("{prefix}:shards"),
                retry: format!("{prefix}:retry"),
                cancelled: format!("{prefix}:cancelled"),
            },
            opts,
            groups_ready: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            receipts: Mutex::new(HashMap::new()),
            outbox: Mutex::new(Outbox::default()),
            cancelled: Mutex::new(HashSet::new()),
            epochs: Mutex::new(HashMap::new()),
            exhausted: Mutex::new(VecDeque::new()),
            prefetched: Mutex::new(HashMap::new()),
            last_claim: Mutex::new(None),
            claim_cursors: Mutex::new(["0-0".to_string(), "0-0".to_string()]),
        })
    }

    /// Creates the consumer group on both streams (and the streams), once per process and
    /// again after Redis lost them.
    async fn ensure_groups(&self) -> Result<(), QueueError> {
        if self.groups_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        for key in [&self.keys.shards, &self.keys.retry] {
            let made = self
                .call("xgroup create", Use::Shared, |mut c| async move {
                    ::redis::cmd("XGROUP")
                        .arg("CREATE")
                        .arg(key)
                        .arg(GROUP)
                        .arg("0")
                        .arg("MKSTREAM")
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
            match made {
                Ok(()) => {}
                Err(QueueError::Unavailable(m)) if m.contains("BUSYGROUP") => {}
                Err(e) => return Err(e),
            }
        }
        self.groups_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Notes a failure (counted; logged once per outage); a lost group is re-created on the
    /// next call.
    fn on_error(&self, op: &str, e: &QueueError) {
        if matches!(e, QueueError::NoGroup) {
            self.groups_ready.store(false, Ordering::Release);
        }
        crate::telemetry::metrics().queue_errors.inc();
        if self.failing.swap(true, Ordering::AcqRel) {
            debug!(op, error = %e, "redis work queue call failed");
        } else {
            warn!(op, error = %e, "redis work queue unavailable; retrying");
        }
    }

    fn on_success(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            info!("redis work queue available again");
        }
    }

    /// Removes entries from their stream: `XACK` + `XDEL`, in one pipeline.
    async fn remove(&self, entries: &[(&str, &str)]) -> Result<(), QueueError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        add_removals(&mut pipe, entries.iter().copied());
        self.call("xack", Use::Shared, |mut c| async move {
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }

    /// Takes the outbox, for a pipeline about to be sent (see [`Self::add_outbox`]); give
    /// it back with [`Self::restore_outbox`] if that fails.
    fn take_outbox(&self) -> Outbox {
        std::mem::take(&mut *lock(&self.outbox))
    }

    /// Puts an unsent outbox back, ahead of what was added meanwhile.
    fn restore_outbox(&self, mut unsent: Outbox) {
        let mut o = lock(&self.outbox);
        let newer = std::mem::take(&mut *o);
        unsent.reports.extend(newer.reports);
        unsent.acks.extend(newer.acks);
        unsent.since = unsent.since.or(newer.since);
        *o = unsent;
    }

    /// Appends the outbox to a pipeline: each report's publish script, then each ack's
    /// `XACK` + `XDEL` (replies ignored).
    fn add_outbox(&self, pipe: &mut ::redis::Pipeline, o: &Outbox) {
        for (scan_id, payload) in &o.reports {
            self.add_publish(pipe, scan_id, payload);
        }
        add_removals(pipe, o.acks.iter().map(|(s, i)| (s.as_str(), i.as_str())));
    }

    /// Sends the outbox now.
    async fn flush_outbox(&self) {
        let o = self.take_outbox();
        if o.is_empty() {
            return;
        }
        let mut pipe = ::redis::pipe();
        self.add_outbox(&mut pipe, &o);
        let sent = self
            .call("flush", Use::Shared, |mut c| async move {
                pipe.query_async::<()>(&mut c).await
            })
            .await;
        if let Err(e) = sent {
            self.on_error("flush", &e);
            self.restore_outbox(o);
        }
    }

    /// One blocking read of up to `count` shards per stream for `consumer`, after the outbox
    /// and refreshing the cancelled set, in one round trip.
    async fn read(&self, consumer: &str, count: usize) -> Result<Vec<Entry>, QueueError> {
        let block = self.opts.block.as_millis() as u64;
        let keys = &self.keys;
        let outbox = self.take_outbox();
        let mut pipe = ::redis::pipe();
        self.add_outbox(&mut pipe, &outbox);
        let pipe = &pipe;
        let result: Result<(Vec<String>, Option<StreamReadReply>), QueueError> = self
            .call("xreadgroup", Use::Blocking(consumer), |mut c| async move {
                pipe.clone()
                    .cmd("SMEMBERS")
                    .arg(&keys.cancelled)
                    .cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(consumer)
                    .arg("COUNT")
                    .arg(count)
                    .arg("BLOCK")
                    .arg(block)
                    .arg("STREAMS")
                    .arg(&keys.retry)
                    .arg(&keys.shards)
                    .arg(">")
                    .arg(">")
                    .query_async(&mut c)
                    .await
            })
            .await;
        let (cancelled, reply) = match result {
            Ok(r) => r,
            Err(e) => {
                self.restore_outbox(outbox);
                return Err(e);
            }
        };
        lock(&self.cancelled).extend(cancelled);
        let mut out = Vec::new();
        for k in reply.map(|r| r.keys).unwrap_or_default() {
            let stream = k.key.clone();
            out.extend(entries_of(&stream, k.ids));
        }
        // The retry stream first: it holds the oldest work (a stable sort keeps each
        // stream's order).
        out.sort_by_key(|e| e.stream != self.keys.retry);
        Ok(out)
    }

    fn deliver(&self, consumer: &str, entry: Entry, shard: Shard, exhausted: bool) -> Delivery {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.receipts).insert(
            id,
            Receipt {
                stream: entry.stream,
                entry: entry.id,
                consumer: consumer.to_string(),
            },
        );
        Delivery {
            id,
            shard,
            exhausted,
        }
    }

    /// One pull attempt: `Ok(None)` when nothing came within the block time or the queue
    /// was closed meanwhile.
    async fn try_pull(&self, consumer: &str) -> Result<Option<Delivery>, QueueError> {
        loop {
            if let Some((e, s)) = lock(&self.exhausted).pop_front() {
                return Ok(Some(self.deliver(consumer, e, s, true)));
            }
            if self.closed.load(Ordering::Acquire) {
                return Ok(None);
            }
            if let Some((entry, shard)) = self.next_prefetched(consumer) {
                if self.is_dropped(&shard.scan_id, shard.epoch) {
                    lock(&self.outbox).ack(entry.stream, entry.id);
                    continue;
                }
                if lock(&self.outbox).is_stale() {
                    self.flush_outbox().await;
                }
                return Ok(Some(self.deliver(consumer, entry, shard, false)));
            }
            self.ensure_groups().await?;
            self.reclaim_idle(consumer).await?;
            if !lock(&self.exhausted).is_empty() {
                continue;
            }
            let entries = self.read(consumer, self.prefetch_count(consumer)).await?;
            if entries.is_empty() {
                return Ok(None);
            }
            self.keep_prefetched(consumer, entries);
        }
    }

    fn prefetch_count(&self, consumer: &str) -> usize {
        lock(&self.prefetched).get(consumer).map_or(1, |p| {
            p.count(self.opts.prefetch_symbols, self.opts.read_ahead)
        })
    }

    /// Times the consumer's last shard (it pulls again when done with it).
    fn shard_finished(&self, consumer: &str) {
        if let Some(p) = lock(&self.prefetched).get_mut(consumer) {
            if let Some(t) = p.handed_out.take() {
                p.shard_time = Some(t.elapsed());
            }
        }
    }

    fn shard_handed_out(&self, consumer: &str) {
        if let Some(p) = lock(&self.prefetched).get_mut(consumer) {
            p.handed_out = Some(Instant::now());
        }
    }

    fn next_prefetched(&self, consumer: &str) -> Option<(Entry, Shard)> {
        lock(&self.prefetched)
            .get_mut(consumer)
            .and_then(|p| p.shards.pop_front())
    }

    /// Puts what a read returned in the consumer's prefetch (unreadable entries are dropped)
    /// and notes the largest shard, which sizes the next read.
    fn keep_prefetched(&self, consumer: &str, entries: Vec<Entry>) {
        let mut largest = 0;
        let mut all = lock(&self.prefetched);
        let p = all.entry(consumer.to_string()).or_default();
        for e in entries {
            match e.shard.clone() {
                Some(s) => {
                    largest = largest.max(s.entries.len());
                    p.shards.push_back((e, s));
                }
                None => {
                    error!(entry = %e.id, "unreadable shard entry dropped");
                    lock(&self.outbox).ack(e.stream, e.id);
                }
            }
        }
        p.largest = largest;
    }

    /// Hands a stopping consumer's read-ahead shards back to the queue, same attempt.
    async fn give_back(&self, consumer: &str) {
        let Some(p) = lock(&self.prefetched).remove(consumer) else {
            return;
        };
        let moves: Vec<(&Entry, &Shard)> = p.shards.iter().map(|(e, s)| (e, s)).collect();
        if let Err(e) = self.move_to_retry(&moves).await {
            // Still pending for the consumer: claimed after the visibility timeout.
            self.on_error("give back", &e);
        }
    }
}

#[async_trait]
impl WorkQueue for RedisStreamsQueue {
    async fn push(&self, shards: Vec<Shard>) -> Result<(), QueueError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(QueueError::Closed);
        }
        self.ensure_groups().await?;
        let key = &self.keys.shards;
        let len: usize = self
            .call("xlen", Use::Shared, |mut c| async move {
                ::redis::cmd("XLEN").arg(key).query_async(&mut c).await
            })
            .await?;
        if len + shards.len() > self.opts.capacity {
            return Err(QueueError::Full {
                capacity: self.opts.capacity,
            });
        }
        let mut pipe = ::redis::pipe();
        for shard in &shards {
            pipe.cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("scan")
                .arg(&shard.scan_id)
                .arg("shard")
                .arg(encode(shard)?)
                .ignore();
        }
        self.call("xadd", Use::Shared, |mut c| async move {
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }

    async fn pull(&self, consumer: &str) -> Option<Delivery> {
        loop {
            if self.closed.load(Ordering::Acquire) {
                self.give_back(consumer).await;
                self.flush_outbox().await;
                return None;
            }
            self.shard_finished(consumer);
            match self.try_pull(consumer).await {
                Ok(Some(d)) => {
                    self.on_success();
                    self.shard_handed_out(consumer);
                    return Some(d);
                }
                Ok(None) => self.on_success(),
                Err(e) => {
                    self.on_error("pull", &e);
                    tokio::time::sleep(RETRY_PAUSE.min(self.opts.block)).await;
                }
            }
        }
    }

    /// Deferred: sent with this handle's next pull or renew (see the module doc). A failed
    /// send is retried with the next one; an entry never acked is claimed after the
    /// visibility timeout and run again, which idempotent results allow.
    async fn ack(&self, delivery_id: u64) {
        let Some(r) = lock(&self.receipts).remove(&delivery_id) else {
            return;
        };
        lock(&self.outbox).ack(r.stream, r.entry);
    }

    async fn release(&self, delivery_id: u64) {
        // Forgotten, so `renew` no longer renews it: after the visibility timeout it is
        // claimed and run again.
        lock(&self.receipts).remove(&delivery_id);
    }

    async fn renew(&self) -> Result<(), QueueError> {
        let mut held: Vec<(String, String, String)> = lock(&self.receipts)
            .values()
            .map(|r| (r.stream.clone(), r.entry.clone(), r.consumer.clone()))
            .collect();
        for (consumer, p) in lock(&self.prefetched).iter() {
            held.extend(
                p.shards
                    .iter()
                    .map(|(e, _)| (e.stream.clone(), e.id.clone(), consumer.clone())),
            );
        }
        let outbox = self.take_outbox();
        let mut pipe = ::redis::pipe();
        self.add_outbox(&mut pipe, &outbox);
        pipe.cmd("SMEMBERS").arg(&self.keys.cancelled);
        for (stream, entry, consumer) in &held {
            // Idle time back to 0, delivery count unchanged (JUSTID).
            pipe.cmd("XCLAIM")
                .arg(stream)
                .arg(GROUP)
                .arg(consumer)
                .arg(0)
                .arg(entry)
                .arg("JUSTID")
                .ignore();
        }
        let result = self
            .call("renew", Use::Shared, |mut c| async move {
                pipe.query_async::<(Vec<String>,)>(&mut c).await
            })
            .await;
        match result {
            Ok((cancelled,)) => {
                lock(&self.cancelled).extend(cancelled);
                Ok(())
            }
            Err(e) => {
                self.restore_outbox(outbox);
                self.on_error("renew", &e);
                Err(e)
            }
        }
    }

    async fn requeue_consumer(&self, consumer: &str, max_attempts: u32) -> Vec<Shard> {
        // What this handle acked must not be re-queued as the dead consumer's.
        self.flush_outbox().await;
        lock(&self.receipts).retain(|_, r| r.consumer != consumer);
        // Shards it read ahead never ran: they go back with the same attempt.
        let unstarted: HashSet<(String, String)> = lock(&self.prefetched)
            .remove(consumer)
            .map(|p| {
                p.shards
                    .into_iter()
                    .map(|(e, _)| (e.stream, e.id))
                    .collect()
            })
            .unwrap_or_default();
        self.links.drop_consumer(consumer).await;
        match self.try_requeue(consumer, max_attempts, &unstarted).await {
            Ok(exhausted) => exhausted,
            Err(e) => {
                // Whatever was not moved is claimed after the visibility timeout.
                self.on_error("requeue", &e);
                Vec::new()
            }
        }
    }

    /// Both streams' lengths and their entries pending in the group, in one round trip:
    /// an acked entry is deleted, so what a stream holds is either not handed out yet or
    /// in flight.
    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.ensure_groups().await?;
        let (shards, retry) = (&self.keys.shards, &self.keys.retry);
        let (shards_len, retry_len, shards_pending, retry_pending): (
            u64,
            u64,
            Vec<::redis::Value>,
            Vec<::redis::Value>,
        ) = self
            .call("depth", Use::Shared, |mut c| async move {
                ::redis::pipe()
                    .cmd("XLEN")
                    .arg(shards)
                    .cmd("XLEN")
                    .arg(retry)
                    .cmd("XPENDING")
                    .arg(shards)
                    .arg(GROUP)
                    .cmd("XPENDING")
                    .arg(retry)
                    .arg(GROUP)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        // XPENDING's summary: [count, smallest id, greatest id, consumers].
        let count = |v: &[::redis::Value]| match v.first() {
            Some(::redis::Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        };
        let (shards_pending, retry_pending) = (count(&shards_pending), count(&retry_pending));
        Ok(QueueDepth {
            pending: shards_len.saturating_sub(shards_pending),
            in_flight: shards_pending + retry_pending,
            retry: retry_len.saturating_sub(retry_pending),
        })
    }

    async fn cancel(&self, scan_id: &str) {
        lock(&self.cancelled).insert(scan_id.to_string());
        let key = &self.keys.cancelled;
        let ttl = self.opts.cancelled_ttl.as_millis() as u64;
        let done = self
            .call("cancel", Use::Shared, |mut c| async move {
                ::redis::pipe()
                    .cmd("SADD")
                    .arg(key)
                    .arg(scan_id)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(key)
                    .arg(ttl.max(1))
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
        match done {
            Ok(()) => debug!(scan_id, "scan marked cancelled in the queue"),
            Err(e) => self.on_error("cancel", &e),
        }
    }

    /// From the local cache: a cancel made through this handle is seen at once, one made
    /// elsewhere after the next pull round trip of any consumer on this handle.
    fn is_cancelled(&self, scan_id: &str) -> bool {
        lock(&self.cancelled).contains(scan_id)
    }

    fn is_dropped(&self, scan_id: &str, epoch: u64) -> bool {
        self.is_cancelled(scan_id)
            || lock(&self.epochs)
                .get(scan_id)
                .is_some_and(|current| epoch < *current)
    }

    fn fence(&self, epochs: HashMap<String, u64>) {
        *lock(&self.epochs) = epochs;
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}
