//! Where screens, watchlists, webhooks, run histories and delivery logs live: the
//! cluster's Redis (every serve sees the same ones) or, for the embedded default, one JSON
//! file. Both speak the same few operations: named collections of JSON documents, capped
//! newest-first lists, version counters and leased claims.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, UserError};
use crate::redis_link::{LinkError, Links, RedisOptions, RedisUrl, Use};

/// Store calls are off any scan's path.
const REDIS: RedisOptions = RedisOptions {
    connect_timeout: Duration::from_millis(500),
    response_timeout: Duration::from_secs(2),
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Redis(#[from] LinkError),
    #[error("the screens file {path}: {message}")]
    File { path: String, message: String },
}

impl From<StoreError> for UserError {
    fn from(e: StoreError) -> Self {
        let suggestion = match &e {
            StoreError::Redis(_) => {
                "check that the cluster's Redis is reachable (GET /health/detailed)"
            }
            StoreError::File { .. } => {
                "check the file's permissions, or set screens.path to a writable file"
            }
        };
        UserError::new(
            ErrorCode::StoreUnavailable,
            format!("the screens store is unavailable: {e}"),
            vec![suggestion.into()],
        )
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Takes `KEYS[1]` for `ARGV[1]` for `ARGV[2]` ms when nobody holds it (nil), else
/// answers its holder.
const CLAIM: &str = r"
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false";

/// A claim renewal or hand-over: sets `KEYS[1]` to `ARGV[2]` for `ARGV[3]` ms
/// when it holds `ARGV[1]` (the claimer) now.
const HOLD: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0";

/// Deletes `KEYS[1]` when it holds `ARGV[1]`.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Records a run while `ARGV[1]` holds the run lock `KEYS[1]` (and, with a 4th key,
/// `ARGV[6]` holds the tick claim `KEYS[4]`): `HSET KEYS[2] ARGV[2] ARGV[3]` (unless
/// `ARGV[3]` is empty), `LPUSH KEYS[3] ARGV[4]` capped at `ARGV[5]`, then the tick claim
/// set to `ARGV[7]` for `ARGV[8]` ms. 0 (nothing written) when a claim was lost.
const COMMIT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if KEYS[4] and redis.call('GET', KEYS[4]) ~= ARGV[6] then return 0 end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
redis.call('LPUSH', KEYS[3], ARGV[4])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
if KEYS[4] then redis.call('SET', KEYS[4], ARGV[7], 'PX', ARGV[8]) end
return 1";

/// What [`Store::commit`] writes, fenced by the claims it names.
pub struct Commit<'a> {
    /// The claim that must still be `owner`'s.
    pub lock: &'a str,
    pub owner: &'a str,
    /// `(coll, key, doc)` to put, if any.
    pub put: Option<(&'a str, &'a str, &'a str)>,
    /// `(list, doc, max)` to push.
    pub push: (&'a str, &'a str, usize),
    /// `(key, holder, value, ttl)`: a second claim that must be `holder`'s, then set to
    /// `value` for `ttl`.
    pub hand_over: Option<(&'a str, &'a str, &'a str, Duration)>,
}

pub enum Store {
    Redis { links: Box<Links>, prefix: String },
    File(FileStore),
}

impl Store {
    /// The store in the cluster's Redis at `url`, for the queue `queue` (every key in one
    /// hash slot: `technic:v1:screens:{QUEUE}:…`).
    pub fn redis(url: &RedisUrl, queue: &str) -> Result<Self> {
        Ok(Store::Redis {
            links: Box::new(Links::open(url, REDIS, Duration::ZERO)?),
            prefix: format!("technic:v1:screens:{{{queue}}}"),
        })
    }

    pub fn file(path: PathBuf) -> Self {
        Store::File(FileStore {
            path,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Where the store is, for messages (`redis` or the file's path).
    pub fn location(&self) -> String {
        match self {
            Store::Redis { .. } => "the cluster's redis".into(),
            Store::File(f) => f.path.display().to_string(),
        }
    }

    pub async fn get(&self, coll: &str, key: &str) -> Result<Option<String>> {
        match self {
            Store::Redis { links, prefix } => {
                let k = format!("{prefix}:{coll}");
                Ok(links
                    .call("screens read", Use::Shared, |mut c| async move {
                        c.hget(&k, key).await
                    })
                    .await?)
            }
            Store::File(f) => Ok(f
                .read()
                .await?
                .docs
                .get(coll)
                .and_then(|m| m.get(key))
                .cloned()),
        }
    }

    /// Every document of `coll`, by key.
    pub async fn all(&self, coll: &str) -> Result<BTreeMap<String, String>> {
        match self {
            Store::Redis { links, prefix } => {
                let k = format!("{prefix}:{coll}");
                Ok(links
                    .call("screens list", Use::Shared, |mut c| async move {
                        c.hgetall(&k).await
                    })
                    .await?)
            }
            Store::File(f) => Ok(f.read().await?.docs.remove(coll).unwrap_or_default()),
        }
    }

    pub async fn put(&self, coll: &str, key: &str, doc: &str) -> Result<()> {
        match self {
            Store::Redis { links, prefix } => {
                let k = format!("{prefix}:{coll}");
                links
                    .call("screens write", Use::Shared, |mut c| async move {
                        c.hset::<_, _, _, ()>(&k, key, doc).await
                    })
                    .await?;
                Ok(())
            }
            Store::File(f) => {
                f.update(|s| {
                    s.docs
                        .entry(coll.into())
                        .or_default()
                        .insert(key.into(), doc.into());
                })
                .await
            }
        }
    }

    /// Removes a document: whether it was there.
    pub async fn remove(&self, coll: &str, key: &str) -> Result<bool> {
        match self {
            Store::Redis { links, prefix } => {
                let k = format!("{prefix}:{coll}");
                let n: i64 = links
                    .call("screens delete", Use::Shared, |mut c| async move {
                        c.hdel(&k, key).await
                    })
                    .await?;
                Ok(n > 0)
            }
            Store::File(f) => {
                let mut found = false;
                f.update(|s| {
                    found = s.docs.get_mut(coll).and_then(|m| m.remove(key)).is_some();
                })
                .await?;
                Ok(found)
            }
        }
    }

    /// The next version of `key` in `coll` (1 for the first): counters survive deletes,
    /// so a re-created screen never reuses a version an old run recorded.
    pub async fn next_version(&self, coll: &str, key: &str) -> Result<u64> {
        match self {
            Store::Redis { links, prefix } => {
                let k = format!("{prefix}:{coll}:versions");
                Ok(links
                    .call("screens version", Use::Shared, |mut c| async move {
                        c.hincr(&k, key, 1).await
                    })
                    .await?)
            }
            Store::File(f) => {
                let mut v = 0;
                f.update(|s| {
                    let n = s.versions.entry(format!("{coll}:{key}")).or_default();
                    *n += 1;
                    v = *n;
                })
                .await?;
                Ok(v)
            }
        }
    }

    /// Puts a document only when `key` is not in `coll` yet: whether it was put.
    pub async fn put_new(&self, coll: &str, key: &str, doc: &str) -> Result<bool> {
        match self {
            Store::Redis { links, prefix } => {
                let k = format!("{prefix}:{coll}");
                Ok(links
                    .call("screens create", Use::Shared, |mut c| async move {
                        c.hset_nx(&k, key, doc).await
                    })
                    .await?)
            }
            Store::File(f) => {
                let mut put = false;
                f.update(|s| {
                    let m = s.docs.entry(coll.into()).or_default();
                    if !m.contains_key(key) {
                        m.insert(key.into(), doc.into());
                        put = true;
                    }
                })
                .await?;
                Ok(put)
            }
        }
    }

    /// Adds `doc` at the head of `list`, keeping the newest `max`.
    pub async fn push(&self, list: &str, doc: &str, max: usize) -> Result<()> {
        match self {
            Store::Redis { links, prefix } => {
                let k = format!("{prefix}:{list}");
                let mut pipe = redis::pipe();
                pipe.lpush(&k, doc)
                    .ignore()
                    .ltrim(&k, 0, max as isize - 1)
                    .ignore();
                let pipe = &pipe;
                links
                    .call("screens log", Use::Shared, |mut c| async move {
                        pipe.query_async::<()>(&mut c).await
                    })
                    .await?;
                Ok(())
            }
            Store::File(f) => {
                f.update(|s| {
                    let l = s.lists.entry(list.into()).or_default();
                    l.insert(0, doc.into());
                    l.truncate(max);
                })
                .await
            }
        }
    }

    /// The newest `n` entries of `list`, newest first.
    pub async fn recent(&self, list: &str, n: usize) -> Result<Vec<String>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        match self {
            Store::Redis { links, prefix } => {
                let k = format!("{prefix}:{list}");
                Ok(links
                    .call("screens log read", Use::Shared, |mut c| async move {
                        c.lrange(&k, 0, n as isize - 1).await
                    })
                    .await?)
            }
            Store::File(f) => {
                let mut l = f.read().await?.lists.remove(list).unwrap_or_default();
                l.truncate(n);
                Ok(l)
            }
        }
    }

    /// Drops `list`.
    pub async fn clear(&self, list: &str) -> Result<()> {
        match self {
            Store::Redis { links, prefix } => {
                let k = format!("{prefix}:{list}");
                links
                    .call("screens log clear", Use::Shared, |mut c| async move {
                        c.del::<_, ()>(&k).await
                    })
                    .await?;
                Ok(())
            }
            Store::File(f) => {
                f.update(|s| {
                    s.lists.remove(list);
                })
                .await
            }
        }
    }

    /// Claims `key` for `owner` for `ttl` when nobody holds it: `None` when this call took
    /// it, else the value it holds. A claim whose holder stops renewing lapses, and the
    /// next claimer takes it.
    pub async fn claim(&self, key: &str, owner: &str, ttl: Duration) -> Result<Option<String>> {
        let ms = ttl.as_millis().max(1) as u64;
        match self {
            Store::Redis { links, prefix } => {
                let k = format!("{prefix}:{key}");
                let script = redis::Script::new(CLAIM);
                let mut inv = script.prepare_invoke();
                inv.key(&k).arg(owner).arg(ms);
                let inv = &inv;
                Ok(links
                    .call("screens claim", Use::Shared, |mut c| async move {
                        inv.invoke_async(&mut c).await
                    })
                    .await?)
            }
            Store::File(f) => {
                let now = now_ms();
                let mut held = None;
                f.update(|s| {
                    s.claims.retain(|_, (_, until)| *until > now);
                    match s.claims.get(key) {
                        Some((who, _)) => held = Some(who.clone()),
                        None => {
                            s.claims.insert(key.into(), (owner.into(), now + ms));
                        }
                    }
                })
                .await?;
                Ok(held)
            }
        }
    }

    /// While `owner` holds `key`, sets it to `value` for `ttl` (a renewal when `value` is
    /// `owner`, a hand-over otherwise): whether it still held it.
    pub async fn hold(&self, key: &str, owner: &str, value: &str, ttl: Duration) -> Result<bool> {
        let ms = ttl.as_millis().max(1) as u64;
        match self {
            Store::Redis { links, prefix } => {
                let k = format!("{prefix}:{key}");
                let script = redis::Script::new(HOLD);
                let mut inv = script.prepare_invoke();
                inv.key(&k).arg(owner).arg(value).arg(ms);
                let inv = &inv;
                let held: i64 = links
                    .call("screens claim renew", Use::Shared, |mut c| async move {
                        inv.invoke_async(&mut c).await
                    })
                    .await?;
                Ok(held == 1)
            }
            Store::File(f) => {
                let now = now_ms();
                let mut held = false;
                f.update(|s| {
                    if let Some((who, until)) = s.claims.get_mut(key) {
                        if who == owner && *until > now {
                            *who = value.into();
                            *until = now + ms;
                            held = true;
                        }
                    }
                })
                .await?;
                Ok(held)
            }
        }
    }
}

impl Store {
    /// Deletes `owner`'s claim on `key` (nothing when another holds it).
    pub async fn release(&self, key: &str, owner: &str) -> Result<()> {
        match self {
            Store::Redis { links, prefix } => {
                let k = format!("{prefix}:{key}");
                let script = redis::Script::new(RELEASE);
                let mut inv = script.prepare_invoke();
                inv.key(&k).arg(owner);
                let inv = &inv;
                links
                    .call("screens claim release", Use::Shared, |mut c| async move {
                        inv.invoke_async::<i64>(&mut c).await
                    })
                    .await?;
                Ok(())
            }
            Store::File(f) => {
                f.update(|s| {
                    if s.claims.get(key).is_some_and(|(who, _)| who == owner) {
                        s.claims.remove(key);
                    }
                })
                .await
            }
        }
    }

    /// Runs `work` while renewing `owner`'s claim on `key` every quarter of `lease`.
    pub async fn renewing<T>(
        &self,
        key: &str,
        owner: &str,
        lease: Duration,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        tokio::pin!(work);
        loop {
            tokio::select! {
                r = &mut work => return r,
                _ = tokio::time::sleep(lease / 4) => {
                    if !matches!(self.hold(key, owner, owner, lease).await, Ok(true)) {
                        tracing::warn!(claim = key, owner, "cannot renew a claim: another process may take it");
                    }
                }
            }
        }
    }

    /// Writes `c` in one step while its claims hold: whether it was written.
    pub async fn commit(&self, c: &Commit<'_>) -> Result<bool> {
        match self {
            Store::Redis { links, prefix } => {
                let script = redis::Script::new(COMMIT);
                let mut inv = script.prepare_invoke();
                let (coll, field, doc) = c.put.unwrap_or(("", "", ""));
                inv.key(format!("{prefix}:{}", c.lock))
                    .key(format!("{prefix}:{coll}"))
                    .key(format!("{prefix}:{}", c.push.0));
                inv.arg(c.owner)
                    .arg(field)
                    .arg(doc)
                    .arg(c.push.1)
                    .arg(c.push.2);
                if let Some((key, holder, value, ttl)) = c.hand_over {
                    inv.key(format!("{prefix}:{key}"))
                        .arg(holder)
                        .arg(value)
                        .arg(ttl.as_millis().max(1) as u64);
                }
                let inv = &inv;
                let done: i64 = links
                    .call("screens record run", Use::Shared, |mut c| async move {
                        inv.invoke_async(&mut c).await
                    })
                    .await?;
                Ok(done == 1)
            }
            Store::File(f) => {
                let now = now_ms();
                let mut done = false;
                f.update(|s| {
                    let holds = |s: &FileState, key: &str, who: &str| {
                        s.claims
                            .get(key)
                            .is_some_and(|(w, until)| w == who && *until > now)
                    };
                    if !holds(s, c.lock, c.owner)
                        || c.hand_over.is_some_and(|(k, h, _, _)| !holds(s, k, h))
                    {
                        return;
                    }
                    if let Some((coll, key, doc)) = c.put.filter(|p| !p.2.is_empty()) {
                        s.docs
                            .entry(coll.into())
                            .or_default()
                            .insert(key.into(), doc.into());
                    }
                    let l = s.lists.entry(c.push.0.into()).or_default();
                    l.insert(0, c.push.1.into());
                    l.truncate(c.push.2);
                    if let Some((k, _, value, ttl)) = c.hand_over {
                        s.claims
                            .insert(k.into(), (value.into(), now + ttl.as_millis() as u64));
                    }
                    done = true;
                })
                .await?;
                Ok(done)
            }
        }
    }
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

/// The embedded default: everything in one JSON file, rewritten whole (to a temporary
/// file, then renamed) on every change. One process at a time writes it.
pub struct FileStore {
    path: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct FileState {
    docs: BTreeMap<String, BTreeMap<String, String>>,
    versions: BTreeMap<String, u64>,
    lists: BTreeMap<String, Vec<String>>,
    /// key → (holder, until in Unix ms).
    claims: BTreeMap<String, (String, u64)>,
}

impl FileStore {
    fn error(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError::File {
            path: self.path.display().to_string(),
            message: message.to_string(),
        }
    }

    async fn read(&self) -> Result<FileState> {
        let _guard = self.lock.lock().await;
        self.load()
    }

    fn load(&self) -> Result<FileState> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.error(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileState::default()),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn update(&self, change: impl FnOnce(&mut FileState)) -> Result<()> {
        let _guard = self.lock.lock().await;
        let mut state = self.load()?;
        change(&mut state);
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| self.error(e))?;
        }
        // A temporary file of this process (0600: webhook secrets are in it), renamed over.
        let tmp = self
            .path
            .with_extension(format!("json.{}.tmp", std::process::id()));
        let bytes = serde_json::to_vec_pretty(&state).map_err(|e| self.error(e))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.error(e))?;
        file.write_all(&bytes).map_err(|e| self.error(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.error(e))
    }
}
