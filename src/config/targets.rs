//! Settings that name something and are parsed once: where the cache lives
//! ([`CacheTarget`], from `cache.url` or `--cache`) and the market hours the cache's TTLs
//! follow ([`TtlSettings`], `[cache.ttl]`).

use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::SettingsError;
use crate::redis_link::{redact, RedisUrl};

/// Where the cache lives: `none`, `memory`, `redis://HOST:PORT` or
/// `redis-cluster://HOST:PORT[,HOST:PORT...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheTarget {
    None,
    Memory,
    Redis(String),
    /// Seed nodes, each as `redis://HOST:PORT`.
    RedisCluster(Vec<String>),
}

/// A `cache.url` / `--cache` value that names no cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cache url {url:?}: {reason}")]
pub struct InvalidCacheUrl {
    pub url: String,
    pub reason: String,
}

impl std::str::FromStr for CacheTarget {
    type Err = InvalidCacheUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" | "off" => Ok(CacheTarget::None),
            "memory" => Ok(CacheTarget::Memory),
            _ if RedisUrl::looks_like(s) => match RedisUrl::parse(s) {
                Ok(RedisUrl::Single(url)) => Ok(CacheTarget::Redis(url)),
                Ok(RedisUrl::Cluster(seeds)) => Ok(CacheTarget::RedisCluster(seeds)),
                Err(e) => Err(InvalidCacheUrl {
                    url: redact(s),
                    reason: e.to_string(),
                }),
            },
            _ => Err(InvalidCacheUrl {
                url: s.to_string(),
                reason: "expected none, memory, redis://HOST:PORT or redis-cluster://HOST:PORT[,HOST:PORT...]".into(),
            }),
        }
    }
}

impl CacheTarget {
    /// The Redis this target names, for the parts that share it (the scan history).
    pub fn redis(&self) -> Option<RedisUrl> {
        match self {
            CacheTarget::Redis(url) => Some(RedisUrl::Single(url.clone())),
            CacheTarget::RedisCluster(seeds) => Some(RedisUrl::Cluster(seeds.clone())),
            CacheTarget::None | CacheTarget::Memory => None,
        }
    }
}

/// The longest base TTL of a kind (365 days): a TTL near `u64::MAX` seconds would overflow
/// when doubled for a low-volatility symbol.
pub const TTL_SECS_MAX: u64 = 31_536_000;

/// TTL settings (`[cache.ttl]`), all from config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtlSettings {
    pub bars_secs: u64,
    pub features_secs: u64,
    pub ml_secs: u64,
    pub scan_secs: u64,
    pub meta_secs: u64,
    /// Daily volatility (std of daily returns) above which TTLs are halved.
    pub high_vol_daily: f64,
    /// Daily volatility below which TTLs are doubled.
    pub low_vol_daily: f64,
    /// IANA time zone of the exchange, e.g. `America/New_York`.
    pub market_timezone: String,
    /// Session open and close in exchange time, `HH:MM`.
    pub market_open: String,
    pub market_close: String,
}

/// The exchange's time zone and session, parsed from [`TtlSettings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketHours {
    pub tz: Tz,
    pub open: NaiveTime,
    pub close: NaiveTime,
}

impl TtlSettings {
    /// Checks the settings (time zone, times, thresholds, TTLs) and parses the market
    /// hours; lists every problem at once.
    pub fn market_hours(&self) -> Result<MarketHours, SettingsError> {
        let mut p = Vec::new();
        let tz = self.market_timezone.parse::<Tz>().map_err(|_| {
            format!(
                "cache.ttl.market_timezone {:?} is not an IANA time zone",
                self.market_timezone
            )
        });
        let time = |name: &str, s: &str| {
            NaiveTime::parse_from_str(s, "%H:%M")
                .map_err(|_| format!("cache.ttl.{name} {s:?} is not HH:MM"))
        };
        let open = time("market_open", &self.market_open);
        let close = time("market_close", &self.market_close);
        if self.low_vol_daily.is_nan() || self.low_vol_daily >= self.high_vol_daily {
            p.push("cache.ttl.low_vol_daily must be below cache.ttl.high_vol_daily".to_string());
        }
        let ttls = [
            ("bars_secs", self.bars_secs),
            ("features_secs", self.features_secs),
            ("ml_secs", self.ml_secs),
            ("scan_secs", self.scan_secs),
            ("meta_secs", self.meta_secs),
        ];
        if ttls.iter().any(|(_, s)| *s == 0) {
            p.push("cache.ttl.*_secs must be at least 1".to_string());
        }
        p.extend(
            ttls.iter()
                .filter(|(_, secs)| *secs > TTL_SECS_MAX)
                .map(|(name, secs)| {
                    format!("cache.ttl.{name} {secs} is above {TTL_SECS_MAX} (365 days)")
                }),
        );
        match (tz, open, close) {
            (Ok(tz), Ok(open), Ok(close)) if p.is_empty() => {
                if open >= close {
                    p.push("cache.ttl.market_open must be before market_close".into());
                    return Err(SettingsError { problems: p });
                }
                Ok(MarketHours { tz, open, close })
            }
            (tz, open, close) => {
                p.extend([tz.err(), open.err(), close.err()].into_iter().flatten());
                Err(SettingsError { problems: p })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_bounded_so_doubling_cannot_overflow() {
        let mut ttl = crate::config::Settings::defaults().cache.ttl;
        ttl.bars_secs = u64::MAX;
        ttl.meta_secs = TTL_SECS_MAX + 1;
        let e = ttl.market_hours().unwrap_err();
        assert_eq!(e.problems.len(), 2, "{e:?}");
        assert!(e.problems[0].starts_with("cache.ttl.bars_secs"), "{e:?}");
        ttl.bars_secs = TTL_SECS_MAX;
        ttl.meta_secs = 1;
        assert!(ttl.market_hours().is_ok());
    }
}
