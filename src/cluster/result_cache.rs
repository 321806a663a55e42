//! What is cached above the symbol level: whole scan reports (the `scan` kind) and the
//! provider's universe with its metadata (the `meta` kind), both keyed on the provider's
//! [`data_version`](MarketData::data_version) so new data never meets an old answer.
//!
//! A scan's key hashes the provider's namespace, the data version, the config as JSON and
//! the alpha model the node serves: another config, data version or model is another key. A report is stored only when it is
//! the data's whole answer: completed, without warnings, without a fallback source, and
//! with no failure but the data's own (`DATA_NOT_FOUND`, `DATA_INVALID`); and only when the
//! data version at the end is the one the scan started on. Reports are stored as JSON (the
//! report's optional fields are skipped when absent, which a positional codec cannot read).
//!
//! Parsing a 5,000-symbol report takes longer than the answer should, so each process keeps
//! a few reports it parsed or stored decoded ([`ReportMemo`], a moka cache of 8); a lookup of one of
//! them only asks the cache whether the entry is still there (its TTL, or a `clear`).

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::cache::{Kind, ScanCache};
use crate::data::{DataError, MarketData};
use crate::fingerprint::Fnv;
use crate::market::UniverseEntry;
use crate::scan::{FromCache, ScanConfig, ScanReport, ScanStatus, Stages};

/// Failure codes that come from the data itself: asking again gives the same answer.
const DATA_FAILURES: [&str; 2] = ["DATA_NOT_FOUND", "DATA_INVALID"];

/// Where a scan's report is cached: its key and the data version the key was made for.
#[derive(Clone)]
pub struct ScanKey {
    key: String,
    version: String,
    /// The alpha model version the key was made for.
    model: Option<String>,
    provider: Arc<dyn MarketData>,
    memo: Arc<ReportMemo>,
}

/// What the `scan` entry holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    finished_at: DateTime<Utc>,
    report: ScanReport,
}

/// Reports kept decoded in this process, by key.
const MEMO_LEN: u64 = 8;

/// The last reports this process parsed or stored, decoded (a bounded moka cache).
pub struct ReportMemo(moka::future::Cache<String, Arc<Stored>>);

impl Default for ReportMemo {
    fn default() -> Self {
        ReportMemo(moka::future::Cache::new(MEMO_LEN))
    }
}

impl ScanKey {
    /// The key of `config` on the provider's current data; `None` when the provider cannot
    /// tell its data version.
    pub async fn of(
        provider: &Arc<dyn MarketData>,
        config: &ScanConfig,
        model: Option<&str>,
        memo: &Arc<ReportMemo>,
    ) -> Option<ScanKey> {
        let version = provider.data_version().await?;
        let config = serde_json::to_vec(config).ok()?;
        let mut hash = Fnv::default();
        hash.part(provider.cache_namespace().as_bytes())
            .part(version.as_bytes())
            .part(&config);
        if let Some(model) = model {
            hash.part(b"model").part(model.as_bytes());
        }
        let hash = hash.finish();
        Some(ScanKey {
            key: Kind::Scan.key(&format!("{hash:016x}")),
            version,
            model: model.map(String::from),
            provider: Arc::clone(provider),
            memo: Arc::clone(memo),
        })
    }

    /// The cached report as a new scan's answer: the time the lookup took, every lookup a
    /// hit, and `from_cache` naming the scan that computed it (the caller gives it its id).
    pub async fn lookup(&self, cache: &ScanCache) -> Option<ScanReport> {
        let started = Instant::now();
        let stored = match self.memo.0.get(&self.key).await {
            // Held decoded: answered if the entry is still cached (not expired or cleared).
            Some(stored) => {
                if !cache.contains(Kind::Scan, &self.key).await {
                    self.memo.0.invalidate(&self.key).await;
                    return None;
                }
                stored
            }
            None => {
                let stored = Arc::new(self.read(cache).await?);
                self.memo
                    .0
                    .insert(self.key.clone(), Arc::clone(&stored))
                    .await;
                stored
            }
        };
        let mut r = stored.report.clone();
        r.from_cache = Some(FromCache {
            scan_id: std::mem::take(&mut r.id),
            finished_at: stored.finished_at,
        });
        let secs = started.elapsed().as_secs_f64();
        r.timing.total_seconds = secs;
        r.timing.symbols_per_second = if secs > 0.0 {
            r.scanned as f64 / secs
        } else {
            0.0
        };
        r.timing.cache_hit_rate = Some(1.0);
        r.timing.speedup = None;
        r.timing.stages = Stages::default();
        r.nodes.clear();
        Some(r)
    }

    /// The entry, parsed; `None` for a miss or an unreadable entry.
    async fn read(&self, cache: &ScanCache) -> Option<Stored> {
        let (found, _) = cache
            .get::<String>(Kind::Scan, std::slice::from_ref(&self.key))
            .await;
        let json = found.into_iter().next().flatten()?;
        serde_json::from_str(&json)
            .map_err(|e| debug!(error = %e, "unreadable cached scan; scanning"))
            .ok()
    }

    /// Stores `report` when it is the data's whole answer and the data did not change
    /// while it was computed.
    pub async fn store(&self, cache: &ScanCache, report: &ScanReport) {
        if !is_whole_answer(report)
            || report.model != self.model
            || self.provider.data_version().await.as_deref() != Some(self.version.as_str())
        {
            return;
        }
        let mut report = report.clone();
        report.timing.speedup = None;
        let stored = Stored {
            finished_at: Utc::now(),
            report,
        };
        let Ok(json) = serde_json::to_string(&stored) else {
            return;
        };
        let last_bar = stored.report.results.iter().map(|r| r.as_of).max();
        if cache
            .put(Kind::Scan, &[(self.key.clone(), &json, None, last_bar)])
            .await
        {
            self.memo.0.insert(self.key.clone(), Arc::new(stored)).await;
        }
    }
}

fn is_whole_answer(r: &ScanReport) -> bool {
    r.status == ScanStatus::Completed
        && r.from_cache.is_none()
        && r.warnings.is_empty()
        && r.timing.stages.fallback_symbols == 0
        && r.failures
            .iter()
            .all(|f| DATA_FAILURES.contains(&f.code.as_str()))
}

/// The provider's universe, from the `meta` cache when it holds this data version's.
pub async fn universe(
    provider: &Arc<dyn MarketData>,
    cache: Option<&ScanCache>,
) -> Result<Vec<UniverseEntry>, DataError> {
    let Some(cache) = cache else {
        return provider.universe().await;
    };
    let Some(version) = provider.data_version().await else {
        return provider.universe().await;
    };
    let hash = Fnv::default()
        .part(provider.cache_namespace().as_bytes())
        .part(version.as_bytes())
        .finish();
    let key = Kind::Meta.key(&format!("universe:{hash:016x}"));
    let (found, _) = cache
        .get::<Vec<UniverseEntry>>(Kind::Meta, std::slice::from_ref(&key))
        .await;
    if let Some(universe) = found.into_iter().next().flatten() {
        return Ok(universe);
    }
    let universe = provider.universe().await?;
    cache.put(Kind::Meta, &[(key, &universe, None, None)]).await;
    Ok(universe)
}
