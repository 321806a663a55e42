//! The multi-host rig: the docker-compose topology (docker/docker-compose.yml) as real
//! processes, each "host" in its own network namespace.
//!
//! - A private test subnet `10.213.X.0/24` on a bridge `trg…b` that the rig creates; the
//!   bridge holds the gateway address `.1` (the test process: webhook receiver, HTTP
//!   probes), and every host is a namespace `trg-PID-N-HOST` joined to it by a veth pair.
//!   Hosts have no default route: traffic stays inside the subnet.
//! - Hosts: `redis-1`…`redis-6` (a Redis Cluster, 3 masters and 3 replicas, on 6379),
//!   `coordinator` and `coordinator-2` (`technic serve --workers 0`, node ids as the host
//!   names, on 8080, with a token: two, so a scan outlives either), `worker-1`…`worker-3`
//!   (`technic worker --metrics-bind ADDR:9101 --node-id wN`), `prometheus` (9090, with
//!   `cluster/prometheus.yml` and `cluster/alerts.yml`), `alertmanager` (9093, with
//!   `cluster/alertmanager.yml`), and a webhook receiver in the test process.
//! - The ops files are used as they are, copied to a temp dir with only the host names of
//!   scrape and alertmanager targets rewritten to the rig's addresses, the `global`
//!   intervals shortened to 1 s, an `alerting` section added when the file has none, and
//!   Alertmanager's webhook URL and group timings set for the test.
//! - [`Rig::kill9`] kills a host's process, [`Rig::restart`] starts it again with its
//!   original command; [`Rig::partition`] takes a host's veth link down, [`Rig::heal`] up
//!   again.
//! - [`Rig::start_with`] a [`Source::Polygon`]: the technic processes read bars from
//!   Polygon, pointed at a fake Polygon ([`super::fake_polygon`]) that the test process
//!   serves on the gateway address; a [`Source::SlowSynthetic`]: the synthetic market with a
//!   latency per symbol and workers without a cache, for scans long enough to kill
//!   something in. [`Rig::api`] calls the
//!   coordinator with its token, [`Rig::api_on`] either coordinator.
//! - Everything is torn down on Drop (panics included): processes killed and reaped,
//!   namespaces and links deleted, temp dirs removed. At start, namespaces and links left
//!   by a rig whose process is gone (name prefix `trg`, with its pid) are deleted, and the
//!   processes still in those namespaces are killed by pid; so are its temp dirs
//!   (`technic-rig-PID-…`). Every process gets
//!   `PR_SET_PDEATHSIG` so it dies with the test thread that started it.
//!
//! Where namespaces are not available (not root, or `ip netns add` fails), or when
//! `RIG_LOOPBACK=1`, the rig says so on stderr and runs every host on 127.0.0.1 with
//! ports reserved through [`super::ports`]; a partition is then a frozen process (SIGSTOP,
//! SIGCONT to heal), as close as one address space gets.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use serde_yaml_ng::Value as Yaml;
use tempfile::TempDir;

use super::fake_polygon::FakePolygon;
use super::polygon::KEY;
use super::ports::Port;
use super::technic::{BIN, FAST_CLUSTER};
use super::wait::wait_for;

/// Prefix of every namespace and link the rig creates.
const PREFIX: &str = "trg";
/// The bearer token of the rig's coordinator.
pub const TOKEN: &str = "technic-rig-token-0123456789abcdef";
const START: Duration = Duration::from_secs(60);
/// The scrape interval, scrape timeout and rule evaluation interval of the rig's Prometheus.
const INTERVAL: &str = "1s";

pub const REDIS: [&str; 6] = [
    "redis-1", "redis-2", "redis-3", "redis-4", "redis-5", "redis-6",
];
pub const WORKERS: [&str; 3] = ["worker-1", "worker-2", "worker-3"];
pub const COORDINATORS: [&str; 2] = ["coordinator", "coordinator-2"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One host: its address and main port, and how it is isolated.
struct Host {
    addr: SocketAddr,
    /// The namespace (namespace mode).
    ns: Option<String>,
    /// The root-side end of its veth pair (namespace mode).
    veth: Option<String>,
    /// The reserved port (loopback mode).
    _port: Option<Port>,
}

struct Proc {
    host: String,
    child: Option<Child>,
    /// The command it was started with, for [`Rig::restart`].
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// Namespace mode's bridge.
struct Net {
    /// `trgPIDxN`: the prefix of the bridge and veth names.
    tag: String,
    /// `trg-PID-N-`: the prefix of the namespace names.
    ns_prefix: String,
    bridge: String,
    namespaces: Vec<String>,
    veths: Vec<String>,
}

/// Alert notifications received by the webhook, in arrival order.
#[derive(Clone, Default)]
pub struct Deliveries(Arc<Mutex<Vec<Value>>>);

impl Deliveries {
    pub fn all(&self) -> Vec<Value> {
        self.0.lock().expect("deliveries").clone()
    }

    /// The alerts of every notification (each alert has its own `status`, `labels`).
    pub fn alerts(&self) -> Vec<Value> {
        self.all()
            .iter()
            .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

/// Where the rig's technic processes get their bars.
#[derive(Clone, Default)]
pub enum Source {
    /// The built-in synthetic market (`data.source = "synthetic"`, the default).
    #[default]
    Synthetic,
    /// Polygon, pointed at this fake, served by the test process on the gateway address.
    Polygon(FakePolygon),
    /// The synthetic market, each symbol's load delayed by this many milliseconds.
    SlowSynthetic(u64),
}

pub struct Rig {
    hosts: BTreeMap<String, Host>,
    procs: Vec<Proc>,
    net: Option<Net>,
    gateway: IpAddr,
    webhook: SocketAddr,
    _webhook_port: Port,
    pub deliveries: Deliveries,
    /// The fake Polygon's server (dropped before the runtime).
    polygon: Option<(wiremock::MockServer, Port)>,
    /// Synthetic latency per symbol, if any.
    latency_ms: Option<u64>,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
    dir: TempDir,
}

/// `ip ARGS`, panicking with its stderr on failure.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run ip {args:?} (iproute2; scripts/test.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip_out(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Deletes namespaces and links of rigs whose process is gone, killing (by pid) the
/// processes still running in those namespaces.
fn remove_leftovers() {
    for line in ip_out(&["netns", "list"]).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        // trg-PID-N-HOST
        let mut parts = name.splitn(4, '-');
        if parts.next() != Some(PREFIX) {
            continue;
        }
        let Some(pid) = parts.next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if alive(pid) {
            continue;
        }
        for p in ip_out(&["netns", "pids", name]).split_whitespace() {
            if let Ok(p) = p.parse::<i32>() {
                // SAFETY: kill(2) on a pid; no memory is shared.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        let _ = Command::new("ip").args(["netns", "del", name]).status();
    }
    for line in ip_out(&["-o", "link", "show"]).lines() {
        // "7: trg1a2bx0b: <…>" or "8: trg1a2bx0v3@if2: <…>"
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('x') else {
            continue;
        };
        let Ok(pid) = u32::from_str_radix(pid, 16) else {
            continue;
        };
        if !alive(pid) {
            let _ = Command::new("ip").args(["link", "del", name]).status();
        }
    }
}

/// Deletes the temp dirs (`technic-rig-PID-…`) of rigs whose process is gone.
fn remove_leftover_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("technic-rig-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !alive(p)) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Why namespaces cannot be used here, if they cannot.
fn namespaces_unavailable(probe: &str) -> Option<String> {
    if std::env::var("RIG_LOOPBACK").is_ok_and(|v| v == "1") {
        return Some("RIG_LOOPBACK=1".into());
    }
    // SAFETY: geteuid(2) reads nothing of ours.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    match Command::new("ip")
        .args(["netns", "add", probe])
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => {
            let _ = Command::new("ip").args(["netns", "del", probe]).status();
            None
        }
        Ok(o) => Some(format!(
            "ip netns add failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run ip: {e}")),
    }
}

/// A free `10.213.X.0/24` (no local address in it): the third octet.
fn free_subnet(seed: u32) -> u8 {
    let addrs = ip_out(&["-4", "-o", "addr", "show"]);
    (0..250u32)
        .map(|i| ((seed + i) % 250 + 1) as u8)
        .find(|x| !addrs.contains(&format!("10.213.{x}.")))
        .expect("a free 10.213.X.0/24")
}

impl Rig {
    /// Starts the whole topology (synthetic market data) and waits until every process
    /// answers.
    pub fn start() -> Rig {
        Rig::start_with(Source::Synthetic)
    }

    /// [`Rig::start`] with the technic processes reading bars from `source`.
    pub fn start_with(source: Source) -> Rig {
        static RIGS: AtomicU32 = AtomicU32::new(0);
        let n = RIGS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("http client");
        remove_leftover_dirs();
        let dir = tempfile::Builder::new()
            .prefix(&format!("technic-rig-{pid}-"))
            .tempdir()
            .expect("temp dir");

        let mut names: Vec<&str> = REDIS.to_vec();
        names.extend(COORDINATORS);
        names.extend(WORKERS);
        names.extend(["prometheus", "alertmanager"]);
        let port_of = |name: &str| match name {
            n if n.starts_with("coordinator") => 8080,
            "prometheus" => 9090,
            "alertmanager" => 9093,
            n if n.starts_with("redis-") => 6379,
            _ => 9101,
        };

        let probe = format!("{PREFIX}-{pid}-{n}-probe");
        let mut hosts = BTreeMap::new();
        let (net, gateway) = match namespaces_unavailable(&probe) {
            None => {
                remove_leftovers();
                let x = free_subnet(pid.wrapping_mul(7).wrapping_add(n));
                let tag = format!("{PREFIX}{pid:x}x{n:x}");
                let bridge = format!("{tag}b");
                let mut net = Net {
                    tag: tag.clone(),
                    ns_prefix: format!("{PREFIX}-{pid}-{n}-"),
                    bridge: bridge.clone(),
                    namespaces: Vec::new(),
                    veths: Vec::new(),
                };
                ip(&["link", "add", &bridge, "type", "bridge"]);
                ip(&["addr", "add", &format!("10.213.{x}.1/24"), "dev", &bridge]);
                ip(&["link", "set", &bridge, "up"]);
                for (i, name) in names.iter().enumerate() {
                    let ns = format!("{PREFIX}-{pid}-{n}-{name}");
                    let veth = format!("{tag}v{i:x}");
                    // Recorded first: a failed step is still cleaned up (Net's Drop).
                    net.namespaces.push(ns.clone());
                    ip(&["netns", "add", &ns]);
                    net.veths.push(veth.clone());
                    ip(&[
                        "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                    ]);
                    ip(&["link", "set", &veth, "master", &bridge, "up"]);
                    let addr = Ipv4Addr::new(10, 213, x, 10 + i as u8);
                    ip(&[
                        "-n",
                        &ns,
                        "addr",
                        "add",
                        &format!("{addr}/24"),
                        "dev",
                        "eth0",
                    ]);
                    ip(&["-n", &ns, "link", "set", "eth0", "up"]);
                    ip(&["-n", &ns, "link", "set", "lo", "up"]);
                    hosts.insert(
                        name.to_string(),
                        Host {
                            addr: SocketAddr::new(addr.into(), port_of(name)),
                            ns: Some(ns),
                            veth: Some(veth),
                            _port: None,
                        },
                    );
                }
                (Some(net), IpAddr::V4(Ipv4Addr::new(10, 213, x, 1)))
            }
            Some(why) => {
                eprintln!(
                    "rig: network namespaces not available ({why}); every host runs on 127.0.0.1 \
                     and a partition is a frozen process"
                );
                for name in &names {
                    let port = if name.starts_with("redis-") {
                        Port::reserve_with_bus()
                    } else {
                        Port::reserve()
                    };
                    hosts.insert(
                        name.to_string(),
                        Host {
                            addr: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port.number()),
                            ns: None,
                            veth: None,
                            _port: Some(port),
                        },
                    );
                }
                (None, IpAddr::V4(Ipv4Addr::LOCALHOST))
            }
        };

        // The webhook receiver, in this process, on the gateway address.
        let webhook_port = Port::reserve();
        let webhook = SocketAddr::new(gateway, webhook_port.number());
        let deliveries = Deliveries::default();
        {
            let listener = std::net::TcpListener::bind(webhook)
                .unwrap_or_else(|e| panic!("webhook receiver on {webhook}: {e}"));
            listener.set_nonblocking(true).expect("nonblocking");
            let store = deliveries.clone();
            rt.spawn(async move {
                let app = axum::Router::new().route(
                    "/alerts",
                    axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                        let store = store.clone();
                        async move {
                            store.0.lock().expect("deliveries").push(body);
                            "ok"
                        }
                    }),
                );
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = axum::serve(listener, app).await;
            });
        }

        // The fake Polygon, in this process too, on the gateway address.
        let latency_ms = match source {
            Source::SlowSynthetic(ms) => Some(ms),
            _ => None,
        };
        let polygon = match source {
            Source::Synthetic | Source::SlowSynthetic(_) => None,
            Source::Polygon(fake) => {
                let port = Port::reserve();
                let addr = SocketAddr::new(gateway, port.number());
                let listener = std::net::TcpListener::bind(addr)
                    .unwrap_or_else(|e| panic!("fake Polygon on {addr}: {e}"));
                let server = rt.block_on(async {
                    let server = wiremock::MockServer::builder()
                        .listener(listener)
                        .start()
                        .await;
                    wiremock::Mock::given(wiremock::matchers::method("GET"))
                        .respond_with(fake)
                        .mount(&server)
                        .await;
                    server
                });
                Some((server, port))
            }
        };

        let mut rig = Rig {
            hosts,
            procs: Vec::new(),
            net,
            gateway,
            webhook,
            _webhook_port: webhook_port,
            deliveries,
            polygon,
            latency_ms,
            http,
            rt,
            dir,
        };
        rig.start_redis();
        rig.start_technic();
        rig.start_monitoring();
        rig
    }

    /// Whether hosts are network namespaces (else processes on 127.0.0.1).
    pub fn namespaced(&self) -> bool {
        self.net.is_some()
    }

    /// What namespace mode left on this machine: the rig's namespaces and links still
    /// present (empty in loopback mode, and after Drop).
    pub fn traces(tag: &(String, String)) -> Vec<String> {
        let (links, namespaces) = tag;
        let mut found: Vec<String> = ip_out(&["netns", "list"])
            .lines()
            .filter(|l| l.starts_with(namespaces.as_str()))
            .map(String::from)
            .collect();
        found.extend(
            ip_out(&["-o", "link", "show"])
                .lines()
                .filter_map(|l| l.split(": ").nth(1))
                .filter(|name| name.starts_with(links.as_str()))
                .map(String::from),
        );
        found
    }

    /// The name prefixes of this rig's links and namespaces (for [`Rig::traces`]).
    pub fn tag(&self) -> Option<(String, String)> {
        self.net
            .as_ref()
            .map(|n| (n.tag.clone(), n.ns_prefix.clone()))
    }

    /// `ADDR:PORT` of a host's process.
    pub fn addr(&self, host: &str) -> SocketAddr {
        self.host(host).addr
    }

    pub fn gateway(&self) -> IpAddr {
        self.gateway
    }

    pub fn webhook(&self) -> SocketAddr {
        self.webhook
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn host(&self, name: &str) -> &Host {
        self.hosts
            .get(name)
            .unwrap_or_else(|| panic!("no host {name} in the rig"))
    }

    fn log_path(&self, host: &str) -> PathBuf {
        self.dir.path().join(format!("{host}.log"))
    }

    /// A host's process output (stdout and stderr).
    pub fn log(&self, host: &str) -> String {
        std::fs::read_to_string(self.log_path(host)).unwrap_or_default()
    }

    /// Starts `program ARGS` on `host` (in its namespace), output to `HOST.log`.
    fn spawn(&mut self, host: &str, program: &str, args: &[String], env: &[(&str, &str)]) {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = self.launch(host, program, args, &env, false);
        self.procs.push(Proc {
            host: host.to_string(),
            child: Some(child),
            program: program.to_string(),
            args: args.to_vec(),
            env,
        });
    }

    /// Runs `program ARGS` on `host`; `append`: after the log of an earlier run.
    fn launch(
        &self,
        host: &str,
        program: &str,
        args: &[String],
        env: &[(String, String)],
        append: bool,
    ) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(self.log_path(host))
            .expect("log file");
        let err = log.try_clone().expect("log file");
        let mut cmd = match &self.host(host).ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args)
            .env_clear()
            .envs(super::kept_env())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // SAFETY: prctl(2) only, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        cmd.spawn()
            .unwrap_or_else(|e| panic!("start {program} on {host}: {e}"))
    }

    /// Starts a host's process again (after [`Rig::kill9`]) with the command, arguments
    /// and environment it was first started with (a worker keeps its node id), its output
    /// appended to its log.
    pub fn restart(&mut self, host: &str) {
        let p = self.proc_mut(host);
        assert!(p.child.is_none(), "{host} is still running");
        let (program, args, env) = (p.program.clone(), p.args.clone(), p.env.clone());
        let child = self.launch(host, &program, &args, &env, true);
        self.proc_mut(host).child = Some(child);
    }

    fn proc_mut(&mut self, host: &str) -> &mut Proc {
        self.procs
            .iter_mut()
            .find(|p| p.host == host)
            .unwrap_or_else(|| panic!("no process on {host}"))
    }

    /// Panics with the host's log if its process has exited.
    fn check_running(&mut self, host: &str) -> Result<(), String> {
        let exited = self
            .proc_mut(host)
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        match exited {
            Some(status) => panic!("{host} exited ({status}); log:\n{}", self.log(host)),
            None => Ok(()),
        }
    }

    /// Waits until `probe` on the rig yields, checking that `host`'s process still runs.
    fn await_host<T>(
        &mut self,
        host: &str,
        what: &str,
        mut probe: impl FnMut(&Rig) -> Result<T, String>,
    ) -> T {
        let what = format!("{host}: {what}");
        wait_for(&what, START, || {
            self.check_running(host)?;
            probe(self)
        })
    }

    fn redis_cluster_url(&self) -> String {
        let nodes: Vec<String> = REDIS[..3]
            .iter()
            .map(|h| self.addr(h).to_string())
            .collect();
        format!("redis-cluster://{}", nodes.join(","))
    }

    fn start_redis(&mut self) {
        for host in REDIS {
            let addr = self.addr(host);
            let dir = self.dir.path().join(host);
            std::fs::create_dir_all(&dir).expect("redis dir");
            let args: Vec<String> = [
                "--port",
                &addr.port().to_string(),
                "--bind",
                &addr.ip().to_string(),
                // Bound to a non-loopback address without a password, Redis refuses
                // clients; the rig's subnet is private to the test.
                "--protected-mode",
                "no",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                "--appendonly",
                "no",
                "--save",
                "",
                "--daemonize",
                "no",
                "--dir",
                dir.to_str().expect("utf-8 path"),
            ]
            .map(String::from)
            .to_vec();
            self.spawn(host, "redis-server", &args, &[]);
        }
        for host in REDIS {
            let addr = self.addr(host);
            self.await_host(host, "PING", |_| {
                redis_cmd(addr, &::redis::cmd("PING")).map(|_: String| ())
            });
        }
        let addrs: Vec<String> = REDIS.iter().map(|h| self.addr(h).to_string()).collect();
        super::redis::create_cluster(&addrs, 1);
        for host in REDIS {
            let addr = self.addr(host);
            self.await_host(host, "cluster_state:ok with 6 nodes", |_| {
                let info: String = redis_cmd(addr, ::redis::cmd("CLUSTER").arg("INFO"))?;
                let ok = info.lines().any(|l| l.trim() == "cluster_state:ok")
                    && info.lines().any(|l| l.trim() == "cluster_known_nodes:6");
                if ok {
                    Ok(())
                } else {
                    Err(info)
                }
            });
        }
    }

    fn start_technic(&mut self) {
        let redis = self.redis_cluster_url();
        let mut env: Vec<(&str, &str)> = FAST_CLUSTER.to_vec();
        env.push(("TECHNIC_API__TOKEN", TOKEN));
        // Every scan computes: the faults must meet work, not a cached report.
        env.push(("TECHNIC_CACHE__SCAN_RESULTS", "false"));
        let polygon_url = self
            .polygon
            .as_ref()
            .map(|(server, _)| format!("http://{}", server.address()));
        if let Some(url) = &polygon_url {
            env.extend([
                ("TECHNIC_DATA__SOURCE", "polygon"),
                ("TECHNIC_DATA__POLYGON__BASE_URL", url.as_str()),
                ("TECHNIC_DATA__POLYGON__API_KEY", KEY),
                // The fake has no plan limit; the client's own limit would only slow scans.
                ("TECHNIC_DATA__POLYGON__REQUESTS_PER_MINUTE", "600000"),
                ("TECHNIC_DATA__POLYGON__RATE_LIMIT_BURST", "1000"),
            ]);
        }
        let latency = self.latency_ms.map(|ms| ms.to_string());
        if let Some(ms) = &latency {
            env.push(("TECHNIC_DATA__SYNTHETIC__LATENCY_MS", ms.as_str()));
        }
        for host in COORDINATORS {
            let bind = self.addr(host).to_string();
            let args: Vec<String> = [
                "serve",
                "--bind",
                &bind,
                "--redis",
                &redis,
                "--workers",
                "0",
            ]
            .map(String::from)
            .to_vec();
            let mut env = env.clone();
            env.push(("TECHNIC_CLUSTER__NODE_ID", host));
            self.spawn(host, BIN, &args, &env);
        }
        for (i, host) in WORKERS.iter().enumerate() {
            let bind = self.addr(host).to_string();
            let id = format!("w{}", i + 1);
            let mut args: Vec<String> = [
                "worker",
                "--redis",
                &redis,
                "--workers",
                "1",
                "--node-id",
                &id,
                "--metrics-bind",
                &bind,
            ]
            .map(String::from)
            .to_vec();
            if latency.is_some() {
                // Every scan pays the latency: scans long enough to kill something in.
                args.extend(["--cache".into(), "none".into()]);
            }
            self.spawn(host, BIN, &args, &env);
        }
        for host in COORDINATORS {
            let url = format!("http://{}/health", self.addr(host));
            self.await_host(host, "GET /health", |rig| rig.get_ok(&url));
        }
        for host in WORKERS {
            let url = format!("http://{}/health/live", self.addr(host));
            self.await_host(host, "GET /health/live", |rig| rig.get_ok(&url));
        }
    }

    fn start_monitoring(&mut self) {
        let prom_dir = self.dir.path().join("prometheus");
        let am_dir = self.dir.path().join("alertmanager");
        std::fs::create_dir_all(prom_dir.join("data")).expect("prometheus dir");
        std::fs::create_dir_all(am_dir.join("data")).expect("alertmanager dir");

        let prom_cfg = prometheus_config(
            &read_yaml("cluster/prometheus.yml"),
            &self.host_names(),
            self.addr("alertmanager"),
        );
        std::fs::write(
            prom_dir.join("prometheus.yml"),
            serde_yaml_ng::to_string(&prom_cfg).expect("yaml"),
        )
        .expect("write prometheus.yml");
        // Rule files as they are, next to the config (relative paths resolve there).
        for rule in prom_cfg["rule_files"].as_sequence().into_iter().flatten() {
            let rule = rule.as_str().expect("rule file path");
            std::fs::copy(repo().join("cluster").join(rule), prom_dir.join(rule))
                .unwrap_or_else(|e| panic!("copy cluster/{rule}: {e}"));
        }
        let am_cfg = alertmanager_config(&read_yaml("cluster/alertmanager.yml"), self.webhook);
        std::fs::write(
            am_dir.join("alertmanager.yml"),
            serde_yaml_ng::to_string(&am_cfg).expect("yaml"),
        )
        .expect("write alertmanager.yml");

        let am = self.addr("alertmanager");
        let am_bin = ["prometheus-alertmanager", "alertmanager"]
            .into_iter()
            .find(|b| {
                Command::new(b)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .expect("prometheus-alertmanager or alertmanager (scripts/test.sh installs it)");
        let args = vec![
            format!(
                "--config.file={}",
                am_dir.join("alertmanager.yml").display()
            ),
            format!("--storage.path={}", am_dir.join("data").display()),
            format!("--web.listen-address={am}"),
            // A single instance: no gossip port.
            "--cluster.listen-address=".to_string(),
        ];
        self.spawn("alertmanager", am_bin, &args, &[]);

        let prom = self.addr("prometheus");
        let args = vec![
            format!(
                "--config.file={}",
                prom_dir.join("prometheus.yml").display()
            ),
            format!("--storage.tsdb.path={}", prom_dir.join("data").display()),
            format!("--web.listen-address={prom}"),
        ];
        self.spawn("prometheus", "prometheus", &args, &[]);

        let url = format!("http://{am}/-/ready");
        self.await_host("alertmanager", "GET /-/ready", |rig| rig.get_ok(&url));
        let url = format!("http://{prom}/-/ready");
        self.await_host("prometheus", "GET /-/ready", |rig| rig.get_ok(&url));
    }

    /// Compose service name → the rig's address, for every host.
    fn host_names(&self) -> BTreeMap<String, SocketAddr> {
        self.hosts
            .iter()
            .map(|(name, h)| (name.clone(), h.addr))
            .collect()
    }

    /// `Ok` when GET `url` answers 2xx.
    fn get_ok(&self, url: &str) -> Result<(), String> {
        self.rt.block_on(async {
            match self.http.get(url).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("{url}: {}", r.status())),
                Err(e) => Err(format!("{url}: {e}")),
            }
        })
    }

    /// GET `url` as JSON.
    pub fn get_json(&self, url: &str) -> Result<Value, String> {
        let text = self.get_text(url)?;
        serde_json::from_str(&text).map_err(|e| format!("{url}: {e}: {text}"))
    }

    /// GET `url` as text, with the coordinators' token (workers' metrics ports ignore it).
    pub fn get_text(&self, url: &str) -> Result<String, String> {
        self.rt.block_on(async {
            let r = self
                .http
                .get(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let status = r.status();
            let text = r.text().await.map_err(|e| format!("{url}: {e}"))?;
            if status.is_success() {
                Ok(text)
            } else {
                Err(format!("{url}: {status}: {text}"))
            }
        })
    }

    /// POST `body` as JSON to `url`; `Ok` on 2xx.
    pub fn post_json(&self, url: &str, body: &Value) -> Result<(), String> {
        self.rt.block_on(async {
            let r = self
                .http
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(format!("{url}: {}", r.status()))
            }
        })
    }

    /// A call of the coordinator's API with the bearer token: `METHOD /api/v1/PATH` with an
    /// optional JSON body; the JSON answer of a 2xx.
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        self.api_on("coordinator", method, path, body)
    }

    /// [`Rig::api`] on the coordinator `host`.
    pub fn api_on(
        &self,
        host: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let url = format!("http://{}/api/v1/{path}", self.addr(host));
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        self.rt.block_on(async {
            let mut req = self.http.request(method, &url).bearer_auth(TOKEN);
            if let Some(body) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            let r = req.send().await.map_err(|e| format!("{url}: {e}"))?;
            let status = r.status();
            let text = r.text().await.map_err(|e| format!("{url}: {e}"))?;
            if !status.is_success() {
                return Err(format!("{url}: {status}: {text}"));
            }
            serde_json::from_str(&text).map_err(|e| format!("{url}: {e}: {text}"))
        })
    }

    /// Prometheus' `GET /api/v1/PATH` `data`.
    pub fn prometheus_api(&self, path: &str) -> Result<Value, String> {
        let v = self.get_json(&format!("http://{}/api/v1/{path}", self.addr("prometheus")))?;
        if v["status"] == "success" {
            Ok(v["data"].clone())
        } else {
            Err(v.to_string())
        }
    }

    /// An instant query's result vector.
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let mut url = reqwest::Url::parse("http://x/").expect("url");
        url.query_pairs_mut().append_pair("query", expr);
        let q = url.query().expect("query");
        let data = self.prometheus_api(&format!("query?{q}"))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// Prometheus' alerts (`/api/v1/alerts`) named `name`.
    pub fn alerts(&self, name: &str) -> Result<Vec<Value>, String> {
        let data = self.prometheus_api("alerts")?;
        Ok(data["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["labels"]["alertname"] == name)
            .cloned()
            .collect())
    }

    /// Posts an alert straight to Alertmanager (API v2), as Prometheus would.
    pub fn push_alert(&self, labels: &Value, summary: &str) -> Result<(), String> {
        let url = format!("http://{}/api/v2/alerts", self.addr("alertmanager"));
        let body = json!([{ "labels": labels, "annotations": { "summary": summary } }]);
        self.post_json(&url, &body)
    }

    /// `kill -9` of the host's process (reaped before this returns).
    pub fn kill9(&mut self, host: &str) {
        let proc = self.proc_mut(host);
        if let Some(mut child) = proc.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal (`libc::SIGSTOP`, `SIGCONT`, …) to the host's process.
    pub fn signal(&mut self, host: &str, sig: i32) {
        let pid = self
            .proc_mut(host)
            .child
            .as_ref()
            .map(|c| c.id() as i32)
            .unwrap_or_else(|| panic!("{host} is not running"));
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid, sig) };
    }

    /// The Redis host that is master of the work queue's slot now (`{technic}`), asked of
    /// the first node that answers.
    pub fn queue_master(&self) -> Result<String, String> {
        for host in REDIS {
            let addr = self.addr(host);
            let Ok(slot) = redis_cmd::<u16>(
                addr,
                ::redis::cmd("CLUSTER").arg("KEYSLOT").arg("{technic}"),
            ) else {
                continue;
            };
            let Ok(nodes) = redis_cmd::<String>(addr, ::redis::cmd("CLUSTER").arg("NODES")) else {
                continue;
            };
            for line in nodes.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                    continue;
                }
                let serves = f[8..].iter().any(|range| {
                    let (a, b) = range.split_once('-').unwrap_or((range, range));
                    matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
                });
                let at = f[1].split('@').next().unwrap_or_default();
                if serves {
                    return REDIS
                        .iter()
                        .find(|h| self.addr(h).to_string() == at)
                        .map(|h| h.to_string())
                        .ok_or_else(|| format!("no rig host at {at}"));
                }
            }
        }
        Err("no node names a master for the queue's slot".into())
    }

    /// Waits until the Redis Cluster is whole again after a fault: every node up and
    /// `cluster_state:ok`, every replica linked to its master and not syncing, every
    /// master with a replica. A fault on a master only fails over when its replica has
    /// finished the previous resync.
    pub fn wait_redis_settled(&self) {
        super::wait::wait_for(
            "the Redis Cluster to settle",
            Duration::from_secs(120),
            || {
                let mut replicas = 0;
                for host in REDIS {
                    let addr = self.addr(host);
                    let info = redis_cmd::<String>(addr, ::redis::cmd("CLUSTER").arg("INFO"))
                        .map_err(|e| format!("{host}: {e}"))?;
                    if !info.contains("cluster_state:ok") {
                        return Err(format!("{host}: cluster state not ok"));
                    }
                    let repl = redis_cmd::<String>(addr, ::redis::cmd("INFO").arg("replication"))
                        .map_err(|e| format!("{host}: {e}"))?;
                    if repl.contains("role:slave") {
                        if !repl.contains("master_link_status:up")
                            || !repl.contains("master_sync_in_progress:0")
                        {
                            return Err(format!("{host}: replica not in sync"));
                        }
                        replicas += 1;
                    } else if repl.contains("connected_slaves:0") {
                        return Err(format!("{host}: a master without a replica"));
                    }
                }
                if replicas * 2 == REDIS.len() {
                    Ok(())
                } else {
                    Err(format!("{replicas} replicas"))
                }
            },
        );
    }

    /// Cuts the host off: its veth link down (namespaces), or its process frozen.
    pub fn partition(&mut self, host: &str) {
        self.set_link(host, false);
    }

    /// Undoes [`Rig::partition`].
    pub fn heal(&mut self, host: &str) {
        self.set_link(host, true);
    }

    fn set_link(&mut self, host: &str, up: bool) {
        match self.host(host).veth.clone() {
            Some(veth) => ip(&["link", "set", &veth, if up { "up" } else { "down" }]),
            None => self.signal(host, if up { libc::SIGCONT } else { libc::SIGSTOP }),
        }
    }

    /// The pids of the host processes still running.
    pub fn pids(&self) -> Vec<u32> {
        self.procs
            .iter()
            .filter_map(|p| p.child.as_ref().map(Child::id))
            .collect()
    }

    /// Every host's log, for a failure message.
    pub fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|p| format!("--- {} ---\n{}\n", p.host, self.log(&p.host)))
            .collect()
    }
}

impl Drop for Rig {
    /// Ends and reaps every process ([`super::end_children`]); then `net` (a field, dropped after this) removes the
    /// links and namespaces.
    fn drop(&mut self) {
        super::end_children(self.procs.iter_mut().filter_map(|p| p.child.as_mut()));
    }
}

impl Drop for Net {
    /// Also runs when the rig fails halfway through its setup.
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both. Deleting the namespace would too,
        // but only once the kernel frees the namespace, which can outlive its processes.
        for veth in &self.veths {
            let _ = Command::new("ip").args(["link", "del", veth]).status();
        }
        for ns in &self.namespaces {
            for p in ip_out(&["netns", "pids", ns]).split_whitespace() {
                if let Ok(p) = p.parse::<i32>() {
                    // SAFETY: kill(2) on a pid in a namespace of this rig.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

/// One Redis command on `addr`, with short timeouts.
fn redis_cmd<T: ::redis::FromRedisValue>(
    addr: SocketAddr,
    cmd: &::redis::Cmd,
) -> Result<T, String> {
    let client = ::redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    cmd.query(&mut conn).map_err(|e| e.to_string())
}

pub fn read_yaml(path: &str) -> Yaml {
    let text = std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `HOST:PORT` with the compose service name `HOST` replaced by its rig address (the port
/// too, which differs on loopback).
fn rewrite_target(target: &str, hosts: &BTreeMap<String, SocketAddr>) -> String {
    let (host, _) = target
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("target {target} has no port"));
    let addr = hosts
        .get(host)
        .unwrap_or_else(|| panic!("target {target}: no rig host {host}"));
    addr.to_string()
}

/// Rewrites every `targets:` list found under `v`.
fn rewrite_targets(v: &mut Yaml, hosts: &BTreeMap<String, SocketAddr>) {
    match v {
        Yaml::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                if k.as_str() == Some("targets") {
                    for t in v.as_sequence_mut().into_iter().flatten() {
                        let new = rewrite_target(t.as_str().expect("target"), hosts);
                        *t = Yaml::String(new);
                    }
                } else {
                    rewrite_targets(v, hosts);
                }
            }
        }
        Yaml::Sequence(s) => s.iter_mut().for_each(|v| rewrite_targets(v, hosts)),
        _ => {}
    }
}

/// The rig's hosts a DNS name resolves to: the host of that name, or, for a group name such
/// as `workers` or `coordinators` (the network alias those services carry in the compose
/// file, the headless Service on Kubernetes), every `worker-N` host, or `coordinator` and
/// every `coordinator-N`.
fn resolve(name: &str, hosts: &BTreeMap<String, SocketAddr>) -> Vec<String> {
    if hosts.contains_key(name) {
        return vec![name.to_string()];
    }
    let one = name.trim_end_matches('s');
    let member = format!("{one}-");
    hosts
        .keys()
        .filter(|h| *h == one || h.starts_with(&member))
        .cloned()
        .collect()
}

/// Every `dns_sd_configs` (names + port) as the `static_configs` those names resolve to in
/// the rig (no DNS server runs in the namespaces); [`rewrite_targets`] then maps the names.
fn resolve_dns_sd(cfg: &mut Yaml, hosts: &BTreeMap<String, SocketAddr>) {
    for job in cfg["scrape_configs"]
        .as_sequence_mut()
        .into_iter()
        .flatten()
    {
        let Some(m) = job.as_mapping_mut() else {
            continue;
        };
        let Some(sd) = m.remove("dns_sd_configs") else {
            continue;
        };
        let mut targets = Vec::new();
        for c in sd.as_sequence().into_iter().flatten() {
            let port = c["port"].as_u64().expect("dns_sd_configs port");
            for name in c["names"].as_sequence().into_iter().flatten() {
                let name = name.as_str().expect("dns name");
                let found = resolve(name, hosts);
                assert!(!found.is_empty(), "dns name {name}: no rig host");
                targets.extend(
                    found
                        .into_iter()
                        .map(|h| Yaml::String(format!("{h}:{port}"))),
                );
            }
        }
        let static_configs: Yaml = serde_yaml_ng::from_str("[{targets: []}]").expect("yaml");
        m.insert("static_configs".into(), static_configs);
        m["static_configs"][0]["targets"] = Yaml::Sequence(targets);
    }
}

/// `cluster/prometheus.yml` for the rig: target host names to rig addresses, `global`
/// intervals of [`INTERVAL`], and Alertmanager (the file's, rewritten, or the rig's).
pub fn prometheus_config(
    file: &Yaml,
    hosts: &BTreeMap<String, SocketAddr>,
    alertmanager: SocketAddr,
) -> Yaml {
    let mut cfg = file.clone();
    resolve_dns_sd(&mut cfg, hosts);
    rewrite_targets(&mut cfg, hosts);
    let m = cfg.as_mapping_mut().expect("prometheus.yml is a mapping");
    let global: Yaml = serde_yaml_ng::from_str(&format!(
        "{{scrape_interval: {INTERVAL}, scrape_timeout: {INTERVAL}, evaluation_interval: {INTERVAL}}}"
    ))
    .expect("yaml");
    m.insert("global".into(), global);
    if !m.contains_key("alerting") {
        let alerting: Yaml = serde_yaml_ng::from_str(&format!(
            "{{alertmanagers: [{{static_configs: [{{targets: ['{alertmanager}']}}]}}]}}"
        ))
        .expect("yaml");
        m.insert("alerting".into(), alerting);
    }
    cfg
}

/// `cluster/alertmanager.yml` for the rig: every webhook URL to the rig's receiver, and
/// the route's grouping waits short enough for a test.
pub fn alertmanager_config(file: &Yaml, webhook: SocketAddr) -> Yaml {
    let mut cfg = file.clone();
    for r in cfg["receivers"].as_sequence_mut().into_iter().flatten() {
        for w in r["webhook_configs"].as_sequence_mut().into_iter().flatten() {
            w["url"] = Yaml::String(format!("http://{webhook}/alerts"));
        }
    }
    let route = cfg["route"]
        .as_mapping_mut()
        .expect("alertmanager.yml route");
    route.insert("group_wait".into(), "1s".into());
    route.insert("group_interval".into(), "2s".into());
    cfg
}

/// The alert of `cluster/alerts.yml` on `technic_cluster_nodes{state="down"}`.
pub fn node_down_alert() -> String {
    let rules = read_yaml("cluster/alerts.yml");
    rules["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .find(|r| {
            let expr = r["expr"].as_str().unwrap_or_default();
            expr.contains("technic_cluster_nodes") && expr.contains(r#"state="down""#)
        })
        .and_then(|r| r["alert"].as_str().map(String::from))
        .expect("an alert on technic_cluster_nodes{state=\"down\"} in cluster/alerts.yml")
}

/// An alert rule's `for:` duration.
pub fn alert_for(name: &str) -> Duration {
    let rules = read_yaml("cluster/alerts.yml");
    let rule = rules["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .find(|r| r["alert"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("alert {name}"));
    let f = rule["for"].as_str().unwrap_or("0s");
    let (n, unit) = f.split_at(f.len() - 1);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("for: {f}"));
    match unit {
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => panic!("for: {f}"),
    }
}
