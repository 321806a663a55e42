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
pub mod redis;
pub mod scan_cache;
pub mod ttl;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use build::build;
pub use codec::{decode, encode, CodecError, CODEC_VERSION};
pub use memory::MemoryCache;
pub use scan_cache::{Analytics, CacheReport, CacheStatus, HitSample, KindStats, ScanCache};
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
    /// Counts one request for each symbol (the most-requested ranking).
    async fn record_requests(&self, symbols: &[String]) -> Result<(), CacheError>;
    /// The `n` most-requested symbols with their counts, most first.
    async fn most_requested(&self, n: usize) -> Result<Vec<(String, u64)>, CacheError>;
}

/// Where `--cache` / `cache.url` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheTarget {
    None,
    Memory,
    Redis(String),
    RedisCluster(Vec<String>),
}

impl std::str::FromStr for CacheTarget {
    type Err = CacheError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| CacheError::InvalidUrl {
            url: s.to_string(),
            reason: reason.to_string(),
        };
        match s {
            "none" | "off" => Ok(CacheTarget::None),
            "memory" => Ok(CacheTarget::Memory),
            _ if s.starts_with("redis://") || s.starts_with("rediss://") => Ok(CacheTarget::Redis(s.to_string())),
            _ => match s.strip_prefix("redis-cluster://") {
                Some(rest) => {
                    let nodes: Vec<String> = rest
                        .split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(|n| format!("redis://{n}"))
                        .collect();
                    if nodes.is_empty() {
                        Err(invalid("expected redis-cluster://HOST:PORT[,HOST:PORT...]"))
                    } else {
                        Ok(CacheTarget::RedisCluster(nodes))
                    }
                }
                None => Err(invalid(
                    "expected none, memory, redis://HOST:PORT or redis-cluster://HOST:PORT[,HOST:PORT...]",
                )),
            },
        }
    }
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
