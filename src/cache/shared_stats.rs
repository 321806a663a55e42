//! The cache's statistics for the whole cluster, kept in the cache's Redis: every node
//! counts lookups where they happen (in memory, on the hot path, as before) and adds what
//! it counted since its last flush to Redis about once a heartbeat, so any node can show
//! the cluster's figures and each node's share.
//!
//! Keys, all in one hash slot (`{stats}`), so one pipeline writes or reads them on a Redis
//! Cluster too; not cache entries, so `clear` leaves them and the counts per kind skip them:
//! - `technic:v1:stats:{stats}:node:NODE`: hash `KIND.hits|misses|errors|decode_errors`
//!   (HINCRBY), `at` (last flush, Unix ms); expires [`NODE_TTL`] after the last flush;
//! - `technic:v1:stats:{stats}:nodes`: sorted set node → last flush (Unix ms);
//! - `technic:v1:stats:{stats}:t:BUCKET`: hash `hits`, `misses` of every kind and node in
//!   the [`BUCKET_SECS`]-second bucket starting at Unix second BUCKET; expires after
//!   [`BUCKETS`] buckets.

use std::collections::BTreeMap;

use ::redis::aio::ConnectionLike;
use ::redis::RedisResult;
use serde::{Deserialize, Serialize};

use super::Kind;

const PREFIX: &str = "technic:v1:stats:{stats}:";
/// Width of one bucket of the over-time series, seconds.
pub const BUCKET_SECS: i64 = 10;
/// Buckets kept and shown: one hour.
pub const BUCKETS: usize = 360;
/// A node that stopped flushing leaves the breakdown after this long (seconds).
pub const NODE_TTL: i64 = 7 * 24 * 3600;

/// What one node counted for one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KindCounts {
    pub hits: u64,
    pub misses: u64,
    /// Lookups answered as misses because the backend failed or was being skipped.
    pub errors: u64,
    /// Values found but not decodable (counted as misses too).
    pub decode_errors: u64,
}

impl KindCounts {
    const FIELDS: [&'static str; 4] = ["hits", "misses", "errors", "decode_errors"];

    fn values(&self) -> [u64; 4] {
        [self.hits, self.misses, self.errors, self.decode_errors]
    }

    fn set(&mut self, field: &str, v: u64) {
        match field {
            "hits" => self.hits = v,
            "misses" => self.misses = v,
            "errors" => self.errors = v,
            "decode_errors" => self.decode_errors = v,
            _ => {}
        }
    }

    /// `self - earlier`, field by field (a counter never goes down).
    pub fn since(&self, earlier: &KindCounts) -> KindCounts {
        KindCounts {
            hits: self.hits.saturating_sub(earlier.hits),
            misses: self.misses.saturating_sub(earlier.misses),
            errors: self.errors.saturating_sub(earlier.errors),
            decode_errors: self.decode_errors.saturating_sub(earlier.decode_errors),
        }
    }

    pub fn add(&mut self, other: &KindCounts) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.errors += other.errors;
        self.decode_errors += other.decode_errors;
    }

    pub fn is_zero(&self) -> bool {
        self.values().iter().all(|v| *v == 0)
    }
}

/// Counts per kind.
pub type Counts = BTreeMap<Kind, KindCounts>;

/// One node's totals as flushed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeCounts {
    /// Last flush, Unix milliseconds.
    pub at_ms: i64,
    pub per_kind: Counts,
}

/// The cluster's counters: each node's totals and the hits and misses per bucket, oldest
/// first (buckets without lookups included, as zeros).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SharedStats {
    pub nodes: BTreeMap<String, NodeCounts>,
    /// `(bucket start, Unix seconds, hits, misses)`.
    pub buckets: Vec<(i64, u64, u64)>,
}

/// The start of the bucket holding Unix second `secs`.
pub fn bucket_of(secs: i64) -> i64 {
    secs - secs.rem_euclid(BUCKET_SECS)
}

fn node_key(node: &str) -> String {
    format!("{PREFIX}node:{node}")
}

fn nodes_key() -> String {
    format!("{PREFIX}nodes")
}

fn bucket_key(bucket: i64) -> String {
    format!("{PREFIX}t:{bucket}")
}

/// The commands adding `delta` (counted by `node`, flushed at `now_ms`) to the totals.
pub fn add_pipeline(node: &str, delta: &Counts, now_ms: i64) -> ::redis::Pipeline {
    // MULTI/EXEC (one slot, so on a Redis Cluster too): a reader sees a node's totals and
    // the buckets move together.
    let mut pipe = ::redis::pipe();
    pipe.atomic();
    let node_key = node_key(node);
    let (mut hits, mut misses) = (0u64, 0u64);
    for (kind, c) in delta {
        hits += c.hits;
        misses += c.misses;
        for (field, v) in KindCounts::FIELDS.iter().zip(c.values()) {
            if v > 0 {
                pipe.cmd("HINCRBY")
                    .arg(&node_key)
                    .arg(format!("{}.{field}", kind.as_str()))
                    .arg(v)
                    .ignore();
            }
        }
    }
    pipe.cmd("HSET")
        .arg(&node_key)
        .arg("at")
        .arg(now_ms)
        .ignore();
    pipe.cmd("EXPIRE").arg(&node_key).arg(NODE_TTL).ignore();
    pipe.cmd("ZADD")
        .arg(nodes_key())
        .arg(now_ms)
        .arg(node)
        .ignore();
    pipe.cmd("ZREMRANGEBYSCORE")
        .arg(nodes_key())
        .arg("-inf")
        .arg(now_ms - NODE_TTL * 1000)
        .ignore();
    pipe.cmd("EXPIRE").arg(nodes_key()).arg(NODE_TTL).ignore();
    if hits + misses > 0 {
        let bucket = bucket_key(bucket_of(now_ms.div_euclid(1000)));
        pipe.cmd("HINCRBY")
            .arg(&bucket)
            .arg("hits")
            .arg(hits)
            .ignore();
        pipe.cmd("HINCRBY")
            .arg(&bucket)
            .arg("misses")
            .arg(misses)
            .ignore();
        pipe.cmd("EXPIRE")
            .arg(&bucket)
            .arg(BUCKET_SECS * (BUCKETS as i64 + 1))
            .ignore();
    }
    pipe
}

/// Reads every node's totals and the last [`BUCKETS`] buckets up to `now_ms`.
pub async fn read_on<C: ConnectionLike + Send>(
    conn: &mut C,
    now_ms: i64,
) -> RedisResult<SharedStats> {
    let nodes: Vec<String> = ::redis::cmd("ZRANGEBYSCORE")
        .arg(nodes_key())
        .arg(now_ms - NODE_TTL * 1000)
        .arg("+inf")
        .query_async(conn)
        .await?;
    let last = bucket_of(now_ms.div_euclid(1000));
    let starts: Vec<i64> = (0..BUCKETS as i64)
        .rev()
        .map(|i| last - i * BUCKET_SECS)
        .collect();
    let mut pipe = ::redis::pipe();
    pipe.atomic();
    for n in &nodes {
        pipe.cmd("HGETALL").arg(node_key(n));
    }
    for b in &starts {
        pipe.cmd("HGETALL").arg(bucket_key(*b));
    }
    let replies: Vec<BTreeMap<String, i64>> = if nodes.is_empty() && starts.is_empty() {
        Vec::new()
    } else {
        pipe.query_async(conn).await?
    };
    let (node_replies, bucket_replies) = replies.split_at(nodes.len().min(replies.len()));
    let mut out = SharedStats::default();
    for (name, fields) in nodes.iter().zip(node_replies) {
        if fields.is_empty() {
            continue; // expired between the two reads
        }
        let mut per_kind: Counts = Kind::ALL
            .iter()
            .map(|k| (*k, KindCounts::default()))
            .collect();
        for (field, v) in fields {
            if let Some((kind, what)) = field.split_once('.') {
                if let Some(k) = Kind::ALL.iter().find(|k| k.as_str() == kind) {
                    if let Some(c) = per_kind.get_mut(k) {
                        c.set(what, u64::try_from(*v).unwrap_or(0));
                    }
                }
            }
        }
        out.nodes.insert(
            name.clone(),
            NodeCounts {
                at_ms: fields.get("at").copied().unwrap_or(0),
                per_kind,
            },
        );
    }
    for (start, fields) in starts.iter().zip(bucket_replies) {
        let get = |f: &str| u64::try_from(fields.get(f).copied().unwrap_or(0)).unwrap_or(0);
        out.buckets.push((*start, get("hits"), get("misses")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_deltas() {
        assert_eq!(bucket_of(1_700_000_007), 1_700_000_000);
        assert_eq!(bucket_of(-3), -10);
        let a = KindCounts {
            hits: 5,
            misses: 3,
            errors: 1,
            decode_errors: 0,
        };
        let b = KindCounts {
            hits: 9,
            misses: 3,
            errors: 2,
            decode_errors: 1,
        };
        let d = b.since(&a);
        assert_eq!((d.hits, d.misses, d.errors, d.decode_errors), (4, 0, 1, 1));
        assert!(a.since(&b).is_zero());
    }
}
