//! The shared cache: a [`Cache`] trait over raw bytes with three backends (memory via moka,
//! Redis standalone, Redis Cluster), and the typed layer the workers use on top of it
//! ([`ScanCache`]: codec with a version byte, SmartTtl, stats, degraded mode).
//!
//! Keys are `technic:v1:{kind}:{...}`. The cache is generic over serde values: it never
//! imports `scan` or `cluster`; the workers decide what to cache. A backend error never
//! fails a scan: [`ScanCache`] turns it into a miss, marks itself degraded (visible in the
//! report and health), and tries the backend again after a short pause.

mod build;
pub mod codec;
pub mod memory;
pub mod predict;
pub mod redis;
pub mod scan_cache;
pub mod shared_stats;
pub mod ttl;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use self::redis::{RedisCache, RedisClusterCache};
pub use crate::redis_link::RedisOptions;
pub use build::build;
pub use codec::{decode, encode, CodecError, CODEC_VERSION};
pub use memory::MemoryCache;
pub use scan_cache::{
    Analytics, CacheReport, CacheStatus, HitSample, KindStats, NodeStats, ScanCache, TimeSaved,
    Warming,
};
pub use shared_stats::{Counts, KindCounts, SharedStats};
pub use ttl::{Clock, SmartTtl, SystemClock, TtlRule, TtlSettings};

/// Prefix of every key technic writes; `clear` removes exactly these.
pub const KEY_PREFIX: &str = "technic:v1:";

/// What a cached value is; part of the key, the TTL policy and the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Bars,
    Features,
    Ml,
    Scan,
    Meta,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Bars, Kind::Features, Kind::Ml, Kind::Scan, Kind::Meta];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bars => "bars",
            Kind::Features => "features",
            Kind::Ml => "ml",
            Kind::Scan => "scan",
            Kind::Meta => "meta",
        }
    }

    /// `technic:v1:{kind}:{rest}`.
    pub fn key(self, rest: &str) -> String {
        format!("{KEY_PREFIX}{}:{rest}", self.as_str())
    }
}

/// A cache backend failed (unreachable, timed out, refused a command).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CacheError {
    #[error("cache backend unavailable: {0}")]
    Unavailable(String),
    #[error("invalid cache url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
}

impl From<CacheError> for crate::error::UserError {
    fn from(e: CacheError) -> Self {
        use crate::error::{ErrorCode, UserError};
        match e {
            CacheError::InvalidUrl { .. } => UserError::new(
                ErrorCode::InvalidConfig,
                e.to_string(),
                vec!["give --cache as none, memory, redis://HOST:PORT or redis-cluster://HOST:PORT[,HOST:PORT...]".into()],
            ),
            CacheError::Unavailable(_) => UserError::new(
                ErrorCode::CacheUnavailable,
                e.to_string(),
                vec![
                    "check that Redis is running and reachable".into(),
                    "or use --cache memory or --cache none".into(),
                ],
            ),
        }
    }
}

impl From<crate::redis_link::LinkError> for CacheError {
    fn from(e: crate::redis_link::LinkError) -> Self {
        match e {
            crate::redis_link::LinkError::InvalidUrl { url, reason } => {
                CacheError::InvalidUrl { url, reason }
            }
            e => CacheError::Unavailable(e.to_string()),
        }
    }
}

/// Memory used by the backend, summed over every master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryInfo {
    pub used_bytes: u64,
    pub peak_bytes: u64,
}

/// A byte-level cache backend. Every implementation passes the conformance suite in
/// `tests/cache_backends.rs`.
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// `memory`, `redis` or `redis-cluster`.
    fn backend(&self) -> &'static str;
    /// Values for `keys`, in order; `None` for a miss.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError>;
    /// Stores every entry with its own TTL.
    async fn set_many(&self, entries: Vec<(String, Vec<u8>, Duration)>) -> Result<(), CacheError>;
    /// Remaining TTL of a key as the backend reports it; `None` if absent.
    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError>;
    /// Removes every `technic:*` key (never anything else); returns how many.
    async fn clear(&self) -> Result<u64, CacheError>;
    /// Number of keys per kind.
    async fn keys_per_kind(&self) -> Result<BTreeMap<Kind, u64>, CacheError>;
    /// Memory used and peak, summed over masters.
    async fn memory(&self) -> Result<MemoryInfo, CacheError>;
    /// Counts one request for each symbol (the most-requested ranking) and stamps it as
    /// requested at `at_ms` (Unix ms) with `variant` (what the request asked for besides
    /// the symbol, e.g. the as-of date and lookback of its keys: what a refresh reloads).
    async fn record_requests(
        &self,
        symbols: &[String],
        variant: &str,
        at_ms: i64,
    ) -> Result<(), CacheError>;
    /// Adds observed request weights to the request model ([`predict`], keys
    /// [`model_key`]); each slot keeps at most 100,000 symbols.
    async fn add_request_weights(&self, weights: &predict::Weights) -> Result<(), CacheError>;
    /// The request model's slots, whole, one `(symbol, weight)` list per `(era, slot)`
    /// asked for, in order (empty for a slot never written).
    async fn request_slots(
        &self,
        slots: &[(i64, predict::Slot)],
    ) -> Result<Vec<Vec<(String, f64)>>, CacheError>;
    /// The `n` most-requested symbols with their counts, most first.
    async fn most_requested(&self, n: usize) -> Result<Vec<(String, u64)>, CacheError>;
    /// Keeps each symbol's latest 20-day dollar volume (the warmer's second source of
    /// popular symbols, after requests).
    async fn record_dollar_volumes(&self, volumes: &[(String, f64)]) -> Result<(), CacheError>;
    /// The `n` symbols of highest dollar volume on record, highest first.
    async fn top_dollar_volume(&self, n: usize) -> Result<Vec<String>, CacheError>;
    /// `(variant, symbol)` pairs last requested at or after `since_ms` (Unix ms), most
    /// recent first, at most `n` (what the warmer refreshes ahead of expiry).
    async fn recently_requested(
        &self,
        since_ms: i64,
        n: usize,
    ) -> Result<Vec<(String, String)>, CacheError>;
    /// Adds what `node` counted since its last flush to the cluster's statistics
    /// ([`shared_stats`]). A backend that is not shared keeps none: the process's own
    /// counters are the whole story.
    async fn add_stats(
        &self,
        _node: &str,
        _delta: &Counts,
        _now_ms: i64,
    ) -> Result<(), CacheError> {
        Ok(())
    }
    /// The cluster's statistics; `None` for a backend that is not shared.
    async fn shared_stats(&self, _now_ms: i64) -> Result<Option<SharedStats>, CacheError> {
        Ok(None)
    }
    /// Stores `value` as the setting `name` every node of this cache follows, and returns
    /// its new version (1, 2, …). The memory backend keeps it for its process.
    async fn put_setting(&self, name: &str, value: &str) -> Result<u64, CacheError>;
    /// The setting `name` and its version; `None` when none was stored.
    async fn get_setting(&self, name: &str) -> Result<Option<(u64, String)>, CacheError>;
}

/// How a recent request is kept: `VARIANT|SYMBOL` (a symbol never holds `|`).
pub(crate) fn request_member(variant: &str, symbol: &str) -> String {
    format!("{variant}|{symbol}")
}

/// The `(variant, symbol)` of a member written by [`request_member`].
pub(crate) fn split_request(member: &str) -> Option<(String, String)> {
    let (variant, symbol) = member.rsplit_once('|')?;
    Some((variant.to_string(), symbol.to_string()))
}

/// Where the request model keeps one slot of one era: a sorted set symbol → weight, in the
/// `{requests}` hash slot with the counts (one pipeline writes a flush, on a cluster too).
pub(crate) fn model_key(era: i64, slot: predict::Slot) -> String {
    format!("{KEY_PREFIX}meta:{{requests}}:w:{era}:{}", slot.name())
}

/// The key of a shared setting (not a cache entry: `clear` leaves it).
pub(crate) fn setting_key(name: &str) -> String {
    format!("{KEY_PREFIX}settings:{name}")
}

pub use crate::config::CacheTarget;

impl From<crate::config::InvalidCacheUrl> for CacheError {
    fn from(e: crate::config::InvalidCacheUrl) -> Self {
        CacheError::InvalidUrl {
            url: e.url,
            reason: e.reason,
        }
    }
}

/// What [`open`] needs besides the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// Capacity of the memory backend (keys + values).
    pub memory_max_bytes: u64,
    /// Timeouts of the Redis backends.
    pub redis: RedisOptions,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            memory_max_bytes: 512 * 1024 * 1024,
            redis: RedisOptions::default(),
        }
    }
}

/// The backend `target` names; `None` for [`CacheTarget::None`]. Never connects (the Redis
/// backends connect on first use), so a Redis that is down does not fail this; only a
/// malformed URL does. Must be called inside a tokio runtime.
pub async fn open(
    target: &CacheTarget,
    options: &OpenOptions,
) -> Result<Option<Arc<dyn Cache>>, CacheError> {
    Ok(match target {
        CacheTarget::None => None,
        CacheTarget::Memory => Some(Arc::new(MemoryCache::new(options.memory_max_bytes))),
        CacheTarget::Redis(url) => Some(Arc::new(RedisCache::new(url, options.redis)?)),
        CacheTarget::RedisCluster(nodes) => {
            Some(Arc::new(RedisClusterCache::new(nodes, options.redis)?))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_targets() {
        assert_eq!(
            Kind::Bars.key("AAPL:latest:500"),
            "technic:v1:bars:AAPL:latest:500"
        );
        assert_eq!("memory".parse::<CacheTarget>(), Ok(CacheTarget::Memory));
        assert_eq!("none".parse::<CacheTarget>(), Ok(CacheTarget::None));
        assert_eq!(
            "redis://127.0.0.1:6379/0".parse::<CacheTarget>(),
            Ok(CacheTarget::Redis("redis://127.0.0.1:6379/0".into()))
        );
        assert_eq!(
            "redis-cluster://a:1, b:2".parse::<CacheTarget>(),
            Ok(CacheTarget::RedisCluster(vec![
                "redis://a:1".into(),
                "redis://b:2".into()
            ]))
        );
        assert!("memcached://x".parse::<CacheTarget>().is_err());
        assert!("redis-cluster://".parse::<CacheTarget>().is_err());
    }
}
