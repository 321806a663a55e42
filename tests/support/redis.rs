//! Real `redis-server` processes for tests: a standalone server and a 3-master Redis Cluster,
//! each on reserved loopback ports in its own temp dir, with no persistence, killed on Drop.
//!
//! Readiness is awaited by polling (PING, `CLUSTER INFO`) under a deadline, never by sleeping
//! a fixed time. Ports come from [`Port`] (a cluster node reserves its bus port, port +
//! 10000, too) and stay reserved while the server lives, restarts included. A server that
//! exits at start anyway (a process outside the tests took the port) is started again on
//! another port.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::ports::Port;
use super::wait::{poll, wait_for};

const START_DEADLINE: Duration = Duration::from_secs(10);
const CLUSTER_DEADLINE: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 5;

/// A synchronous connection with short timeouts, for probes and direct writes.
pub fn connect(port: u16) -> ::redis::RedisResult<::redis::Connection> {
    let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(conn)
}

/// One command on the server at `port`, for tests.
pub fn query<T: ::redis::FromRedisValue>(port: u16, cmd: &::redis::Cmd) -> T {
    let mut conn = connect(port).unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    cmd.query(&mut conn)
        .unwrap_or_else(|e| panic!("{cmd:?} on 127.0.0.1:{port}: {e}"))
}

/// One `redis-server` process.
pub struct RedisServer {
    port: Port,
    dir: TempDir,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// A standalone server, ready for commands.
    pub fn start() -> Self {
        Self::start_with(Vec::new(), false)
    }

    fn start_with(extra: Vec<String>, bus: bool) -> Self {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = if bus {
                Port::reserve_with_bus()
            } else {
                Port::reserve()
            };
            let mut server = RedisServer {
                port,
                dir: tempfile::tempdir().expect("temp dir"),
                extra: extra.clone(),
                child: None,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start after {START_ATTEMPTS} attempts: {last}");
    }

    /// Starts the process on `self.port` and waits for PING; `Err` if it exits first.
    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.number();
        let mut cmd = Command::new("redis-server");
        cmd.current_dir(self.dir.path())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--logfile", "redis.log"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| {
            format!("spawn redis-server (is it installed? scripts/test.sh installs it): {e}")
        })?;
        // Ready: `Ok`; exited: `Err(status)`; neither yet: `None`.
        let started = poll(START_DEADLINE, || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(status));
            }
            let pong = connect(port).and_then(|mut c| ::redis::cmd("PING").query::<String>(&mut c));
            pong.is_ok().then_some(Ok(()))
        });
        match started {
            Ok(Ok(())) => {
                self.child = Some(child);
                Ok(())
            }
            Ok(Err(status)) => Err(format!(
                "redis-server on port {port} exited: {status}; log: {}",
                self.log()
            )),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("redis-server on port {port} did not answer PING"))
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port.number()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Kills the process (SIGKILL) and reaps it; the port is free when this returns.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing answers. A hung Redis.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("server running")
            .id()
            .to_string();
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {pid}");
    }

    /// Starts the process again on the same port and directory (same cluster config file).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn().unwrap_or_else(|e| panic!("restart: {e}"));
    }

    /// A synchronous connection for direct writes and checks.
    pub fn connection(&self) -> ::redis::Connection {
        connect(self.port()).unwrap_or_else(|e| panic!("connect to {}: {e}", self.url()))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of three masters and no replicas.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

/// `redis-cli --cluster create` over `addrs` (HOST:PORT) with `replicas` per master.
pub fn create_cluster(addrs: &[String], replicas: u32) {
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(addrs)
        .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli --cluster create (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "redis-cli --cluster create failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl RedisCluster {
    /// Three cluster-enabled servers, joined with `redis-cli --cluster create`, ready when
    /// every node reports `cluster_state:ok`.
    pub fn start() -> Self {
        Self::start_with_replicas(0)
    }

    /// Three masters with `replicas` replicas each (a master killed is failed over to its
    /// replica after `cluster-node-timeout`, 2 s).
    pub fn start_with_replicas(replicas: u32) -> Self {
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| {
                RedisServer::start_with(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                        // Replicas sync at once (the default waits 5 s for more replicas).
                        "--repl-diskless-sync-delay",
                        "0",
                    ]
                    .map(String::from)
                    .to_vec(),
                    true,
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        create_cluster(&addrs, replicas);
        let cluster = RedisCluster { nodes };
        cluster.wait_ok();
        cluster.wait_replicas_synced();
        cluster
    }

    /// Waits until every replica has synced with its master: only a synced replica can be
    /// promoted when its master dies.
    fn wait_replicas_synced(&self) {
        for node in &self.nodes {
            let port = node.port();
            wait_for(&format!("replica {port} to sync"), CLUSTER_DEADLINE, || {
                let mut c = connect(port).ok()?;
                let info: String = ::redis::cmd("INFO").arg("replication").query(&mut c).ok()?;
                let replica = info.lines().any(|l| l.trim() == "role:slave");
                let synced = info.lines().any(|l| l.trim() == "master_link_status:up");
                (!replica || synced).then_some(())
            });
        }
    }

    /// Waits until every node says `cluster_state:ok` and knows every node.
    pub fn wait_ok(&self) {
        let known = format!("cluster_known_nodes:{}", self.nodes.len());
        for node in &self.nodes {
            let port = node.port();
            wait_for(
                &format!("cluster node {port} to be ok"),
                CLUSTER_DEADLINE,
                || {
                    let mut c = connect(port).ok()?;
                    let info: String = ::redis::cmd("CLUSTER").arg("INFO").query(&mut c).ok()?;
                    let ok = info.lines().any(|l| l.trim() == "cluster_state:ok")
                        && info.lines().any(|l| l.trim() == known);
                    ok.then_some(())
                },
            );
        }
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// Seed URLs, as `CacheTarget::RedisCluster` holds them.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// `redis-cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn target(&self) -> String {
        let hosts: Vec<String> = self
            .ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis-cluster://{}", hosts.join(","))
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Kills the node on `port` (SIGKILL).
    pub fn kill_node(&mut self, port: u16) {
        self.nodes
            .iter_mut()
            .filter(|n| n.port() == port)
            .for_each(RedisServer::kill);
    }

    /// Kills every node.
    pub fn kill(&mut self) {
        self.nodes.iter_mut().for_each(RedisServer::kill);
    }

    /// Freezes every node (SIGSTOP).
    pub fn pause(&self) {
        self.nodes.iter().for_each(RedisServer::pause);
    }

    /// Thaws every node (SIGCONT).
    pub fn resume(&self) {
        self.nodes.iter().for_each(RedisServer::resume);
    }

    /// Restarts every node on its port with its cluster config file (the same cluster, with
    /// no data), and waits for `cluster_state:ok`.
    pub fn restart(&mut self) {
        self.nodes.iter_mut().for_each(RedisServer::restart);
        self.wait_ok();
    }

    /// Moves `slots` slots (and their keys) from the first node to the second with
    /// `redis-cli --cluster reshard`, then waits for `cluster_state:ok`.
    pub fn reshard(&self, slots: u32) {
        let id = |port: u16| -> String { query(port, ::redis::cmd("CLUSTER").arg("MYID")) };
        let (from, to) = (self.nodes[0].port(), self.nodes[1].port());
        let out = Command::new("redis-cli")
            .args(["--cluster", "reshard", &format!("127.0.0.1:{from}")])
            .args(["--cluster-from", &id(from), "--cluster-to", &id(to)])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster reshard");
        assert!(
            out.status.success(),
            "reshard failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait_ok();
    }

    /// The port of the master serving `key` (`CLUSTER KEYSLOT` + `CLUSTER SHARDS`/`NODES`).
    pub fn master_of(&self, key: &str) -> u16 {
        let port = self.nodes[0].port();
        let slot: u16 = query(port, ::redis::cmd("CLUSTER").arg("KEYSLOT").arg(key));
        let nodes: String = query(port, ::redis::cmd("CLUSTER").arg("NODES"));
        for line in nodes.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if !f.get(2).is_some_and(|flags| flags.contains("master")) {
                continue;
            }
            let owns = f.iter().skip(8).any(|range| match range.split_once('-') {
                Some((a, b)) => {
                    a.parse::<u16>().is_ok_and(|a| a <= slot)
                        && b.parse::<u16>().is_ok_and(|b| slot <= b)
                }
                None => range.parse::<u16>() == Ok(slot),
            });
            if owns {
                let addr = f[1].split(['@', ',']).next().unwrap_or_default();
                return addr
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse().ok())
                    .expect("node port");
            }
        }
        panic!("no master serves slot {slot}");
    }
}
