//! The in-process backend: moka with a per-entry TTL and a byte-weighted capacity.
//! It is what `technic scan` uses by default; a single process only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::future::Cache as Moka;
use moka::Expiry;

use super::predict::{Slot, Weights};
use super::{Cache, CacheError, Kind, MemoryInfo, KEY_PREFIX};

#[derive(Clone)]
struct Entry {
    bytes: std::sync::Arc<Vec<u8>>,
    ttl: Duration,
    stored: Instant,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Entry,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

pub struct MemoryCache {
    inner: Moka<String, Entry>,
    /// Requests per symbol, and the time of the last one per `VARIANT|SYMBOL` (Unix ms).
    requests: Mutex<Requests>,
    settings: Mutex<HashMap<String, (u64, String)>>,
    peak: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Requests {
    counts: HashMap<String, u64>,
    last: HashMap<String, i64>,
    dollar_volume: HashMap<String, f64>,
    /// The request model.
    model: Weights,
}

/// Bound on distinct symbols (and variants) tracked for the most-requested ranking.
const MAX_TRACKED_SYMBOLS: usize = 100_000;

impl MemoryCache {
    /// `max_bytes` bounds the total size of stored values.
    pub fn new(max_bytes: u64) -> Self {
        MemoryCache {
            inner: Moka::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &String, v: &Entry| {
                    (k.len() + v.bytes.len()).try_into().unwrap_or(u32::MAX)
                })
                .expire_after(PerEntryTtl)
                .build(),
            requests: Mutex::new(Requests::default()),
            settings: Mutex::new(HashMap::new()),
            peak: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn requests(&self) -> std::sync::MutexGuard<'_, Requests> {
        // Counters only; a poisoned lock still holds usable counts.
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Cache for MemoryCache {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.inner.get(k).await.map(|e| e.bytes.as_ref().clone()));
        }
        Ok(out)
    }

    async fn set_many(&self, entries: Vec<(String, Vec<u8>, Duration)>) -> Result<(), CacheError> {
        for (k, v, ttl) in entries {
            let entry = Entry {
                bytes: std::sync::Arc::new(v),
                ttl,
                stored: Instant::now(),
            };
            self.inner.insert(k, entry).await;
        }
        self.inner.run_pending_tasks().await;
        let used = self.inner.weighted_size();
        self.peak
            .fetch_max(used, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        Ok(self
            .inner
            .get(key)
            .await
            .map(|e| e.ttl.saturating_sub(e.stored.elapsed())))
    }

    async fn clear(&self) -> Result<u64, CacheError> {
        self.inner.run_pending_tasks().await;
        let keys: Vec<String> = self
            .inner
            .iter()
            .filter(|(k, _)| k.starts_with(KEY_PREFIX))
            .map(|(k, _)| k.as_ref().clone())
            .collect();
        for k in &keys {
            self.inner.invalidate(k).await;
        }
        *self.requests() = Requests::default();
        Ok(keys.len() as u64)
    }

    async fn keys_per_kind(&self) -> Result<BTreeMap<Kind, u64>, CacheError> {
        self.inner.run_pending_tasks().await;
        let mut out: BTreeMap<Kind, u64> = Kind::ALL.iter().map(|k| (*k, 0)).collect();
        for (k, _) in self.inner.iter() {
            if let Some(kind) = Kind::ALL.iter().find(|kind| k.starts_with(&kind.key(""))) {
                *out.entry(*kind).or_default() += 1;
            }
        }
        Ok(out)
    }

    async fn memory(&self) -> Result<MemoryInfo, CacheError> {
        self.inner.run_pending_tasks().await;
        let used = self.inner.weighted_size();
        Ok(MemoryInfo {
            used_bytes: used,
            peak_bytes: self
                .peak
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(used),
        })
    }

    async fn record_requests(
        &self,
        symbols: &[String],
        variant: &str,
        at_ms: i64,
    ) -> Result<(), CacheError> {
        let mut r = self.requests();
        for s in symbols {
            if r.counts.len() < MAX_TRACKED_SYMBOLS || r.counts.contains_key(s) {
                *r.counts.entry(s.clone()).or_default() += 1;
            }
            let member = super::request_member(variant, s);
            if r.last.len() < MAX_TRACKED_SYMBOLS || r.last.contains_key(&member) {
                r.last.insert(member, at_ms);
            }
        }
        Ok(())
    }

    async fn add_request_weights(&self, weights: &Weights) -> Result<(), CacheError> {
        self.requests()
            .model
            .merge(weights.clone(), MAX_TRACKED_SYMBOLS);
        Ok(())
    }

    async fn request_slots(
        &self,
        slots: &[(i64, Slot)],
    ) -> Result<Vec<Vec<(String, f64)>>, CacheError> {
        let r = self.requests();
        Ok(slots
            .iter()
            .map(|(era, slot)| r.model.slot(*era, *slot))
            .collect())
    }

    async fn record_dollar_volumes(&self, volumes: &[(String, f64)]) -> Result<(), CacheError> {
        let mut r = self.requests();
        for (s, v) in volumes {
            if r.dollar_volume.len() < MAX_TRACKED_SYMBOLS || r.dollar_volume.contains_key(s) {
                r.dollar_volume.insert(s.clone(), *v);
            }
        }
        Ok(())
    }

    async fn top_dollar_volume(&self, n: usize) -> Result<Vec<String>, CacheError> {
        let r = self.requests();
        let mut all: Vec<(&String, f64)> = r.dollar_volume.iter().map(|(s, v)| (s, *v)).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        Ok(all.into_iter().take(n).map(|(s, _)| s.clone()).collect())
    }

    async fn recently_requested(
        &self,
        since_ms: i64,
        n: usize,
    ) -> Result<Vec<(String, String)>, CacheError> {
        let mut recent: Vec<(i64, &String)> = Vec::new();
        let r = self.requests();
        for (member, at) in &r.last {
            if *at >= since_ms {
                recent.push((*at, member));
            }
        }
        recent.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        Ok(recent
            .into_iter()
            .take(n)
            .filter_map(|(_, m)| super::split_request(m))
            .collect())
    }

    async fn most_requested(&self, n: usize) -> Result<Vec<(String, u64)>, CacheError> {
        let mut all: Vec<(String, u64)> = self
            .requests()
            .counts
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        Ok(all)
    }

    async fn put_setting(&self, name: &str, value: &str) -> Result<u64, CacheError> {
        let mut all = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        let entry = all.entry(name.to_string()).or_insert((0, String::new()));
        *entry = (entry.0 + 1, value.to_string());
        Ok(entry.0)
    }

    async fn get_setting(&self, name: &str) -> Result<Option<(u64, String)>, CacheError> {
        let all = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        Ok(all.get(name).cloned())
    }
}
