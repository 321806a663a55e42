//! Every Redis connection of the process comes from here: the cache backends, the work
//! queue, the node registry and the scan history share one URL syntax, one set of timeouts
//! and one reconnect policy.
//!
//! - [`RedisUrl`]: `redis://HOST:PORT[/DB]` (or `rediss://`) for one server,
//!   `redis-cluster://HOST:PORT[,HOST:PORT...]` for a Redis Cluster (seed nodes).
//! - [`RedisOptions`]: connect and response timeouts, and the hard deadline derived from them.
//! - Factories ([`manager`], [`cluster_client`], [`node_connection`]): a standalone server is
//!   reached through a lazy `ConnectionManager` (it reconnects by itself); a Redis Cluster
//!   through a `ClusterClient` whose connections the caller drops after a connection-level
//!   error, so the next call makes a fresh one.
//! - [`Links`]: a shared connection for short commands plus one connection per consumer for
//!   blocking reads (a blocked command holds up every later command on its connection), every
//!   call under a hard deadline. The queue, the registry and the history use it.
//!
//! Nothing here touches the network until first use. Error messages never carry the URL (it
//! may hold a password): see [`redact`]. Must not import any other module of the crate.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use ::redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, RedisResult, Value,
};

/// Why a Redis call or URL failed. Messages never carry credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("invalid redis url {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// No connection, a timeout, or a dropped connection: worth retrying later.
    #[error("redis {op}: {message}")]
    Unavailable { op: String, message: String },
    /// Redis answered with an error (the connection is fine). `code` is the reply's first
    /// word (`NOGROUP`, `WRONGTYPE`, …) when there is one.
    #[error("redis {op}: {message}")]
    Reply {
        op: String,
        code: Option<String>,
        message: String,
    },
}

impl LinkError {
    /// Whether Redis answered with this error code (also inside a failed pipeline, whose
    /// error carries the command's code only in its text).
    pub fn is_reply(&self, code: &str) -> bool {
        match self {
            LinkError::Reply {
                code: c, message, ..
            } => c.as_deref() == Some(code) || message.contains(code),
            // A failed pipeline has no code of its own; its command's reply is in the text.
            LinkError::Unavailable { message, .. } => message.contains(code),
            LinkError::InvalidUrl { .. } => false,
        }
    }

    /// The error of a failed call `op`.
    pub fn of(op: &str, e: &RedisError) -> Self {
        let message = e.to_string();
        if is_server_reply(e) {
            LinkError::Reply {
                op: op.into(),
                code: e.code().map(String::from),
                message,
            }
        } else {
            LinkError::Unavailable {
                op: op.into(),
                message,
            }
        }
    }

    fn timeout(op: &str, deadline: Duration) -> Self {
        LinkError::Unavailable {
            op: op.into(),
            message: format!("no answer within {deadline:?}"),
        }
    }
}

/// How long Redis may take before an operation gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisOptions {
    /// Each TCP connect (and handshake) attempt.
    pub connect_timeout: Duration,
    /// Each command's (or pipeline's) response.
    pub response_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            connect_timeout: Duration::from_millis(250),
            response_timeout: Duration::from_secs(1),
        }
    }
}

impl RedisOptions {
    /// Upper bound on one command including a reconnect: the backstop against anything in
    /// the client waiting longer than its own timeouts.
    pub fn deadline(&self) -> Duration {
        self.connect_timeout * 3 + self.response_timeout + Duration::from_millis(500)
    }
}

/// A URL with any `user:password@` removed, for error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// One server's connection settings from a `redis://` URL.
pub fn parse_url(url: &str) -> Result<ConnectionInfo, LinkError> {
    url.into_connection_info()
        .map_err(|e| LinkError::InvalidUrl {
            url: redact(url),
            reason: e.to_string(),
        })
}

/// Where Redis is: one server, or the seed nodes of a Redis Cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisUrl {
    /// `redis://HOST:PORT[/DB]` or `rediss://…`.
    Single(String),
    /// Seed nodes, each as `redis://HOST:PORT`.
    Cluster(Vec<String>),
}

impl RedisUrl {
    /// Whether `url` has one of the schemes [`RedisUrl::parse`] takes (a cheap check for
    /// option parsing; `parse` validates the rest).
    pub fn looks_like(url: &str) -> bool {
        ["redis://", "rediss://", "redis-cluster://"]
            .iter()
            .any(|p| url.len() > p.len() && url.starts_with(p))
    }

    pub fn parse(url: &str) -> Result<Self, LinkError> {
        let url = url.trim();
        let invalid = |reason: &str| LinkError::InvalidUrl {
            url: redact(url),
            reason: reason.into(),
        };
        if let Some(rest) = url.strip_prefix("redis-cluster://") {
            let nodes: Vec<String> = rest
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| format!("redis://{n}"))
                .collect();
            if nodes.is_empty() {
                return Err(invalid("expected redis-cluster://HOST:PORT[,HOST:PORT...]"));
            }
            for n in &nodes {
                parse_url(n)?;
            }
            Ok(RedisUrl::Cluster(nodes))
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            parse_url(url)?;
            Ok(RedisUrl::Single(url.to_string()))
        } else {
            Err(invalid(
                "expected redis://HOST:PORT or redis-cluster://HOST:PORT[,HOST:PORT...]",
            ))
        }
    }
}

/// A lazy `ConnectionManager` to one server: it reconnects by itself after an error.
/// `extra_response` lengthens the response timeout for connections that carry blocking
/// reads. Must be called inside a tokio runtime.
pub fn manager(
    info: ConnectionInfo,
    opts: RedisOptions,
    extra_response: Duration,
) -> Result<ConnectionManager, LinkError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(LinkError::Unavailable {
            op: "connect".into(),
            message: "a redis connection must be made inside a tokio runtime".into(),
        });
    }
    let invalid = |e: RedisError| LinkError::InvalidUrl {
        url: redact(&info.addr().to_string()),
        reason: e.to_string(),
    };
    let client = Client::open(info.clone()).map_err(invalid)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(opts.connect_timeout))
        .set_response_timeout(Some(opts.response_timeout + extra_response))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_millis(100));
    ConnectionManager::new_lazy_with_config(client, config).map_err(invalid)
}

/// A client of a Redis Cluster from its seed nodes. Its connections are made on first use;
/// after a connection-level error the caller drops its connection and asks for a new one.
pub fn cluster_client(
    seeds: &[String],
    opts: RedisOptions,
    extra_response: Duration,
) -> Result<ClusterClient, LinkError> {
    let infos = seeds
        .iter()
        .map(|n| parse_url(n))
        .collect::<Result<Vec<_>, _>>()?;
    if infos.is_empty() {
        return Err(LinkError::InvalidUrl {
            url: "redis-cluster://".into(),
            reason: "no seed node".into(),
        });
    }
    ClusterClientBuilder::new(infos)
        .connection_timeout(opts.connect_timeout)
        .response_timeout(opts.response_timeout + extra_response)
        .retries(2)
        .min_retry_wait(10)
        .max_retry_wait(100)
        .build()
        .map_err(|e| LinkError::InvalidUrl {
            url: "redis-cluster://".into(),
            reason: e.to_string(),
        })
}

/// A direct connection to one node (a cluster master, for per-node commands such as SCAN
/// or INFO), under the deadline of `opts`.
pub async fn node_connection(
    info: ConnectionInfo,
    opts: RedisOptions,
) -> Result<MultiplexedConnection, LinkError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(opts.connect_timeout))
        .set_response_timeout(Some(opts.response_timeout));
    let client = Client::open(info).map_err(|e| LinkError::of("node connect", &e))?;
    bounded(
        "node connect",
        opts.deadline(),
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
}

/// Runs `fut` with a hard deadline.
pub async fn bounded<T>(
    op: &str,
    deadline: Duration,
    fut: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, LinkError> {
    match tokio::time::timeout(deadline, fut).await {
        Ok(r) => r.map_err(|e| LinkError::of(op, &e)),
        Err(_) => Err(LinkError::timeout(op, deadline)),
    }
}

/// One connection of either kind; both are multiplexed handles, cheap to clone.
#[derive(Clone)]
pub enum Conn {
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
    Single(ConnectionInfo),
    Cluster(Box<ClusterClient>),
}

/// Which connection a call uses.
#[derive(Clone, Copy)]
pub enum Use<'a> {
    Shared,
    /// The blocking connection of this consumer.
    Blocking(&'a str),
}

/// A shared connection plus one blocking connection per consumer, to one server or one
/// Redis Cluster; every call under a hard deadline.
pub struct Links {
    backend: Backend,
    opts: RedisOptions,
    /// The longest `BLOCK` a command on a blocking connection carries.
    block: Duration,
    shared: tokio::sync::Mutex<Option<Conn>>,
    /// One per consumer name seen; bounded by the node's workers, and a consumer's entry is
    /// dropped by [`Links::drop_consumer`].
    blocking: tokio::sync::Mutex<HashMap<String, Conn>>,
}

impl Links {
    /// `url` as [`RedisUrl::parse`] takes it. Never connects. `block` is the longest
    /// `BLOCK` of a blocking read (zero when the caller makes none).
    pub fn new(url: &str, opts: RedisOptions, block: Duration) -> Result<Self, LinkError> {
        Self::open(&RedisUrl::parse(url)?, opts, block)
    }

    /// As [`Links::new`], from a parsed URL.
    pub fn open(url: &RedisUrl, opts: RedisOptions, block: Duration) -> Result<Self, LinkError> {
        let backend = match url.clone() {
            // The response timeout must outlast a blocking read; shorter calls are bounded
            // by the deadline in `call`.
            RedisUrl::Cluster(seeds) => {
                Backend::Cluster(Box::new(cluster_client(&seeds, opts, block)?))
            }
            RedisUrl::Single(url) => {
                if tokio::runtime::Handle::try_current().is_err() {
                    return Err(LinkError::Unavailable {
                        op: "connect".into(),
                        message: "a redis connection must be made inside a tokio runtime".into(),
                    });
                }
                Backend::Single(parse_url(&url)?)
            }
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
        match using {
            Use::Shared => self.opts.deadline(),
            Use::Blocking(_) => self.opts.deadline() + self.block,
        }
    }

    async fn make(&self, using: Use<'_>) -> Result<Conn, LinkError> {
        match &self.backend {
            Backend::Single(info) => {
                let extra = match using {
                    Use::Shared => Duration::ZERO,
                    Use::Blocking(_) => self.block,
                };
                manager(info.clone(), self.opts, extra).map(Conn::Single)
            }
            Backend::Cluster(client) => client
                .get_async_connection()
                .await
                .map(Conn::Cluster)
                .map_err(|e| LinkError::of("cluster connect", &e)),
        }
    }

    async fn conn(&self, using: Use<'_>) -> Result<Conn, LinkError> {
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
    pub async fn drop_consumer(&self, consumer: &str) {
        self.blocking.lock().await.remove(consumer);
    }

    /// Runs one operation under the deadline of its connection kind.
    pub async fn call<T, F, Fut>(&self, op: &str, using: Use<'_>, f: F) -> Result<T, LinkError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let deadline = self.deadline(using);
        let run = async {
            let conn = self.conn(using).await?;
            f(conn).await.map_err(|e| LinkError::of(op, &e))
        };
        match tokio::time::timeout(deadline, run).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if !matches!(e, LinkError::Reply { .. }) {
                    self.forget(using).await;
                }
                Err(e)
            }
            Err(_) => {
                self.forget(using).await;
                Err(LinkError::timeout(op, deadline))
            }
        }
    }
}

/// An error Redis answered with (the connection itself is fine).
pub fn is_server_reply(e: &RedisError) -> bool {
    e.code().is_some() && !e.is_io_error() && !e.is_connection_dropped()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_credentials_never_show() {
        assert_eq!(
            RedisUrl::parse("redis-cluster://a:1, b:2").unwrap(),
            RedisUrl::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()])
        );
        assert!(matches!(
            RedisUrl::parse("redis://127.0.0.1:6379/0"),
            Ok(RedisUrl::Single(_))
        ));
        for bad in ["redis-cluster://", "http://x", "memory"] {
            assert!(RedisUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(redact("redis://user:pw@h:1"), "redis://***@h:1");
        let e = RedisUrl::parse("redis://user:secret@")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }
}
