//! Re-delivery: shards of dead consumers back into the retry stream with `attempt + 1`
//! (`requeue_consumer` when the supervisor saw the death, `XAUTOCLAIM` after the visibility
//! timeout when nobody did), or out as exhausted once their attempts are used up.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ::redis::streams::{StreamAutoClaimReply, StreamClaimReply};
use tracing::warn;

use super::{
    encode, entries_of, lock, Entry, RedisStreamsQueue, CLAIM_CALLS, CLAIM_COUNT, GROUP,
    PENDING_COUNT,
};
use crate::cluster::queue::{QueueError, WorkQueue};
use crate::cluster::shard::Shard;
use crate::redis_link::Use;

impl RedisStreamsQueue {
    /// Moves entries to the retry stream with the given shards (their attempt already set),
    /// then removes the originals. Not atomic: a crash in between duplicates a shard, which
    /// at-least-once delivery allows.
    pub(super) async fn move_to_retry(&self, moves: &[(&Entry, &Shard)]) -> Result<(), QueueError> {
        if moves.is_empty() {
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        for (_, shard) in moves {
            pipe.cmd("XADD")
                .arg(&self.keys.retry)
                .arg("*")
                .arg("scan")
                .arg(&shard.scan_id)
                .arg("shard")
                .arg(encode(shard)?)
                .ignore();
        }
        for (e, _) in moves {
            pipe.cmd("XACK")
                .arg(&e.stream)
                .arg(GROUP)
                .arg(&e.id)
                .ignore();
            pipe.cmd("XDEL").arg(&e.stream).arg(&e.id).ignore();
        }
        self.call("requeue", Use::Shared, |mut c| async move {
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }

    /// Sorts claimed entries (their consumer is gone): unreadable or dropped ones (see
    /// `is_dropped`) are removed, those in `unstarted` (read ahead, never handed out) are
    /// re-queued with the same attempt, others with attempts left with `attempt + 1`, and the
    /// rest are returned as exhausted (still pending, for the caller to ack).
    pub(super) async fn settle(
        &self,
        entries: Vec<Entry>,
        max_attempts: u32,
        unstarted: &HashSet<(String, String)>,
    ) -> Result<Vec<(Entry, Shard)>, QueueError> {
        let mut drop = Vec::new();
        let mut retry = Vec::new();
        let mut redelivered = 0;
        let mut exhausted = Vec::new();
        for e in entries {
            match e.shard.clone() {
                None => drop.push(e),
                Some(s) if self.is_dropped(&s.scan_id, s.epoch) => drop.push(e),
                Some(s) if unstarted.contains(&(e.stream.clone(), e.id.clone())) => {
                    retry.push((e, s))
                }
                Some(s) if s.attempt >= max_attempts => exhausted.push((e, s)),
                Some(mut s) => {
                    s.attempt += 1;
                    redelivered += 1;
                    retry.push((e, s));
                }
            }
        }
        let ids: Vec<(&str, &str)> = drop
            .iter()
            .map(|e| (e.stream.as_str(), e.id.as_str()))
            .collect();
        self.remove(&ids).await?;
        let moves: Vec<(&Entry, &Shard)> = retry.iter().map(|(e, s)| (e, s)).collect();
        self.move_to_retry(&moves).await?;
        crate::telemetry::metrics()
            .queue_redeliveries
            .inc_by(redelivered);
        Ok(exhausted)
    }

    /// `XAUTOCLAIM`s entries idle past the visibility timeout, at most every half timeout.
    pub(super) async fn reclaim_idle(&self, consumer: &str) -> Result<(), QueueError> {
        let interval = (self.opts.visibility_timeout / 2).max(Duration::from_millis(10));
        {
            let mut last = lock(&self.last_claim);
            if last.is_some_and(|t| t.elapsed() < interval) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let idle = self.opts.visibility_timeout.as_millis() as u64;
        let mut claimed = Vec::new();
        for (i, key) in [&self.keys.retry, &self.keys.shards]
            .into_iter()
            .enumerate()
        {
            // XAUTOCLAIM examines about COUNT × 10 pending entries per call: resume where the
            // last pass stopped, so idle entries behind many live ones are reached too.
            let mut cursor = lock(&self.claim_cursors)[i].clone();
            let mut found = 0;
            for _ in 0..CLAIM_CALLS {
                let start = cursor.clone();
                let reply: StreamAutoClaimReply = self
                    .call("xautoclaim", Use::Shared, |mut c| async move {
                        ::redis::cmd("XAUTOCLAIM")
                            .arg(key)
                            .arg(GROUP)
                            .arg(consumer)
                            .arg(idle)
                            .arg(start)
                            .arg("COUNT")
                            .arg(CLAIM_COUNT)
                            .query_async(&mut c)
                            .await
                    })
                    .await?;
                found += reply.claimed.len();
                claimed.extend(entries_of(key, reply.claimed));
                cursor = reply.next_stream_id;
                if cursor == "0-0" || found >= CLAIM_COUNT {
                    break;
                }
            }
            lock(&self.claim_cursors)[i] = cursor;
        }
        if !claimed.is_empty() {
            warn!(
                consumer,
                entries = claimed.len(),
                "claimed shards idle past the visibility timeout"
            );
        }
        let exhausted = self
            .settle(claimed, self.opts.max_attempts, &HashSet::new())
            .await?;
        lock(&self.exhausted).extend(exhausted);
        Ok(())
    }

    /// Pending entries of `consumer` on `stream`, claimed away from it (idle time 0).
    pub(super) async fn claim_from(
        &self,
        stream: &str,
        consumer: &str,
    ) -> Result<Vec<Entry>, QueueError> {
        let pending: Vec<(String, String, u64, u64)> = self
            .call("xpending", Use::Shared, |mut c| async move {
                ::redis::cmd("XPENDING")
                    .arg(stream)
                    .arg(GROUP)
                    .arg("-")
                    .arg("+")
                    .arg(PENDING_COUNT)
                    .arg(consumer)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = pending.into_iter().map(|p| p.0).collect();
        let reply: StreamClaimReply = self
            .call("xclaim", Use::Shared, |mut c| async move {
                ::redis::cmd("XCLAIM")
                    .arg(stream)
                    .arg(GROUP)
                    .arg(format!("{consumer}.requeue"))
                    .arg(0)
                    .arg(&ids)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(entries_of(stream, reply.ids))
    }

    pub(super) async fn try_requeue(
        &self,
        consumer: &str,
        max_attempts: u32,
        unstarted: &HashSet<(String, String)>,
    ) -> Result<Vec<Shard>, QueueError> {
        self.ensure_groups().await?;
        let mut entries = self.claim_from(&self.keys.retry, consumer).await?;
        entries.extend(self.claim_from(&self.keys.shards, consumer).await?);
        let exhausted = self.settle(entries, max_attempts, unstarted).await?;
        let ids: Vec<(&str, &str)> = exhausted
            .iter()
            .map(|(e, _)| (e.stream.as_str(), e.id.as_str()))
            .collect();
        self.remove(&ids).await?;
        // Nothing is pending for these names any more: drop them from the group, so
        // consumers of dead workers do not pile up in `XINFO CONSUMERS`.
        let mut pipe = ::redis::pipe();
        for stream in [&self.keys.retry, &self.keys.shards] {
            for name in [consumer.to_string(), format!("{consumer}.requeue")] {
                pipe.cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(stream)
                    .arg(GROUP)
                    .arg(name)
                    .ignore();
            }
        }
        self.call("xgroup delconsumer", Use::Shared, |mut c| async move {
            pipe.query_async::<()>(&mut c).await
        })
        .await?;
        Ok(exhausted.into_iter().map(|(_, s)| s).collect())
    }
}
