//! The Redis backends: [`RedisCache`] (one server) and [`RedisClusterCache`] (Redis Cluster),
//! both byte-level [`Cache`]s passing the conformance suite in `tests/cache_backends.rs`.
//!
//! Both are built without touching the network and connect on first use, with short
//! connection and response timeouts, so an unreachable Redis costs a scan little: every
//! operation fails fast with [`CacheError::Unavailable`] and works again once Redis is back,
//! without re-creating the cache. Error messages never carry the URL (it may hold a password).
//!
//! Node-wide operations (`clear`, `keys_per_kind`, `memory`) run on every master: SCAN is
//! per node, and INFO describes one node. This module must not FLUSHALL/FLUSHDB: other keys in
//! the same Redis belong to someone else.

mod cluster;
mod slots;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager};
use ::redis::{RedisError, RedisResult};
use async_trait::async_trait;

pub use cluster::RedisClusterCache;

use super::predict::{Slot, Weights};
use super::{shared_stats, Cache, CacheError, Counts, Kind, MemoryInfo, SharedStats, KEY_PREFIX};
pub(crate) use crate::redis_link::{bounded, parse_url, RedisOptions};
use crate::redis_link::{manager, LinkError};

/// The sorted sets behind `record_requests`: request counts (`most_requested`) and the time
/// of each symbol's last request (`recently_requested`). One hash tag, so one slot: both
/// are written in one pipeline, on a cluster too. `technic:*` keys, so `clear` removes
/// them, but not cache entries: `keys_per_kind` and `clear`'s count leave them out, as the
/// memory backend does.
pub const REQUESTED_KEY: &str = "technic:v1:meta:{requests}:count";
pub const RECENT_KEY: &str = "technic:v1:meta:{requests}:recent";
/// Each symbol's latest 20-day dollar volume (score).
pub const DOLLAR_VOLUME_KEY: &str = "technic:v1:meta:{requests}:dollar_volume";

/// Whether a `technic:*` key is the request tracking rather than a cache entry.
fn is_tracking(key: &[u8]) -> bool {
    key.starts_with(b"technic:v1:meta:{requests}:")
}

/// Bound on distinct symbols kept in [`REQUESTED_KEY`] (the least requested are trimmed).
const MAX_TRACKED_SYMBOLS: usize = 100_000;
/// Keys per SCAN step and per UNLINK pipeline.
const SCAN_COUNT: usize = 1_000;
/// Keys per MGET: see `RedisCache::get_many`.
pub(crate) const GET_BATCH: usize = 250;
/// Entries per SET pipeline, so one response stays small enough for the response timeout.
const SET_BATCH: usize = 1_000;

/// `CacheError::Unavailable` for a failed Redis call. The driver's messages name the failing
/// node or command, never the credentials.
pub(crate) fn unavailable(op: &str, e: RedisError) -> CacheError {
    LinkError::of(op, &e).into()
}

fn clamp_ttl_ms(ttl: Duration) -> u64 {
    // PX 0 is an error in Redis; a zero TTL means "expire at once", one millisecond is close.
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `PTTL` reply → remaining TTL: -2 absent, -1 no expiry (technic never writes such a key).
fn pttl_to_duration(ms: i64) -> Option<Duration> {
    match ms {
        -2 => None,
        -1 => Some(Duration::MAX),
        ms => Some(Duration::from_millis(ms.max(0) as u64)),
    }
}

fn kind_of(key: &[u8]) -> Option<Kind> {
    let rest = key.strip_prefix(KEY_PREFIX.as_bytes())?;
    Kind::ALL.into_iter().find(|k| {
        rest.strip_prefix(k.as_str().as_bytes())
            .is_some_and(|r| r.first() == Some(&b':'))
    })
}

fn scan_cmd(cursor: u64) -> ::redis::Cmd {
    let mut cmd = ::redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(format!("{KEY_PREFIX}*"))
        .arg("COUNT")
        .arg(SCAN_COUNT);
    cmd
}

/// SCAN + UNLINK of the cache's keys (`technic:v1:KIND:*`) on one node; returns the cache
/// entries removed. The cluster's own keys under the same prefix (`technic:v1:queue:…`,
/// `technic:v1:nodes:…`: the work queue with its in-flight shards, the node registry) are
/// not cache and are left alone. UNLINK goes one key per command in a pipeline: on a
/// cluster node, one multi-key UNLINK over keys of different slots is a CROSSSLOT error.
pub(crate) async fn clear_node<C: ConnectionLike + Send>(
    conn: &mut C,
    opts: &RedisOptions,
) -> Result<u64, CacheError> {
    let mut cursor = 0u64;
    let mut removed = 0u64;
    loop {
        let (next, mut keys): (u64, Vec<Vec<u8>>) =
            bounded("scan", opts.deadline(), scan_cmd(cursor).query_async(conn)).await?;
        keys.retain(|k| kind_of(k).is_some());
        if !keys.is_empty() {
            let mut pipe = ::redis::pipe();
            for k in &keys {
                pipe.cmd("UNLINK").arg(k);
            }
            let counts: Vec<u64> =
                bounded("unlink", opts.deadline(), pipe.query_async(conn)).await?;
            removed += keys
                .iter()
                .zip(counts)
                .filter(|(k, _)| !is_tracking(k))
                .map(|(_, n)| n)
                .sum::<u64>();
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}

/// Cache entries per kind on one node (one SCAN pass over `technic:*`).
pub(crate) async fn count_node<C: ConnectionLike + Send>(
    conn: &mut C,
    opts: &RedisOptions,
    out: &mut BTreeMap<Kind, u64>,
) -> Result<(), CacheError> {
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) =
            bounded("scan", opts.deadline(), scan_cmd(cursor).query_async(conn)).await?;
        for k in keys.iter().filter(|k| !is_tracking(k)) {
            if let Some(kind) = kind_of(k) {
                *out.entry(kind).or_default() += 1;
            }
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// `used_memory` and `used_memory_peak` of one node.
pub(crate) async fn memory_node<C: ConnectionLike + Send>(
    conn: &mut C,
    opts: &RedisOptions,
) -> Result<MemoryInfo, CacheError> {
    let info: String = bounded(
        "info memory",
        opts.deadline(),
        ::redis::cmd("INFO").arg("memory").query_async(conn),
    )
    .await?;
    Ok(parse_info_memory(&info))
}

fn parse_info_memory(info: &str) -> MemoryInfo {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(':')?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    MemoryInfo {
        used_bytes: field("used_memory"),
        peak_bytes: field("used_memory_peak"),
    }
}

fn empty_counts() -> BTreeMap<Kind, u64> {
    Kind::ALL.iter().map(|k| (*k, 0)).collect()
}

/// ZINCRBY per distinct symbol and ZADD of `now_ms` as its last request, then trim both to
/// [`MAX_TRACKED_SYMBOLS`] (the least requested, the least recent). One slot.
pub(crate) fn record_pipeline(symbols: &[String], variant: &str, now_ms: i64) -> ::redis::Pipeline {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for s in symbols {
        *counts.entry(s.as_str()).or_default() += 1;
    }
    let mut pipe = ::redis::pipe();
    let recent = pipe.cmd("ZADD").arg(RECENT_KEY);
    for s in counts.keys() {
        recent.arg(now_ms).arg(super::request_member(variant, s));
    }
    recent.ignore();
    for (s, n) in counts {
        pipe.cmd("ZINCRBY")
            .arg(REQUESTED_KEY)
            .arg(n)
            .arg(s)
            .ignore();
    }
    trim(&mut pipe, [REQUESTED_KEY, RECENT_KEY]);
    pipe
}

/// ZINCRBY of each observed weight into its slot's sorted set, then trim each set written.
/// One hash slot (`{requests}`).
pub(crate) fn request_weights_pipeline(weights: &Weights) -> ::redis::Pipeline {
    let mut pipe = ::redis::pipe();
    let mut keys = Vec::new();
    for ((era, slot), add) in weights.slots() {
        let key = super::model_key(*era, *slot);
        for (s, w) in add {
            pipe.cmd("ZINCRBY").arg(&key).arg(*w).arg(s).ignore();
        }
        keys.push(key);
    }
    trim(&mut pipe, keys);
    pipe
}

/// ZREMRANGEBYRANK of each key down to its [`MAX_TRACKED_SYMBOLS`] highest scores.
fn trim<K: ::redis::ToRedisArgs>(pipe: &mut ::redis::Pipeline, keys: impl IntoIterator<Item = K>) {
    let keep = i64::try_from(MAX_TRACKED_SYMBOLS).unwrap_or(i64::MAX);
    for key in keys {
        pipe.cmd("ZREMRANGEBYRANK")
            .arg(key)
            .arg(0)
            .arg(-(keep + 1))
            .ignore();
    }
}

/// ZADD of every volume, then trim to the [`MAX_TRACKED_SYMBOLS`] highest.
pub(crate) fn dollar_volume_pipeline(volumes: &[(String, f64)]) -> ::redis::Pipeline {
    let mut pipe = ::redis::pipe();
    let add = pipe.cmd("ZADD").arg(DOLLAR_VOLUME_KEY);
    for (s, v) in volumes {
        add.arg(*v).arg(s);
    }
    add.ignore();
    trim(&mut pipe, [DOLLAR_VOLUME_KEY]);
    pipe
}

/// One ZRANGE … WITHSCORES per request-model slot, in order (one hash slot: one pipeline).
pub(crate) fn request_slots_pipeline(slots: &[(i64, Slot)]) -> ::redis::Pipeline {
    let mut pipe = ::redis::pipe();
    for (era, slot) in slots {
        pipe.cmd("ZRANGE")
            .arg(super::model_key(*era, *slot))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES");
    }
    pipe
}

/// The `n` symbols of highest dollar volume.
pub(crate) fn top_dollar_volume_cmd(n: usize) -> ::redis::Cmd {
    let mut cmd = ::redis::cmd("ZREVRANGE");
    cmd.arg(DOLLAR_VOLUME_KEY).arg(0).arg(n as i64 - 1);
    cmd
}

/// `(variant, symbol)` last requested at or after `since_ms`, most recent first, at most
/// `n`.
pub(crate) async fn recently_requested_on<C: ConnectionLike + Send>(
    conn: &mut C,
    since_ms: i64,
    n: usize,
) -> RedisResult<Vec<(String, String)>> {
    let members: Vec<String> = ::redis::cmd("ZREVRANGEBYSCORE")
        .arg(RECENT_KEY)
        .arg("+inf")
        .arg(since_ms)
        .arg("LIMIT")
        .arg(0)
        .arg(n)
        .query_async(conn)
        .await?;
    Ok(members
        .iter()
        .filter_map(|m| super::split_request(m))
        .collect())
}

/// The `n` most requested, most first, ties by symbol (as the memory backend orders them).
/// ZREVRANGE orders equal scores by descending symbol, so the members tied at the cut are
/// fetched again with ZRANGEBYSCORE, which orders them by ascending symbol.
async fn most_requested_on<C: ConnectionLike + Send>(
    conn: &mut C,
    n: usize,
) -> RedisResult<Vec<(String, u64)>> {
    let top: Vec<(String, f64)> = ::redis::cmd("ZREVRANGE")
        .arg(REQUESTED_KEY)
        .arg(0)
        .arg(n.saturating_sub(1))
        .arg("WITHSCORES")
        .query_async(conn)
        .await?;
    let Some(cut) = top.last().map(|(_, score)| *score) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<(String, f64)> = top.into_iter().filter(|(_, c)| *c > cut).collect();
    let tied: Vec<(String, f64)> = ::redis::cmd("ZRANGEBYSCORE")
        .arg(REQUESTED_KEY)
        .arg(cut)
        .arg(cut)
        .arg("WITHSCORES")
        .arg("LIMIT")
        .arg(0)
        .arg(n - out.len())
        .query_async(conn)
        .await?;
    out.extend(tied);
    Ok(ranked(out))
}

/// Scores → counts, most first, ties by symbol.
fn ranked(raw: Vec<(String, f64)>) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = raw
        .into_iter()
        .map(|(s, score)| (s, score.max(0.0) as u64))
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// One Redis server through a `ConnectionManager`: one multiplexed connection, re-established
/// in the background after a failure.
pub struct RedisCache {
    conn: ConnectionManager,
    opts: RedisOptions,
}

impl RedisCache {
    /// Never connects: the first operation does. Must be called inside a tokio runtime (the
    /// connection manager spawns its reconnect task there); outside one it is an error.
    pub fn new(url: &str, opts: RedisOptions) -> Result<Self, CacheError> {
        // One retry, briefly (the shared policy): while Redis is down each call costs about
        // one refused connect, and the next call tries again.
        let conn = manager(parse_url(url)?, opts, Duration::ZERO)?;
        Ok(RedisCache { conn, opts })
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

#[async_trait]
impl Cache for RedisCache {
    fn backend(&self) -> &'static str {
        "redis"
    }

    /// MGETs of [`GET_BATCH`] keys, one after another. Measured with 5,000 values of 20 KB
    /// on a local redis-server (`tests/cache_get_many_measure.rs`, medians of 9 runs; full
    /// table in ARCHITECTURE.md): MGET and pipelined GETs cost the same at equal batch sizes
    /// (all 5,000 in one command: 105 ms vs 86 ms; batches of 100: 30 vs 30 ms; of 250: 32
    /// vs 30 ms; of 1,000: 74 vs 76 ms). The batch size is what matters (big replies are
    /// slow to read); 250 rather than 100 keeps round trips few for a Redis across a network,
    /// and MGET is one command per batch. This method: 35 ms.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        let mut conn = self.conn();
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(GET_BATCH) {
            let values: Vec<Option<Vec<u8>>> = bounded(
                "mget",
                self.opts.deadline(),
                ::redis::cmd("MGET").arg(chunk).query_async(&mut conn),
            )
            .await?;
            out.extend(values);
        }
        Ok(out)
    }

    async fn set_many(&self, entries: Vec<(String, Vec<u8>, Duration)>) -> Result<(), CacheError> {
        let mut conn = self.conn();
        for chunk in entries.chunks(SET_BATCH) {
            let mut pipe = ::redis::pipe();
            for (k, v, ttl) in chunk {
                pipe.cmd("SET")
                    .arg(k)
                    .arg(v)
                    .arg("PX")
                    .arg(clamp_ttl_ms(*ttl))
                    .ignore();
            }
            bounded("set", self.opts.deadline(), pipe.exec_async(&mut conn)).await?;
        }
        Ok(())
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        let ms: i64 = bounded(
            "pttl",
            self.opts.deadline(),
            ::redis::cmd("PTTL").arg(key).query_async(&mut self.conn()),
        )
        .await?;
        Ok(pttl_to_duration(ms))
    }

    async fn clear(&self) -> Result<u64, CacheError> {
        clear_node(&mut self.conn(), &self.opts).await
    }

    async fn keys_per_kind(&self) -> Result<BTreeMap<Kind, u64>, CacheError> {
        let mut out = empty_counts();
        count_node(&mut self.conn(), &self.opts, &mut out).await?;
        Ok(out)
    }

    async fn memory(&self) -> Result<MemoryInfo, CacheError> {
        memory_node(&mut self.conn(), &self.opts).await
    }

    async fn record_requests(
        &self,
        symbols: &[String],
        variant: &str,
        at_ms: i64,
    ) -> Result<(), CacheError> {
        if symbols.is_empty() {
            return Ok(());
        }
        let pipe = record_pipeline(symbols, variant, at_ms);
        bounded(
            "zincrby",
            self.opts.deadline(),
            pipe.exec_async(&mut self.conn()),
        )
        .await
        .map_err(Into::into)
    }

    async fn add_request_weights(&self, weights: &Weights) -> Result<(), CacheError> {
        if weights.is_empty() {
            return Ok(());
        }
        let pipe = request_weights_pipeline(weights);
        bounded(
            "request model",
            self.opts.deadline(),
            pipe.exec_async(&mut self.conn()),
        )
        .await
        .map_err(Into::into)
    }

    async fn request_slots(
        &self,
        slots: &[(i64, Slot)],
    ) -> Result<Vec<Vec<(String, f64)>>, CacheError> {
        if slots.is_empty() {
            return Ok(Vec::new());
        }
        let pipe = request_slots_pipeline(slots);
        bounded(
            "request model",
            self.opts.deadline(),
            pipe.query_async(&mut self.conn()),
        )
        .await
        .map_err(Into::into)
    }

    async fn record_dollar_volumes(&self, volumes: &[(String, f64)]) -> Result<(), CacheError> {
        if volumes.is_empty() {
            return Ok(());
        }
        let pipe = dollar_volume_pipeline(volumes);
        bounded(
            "dollar volume",
            self.opts.deadline(),
            pipe.exec_async(&mut self.conn()),
        )
        .await
        .map_err(Into::into)
    }

    async fn top_dollar_volume(&self, n: usize) -> Result<Vec<String>, CacheError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let cmd = top_dollar_volume_cmd(n);
        bounded(
            "top dollar volume",
            self.opts.deadline(),
            cmd.query_async(&mut self.conn()),
        )
        .await
        .map_err(Into::into)
    }

    async fn recently_requested(
        &self,
        since_ms: i64,
        n: usize,
    ) -> Result<Vec<(String, String)>, CacheError> {
        bounded(
            "recently requested",
            self.opts.deadline(),
            recently_requested_on(&mut self.conn(), since_ms, n),
        )
        .await
        .map_err(Into::into)
    }

    async fn most_requested(&self, n: usize) -> Result<Vec<(String, u64)>, CacheError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        bounded(
            "most requested",
            self.opts.deadline(),
            most_requested_on(&mut self.conn(), n),
        )
        .await
        .map_err(Into::into)
    }

    async fn add_stats(&self, node: &str, delta: &Counts, now_ms: i64) -> Result<(), CacheError> {
        let pipe = shared_stats::add_pipeline(node, delta, now_ms);
        bounded(
            "stats",
            self.opts.deadline(),
            pipe.exec_async(&mut self.conn()),
        )
        .await
        .map_err(Into::into)
    }

    async fn shared_stats(&self, now_ms: i64) -> Result<Option<SharedStats>, CacheError> {
        bounded(
            "read stats",
            self.opts.deadline(),
            shared_stats::read_on(&mut self.conn(), now_ms),
        )
        .await
        .map(Some)
        .map_err(Into::into)
    }

    async fn put_setting(&self, name: &str, value: &str) -> Result<u64, CacheError> {
        bounded(
            "put setting",
            self.opts.deadline(),
            put_setting_on(&mut self.conn(), name, value),
        )
        .await
        .map_err(Into::into)
    }

    async fn get_setting(&self, name: &str) -> Result<Option<(u64, String)>, CacheError> {
        bounded(
            "get setting",
            self.opts.deadline(),
            get_setting_on(&mut self.conn(), name),
        )
        .await
        .map_err(Into::into)
    }
}

/// Stores a shared setting with its version bumped, in one step.
pub(crate) async fn put_setting_on<C: ConnectionLike + Send>(
    conn: &mut C,
    name: &str,
    value: &str,
) -> RedisResult<u64> {
    ::redis::Script::new(
        "redis.call('HSET', KEYS[1], 'value', ARGV[1]) \
         return redis.call('HINCRBY', KEYS[1], 'version', 1)",
    )
    .key(super::setting_key(name))
    .arg(value)
    .invoke_async(conn)
    .await
}

pub(crate) async fn get_setting_on<C: ConnectionLike + Send>(
    conn: &mut C,
    name: &str,
) -> RedisResult<Option<(u64, String)>> {
    let (version, value): (Option<u64>, Option<String>) = ::redis::cmd("HMGET")
        .arg(super::setting_key(name))
        .arg("version")
        .arg("value")
        .query_async(conn)
        .await?;
    Ok(version.zip(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis_link::redact;

    #[test]
    fn request_tracking_keys_are_meta_keys_of_one_slot_and_not_entries() {
        for key in [REQUESTED_KEY, RECENT_KEY, DOLLAR_VOLUME_KEY] {
            assert!(key.starts_with(&Kind::Meta.key("{requests}:")), "{key}");
            assert_eq!(kind_of(key.as_bytes()), Some(Kind::Meta), "{key}");
            assert!(is_tracking(key.as_bytes()), "{key}");
        }
        assert!(!is_tracking(Kind::Meta.key("baseline:00").as_bytes()));
    }

    #[test]
    fn kinds_from_keys() {
        assert_eq!(kind_of(b"technic:v1:bars:AAPL:500"), Some(Kind::Bars));
        assert_eq!(kind_of(b"technic:v1:features:X"), Some(Kind::Features));
        assert_eq!(kind_of(b"technic:v1:barsx:X"), None);
        assert_eq!(kind_of(b"other:key"), None);
    }

    #[test]
    fn pttl_replies() {
        assert_eq!(pttl_to_duration(-2), None);
        assert_eq!(pttl_to_duration(-1), Some(Duration::MAX));
        assert_eq!(pttl_to_duration(1500), Some(Duration::from_millis(1500)));
        assert_eq!(clamp_ttl_ms(Duration::ZERO), 1);
    }

    #[test]
    fn info_memory_fields() {
        let info =
            "# Memory\r\nused_memory:1024\r\nused_memory_human:1K\r\nused_memory_peak:4096\r\n";
        assert_eq!(
            parse_info_memory(info),
            MemoryInfo {
                used_bytes: 1024,
                peak_bytes: 4096
            }
        );
    }

    #[test]
    fn outside_a_runtime_is_an_error_not_a_panic() {
        let r = RedisCache::new("redis://127.0.0.1:1", RedisOptions::default());
        assert!(matches!(r, Err(CacheError::Unavailable(_))));
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact("redis://user:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }

    #[test]
    fn ranking_orders_ties_by_symbol() {
        let raw = vec![("B".into(), 2.0), ("C".into(), 3.0), ("A".into(), 2.0)];
        assert_eq!(
            ranked(raw),
            vec![("C".into(), 3), ("A".into(), 2), ("B".into(), 2)]
        );
    }
}
