//! Scan history: finished scans with their reports, kept in this process and — when the
//! cache is Redis — in Redis with a TTL, so `technic serve` lists them again after a
//! restart.
//!
//! Keys live outside the cache's `technic:v1:*` namespace, so `POST /api/v1/cache/clear`
//! never erases history: `technic:history:{scans}:record:{id}` (the whole record, JSON),
//! `…:summary:{id}` (the small listing form) and the sorted set `…:index` (id by submit
//! time). One hash tag, so every key of the history is in one slot of a Redis Cluster.
//! A Redis error never fails a request: it is logged, counted, and the in-process copy
//! answers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::cluster::Progress;
use crate::error::UserError;
use crate::redis_link::{LinkError, Links, RedisOptions, RedisUrl, Use};
use crate::scan::{ScanConfig, ScanReport};

const PREFIX: &str = "technic:history:{scans}:";
/// History calls are off the scan's path: a slower Redis may take longer than the cache's.
const REDIS: RedisOptions = RedisOptions {
    connect_timeout: Duration::from_millis(500),
    response_timeout: Duration::from_secs(2),
};

/// A finished scan: what was asked, the last progress, and the report or the error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanRecord {
    pub id: String,
    pub submitted_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub config: ScanConfig,
    pub progress: Progress,
    pub report: Option<ScanReport>,
    pub error: Option<UserError>,
    /// The report as JSON, made once and shared by every SSE subscriber.
    #[serde(skip)]
    pub report_json: std::sync::OnceLock<Arc<str>>,
}

/// One line of `GET /api/v1/scans` and of the performance history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanSummary {
    pub id: String,
    /// The progress stage (`queued` … `done`, `failed`, `cancelled`).
    pub stage: String,
    pub submitted_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub universe_size: Option<usize>,
    pub scanned: Option<usize>,
    pub results: Option<usize>,
    pub failures: Option<usize>,
    /// The report's `timing` object (as `technic scan --format json`), when finished.
    #[schema(value_type = Option<Object>)]
    pub timing: Option<crate::scan::Timing>,
    /// The error code of a failed scan.
    pub error_code: Option<String>,
    /// Identifies scans over the same universe (for the speedup in performance history).
    pub universe_key: String,
}

impl ScanRecord {
    /// The report serialised once (`None` for a failed scan).
    pub fn report_json(&self) -> Option<Arc<str>> {
        let report = self.report.as_ref()?;
        Some(
            self.report_json
                .get_or_init(|| serde_json::to_string(report).unwrap_or_default().into())
                .clone(),
        )
    }

    pub fn summary(&self) -> ScanSummary {
        let r = self.report.as_ref();
        ScanSummary {
            id: self.id.clone(),
            stage: self.progress.stage.as_str().to_string(),
            submitted_at: self.submitted_at,
            finished_at: Some(self.finished_at),
            universe_size: r.map(|r| r.universe_size),
            scanned: r.map(|r| r.scanned),
            results: r.map(|r| r.results.len()),
            failures: r.map(|r| r.failures.len()),
            timing: r.map(|r| r.timing.clone()),
            error_code: self.error.as_ref().map(|e| e.code.as_str().to_string()),
            universe_key: universe_key(&self.config),
        }
    }
}

/// The parts of a config that decide which bars a scan loads.
pub fn universe_key(c: &ScanConfig) -> String {
    serde_json::json!([
        c.universe_size,
        c.symbols,
        c.sectors,
        c.industries,
        c.min_market_cap,
        c.lookback_days,
        c.as_of
    ])
    .to_string()
}

pub struct History {
    memory: Mutex<VecDeque<Arc<ScanRecord>>>,
    max: usize,
    ttl_secs: u64,
    redis: Option<Links>,
}

impl History {
    /// In-process only (`redis` is `None`), or also in that Redis. Never connects here.
    pub fn new(redis: Option<&RedisUrl>, max: usize, ttl_secs: u64) -> Result<Self, LinkError> {
        let redis = redis
            .map(|url| Links::open(url, REDIS, Duration::ZERO))
            .transpose()?;
        Ok(History {
            memory: Mutex::new(VecDeque::with_capacity(max.min(1024))),
            max,
            ttl_secs,
            redis,
        })
    }

    /// Whether records outlive this process.
    pub fn persistent(&self) -> bool {
        self.redis.is_some()
    }

    fn mem(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<ScanRecord>>> {
        // Whole records are pushed and popped: a poisoned lock still holds a usable deque.
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a finished scan.
    pub async fn put(&self, record: Arc<ScanRecord>) {
        {
            let mut m = self.mem();
            m.retain(|r| r.id != record.id);
            m.push_back(record.clone());
            while m.len() > self.max {
                m.pop_front();
            }
        }
        if self.redis.is_none() {
            return;
        }
        let (full, summary) = match (
            serde_json::to_string(&*record),
            serde_json::to_string(&record.summary()),
        ) {
            (Ok(f), Ok(s)) => (f, s),
            (Err(e), _) | (_, Err(e)) => {
                warn!(scan_id = %record.id, error = %e, "cannot encode the scan record");
                return;
            }
        };
        let now = Utc::now().timestamp_millis();
        let oldest = now - (self.ttl_secs as i64) * 1000;
        let mut pipe = ::redis::pipe();
        pipe.cmd("SET")
            .arg(format!("{PREFIX}record:{}", record.id))
            .arg(full)
            .arg("EX")
            .arg(self.ttl_secs)
            .ignore()
            .cmd("SET")
            .arg(format!("{PREFIX}summary:{}", record.id))
            .arg(summary)
            .arg("EX")
            .arg(self.ttl_secs)
            .ignore()
            .cmd("ZADD")
            .arg(format!("{PREFIX}index"))
            .arg(record.submitted_at.timestamp_millis())
            .arg(&record.id)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(format!("{PREFIX}index"))
            .arg("-inf")
            .arg(oldest)
            .ignore()
            .cmd("ZREMRANGEBYRANK")
            .arg(format!("{PREFIX}index"))
            .arg(0)
            .arg(-(self.max as i64) - 1)
            .ignore()
            .cmd("EXPIRE")
            .arg(format!("{PREFIX}index"))
            .arg(self.ttl_secs)
            .ignore();
        if let Err(e) = self.run::<()>(&pipe).await {
            warn!(scan_id = %record.id, error = %e, "scan history not stored in redis");
        }
    }

    /// A finished scan by id: this process first, then Redis.
    pub async fn get(&self, id: &str) -> Option<Arc<ScanRecord>> {
        if let Some(r) = self.mem().iter().find(|r| r.id == id) {
            return Some(r.clone());
        }
        self.redis.as_ref()?;
        let key = format!("{PREFIX}record:{id}");
        let mut pipe = ::redis::pipe();
        pipe.cmd("GET").arg(&key);
        let text: Option<String> = match self.run::<(Option<String>,)>(&pipe).await {
            Ok((t,)) => t,
            Err(e) => {
                warn!(scan_id = %id, error = %e, "scan history unreadable in redis");
                return None;
            }
        };
        match serde_json::from_str::<ScanRecord>(&text?) {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => {
                warn!(scan_id = %id, error = %e, "stored scan record does not decode; ignored");
                None
            }
        }
    }

    /// Finished scans, newest first: Redis's and this process's, merged by id.
    pub async fn list(&self, limit: usize) -> Vec<ScanSummary> {
        let mut out: Vec<ScanSummary> = self.mem().iter().map(|r| r.summary()).collect();
        if self.redis.is_some() {
            match self.redis_summaries(limit).await {
                Ok(stored) => {
                    for s in stored {
                        if !out.iter().any(|o| o.id == s.id) {
                            out.push(s);
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %e, "scan history unreadable in redis; listing this process's scans")
                }
            }
        }
        out.sort_by(|a, b| {
            b.submitted_at
                .cmp(&a.submitted_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        out.truncate(limit);
        out
    }

    async fn redis_summaries(&self, limit: usize) -> Result<Vec<ScanSummary>, LinkError> {
        let mut pipe = ::redis::pipe();
        pipe.cmd("ZREVRANGE")
            .arg(format!("{PREFIX}index"))
            .arg(0)
            .arg(limit.max(1) as i64 - 1);
        let (ids,): (Vec<String>,) = self.run(&pipe).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| format!("{PREFIX}summary:{id}"))
            .collect();
        let mut pipe = ::redis::pipe();
        pipe.cmd("MGET").arg(&keys);
        let (texts,): (Vec<Option<String>>,) = self.run(&pipe).await?;
        Ok(texts
            .into_iter()
            .flatten()
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect())
    }

    /// Runs a pipeline on the history's Redis.
    async fn run<T: ::redis::FromRedisValue>(
        &self,
        pipe: &::redis::Pipeline,
    ) -> Result<T, LinkError> {
        let Some(links) = &self.redis else {
            return Err(LinkError::Unavailable {
                op: "history".into(),
                message: "no redis configured".into(),
            });
        };
        links
            .call("history", Use::Shared, |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await
    }
}
