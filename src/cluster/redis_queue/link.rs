//! Connections of the Redis Streams queue: one shared connection for short commands, and one
//! per consumer for the blocking `XREADGROUP` (a blocked command holds up every later command
//! on its connection, so a pull must never block the acks and pushes of other workers).
//!
//! Built without touching the network; a connection is made on first use. Standalone Redis goes
//! through `ConnectionManager`s (they reconnect by themselves); a Redis Cluster through cluster
//! connections, dropped after any error so the next call makes a fresh one. Every call runs
//! under a hard deadline. Error messages never carry the URL.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Client, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use crate::cache::redis::{parse_url, redact};
use crate::cache::RedisOptions;
use crate::cluster::queue::QueueError;

/// One connection of either kind; both are multiplexed handles, cheap to clone.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

enum Backend {
    Single(Client),
    Cluster(Box<ClusterClient>),
}

/// Which connection a call uses.
#[derive(Clone, Copy)]
pub(crate) enum Use<'a> {
    Shared,
    /// The blocking connection of this consumer.
    Blocking(&'a str),
}

pub(crate) struct Links {
    backend: Backend,
    opts: RedisOptions,
    /// The longest `BLOCK` a command on a blocking connection carries.
    block: Duration,
    shared: tokio::sync::Mutex<Option<Conn>>,
    /// One per consumer name seen by `pull`; bounded by the node's workers, and a consumer's
    /// entry is dropped by `requeue_consumer`.
    blocking: tokio::sync::Mutex<HashMap<String, Conn>>,
}

impl Links {
    /// `url` is `redis://HOST:PORT[/DB]` (or `rediss://`) or
    /// `redis-cluster://HOST:PORT[,HOST:PORT...]`. Never connects.
    pub(crate) fn new(url: &str, opts: RedisOptions, block: Duration) -> Result<Self, QueueError> {
        let invalid = |reason: String| QueueError::InvalidUrl {
            url: redact(url),
            reason,
        };
        let backend = if let Some(rest) = url.strip_prefix("redis-cluster://") {
            let infos = rest
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| parse_url(&format!("redis://{n}")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(e.to_string()))?;
            if infos.is_empty() {
                return Err(invalid("no seed node".into()));
            }
            // The response timeout must outlast a blocking read; shorter calls are bounded by
            // the deadline in `call`.
            let client = ClusterClientBuilder::new(infos)
                .connection_timeout(opts.connect_timeout)
                .response_timeout(opts.response_timeout + block)
                .retries(2)
                .min_retry_wait(10)
                .max_retry_wait(100)
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            Backend::Cluster(Box::new(client))
        } else {
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(QueueError::Unavailable(
                    "the redis queue must be created inside a tokio runtime".into(),
                ));
            }
            let info = parse_url(url).map_err(|e| invalid(e.to_string()))?;
            Backend::Single(Client::open(info).map_err(|e| invalid(e.to_string()))?)
        };
        Ok(Links {
            backend,
            opts,
            block,
            shared: tokio::sync::Mutex::new(None),
            blocking: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    fn deadline(&self, using: Use<'_>) -> Duration {
        let base = self.opts.connect_timeout * 3 + self.opts.response_timeout;
        match using {
            Use::Shared => base + Duration::from_millis(500),
            Use::Blocking(_) => base + self.block + Duration::from_millis(500),
        }
    }

    async fn make(&self, using: Use<'_>) -> RedisResult<Conn> {
        match &self.backend {
            Backend::Single(client) => {
                let extra = match using {
                    Use::Shared => Duration::ZERO,
                    Use::Blocking(_) => self.block,
                };
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.opts.connect_timeout))
                    .set_response_timeout(Some(self.opts.response_timeout + extra))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(20))
                    .set_max_delay(Duration::from_millis(100));
                ConnectionManager::new_lazy_with_config(client.clone(), config).map(Conn::Single)
            }
            Backend::Cluster(client) => client.get_async_connection().await.map(Conn::Cluster),
        }
    }

    async fn conn(&self, using: Use<'_>) -> RedisResult<Conn> {
        match using {
            Use::Shared => {
                let mut slot = self.shared.lock().await;
                if let Some(c) = &*slot {
                    return Ok(c.clone());
                }
                let c = self.make(using).await?;
                *slot = Some(c.clone());
                Ok(c)
            }
            Use::Blocking(consumer) => {
                let mut map = self.blocking.lock().await;
                if let Some(c) = map.get(consumer) {
                    return Ok(c.clone());
                }
                let c = self.make(using).await?;
                map.insert(consumer.to_string(), c.clone());
                Ok(c)
            }
        }
    }

    /// Drops a cluster connection after an error (a `ConnectionManager` reconnects itself).
    async fn forget(&self, using: Use<'_>) {
        if matches!(self.backend, Backend::Single(_)) {
            return;
        }
        match using {
            Use::Shared => *self.shared.lock().await = None,
            Use::Blocking(c) => {
                self.blocking.lock().await.remove(c);
            }
        }
    }

    /// Forgets a consumer's blocking connection (it died or left).
    pub(crate) async fn drop_consumer(&self, consumer: &str) {
        self.blocking.lock().await.remove(consumer);
    }

    /// Runs one operation under the deadline of its connection kind.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        op: &str,
        using: Use<'_>,
        f: F,
    ) -> Result<T, QueueError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let deadline = self.deadline(using);
        let run = async {
            let conn = self.conn(using).await?;
            f(conn).await
        };
        match tokio::time::timeout(deadline, run).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if !is_server_reply(&e) {
                    self.forget(using).await;
                }
                Err(unavailable(op, &e))
            }
            Err(_) => {
                self.forget(using).await;
                Err(QueueError::Unavailable(format!(
                    "redis {op}: no answer within {deadline:?}"
                )))
            }
        }
    }
}

/// An error Redis answered with (the connection itself is fine).
fn is_server_reply(e: &RedisError) -> bool {
    e.code().is_some() && !e.is_io_error() && !e.is_connection_dropped()
}

/// The driver's messages name the failing node or command, never the credentials.
fn unavailable(op: &str, e: &RedisError) -> QueueError {
    // A failed command inside a pipeline comes back as a "pipeline failure" without a code
    // of its own: the command's code is only in the text.
    let text = e.to_string();
    if e.code() == Some("NOGROUP") || text.contains("NOGROUP") {
        QueueError::NoGroup
    } else {
        QueueError::Unavailable(format!("redis {op}: {text}"))
    }
}
