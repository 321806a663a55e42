//! The scan book: every scan's record in Redis, so that a scan outlives the process that
//! coordinates it. It owns the keys and the atomic (Lua) protocol of scan ownership; what a
//! coordinator does with a scan is not its business.
//!
//! Keys, in the work queue's hash tag (one slot of a Redis Cluster, so each script is
//! atomic), with `P = technic:v1:queue:{NAME}`:
//! - `P:scan:ID`, a hash: `kind` (`cluster` for scans submitted to the control plane,
//!   `oneshot` for a `technic scan` process's own), `owner`, `epoch`, `status` (`running`,
//!   `done`, `failed`, `cancelled`, `abandoned`), `submitted_at` (ms), `config` (JSON),
//!   `universe` (the selected entries, JSON, once dispatched), `progress` (JSON) and `seq`
//!   (bumped by every progress write), `cancel` (a cancel asked on another serve), and once
//!   finished `record` and `summary` (JSON), `finished_at` (ms), `reason`;
//! - `P:lease:ID`: the owner's lease, a string with a TTL (`cluster.lease_ms`), renewed every
//!   `cluster.lease_renew_ms` while its epoch is the scan's;
//! - `P:running`: a hash of the running scans, `ID → "EPOCH KIND"`, which every node reads
//!   every heartbeat: workers drop shards of older epochs and of abandoned scans, serves take
//!   over cluster scans whose lease expired;
//! - `P:leader`: the node holding the leader lease (cluster-wide duties: the cache warmer,
//!   the node gauge and pruning), a string with a TTL of `cluster.lease_ms`;
//! - `P:history`: finished scans by submit time (ms), trimmed to `api.history_max_scans`;
//!   a finished scan's hash expires after `api.history_ttl_secs`.
//!
//! The outcomes so far are not copied here: they are the scan's results stream
//! (`P:results:ID`), which a new owner reads from the start. Every write that matters is
//! fenced by the epoch: a coordinator whose epoch is not the scan's can renew nothing, write
//! no progress and finish nothing.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::Script;
use serde::{Deserialize, Serialize};

use super::progress::{Progress, Stage};
use crate::error::{ErrorCode, UserError};
use crate::market::UniverseEntry;
use crate::redis_link::{LinkError, Links, RedisOptions, RedisUrl, Use};
use crate::scan::{ScanConfig, ScanReport};

/// Book calls are off the shards' path: a slower Redis may take longer than the cache's.
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
    /// The progress stage (`queued` … `done`, `failed`, `cancelled`, `abandoned`).
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

/// Who a scan belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanKind {
    /// Submitted to the control plane: any `technic serve` may take it over.
    Cluster,
    /// A `technic scan` process's own: nobody reads it once that process dies, so it is
    /// abandoned when its lease expires.
    OneShot,
}

impl ScanKind {
    fn as_str(self) -> &'static str {
        match self {
            ScanKind::Cluster => "cluster",
            ScanKind::OneShot => "oneshot",
        }
    }
}

/// A running scan as another process sees it.
#[derive(Debug, Clone)]
pub struct RunningScan {
    pub id: String,
    pub owner: String,
    pub epoch: u64,
    pub submitted_at: DateTime<Utc>,
    pub config: ScanConfig,
    pub progress: Progress,
    /// Bumped by every progress write: the id of the progress event.
    pub seq: u64,
}

/// A scan as the book has it.
#[derive(Debug, Clone)]
pub enum BookEntry {
    Running(Box<RunningScan>),
    Finished(Arc<ScanRecord>),
}

/// What a new owner needs to finish a scan.
#[derive(Debug, Clone)]
pub struct Takeover {
    pub id: String,
    pub epoch: u64,
    pub submitted_at: DateTime<Utc>,
    pub config: ScanConfig,
    /// `None` when the previous owner died before dispatching.
    pub universe: Option<Vec<UniverseEntry>>,
}

/// What a lease renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    Held,
    /// Held, and a cancel was asked (on another serve).
    CancelAsked,
    /// The scan has another epoch (taken over) or is no longer running.
    Lost,
}

/// One pass over the running scans (every node, every heartbeat).
#[derive(Debug, Clone, Default)]
pub struct Sweep {
    /// Running scans and their current epoch.
    pub epochs: HashMap<String, u64>,
    /// Cluster scans whose lease expired: a serve may take them over.
    pub orphans: Vec<String>,
    /// One-shot scans this pass marked abandoned.
    pub abandoned: Vec<String>,
}

/// The text fields of a stored hash: field → value.
type Fields = HashMap<String, String>;

/// The text fields every reader needs (`record` and `universe` are MessagePack: a report
/// holds NaN where a value is unknown, which JSON cannot carry, and MessagePack is several
/// times faster to write for thousands of results).
const TEXT: [&str; 11] = [
    "kind",
    "owner",
    "epoch",
    "status",
    "submitted_at",
    "config",
    "progress",
    "seq",
    "summary",
    "finished_at",
    "reason",
];

fn msgpack<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).unwrap_or_default()
}

static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'kind', ARGV[2], 'epoch', 1, 'status', 'running',
  'submitted_at', ARGV[4], 'config', ARGV[5], 'seq', 0)
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
redis.call('HSET', KEYS[3], ARGV[6], '1 ' .. ARGV[2])
return 1",
    )
});

static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[2] or redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  return 0
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
if redis.call('HEXISTS', KEYS[1], 'cancel') == 1 then return 2 end
return 1",
    )
});

static PROGRESS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  return 0
end
redis.call('HSET', KEYS[1], 'progress', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'seq', 1)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'universe', ARGV[3]) end
return 1",
    )
});

/// KEYS: scan, lease, running, history, results. ARGV: epoch, status, record, summary,
/// finished_at, submitted_at, id, history ttl (s), history max, key prefix.
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'record', ARGV[3], 'summary', ARGV[4], 'finished_at', ARGV[5])
redis.call('HDEL', KEYS[1], 'universe', 'cancel')
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('DEL', KEYS[2], KEYS[5])
redis.call('HDEL', KEYS[3], ARGV[7])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[7])
local max = tonumber(ARGV[9])
local old = redis.call('ZRANGE', KEYS[4], 0, -max - 1)
for _, id in ipairs(old) do redis.call('DEL', ARGV[10] .. ':scan:' .. id) end
if #old > 0 then redis.call('ZREMRANGEBYRANK', KEYS[4], 0, #old - 1) end
redis.call('EXPIRE', KEYS[4], ARGV[8])
return 1",
    )
});

/// KEYS: scan, lease, running. ARGV: owner, lease ms, id.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'status') ~= 'running' or redis.call('HGET', KEYS[1], 'kind') ~= 'cluster'
   or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[3], ARGV[3], epoch .. ' cluster')
return epoch",
    )
});

/// KEYS: running, history, cancelled. ARGV: key prefix, now (ms), reason, history ttl (s),
/// cancelled ttl (ms). Returns {running (flat id, value), orphans, abandoned}.
static SWEEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local all = redis.call('HGETALL', KEYS[1])
local running, orphans, abandoned = {}, {}, {}
for i = 1, #all, 2 do
  local id, v = all[i], all[i + 1]
  local scan = ARGV[1] .. ':scan:' .. id
  local kind = string.match(v, ' (%a+)$')
  if redis.call('HGET', scan, 'status') ~= 'running' then
    redis.call('HDEL', KEYS[1], id)
  elseif redis.call('EXISTS', ARGV[1] .. ':lease:' .. id) == 0 and kind == 'oneshot' then
    redis.call('HSET', scan, 'status', 'abandoned', 'reason', ARGV[3], 'finished_at', ARGV[2])
    redis.call('HDEL', scan, 'universe')
    redis.call('EXPIRE', scan, ARGV[4])
    redis.call('HDEL', KEYS[1], id)
    redis.call('DEL', ARGV[1] .. ':results:' .. id)
    redis.call('ZADD', KEYS[2], redis.call('HGET', scan, 'submitted_at'), id)
    redis.call('SADD', KEYS[3], id)
    redis.call('PEXPIRE', KEYS[3], ARGV[5])
    table.insert(abandoned, id)
  else
    table.insert(running, id)
    table.insert(running, v)
    if redis.call('EXISTS', ARGV[1] .. ':lease:' .. id) == 0 then table.insert(orphans, id) end
  end
end
return {running, orphans, abandoned}",
    )
});

/// KEYS: leader. ARGV: owner, lease ms. 1 when `owner` holds the leader lease now.
static LEAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0",
    )
});

static CANCEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'cancel', 1)
return 1",
    )
});

/// Why an abandoned scan ended, in its record.
pub const ABANDONED_REASON: &str =
    "the technic scan process that ran it stopped renewing its lease (killed or disconnected)";

pub struct ScanBook {
    links: Links,
    /// `technic:v1:queue:{NAME}`.
    prefix: String,
    owner: String,
    lease: Duration,
    results_ttl: Duration,
    cancelled_ttl: Duration,
    history_max: usize,
    history_ttl: Duration,
}

fn ms(d: Duration) -> u64 {
    d.as_millis().max(1) as u64
}

fn at(ms: &str) -> DateTime<Utc> {
    ms.parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_default()
}

impl ScanBook {
    /// Opens (without connecting) the book of the cluster at `url`, as node `owner`.
    pub fn open(
        url: &RedisUrl,
        settings: &crate::config::Settings,
        owner: &str,
    ) -> Result<Self, LinkError> {
        let c = &settings.cluster;
        Ok(ScanBook {
            links: Links::open(url, REDIS, Duration::ZERO)?,
            prefix: format!("technic:v1:queue:{{{}}}", c.queue_name),
            owner: owner.to_string(),
            lease: Duration::from_millis(c.lease_ms),
            results_ttl: Duration::from_secs(c.results_ttl_secs),
            cancelled_ttl: Duration::from_secs(c.cancelled_ttl_secs),
            history_max: settings.api.history_max_scans.max(1),
            history_ttl: Duration::from_secs(settings.api.history_ttl_secs.max(1)),
        })
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn key(&self, what: &str, id: &str) -> String {
        format!("{}:{what}:{id}", self.prefix)
    }

    fn running_key(&self) -> String {
        format!("{}:running", self.prefix)
    }

    fn history_key(&self) -> String {
        format!("{}:history", self.prefix)
    }

    async fn run<T: redis::FromRedisValue + Send>(
        &self,
        op: &str,
        inv: redis::ScriptInvocation<'_>,
    ) -> Result<T, LinkError> {
        let inv = &inv;
        self.links
            .call(op, Use::Shared, |mut c| async move {
                inv.invoke_async(&mut c).await
            })
            .await
    }

    async fn query<T: redis::FromRedisValue + Send>(
        &self,
        op: &str,
        pipe: redis::Pipeline,
    ) -> Result<T, LinkError> {
        let pipe = &pipe;
        self.links
            .call(op, Use::Shared, |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await
    }

    /// Records a new running scan with epoch 1, owned by this node.
    pub async fn create(
        &self,
        id: &str,
        kind: ScanKind,
        submitted_at: DateTime<Utc>,
        config: &ScanConfig,
    ) -> Result<(), LinkError> {
        let config = serde_json::to_string(config).unwrap_or_default();
        let mut inv = CREATE.prepare_invoke();
        inv.key(self.key("scan", id))
            .key(self.key("lease", id))
            .key(self.running_key())
            .arg(&self.owner)
            .arg(kind.as_str())
            .arg(ms(self.lease))
            .arg(submitted_at.timestamp_millis())
            .arg(config)
            .arg(id);
        self.run::<i64>("create scan", inv).await.map(drop)
    }

    /// Renews the lease of a scan this node owns at `epoch` (and its results stream's TTL).
    pub async fn renew(&self, id: &str, epoch: u64) -> Result<Lease, LinkError> {
        let mut inv = RENEW.prepare_invoke();
        inv.key(self.key("scan", id))
            .key(self.key("lease", id))
            .key(self.key("results", id))
            .arg(&self.owner)
            .arg(epoch)
            .arg(ms(self.lease))
            .arg(ms(self.results_ttl));
        Ok(match self.run::<i64>("renew lease", inv).await? {
            0 => Lease::Lost,
            2 => Lease::CancelAsked,
            _ => Lease::Held,
        })
    }

    /// Writes the progress (and, once known, the selected universe) of a scan owned at
    /// `epoch`; `false` when the epoch is no longer the scan's.
    pub async fn progress(
        &self,
        id: &str,
        epoch: u64,
        progress: &Progress,
        universe: Option<&[UniverseEntry]>,
    ) -> Result<bool, LinkError> {
        let mut inv = PROGRESS.prepare_invoke();
        inv.key(self.key("scan", id))
            .arg(epoch)
            .arg(serde_json::to_string(progress).unwrap_or_default())
            .arg(universe.map(msgpack).unwrap_or_default());
        Ok(self.run::<i64>("write progress", inv).await? == 1)
    }

    /// Ends a scan owned at `epoch` with its record, exactly once: `false` (and nothing
    /// written) when the epoch is no longer the scan's or it already ended.
    pub async fn finish(&self, record: &ScanRecord, epoch: u64) -> Result<bool, LinkError> {
        let status = match (record.progress.stage, &record.report) {
            (Stage::Cancelled, _) => "cancelled",
            (_, Some(_)) => "done",
            _ => "failed",
        };
        let mut inv = FINISH.prepare_invoke();
        let id = &record.id;
        inv.key(self.key("scan", id))
            .key(self.key("lease", id))
            .key(self.running_key())
            .key(self.history_key())
            .key(self.key("results", id))
            .arg(epoch)
            .arg(status)
            .arg(msgpack(record))
            .arg(serde_json::to_string(&record.summary()).unwrap_or_default())
            .arg(record.finished_at.timestamp_millis())
            .arg(record.submitted_at.timestamp_millis())
            .arg(id)
            .arg(self.history_ttl.as_secs())
            .arg(self.history_max)
            .arg(&self.prefix);
        Ok(self.run::<i64>("finish scan", inv).await? == 1)
    }

    /// Records a scan that no coordinator owned (in process, with the book only as the
    /// history): created and finished at epoch 1 in one go.
    pub async fn put_finished(&self, record: &ScanRecord) -> Result<(), LinkError> {
        self.create(
            &record.id,
            ScanKind::OneShot,
            record.submitted_at,
            &record.config,
        )
        .await?;
        self.finish(record, 1).await.map(drop)
    }

    /// Abandons expired one-shot scans and lists the running ones (see [`Sweep`]).
    pub async fn sweep(&self) -> Result<Sweep, LinkError> {
        let mut inv = SWEEP.prepare_invoke();
        inv.key(self.running_key())
            .key(self.history_key())
            .key(format!("{}:cancelled", self.prefix))
            .arg(&self.prefix)
            .arg(Utc::now().timestamp_millis())
            .arg(ABANDONED_REASON)
            .arg(self.history_ttl.as_secs())
            .arg(ms(self.cancelled_ttl));
        let (running, orphans, abandoned): (Vec<String>, Vec<String>, Vec<String>) =
            self.run("sweep scans", inv).await?;
        let epochs = running
            .chunks(2)
            .filter_map(|kv| {
                let epoch = kv.get(1)?.split(' ').next()?.parse().ok()?;
                Some((kv[0].clone(), epoch))
            })
            .collect();
        Ok(Sweep {
            epochs,
            orphans,
            abandoned,
        })
    }

    /// Takes over a cluster scan whose lease expired: `None` when another node was first
    /// (or the scan is no longer an orphan).
    pub async fn take(&self, id: &str) -> Result<Option<Takeover>, LinkError> {
        let mut inv = TAKE.prepare_invoke();
        inv.key(self.key("scan", id))
            .key(self.key("lease", id))
            .key(self.running_key())
            .arg(&self.owner)
            .arg(ms(self.lease))
            .arg(id);
        let epoch: u64 = self.run("take over scan", inv).await?;
        if epoch == 0 {
            return Ok(None);
        }
        let (f, _, universe) = self.fields(id, false).await?;
        let config = f
            .get("config")
            .and_then(|c| serde_json::from_str(c).ok())
            .ok_or_else(|| LinkError::Unavailable {
                op: "take over scan".into(),
                message: format!("scan {id} has no readable config"),
            })?;
        Ok(Some(Takeover {
            id: id.to_string(),
            epoch,
            submitted_at: at(f.get("submitted_at").map_or("", |s| s)),
            config,
            universe: universe.and_then(|u| rmp_serde::from_slice(&u).ok()),
        }))
    }

    /// Takes or renews the leader lease (`P:leader`) for this node: whether it is the
    /// leader now.
    pub async fn lead(&self) -> Result<bool, LinkError> {
        let mut inv = LEAD.prepare_invoke();
        inv.key(format!("{}:leader", self.prefix))
            .arg(&self.owner)
            .arg(ms(self.lease));
        Ok(self.run::<i64>("leader lease", inv).await? == 1)
    }

    /// The node holding the leader lease, if any.
    pub async fn leader(&self) -> Result<Option<String>, LinkError> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(format!("{}:leader", self.prefix));
        let (leader,): (Option<String>,) = self.query("read leader", pipe).await?;
        Ok(leader)
    }

    /// Asks the owner of a running scan to cancel it: `false` when it is not running.
    pub async fn request_cancel(&self, id: &str) -> Result<bool, LinkError> {
        let mut inv = CANCEL.prepare_invoke();
        inv.key(self.key("scan", id));
        Ok(self.run::<i64>("cancel scan", inv).await? == 1)
    }

    /// A scan's text fields, and its record (when `record`) and universe, as stored.
    async fn fields(
        &self,
        id: &str,
        record: bool,
    ) -> Result<(Fields, Option<Vec<u8>>, Option<Vec<u8>>), LinkError> {
        let key = self.key("scan", id);
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET").arg(&key).arg(&TEXT[..]);
        pipe.cmd("HGET")
            .arg(&key)
            .arg(if record { "record" } else { "universe" });
        let (row, blob): (Vec<Option<String>>, Option<Vec<u8>>) =
            self.query("read scan", pipe).await?;
        let f = fields_of(row);
        Ok(if record {
            (f, blob, None)
        } else {
            (f, None, blob)
        })
    }

    /// A scan by id, running or finished; `None` when the book does not have it.
    pub async fn get(&self, id: &str) -> Result<Option<BookEntry>, LinkError> {
        let (f, record, _) = self.fields(id, true).await?;
        Ok(entry(id, &f, record.as_deref()))
    }

    /// Running scans, newest first.
    pub async fn running(&self) -> Result<Vec<RunningScan>, LinkError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HKEYS").arg(self.running_key());
        let (ids,): (Vec<String>,) = self.query("list running scans", pipe).await?;
        let mut out = Vec::new();
        for (id, f) in self.many(&ids).await?.into_iter().flatten() {
            if let Some(BookEntry::Running(r)) = entry(&id, &f, None) {
                out.push(*r);
            }
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.submitted_at));
        Ok(out)
    }

    /// The newest `limit` finished scans, newest first.
    pub async fn finished(&self, limit: usize) -> Result<Vec<ScanSummary>, LinkError> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZREVRANGE")
            .arg(self.history_key())
            .arg(0)
            .arg(limit.max(1) as i64 - 1);
        let (ids,): (Vec<String>,) = self.query("list scan history", pipe).await?;
        let mut out = Vec::new();
        for (id, f) in self.many(&ids).await?.into_iter().flatten() {
            match f.get("summary").and_then(|s| serde_json::from_str(s).ok()) {
                Some(s) => out.push(s),
                None => {
                    if let Some(BookEntry::Finished(r)) = entry(&id, &f, None) {
                        out.push(r.summary());
                    }
                }
            }
        }
        Ok(out)
    }

    /// The text fields of `ids` (without their bulky fields), in one round trip.
    async fn many(&self, ids: &[String]) -> Result<Vec<Option<(String, Fields)>>, LinkError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET").arg(self.key("scan", id)).arg(&TEXT[..]);
        }
        let rows: Vec<Vec<Option<String>>> = self.query("read scans", pipe).await?;
        Ok(ids
            .iter()
            .zip(rows)
            .map(|(id, row)| {
                let f = fields_of(row);
                (!f.is_empty()).then(|| (id.clone(), f))
            })
            .collect())
    }
}

/// An `HMGET` of [`TEXT`] as a map of the fields present.
fn fields_of(row: Vec<Option<String>>) -> Fields {
    TEXT.iter()
        .zip(row)
        .filter_map(|(k, v)| Some((k.to_string(), v?)))
        .collect()
}

/// A stored hash as a [`BookEntry`]; `None` when it is absent or unreadable.
fn entry(id: &str, f: &Fields, record: Option<&[u8]>) -> Option<BookEntry> {
    let status = f.get("status")?;
    if let Some(r) = record {
        return rmp_serde::from_slice::<ScanRecord>(r)
            .ok()
            .map(|r| BookEntry::Finished(Arc::new(r)));
    }
    let config: ScanConfig = serde_json::from_str(f.get("config")?).ok()?;
    let submitted_at = at(f.get("submitted_at").map_or("", |s| s));
    let mut progress = f
        .get("progress")
        .and_then(|p| serde_json::from_str::<Progress>(p).ok())
        .unwrap_or_else(|| Progress::queued(id));
    if status == "running" {
        return Some(BookEntry::Running(Box::new(RunningScan {
            id: id.to_string(),
            owner: f.get("owner").cloned().unwrap_or_default(),
            epoch: f.get("epoch").and_then(|e| e.parse().ok()).unwrap_or(0),
            submitted_at,
            config,
            progress,
            seq: f.get("seq").and_then(|s| s.parse().ok()).unwrap_or(0),
        })));
    }
    // Abandoned: no coordinator wrote a record; the book's fields say what is known.
    progress.stage = Stage::Abandoned;
    progress.eta_seconds = None;
    let reason = f.get("reason").cloned().unwrap_or_default();
    progress.message = format!("Abandoned: {reason}");
    Some(BookEntry::Finished(Arc::new(ScanRecord {
        id: id.to_string(),
        submitted_at,
        finished_at: at(f.get("finished_at").map_or("", |s| s)),
        config,
        progress,
        report: None,
        error: Some(UserError::new(
            ErrorCode::ScanAbandoned,
            format!("scan {id} was abandoned: {reason}"),
            vec!["run the scan again; one-shot scans end with their process".into()],
        )),
        report_json: Default::default(),
    })))
}
