//! The typed cache layer the workers use: encode/decode with the versioned codec, SmartTtl
//! on writes, hit/miss stats per kind, and degraded mode.
//!
//! Degraded mode: a backend error turns the operation into misses, is logged once, counted,
//! and makes the layer skip the backend for `retry_after`; after that the next operation
//! tries again, and a success clears the degraded state, so caching resumes without a
//! restart. A value that fails to decode is a miss and is counted, never a crash.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::predict::{self, Blend, Weights};
use super::{
    codec, Cache, CacheError, Counts, Kind, KindCounts, MemoryInfo, SharedStats, SmartTtl, TtlRule,
};
use crate::fingerprint::fnv1a;
use crate::telemetry::{metrics, KindLabel};

/// The name of the shared TTL settings ([`Cache::put_setting`]).
const TTL_SETTING: &str = "ttl";

/// Samples kept for the hit-rate-over-time view, and the spacing between them.
const HISTORY_LEN: usize = 360;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

#[derive(Default)]
struct KindCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    decode_errors: AtomicU64,
}

impl KindCounters {
    fn load(&self) -> KindCounts {
        KindCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            decode_errors: self.decode_errors.load(Ordering::Relaxed),
        }
    }
}

#[derive(Default)]
struct Health {
    skip_until: Option<Instant>,
    last_error: Option<String>,
    degraded_since: Option<DateTime<Utc>>,
}

/// The name of the last warm pass's record ([`Cache::put_setting`]).
const WARM_PASS_SETTING: &str = "warm_pass";
/// The name of the measured cold and warm seconds per symbol ([`Cache::put_setting`]).
const PACE_SETTING: &str = "pace";
/// Weight of the newest scan in the moving averages of [`Pace`].
const PACE_ALPHA: f64 = 0.3;

/// Seconds per symbol of computed scans, as moving averages: `cold` over scans without a
/// hit, `warm` over scans with every lookup a hit. Shared, so every node estimates with
/// what any node measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Pace {
    cold: Option<f64>,
    warm: Option<f64>,
}

/// What the cache's hits saved: a hit spares a symbol's cold time minus its warm time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeSaved {
    /// Seconds per symbol of scans without a hit (moving average); `null` until measured.
    pub cold_secs_per_symbol: Option<f64>,
    /// Seconds per symbol of scans with every lookup a hit; `null` until measured.
    pub warm_secs_per_symbol: Option<f64>,
    /// `cold − warm` (at least 0): what one hit saves; `null` until both are measured.
    /// A symbol's features hit spares its fetch and compute; a bars hit (after a features
    /// miss) spares less, so the estimate leans high when bars hits are many.
    pub secs_per_hit: Option<f64>,
    /// `secs_per_hit` × the hits counted (this cache's scope, every kind).
    pub total_secs: Option<f64>,
    /// Seconds saved in each interval of `hit_rate_history` (its new hits × per hit).
    pub series: Vec<f64>,
}

impl TimeSaved {
    fn estimate(
        pace: Pace,
        per_kind: &BTreeMap<Kind, KindStats>,
        history: &[HitSample],
    ) -> TimeSaved {
        let per_hit = match (pace.cold, pace.warm) {
            (Some(c), Some(w)) => Some((c - w).max(0.0)),
            _ => None,
        };
        let hits: u64 = per_kind.values().map(|k| k.hits).sum();
        let mut prev = 0;
        TimeSaved {
            cold_secs_per_symbol: pace.cold,
            warm_secs_per_symbol: pace.warm,
            secs_per_hit: per_hit,
            total_secs: per_hit.map(|p| p * hits as f64),
            series: history
                .iter()
                .map(|s| {
                    let new = s.hits.saturating_sub(prev);
                    prev = s.hits;
                    per_hit.unwrap_or(0.0) * new as f64
                })
                .collect(),
        }
    }
}

/// What the last warm pass warmed, shared so every node can measure it.
#[derive(Serialize, Deserialize)]
struct WarmPass {
    at: DateTime<Utc>,
    symbols: Vec<String>,
}

/// Warming precision: of the symbols the last warm pass made sure were cached, how many
/// were requested since.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warming {
    /// When the pass ran.
    pub at: DateTime<Utc>,
    /// Symbols it warmed (loaded, or found fresh).
    pub warmed: usize,
    /// Of those, requested since.
    pub requested: usize,
    /// `requested / warmed`; `null` for an empty pass.
    pub precision: Option<f64>,
}

/// One point of the hit rate over time (cumulative counters at `at`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HitSample {
    pub at: DateTime<Utc>,
    pub hits: u64,
    pub misses: u64,
}

/// Whether the backend answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheStatus {
    pub backend: String,
    pub available: bool,
    pub last_error: Option<String>,
    pub degraded_since: Option<DateTime<Utc>>,
}

/// Counters per kind: of the cluster when the backend is shared, else of this process.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct KindStats {
    pub hits: u64,
    pub misses: u64,
    pub hit_rate: Option<f64>,
    /// Lookups answered as misses because the backend failed or was being skipped.
    pub errors: u64,
    pub decode_errors: u64,
}

impl From<KindCounts> for KindStats {
    fn from(c: KindCounts) -> Self {
        let total = c.hits + c.misses;
        KindStats {
            hits: c.hits,
            misses: c.misses,
            hit_rate: (total > 0).then(|| c.hits as f64 / total as f64),
            errors: c.errors,
            decode_errors: c.decode_errors,
        }
    }
}

/// One node's share of the cluster's lookups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    pub hits: u64,
    pub misses: u64,
    pub hit_rate: Option<f64>,
    pub per_kind: BTreeMap<Kind, KindStats>,
    /// When the node last added its counts.
    pub updated_at: Option<DateTime<Utc>>,
}

/// The cache as a scan saw it.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct CacheReport {
    /// Symbols looked up.
    pub lookups: u64,
    /// Symbols served from the cache (features, or bars).
    pub hits: u64,
    /// Whether the backend failed during the scan.
    pub unavailable: bool,
}

/// Everything `cache stats` / analytics show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analytics {
    pub status: CacheStatus,
    /// `cluster`: the counters of every node on this shared cache (`per_node` has each
    /// one's share); `process`: this process's own (a memory cache, or the shared figures
    /// could not be read).
    pub scope: String,
    pub per_kind: BTreeMap<Kind, KindStats>,
    /// Each node's counters, by node id (`cluster` scope only).
    pub per_node: Option<BTreeMap<String, NodeStats>>,
    pub keys_per_kind: Option<BTreeMap<Kind, u64>>,
    pub memory: Option<MemoryInfo>,
    pub most_requested: Vec<(String, u64)>,
    pub hit_rate_history: Vec<HitSample>,
    /// Base TTL per kind, seconds.
    pub ttl_secs: BTreeMap<Kind, u64>,
    /// The last warm pass and how much of it was then requested; `null` before the first.
    pub warming: Option<Warming>,
    /// The time the hits saved, overall and over time.
    pub time_saved: TimeSaved,
}

pub struct ScanCache {
    backend: Arc<dyn Cache>,
    /// Replaceable at run time (`PUT /api/v1/cache/ttl`); read once per write batch.
    ttl: std::sync::RwLock<SmartTtl>,
    retry_after: Duration,
    counters: [KindCounters; 5],
    /// The counters as last added to the shared statistics.
    published: tokio::sync::Mutex<Counts>,
    /// Request weights observed here and not yet added to the backend's request model:
    /// added with the statistics, off the scan's path.
    observed: Mutex<Weights>,
    /// Version of the shared TTL settings in force here (0: this process's configured).
    ttl_version: AtomicU64,
    health: Mutex<Health>,
    history: Mutex<(Option<Instant>, VecDeque<HitSample>)>,
}

fn idx(kind: Kind) -> usize {
    kind as usize
}

impl ScanCache {
    pub fn new(backend: Arc<dyn Cache>, ttl: SmartTtl, retry_after: Duration) -> Self {
        ScanCache {
            backend,
            ttl: std::sync::RwLock::new(ttl),
            retry_after,
            counters: Default::default(),
            published: Default::default(),
            observed: Default::default(),
            ttl_version: AtomicU64::new(0),
            health: Mutex::new(Health::default()),
            history: Mutex::new((None, VecDeque::with_capacity(HISTORY_LEN))),
        }
    }

    pub fn backend(&self) -> &Arc<dyn Cache> {
        &self.backend
    }

    /// The TTL policy in force (a copy: it may be replaced at any time).
    pub fn smart_ttl(&self) -> SmartTtl {
        self.ttl.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the TTL policy for later writes; keys already written keep their TTL.
    pub fn set_smart_ttl(&self, ttl: SmartTtl) {
        *self.ttl.write().unwrap_or_else(|p| p.into_inner()) = ttl;
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        // Plain fields, each written whole: a poisoned lock still holds a usable state.
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// False while the backend is being skipped after an error.
    fn should_try(&self) -> bool {
        self.health().skip_until.is_none_or(|t| Instant::now() >= t)
    }

    fn note_error(&self, e: &CacheError) {
        metrics().cache_errors.inc();
        let mut h = self.health();
        if h.degraded_since.is_none() {
            warn!(backend = self.backend.backend(), error = %e, "cache unavailable; scans continue uncached");
            h.degraded_since = Some(Utc::now());
        }
        h.last_error = Some(e.to_string());
        h.skip_until = Some(Instant::now() + self.retry_after);
    }

    fn note_success(&self) {
        let mut h = self.health();
        if h.degraded_since.is_some() {
            info!(backend = self.backend.backend(), "cache available again");
        }
        *h = Health::default();
    }

    pub fn status(&self) -> CacheStatus {
        let h = self.health();
        CacheStatus {
            backend: self.backend.backend().to_string(),
            available: h.degraded_since.is_none(),
            last_error: h.last_error.clone(),
            degraded_since: h.degraded_since,
        }
    }

    /// Looks up typed values; `None` for misses, undecodable values and an unavailable
    /// backend. The flag says whether the backend answered.
    pub async fn get<T: DeserializeOwned>(
        &self,
        kind: Kind,
        keys: &[String],
    ) -> (Vec<Option<T>>, bool) {
        let raw = if self.should_try() {
            match self.backend.get_many(keys).await {
                Ok(v) => {
                    self.note_success();
                    Some(v)
                }
                Err(e) => {
                    self.note_error(&e);
                    None
                }
            }
        } else {
            None
        };
        let available = raw.is_some();
        let c = &self.counters[idx(kind)];
        let values: Vec<Option<T>> = match raw {
            Some(raw) => raw
                .into_iter()
                .map(|v| {
                    v.and_then(|bytes| match codec::decode(&bytes) {
                        Ok(t) => Some(t),
                        Err(_) => {
                            c.decode_errors.fetch_add(1, Ordering::Relaxed);
                            metrics().cache_decode_errors.inc();
                            None
                        }
                    })
                })
                .collect(),
            None => keys.iter().map(|_| None).collect(),
        };
        let hits = values.iter().filter(|v| v.is_some()).count() as u64;
        self.count(kind, hits, keys.len() as u64 - hits, available);
        (values, available)
    }

    /// Counts a lookup's hits and misses (misses are errors when the backend failed).
    fn count(&self, kind: Kind, hits: u64, misses: u64, available: bool) {
        let c = &self.counters[idx(kind)];
        c.hits.fetch_add(hits, Ordering::Relaxed);
        c.misses.fetch_add(misses, Ordering::Relaxed);
        if !available {
            c.errors.fetch_add(misses, Ordering::Relaxed);
        }
        let label = KindLabel {
            kind: kind.as_str(),
        };
        metrics().cache_hits.get_or_create(&label).inc_by(hits);
        metrics().cache_misses.get_or_create(&label).inc_by(misses);
        self.sample();
    }

    /// Whether `key` is cached, without reading it (a lookup, counted as one): for a value
    /// this process already holds decoded.
    pub async fn contains(&self, kind: Kind, key: &str) -> bool {
        let found = if self.should_try() {
            match self.backend.ttl(key).await {
                Ok(t) => {
                    self.note_success();
                    Some(t.is_some())
                }
                Err(e) => {
                    self.note_error(&e);
                    None
                }
            }
        } else {
            None
        };
        let hit = found == Some(true);
        self.count(kind, u64::from(hit), u64::from(!hit), found.is_some());
        hit
    }

    /// Stores typed values; each entry gives the symbol's daily volatility and last bar
    /// date for SmartTtl. Returns whether the backend took them.
    pub async fn put<T: Serialize>(
        &self,
        kind: Kind,
        items: &[(String, &T, Option<f64>, Option<NaiveDate>)],
    ) -> bool {
        if items.is_empty() || !self.should_try() {
            return items.is_empty();
        }
        let policy = self.smart_ttl();
        let entries: Vec<(String, Vec<u8>, Duration)> = items
            .iter()
            .filter_map(|(key, value, vol, last)| {
                let bytes = codec::encode(*value).ok()?;
                let (ttl, _rule) = policy.ttl(kind, *vol, *last);
                Some((key.clone(), bytes, ttl))
            })
            .collect();
        match self.backend.set_many(entries).await {
            Ok(()) => {
                self.note_success();
                true
            }
            Err(e) => {
                self.note_error(&e);
                false
            }
        }
    }

    /// The effective TTL the policy would give, and why (for analytics).
    pub fn effective_ttl(
        &self,
        kind: Kind,
        daily_vol: Option<f64>,
        last_bar: Option<NaiveDate>,
    ) -> (Duration, TtlRule) {
        self.smart_ttl().ttl(kind, daily_vol, last_bar)
    }

    /// Records a request made now (see [`record_requests_at`](Self::record_requests_at)).
    pub async fn record_requests(&self, symbols: &[String], variant: &str) {
        self.record_requests_at(symbols, variant, Utc::now()).await;
    }

    /// Records a request made at `at`: counts for the most-requested ranking and the stamp
    /// with `variant` for the refresh ahead of expiry go to the backend at once; the
    /// request model's weights are kept here until the next `publish_stats` or
    /// `predicted` (thousands of ZINCRBYs per scan cost a warm Redis scan more than its
    /// lookups). A failure only degrades; while degraded nothing is kept.
    pub async fn record_requests_at(&self, symbols: &[String], variant: &str, at: DateTime<Utc>) {
        if self.should_try() {
            self.observed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .observe(symbols, at, predict::DEFAULT_HALF_LIFE);
            let at_ms = at.timestamp_millis();
            if let Err(e) = self.backend.record_requests(symbols, variant, at_ms).await {
                self.note_error(&e);
            }
        }
    }

    /// Adds the request weights observed here since the last flush to the backend's model;
    /// on failure they are kept for the next one.
    async fn flush_observed(&self) -> Result<(), CacheError> {
        let weights = std::mem::take(&mut *self.observed.lock().unwrap_or_else(|p| p.into_inner()));
        if weights.is_empty() {
            return Ok(());
        }
        let added = self.backend.add_request_weights(&weights).await;
        if added.is_err() {
            self.observed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .merge(weights, usize::MAX);
        }
        added
    }

    /// The `n` symbols the request model expects most in the hour of `at`, with their
    /// scores, best first (see [`predict`](super::predict)).
    pub async fn predicted(
        &self,
        at: DateTime<Utc>,
        n: usize,
    ) -> Result<Vec<(String, f64)>, CacheError> {
        self.flush_observed().await?;
        let (blend, half_life) = (Blend::default(), predict::DEFAULT_HALF_LIFE);
        let wanted = predict::stored_slots(at, half_life, &blend);
        let stored = self.backend.request_slots(&wanted).await?;
        Ok(predict::predict_stored(stored, at, half_life, n, &blend))
    }

    /// Keeps the symbols' latest dollar volumes (the warmer ranks by them after requests);
    /// a failure only degrades.
    pub async fn record_dollar_volumes(&self, volumes: &[(String, f64)]) {
        if self.should_try() {
            if let Err(e) = self.backend.record_dollar_volumes(volumes).await {
                self.note_error(&e);
            }
        }
    }

    /// Records the symbols a warm pass made sure were cached, for every node's analytics
    /// to measure how many were requested since ([`Warming`]).
    pub async fn note_warm_pass(&self, symbols: &[String], at: DateTime<Utc>) {
        let record = WarmPass {
            at,
            symbols: symbols.to_vec(),
        };
        let Ok(json) = serde_json::to_string(&record) else {
            return;
        };
        if let Err(e) = self.backend.put_setting(WARM_PASS_SETTING, &json).await {
            self.note_error(&e);
        }
    }

    /// The last warm pass and the share of its symbols requested since.
    async fn warming(&self) -> Option<Warming> {
        let (_, json) = self.backend.get_setting(WARM_PASS_SETTING).await.ok()??;
        let pass: WarmPass = serde_json::from_str(&json).ok()?;
        let since = self
            .backend
            .recently_requested(pass.at.timestamp_millis(), usize::MAX >> 1)
            .await
            .ok()?;
        let requested: std::collections::HashSet<&str> =
            since.iter().map(|(_, s)| s.as_str()).collect();
        let hit = pass
            .symbols
            .iter()
            .filter(|s| requested.contains(s.as_str()))
            .count();
        Some(Warming {
            at: pass.at,
            warmed: pass.symbols.len(),
            requested: hit,
            precision: (!pass.symbols.is_empty()).then(|| hit as f64 / pass.symbols.len() as f64),
        })
    }

    pub async fn clear(&self) -> Result<u64, CacheError> {
        let n = self.backend.clear().await;
        match &n {
            Ok(_) => self.note_success(),
            Err(e) => self.note_error(e),
        }
        n
    }

    /// Stores `ttl`'s settings as the TTLs every node of this cache follows, then applies
    /// them here; returns their version. Fails (and changes nothing) when the backend
    /// cannot store them.
    pub async fn share_ttl(&self, ttl: SmartTtl) -> Result<u64, CacheError> {
        let json = serde_json::to_string(ttl.settings())
            .map_err(|e| CacheError::Unavailable(format!("ttl settings: {e}")))?;
        let version = self.backend.put_setting(TTL_SETTING, &json).await?;
        self.apply_ttl(ttl, version);
        Ok(version)
    }

    /// Applies the shared TTL settings when they are newer than the ones in force (every
    /// node calls this once a heartbeat). Settings this build cannot read are logged and
    /// skipped; an unreachable backend only degrades.
    pub async fn follow_shared_ttl(&self) {
        if !self.should_try() {
            return;
        }
        // Once a heartbeat on every node: this read is also what notices a backend that
        // came back while no scan ran.
        let (version, json) = match self.backend.get_setting(TTL_SETTING).await {
            Ok(found) => {
                self.note_success();
                match found {
                    Some(v) => v,
                    None => return,
                }
            }
            Err(e) => return self.note_error(&e),
        };
        if version <= self.ttl_version() {
            return;
        }
        let parsed = serde_json::from_str::<super::TtlSettings>(&json)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                self.smart_ttl()
                    .with_settings(s)
                    .map_err(|e| e.problems.join("; "))
            });
        match parsed {
            Ok(ttl) => {
                info!(version, "shared cache ttl settings applied");
                self.apply_ttl(ttl, version);
            }
            Err(e) => {
                warn!(version, error = %e, "shared cache ttl settings ignored: this build cannot use them");
                // Not retried until a newer version is stored.
                self.ttl_version.store(version, Ordering::Release);
            }
        }
    }

    fn apply_ttl(&self, ttl: SmartTtl, version: u64) {
        self.set_smart_ttl(ttl);
        self.ttl_version.fetch_max(version, Ordering::AcqRel);
    }

    /// How many times faster a scan of `universe` (a key naming what it loads) that took
    /// `total_seconds` ran than the first uncached scan of it kept in this cache: that
    /// scan's time is stored (kind `meta`, its TTL) when a scan without hits finds none, and
    /// its own speedup is 1. `None` when the cache does not answer, or a cached scan finds
    /// no baseline (it cannot stand for an uncached one).
    pub async fn speedup(
        &self,
        universe: &str,
        total_seconds: f64,
        hit_rate: Option<f64>,
    ) -> Option<f64> {
        if total_seconds <= 0.0 || !total_seconds.is_finite() {
            return None;
        }
        let key = Kind::Meta.key(&format!("baseline:{:016x}", fnv1a(universe.as_bytes())));
        let (found, answered) = self
            .get::<f64>(Kind::Meta, std::slice::from_ref(&key))
            .await;
        if !answered {
            return None;
        }
        match found.into_iter().next().flatten() {
            Some(baseline) => Some(baseline / total_seconds),
            None if hit_rate.unwrap_or(0.0) == 0.0 => self
                .put(Kind::Meta, &[(key, &total_seconds, None, None)])
                .await
                .then_some(1.0),
            None => None,
        }
    }

    /// Folds a computed scan's pace into the shared moving averages: `cold` when it had no
    /// hit, `warm` when every lookup hit (partial scans measure neither).
    pub async fn note_pace(&self, scanned: usize, total_seconds: f64, hit_rate: Option<f64>) {
        let cold = match hit_rate {
            Some(h) if h <= 0.0 => true,
            Some(h) if h >= 1.0 => false,
            _ => return,
        };
        if scanned == 0 || !(total_seconds > 0.0 && total_seconds.is_finite()) {
            return;
        }
        let per_symbol = total_seconds / scanned as f64;
        let mut pace = self.pace().await;
        let slot = if cold { &mut pace.cold } else { &mut pace.warm };
        *slot = Some(match *slot {
            Some(old) => old + PACE_ALPHA * (per_symbol - old),
            None => per_symbol,
        });
        if let Ok(json) = serde_json::to_string(&pace) {
            if let Err(e) = self.backend.put_setting(PACE_SETTING, &json).await {
                self.note_error(&e);
            }
        }
    }

    async fn pace(&self) -> Pace {
        match self.backend.get_setting(PACE_SETTING).await {
            Ok(Some((_, json))) => serde_json::from_str(&json).unwrap_or_default(),
            _ => Pace::default(),
        }
    }

    /// The version of the shared TTL settings in force here (0: none shared yet).
    pub fn ttl_version(&self) -> u64 {
        self.ttl_version.load(Ordering::Acquire)
    }

    /// This process's counters per kind.
    fn counts(&self) -> Counts {
        Kind::ALL
            .iter()
            .map(|k| (*k, self.counters[idx(*k)].load()))
            .collect()
    }

    /// This process's counters per kind, as stats.
    pub fn kind_stats(&self) -> BTreeMap<Kind, KindStats> {
        self.counts()
            .into_iter()
            .map(|(k, c)| (k, c.into()))
            .collect()
    }

    /// Adds what this process counted since the last call to the shared statistics under
    /// `node` (nothing for a backend that is not shared), and the request weights observed
    /// here to the request model. A failed write keeps the counts (and weights) for the
    /// next call, so none are lost to a Redis blip. Called about once a heartbeat.
    pub async fn publish_stats(&self, node: &str) {
        if self.should_try() {
            if let Err(e) = self.flush_observed().await {
                self.note_error(&e);
            }
        }
        let mut published = self.published.lock().await;
        let now = self.counts();
        let delta: Counts = now
            .iter()
            .map(|(k, c)| (*k, c.since(&published.get(k).copied().unwrap_or_default())))
            .filter(|(_, d)| !d.is_zero())
            .collect();
        if delta.is_empty() || !self.should_try() {
            return;
        }
        match self
            .backend
            .add_stats(node, &delta, Utc::now().timestamp_millis())
            .await
        {
            Ok(()) => {
                self.note_success();
                *published = now;
            }
            Err(e) => self.note_error(&e),
        }
    }

    fn totals(&self) -> (u64, u64) {
        self.counters.iter().fold((0, 0), |(h, m), c| {
            (
                h + c.hits.load(Ordering::Relaxed),
                m + c.misses.load(Ordering::Relaxed),
            )
        })
    }

    /// Appends a hit-rate sample when the last one is older than `SAMPLE_EVERY`.
    fn sample(&self) {
        let mut guard = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let (last, ring) = &mut *guard;
        if last.is_some_and(|t| t.elapsed() < SAMPLE_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let (hits, misses) = self.totals();
        if ring.len() == HISTORY_LEN {
            ring.pop_front();
        }
        ring.push_back(HitSample {
            at: Utc::now(),
            hits,
            misses,
        });
    }

    /// Stats and analytics; backend queries that fail leave their field `None`. Over a
    /// shared backend the counters are the cluster's, with each node's share; else, or
    /// when those cannot be read, this process's.
    pub async fn analytics(&self, top: usize) -> Analytics {
        let keys_per_kind = self.backend.keys_per_kind().await.ok();
        let memory = self.backend.memory().await.ok();
        let most_requested = self.backend.most_requested(top).await.unwrap_or_default();
        let shared = match self
            .backend
            .shared_stats(Utc::now().timestamp_millis())
            .await
        {
            Ok(s) => s,
            Err(e) => {
                self.note_error(&e);
                None
            }
        };
        let ttl = self.smart_ttl();
        let (scope, per_kind, per_node, hit_rate_history) = match shared {
            Some(shared) => {
                let (per_kind, per_node) = cluster_totals(&shared);
                (
                    "cluster",
                    per_kind,
                    Some(per_node),
                    cumulative(&shared.buckets),
                )
            }
            None => ("process", self.kind_stats(), None, self.local_history()),
        };
        let time_saved = TimeSaved::estimate(self.pace().await, &per_kind, &hit_rate_history);
        Analytics {
            status: self.status(),
            scope: scope.to_string(),
            per_kind,
            per_node,
            keys_per_kind,
            memory,
            most_requested,
            hit_rate_history,
            ttl_secs: Kind::ALL
                .iter()
                .map(|k| (*k, ttl.base(*k).as_secs()))
                .collect(),
            warming: self.warming().await,
            time_saved,
        }
    }

    /// This process's samples, and one for now.
    fn local_history(&self) -> Vec<HitSample> {
        let mut history: Vec<HitSample> = self
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .iter()
            .copied()
            .collect();
        let (hits, misses) = self.totals();
        history.push(HitSample {
            at: Utc::now(),
            hits,
            misses,
        });
        history
    }
}

/// The cluster's counters per kind (the sum over nodes) and each node's.
fn cluster_totals(
    shared: &SharedStats,
) -> (BTreeMap<Kind, KindStats>, BTreeMap<String, NodeStats>) {
    let mut total: Counts = Kind::ALL
        .iter()
        .map(|k| (*k, KindCounts::default()))
        .collect();
    let mut per_node = BTreeMap::new();
    for (id, n) in &shared.nodes {
        let mut all = KindCounts::default();
        for (k, c) in &n.per_kind {
            total.entry(*k).or_default().add(c);
            all.add(c);
        }
        let all = KindStats::from(all);
        per_node.insert(
            id.clone(),
            NodeStats {
                hits: all.hits,
                misses: all.misses,
                hit_rate: all.hit_rate,
                per_kind: n.per_kind.iter().map(|(k, c)| (*k, (*c).into())).collect(),
                updated_at: DateTime::from_timestamp_millis(n.at_ms),
            },
        );
    }
    (
        total.into_iter().map(|(k, c)| (k, c.into())).collect(),
        per_node,
    )
}

/// The buckets' hits and misses as cumulative samples at each bucket's end, from the
/// first bucket with lookups on (the format of this process's own samples).
fn cumulative(buckets: &[(i64, u64, u64)]) -> Vec<HitSample> {
    let first = buckets.iter().position(|(_, h, m)| h + m > 0);
    let (mut hits, mut misses) = (0, 0);
    buckets[first.unwrap_or(buckets.len())..]
        .iter()
        .filter_map(|(start, h, m)| {
            hits += h;
            misses += m;
            Some(HitSample {
                at: DateTime::from_timestamp(start + super::shared_stats::BUCKET_SECS, 0)?,
                hits,
                misses,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::predict::Slot;
    use crate::cache::{MemoryCache, SystemClock};
    use async_trait::async_trait;
    use std::sync::atomic::AtomicBool;

    fn ttl() -> SmartTtl {
        let s: crate::config::Settings = crate::config::Settings::defaults();
        SmartTtl::new(s.cache.ttl, Arc::new(SystemClock)).expect("valid")
    }

    /// A backend that can be switched off, to exercise degraded mode in unit tests (the
    /// real Redis outage is covered in tests/cache_backends.rs).
    struct Switchable {
        inner: MemoryCache,
        down: AtomicBool,
    }

    #[async_trait]
    impl Cache for Switchable {
        fn backend(&self) -> &'static str {
            "switchable"
        }
        async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(CacheError::Unavailable("down".into()));
            }
            self.inner.get_many(keys).await
        }
        async fn set_many(&self, e: Vec<(String, Vec<u8>, Duration)>) -> Result<(), CacheError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(CacheError::Unavailable("down".into()));
            }
            self.inner.set_many(e).await
        }
        async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
            self.inner.ttl(key).await
        }
        async fn clear(&self) -> Result<u64, CacheError> {
            self.inner.clear().await
        }
        async fn keys_per_kind(&self) -> Result<BTreeMap<Kind, u64>, CacheError> {
            self.inner.keys_per_kind().await
        }
        async fn memory(&self) -> Result<MemoryInfo, CacheError> {
            self.inner.memory().await
        }
        async fn record_requests(&self, s: &[String], v: &str, at: i64) -> Result<(), CacheError> {
            self.inner.record_requests(s, v, at).await
        }
        async fn add_request_weights(&self, w: &Weights) -> Result<(), CacheError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(CacheError::Unavailable("down".into()));
            }
            self.inner.add_request_weights(w).await
        }
        async fn request_slots(
            &self,
            slots: &[(i64, Slot)],
        ) -> Result<Vec<Vec<(String, f64)>>, CacheError> {
            self.inner.request_slots(slots).await
        }
        async fn most_requested(&self, n: usize) -> Result<Vec<(String, u64)>, CacheError> {
            self.inner.most_requested(n).await
        }
        async fn record_dollar_volumes(&self, v: &[(String, f64)]) -> Result<(), CacheError> {
            self.inner.record_dollar_volumes(v).await
        }
        async fn top_dollar_volume(&self, n: usize) -> Result<Vec<String>, CacheError> {
            self.inner.top_dollar_volume(n).await
        }
        async fn recently_requested(
            &self,
            since_ms: i64,
            n: usize,
        ) -> Result<Vec<(String, String)>, CacheError> {
            self.inner.recently_requested(since_ms, n).await
        }
        async fn put_setting(&self, name: &str, value: &str) -> Result<u64, CacheError> {
            self.inner.put_setting(name, value).await
        }
        async fn get_setting(&self, name: &str) -> Result<Option<(u64, String)>, CacheError> {
            self.inner.get_setting(name).await
        }
    }

    #[tokio::test]
    async fn request_weights_wait_for_a_flush_and_outlive_a_failed_one() {
        let backend = Arc::new(Switchable {
            inner: MemoryCache::new(1 << 20),
            down: AtomicBool::new(false),
        });
        let c = ScanCache::new(backend.clone(), ttl(), Duration::from_millis(10));
        let at = Utc::now();
        let era = predict::era_of(at, predict::DEFAULT_HALF_LIFE);
        let stored = async || {
            let mut v = backend.request_slots(&[(era, Slot::All)]).await.unwrap();
            v.remove(0)
        };
        c.record_requests_at(&["AAPL".into()], "latest:500", at)
            .await;
        assert!(stored().await.is_empty(), "not written on the scan's path");
        backend.down.store(true, Ordering::Relaxed);
        c.publish_stats("n").await;
        assert!(stored().await.is_empty());
        backend.down.store(false, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(30)).await;
        c.publish_stats("n").await;
        assert_eq!(stored().await.len(), 1, "kept through the failed flush");
        // A prediction adds what was observed since, first.
        let two = ["MSFT".to_string(), "MSFT".to_string()];
        c.record_requests_at(&two, "latest:500", at).await;
        let top: Vec<String> = c
            .predicted(at, 5)
            .await
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(top, ["MSFT", "AAPL"]);
    }

    #[tokio::test]
    async fn typed_round_trip_stats_and_corrupt_values() {
        let backend = Arc::new(MemoryCache::new(1 << 20));
        let c = ScanCache::new(backend.clone(), ttl(), Duration::from_millis(10));
        let keys = vec![
            Kind::Features.key("A"),
            Kind::Features.key("B"),
            Kind::Features.key("C"),
        ];
        assert!(
            c.put(
                Kind::Features,
                &[(keys[0].clone(), &vec![1.5f64], Some(0.03), None)]
            )
            .await
        );
        backend
            .set_many(vec![(
                keys[1].clone(),
                vec![crate::cache::CODEC_VERSION, b'g', b'a', b'r', b'b'],
                Duration::from_secs(60),
            )])
            .await
            .expect("raw set");
        let (got, available) = c.get::<Vec<f64>>(Kind::Features, &keys).await;
        assert!(available);
        assert_eq!(got, vec![Some(vec![1.5]), None, None]);
        let s = c.kind_stats()[&Kind::Features];
        assert_eq!((s.hits, s.misses, s.decode_errors), (1, 2, 1));
        assert_eq!(s.hit_rate, Some(1.0 / 3.0));
        // SmartTtl applied on write: a 3 % daily vol keeps the 5 min base.
        let t = backend.ttl(&keys[0]).await.expect("ttl").expect("present");
        assert!(
            t <= Duration::from_secs(300) && t > Duration::from_secs(290),
            "{t:?}"
        );
    }

    #[tokio::test]
    async fn an_outage_degrades_then_recovers_without_restart() {
        let backend = Arc::new(Switchable {
            inner: MemoryCache::new(1 << 20),
            down: AtomicBool::new(false),
        });
        let c = ScanCache::new(backend.clone(), ttl(), Duration::from_millis(20));
        let key = vec![Kind::Bars.key("X")];
        assert!(
            c.put(Kind::Bars, &[(key[0].clone(), &7u32, None, None)])
                .await
        );
        backend.down.store(true, Ordering::Relaxed);
        let (got, available) = c.get::<u32>(Kind::Bars, &key).await;
        assert_eq!((got, available), (vec![None], false));
        let status = c.status();
        assert!(
            !status.available
                && status.last_error.as_deref() == Some("cache backend unavailable: down")
        );
        // While skipping, the backend is not even asked.
        backend.down.store(false, Ordering::Relaxed);
        assert!(!c.get::<u32>(Kind::Bars, &key).await.1);
        tokio::time::sleep(Duration::from_millis(25)).await;
        let (got, available) = c.get::<u32>(Kind::Bars, &key).await;
        assert_eq!((got, available), (vec![Some(7)], true));
        assert!(c.status().available);
    }
}
