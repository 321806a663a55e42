//! The deployment files run: every `technic` service of `docker/docker-compose.yml` and
//! every container of `cluster/k8s/` is started as a local process with its exact
//! arguments and environment (the image's ENTRYPOINT and ENV, then the service's command
//! and environment, or the container's args and env with `$(VAR)`, ConfigMap, Secret and
//! field references resolved as Kubernetes does). Only addresses are pointed at local
//! things: Redis URLs at a real 3-master Redis Cluster, `0.0.0.0:PORT` binds at reserved
//! loopback ports, mounted ConfigMap files at a temp dir. Each must come up (its probe or
//! healthcheck answers, workers heartbeat in `technic cluster nodes`), still be running
//! then, and exit 0 on SIGTERM.
//!
//! Also: the variables the files set are ones the binary reads (README, "Environment"),
//! and the manifests pass `kubernetes-validate --strict` (a pinned version that
//! scripts/test.sh installs into target/py; without it this test fails, it never
//! skips).

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_yaml_ng::Value;

use support::files::{read, repo, yaml_docs};
use support::ports::Port;
use support::redis::RedisCluster;
use support::technic::{http_get, run_json, Proc};
use support::wait::wait_for;

const UP: Duration = Duration::from_secs(60);
const STOP: Duration = Duration::from_secs(60);
const API_TOKEN: &str = "deploy-files-test-token-0123456789abcdef";

/// Variables the binary reads besides its settings (`TECHNIC_<SECTION>__<KEY>`).
const OTHER_VARIABLES: &[&str] = &["POLYGON_API_KEY", "RUST_LOG", "HOSTNAME"];

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|seq| seq.iter().map(s).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- the image

/// The runtime stage of docker/Dockerfile: ENTRYPOINT, CMD and ENV.
struct Image {
    entrypoint: Vec<String>,
    env: Vec<(String, String)>,
}

impl Image {
    fn load() -> Image {
        let text = read("docker/Dockerfile");
        let runtime = text
            .rsplit_once("\nFROM ")
            .map(|(_, r)| r)
            .expect("a runtime stage");
        let mut image = Image {
            entrypoint: Vec::new(),
            env: Vec::new(),
        };
        for line in runtime.lines().map(str::trim) {
            if let Some(e) = line.strip_prefix("ENTRYPOINT ") {
                image.entrypoint = serde_json::from_str(e).expect("ENTRYPOINT in exec form");
            } else if let Some(e) = line.strip_prefix("ENV ") {
                for kv in e.split_whitespace() {
                    let (k, v) = kv.split_once('=').expect("ENV KEY=VALUE");
                    image.env.push((k.to_string(), v.to_string()));
                }
            }
        }
        assert_eq!(image.entrypoint, ["technic"], "the image runs technic");
        image
    }
}

// ---------------------------------------------------------------- what runs

/// One technic container to run: its arguments after `technic`, its environment, and
/// the health endpoints it promises (path, container port).
#[derive(Debug, Clone)]
struct Container {
    name: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    probes: Vec<(String, u16)>,
}

impl Container {
    fn subcommand(&self) -> &str {
        let mut i = 0;
        while i < self.args.len() {
            if self.args[i] == "--config" {
                i += 2;
                continue;
            }
            return &self.args[i];
        }
        ""
    }

    fn flag(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.args.get(i + 1))
            .map(String::as_str)
    }

    /// A worker's node id in the registry: --node-id, else cluster.node_id (each worker of
    /// the files names itself, so the ids are distinct).
    fn node_id(&self) -> String {
        self.flag("--node-id")
            .map(String::from)
            .or_else(|| self.env.get("TECHNIC_CLUSTER__NODE_ID").cloned())
            .unwrap_or_else(|| panic!("{}: a worker without a node id", self.name))
    }
}

/// `${NAME}`, `${NAME:-default}`, `${NAME:?error}` and `$$`, as compose interpolates.
fn compose_interpolate(value: &str, shell: &HashMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(r) = rest.strip_prefix("$$") {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${") {
            let end = r.find('}').expect("closing brace");
            let expr = &r[..end];
            let (name, value) = if let Some((n, d)) = expr.split_once(":-") {
                (
                    n,
                    shell.get(n).copied().filter(|v| !v.is_empty()).unwrap_or(d),
                )
            } else if let Some((n, msg)) = expr.split_once(":?") {
                let v = shell.get(n).copied().filter(|v| !v.is_empty());
                (
                    n,
                    v.unwrap_or_else(|| panic!("compose would refuse: {msg}")),
                )
            } else {
                (expr, shell.get(expr).copied().unwrap_or(""))
            };
            assert!(!name.is_empty(), "interpolation {value:?}");
            out.push_str(value);
            rest = &r[end + 1..];
        } else {
            panic!("unsupported interpolation in {value:?}");
        }
    }
    out.push_str(rest);
    out
}

/// The technic services of docker/docker-compose.yml.
fn compose_containers(image: &Image) -> Vec<Container> {
    let doc = &yaml_docs("docker/docker-compose.yml")[0];
    // What the README tells the operator to export.
    let shell = HashMap::from([("TECHNIC_API__TOKEN", API_TOKEN)]);
    let mut out = Vec::new();
    for (name, svc) in doc["services"].as_mapping().expect("services") {
        if s(&svc["image"]) != "technic:local" {
            continue;
        }
        let name = s(name);
        let mut env: BTreeMap<String, String> = image.env.iter().cloned().collect();
        // Docker sets HOSTNAME (to the container id).
        env.insert("HOSTNAME".into(), format!("{name}-container"));
        for (k, v) in svc["environment"].as_mapping().expect("environment map") {
            env.insert(s(k), compose_interpolate(&s(v), &shell));
        }
        let args = strings(&svc["command"])
            .iter()
            .map(|a| compose_interpolate(a, &shell))
            .collect();
        let mut probes = Vec::new();
        if let Some(url) = strings(&svc["healthcheck"]["test"])
            .iter()
            .find(|a| a.starts_with("http://"))
        {
            let rest = url
                .strip_prefix("http://127.0.0.1:")
                .expect("a loopback URL");
            let (port, path) = rest.split_once('/').expect("port/path");
            probes.push((format!("/{path}"), port.parse().expect("port")));
        }
        out.push(Container {
            name: format!("compose/{name}"),
            args,
            env,
            probes,
        });
    }
    out
}

/// The containers of the Kubernetes manifests (kustomization resources), with the
/// ConfigMap files they mount written under `mounts`.
fn k8s_containers(image: &Image, mounts: &Path) -> Vec<Container> {
    let kustomization = &yaml_docs("cluster/k8s/kustomization.yaml")[0];
    let objects: Vec<Value> = strings(&kustomization["resources"])
        .iter()
        .flat_map(|f| yaml_docs(&format!("cluster/k8s/{f}")))
        .collect();
    let configmap = |name: &str| -> &Value {
        objects
            .iter()
            .find(|o| s(&o["kind"]) == "ConfigMap" && s(&o["metadata"]["name"]) == name)
            .map(|o| &o["data"])
            .unwrap_or_else(|| panic!("ConfigMap {name} missing"))
    };
    let mut out = Vec::new();
    for o in objects.iter().filter(|o| s(&o["kind"]) == "Deployment") {
        let pod = &o["spec"]["template"]["spec"];
        let pod_name = format!("{}-5d8f7c9b4-x2x7q", s(&o["metadata"]["name"]));
        for c in pod["containers"].as_sequence().expect("containers") {
            assert_eq!(s(&c["image"]), "technic", "the technic image");
            assert!(c["command"].is_null(), "the image's ENTRYPOINT runs");
            // Kubernetes sets HOSTNAME to the pod's name.
            let mut env: BTreeMap<String, String> = image.env.iter().cloned().collect();
            env.insert("HOSTNAME".into(), pod_name.clone());
            for e in c["env"].as_sequence().into_iter().flatten() {
                let from = &e["valueFrom"];
                let value = if !e["value"].is_null() {
                    s(&e["value"])
                } else if !from["configMapKeyRef"].is_null() {
                    let r = &from["configMapKeyRef"];
                    s(&configmap(&s(&r["name"]))[s(&r["key"]).as_str()])
                } else if !from["secretKeyRef"].is_null() {
                    API_TOKEN.to_string()
                } else if s(&from["fieldRef"]["fieldPath"]) == "metadata.name" {
                    pod_name.clone()
                } else {
                    panic!("unsupported env source {e:?}")
                };
                env.insert(s(&e["name"]), value);
            }
            // Mounted ConfigMap items, under a temp dir.
            let mut mounted: Vec<(String, PathBuf)> = Vec::new();
            for m in c["volumeMounts"].as_sequence().into_iter().flatten() {
                let vol = pod["volumes"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .find(|v| s(&v["name"]) == s(&m["name"]))
                    .expect("volume");
                let dir = mounts.join(format!("{}-{}", s(&o["metadata"]["name"]), s(&m["name"])));
                std::fs::create_dir_all(&dir).expect("mount dir");
                if !vol["configMap"].is_null() {
                    let data = configmap(&s(&vol["configMap"]["name"]));
                    for item in vol["configMap"]["items"].as_sequence().expect("items") {
                        std::fs::write(
                            dir.join(s(&item["path"])),
                            s(&data[s(&item["key"]).as_str()]),
                        )
                        .expect("write mounted file");
                    }
                }
                mounted.push((s(&m["mountPath"]), dir));
            }
            // `$(VAR)` in args expands from the container's env; mounted paths move.
            let args = strings(&c["args"])
                .iter()
                .map(|a| {
                    let mut a = a.clone();
                    for (k, v) in &env {
                        a = a.replace(&format!("$({k})"), v);
                    }
                    assert!(!a.contains("$("), "unresolved reference in {a:?}");
                    let mount = mounted
                        .iter()
                        .filter(|(path, _)| a.starts_with(&format!("{path}/")))
                        .max_by_key(|(path, _)| path.len());
                    match mount {
                        Some((path, dir)) => dir.join(&a[path.len() + 1..]).display().to_string(),
                        None => a,
                    }
                })
                .collect();
            let named_port = |p: &Value| -> u16 {
                if let Some(n) = p.as_u64() {
                    return n as u16;
                }
                c["ports"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .find(|x| s(&x["name"]) == s(p))
                    .and_then(|x| x["containerPort"].as_u64())
                    .unwrap_or_else(|| panic!("no port named {p:?}")) as u16
            };
            let mut probes = Vec::new();
            for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                let get = &c[probe]["httpGet"];
                if !get.is_null() {
                    probes.push((s(&get["path"]), named_port(&get["port"])));
                }
            }
            out.push(Container {
                name: format!("k8s/{}", s(&o["metadata"]["name"])),
                args,
                env,
                probes,
            });
        }
    }
    out
}

// ---------------------------------------------------------------- the policy

#[test]
fn the_files_set_only_variables_the_binary_reads() {
    let image = Image::load();
    let mounts = tempfile::tempdir().expect("temp dir");
    let all = compose_containers(&image)
        .into_iter()
        .chain(k8s_containers(&image, mounts.path()));
    for c in all {
        for (k, v) in &c.env {
            if OTHER_VARIABLES.contains(&k.as_str()) {
                continue;
            }
            let key = k.strip_prefix("TECHNIC_").unwrap_or_else(|| {
                panic!(
                    "{}: {k} is neither a setting nor a variable the binary reads",
                    c.name
                )
            });
            assert!(
                key.contains("__"),
                "{}: {k} is not TECHNIC_<SECTION>__<KEY>",
                c.name
            );
            let env = HashMap::from([(k.clone(), v.clone())]);
            technic::config::Settings::load(None, &env)
                .unwrap_or_else(|e| panic!("{}: {k} is not a valid setting: {e}", c.name));
        }
    }
}

// ---------------------------------------------------------------- running them

/// One running container: its process and the loopback port each container port maps to.
struct Running {
    spec: Container,
    proc: Proc,
    ports: BTreeMap<u16, Port>,
}

/// Starts `c` with Redis URLs pointed at `redis` and `0.0.0.0:P` binds at reserved ports.
fn start(c: &Container, redis: &str) -> Running {
    let mut ports: BTreeMap<u16, Port> = BTreeMap::new();
    let mut local = |v: &str| -> String {
        if v.starts_with("redis://") || v.starts_with("redis-cluster://") {
            return redis.to_string();
        }
        if let Some(p) = v.strip_prefix("0.0.0.0:") {
            let port: u16 = p.parse().expect("a port");
            return ports.entry(port).or_insert_with(Port::reserve).addr();
        }
        v.to_string()
    };
    let args: Vec<String> = c.args.iter().map(|a| local(a)).collect();
    let env: Vec<(String, String)> = c.env.iter().map(|(k, v)| (k.clone(), local(v))).collect();
    for (_, port) in &c.probes {
        assert!(
            ports.contains_key(port),
            "{}: probe port {port} is not one the process listens on ({:?})",
            c.name,
            c.args
        );
    }
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let proc = Proc::spawn(&c.name, &args_ref, &env_ref);
    Running {
        spec: c.clone(),
        proc,
        ports,
    }
}

/// `technic cluster nodes --json`: node id → heartbeat time.
fn heartbeats(redis: &str) -> BTreeMap<String, i64> {
    run_json(&["cluster", "nodes", "--redis", redis, "--json"], &[])
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["state"] == "up")
        .map(|n| {
            (
                n["id"].as_str().unwrap_or_default().to_string(),
                n["heartbeat_at_ms"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

/// Runs `containers` together on one Redis Cluster; checks each comes up, stays up and
/// stops cleanly.
fn run_all(containers: Vec<Container>) {
    let cluster = RedisCluster::start();
    let redis = cluster.target();
    let mut running: Vec<Running> = containers.iter().map(|c| start(c, &redis)).collect();
    for r in &mut running {
        let name = r.spec.name.clone();
        assert!(
            !r.spec.probes.is_empty() || r.spec.subcommand() == "worker",
            "{name}: no probe"
        );
        for (path, port) in r.spec.probes.clone() {
            let addr = r.ports[&port].addr();
            let proc = &mut r.proc;
            wait_for(&format!("{name}: GET {path}"), UP, || {
                if !proc.running() {
                    panic!("{name} exited:\n{}", proc.stderr());
                }
                http_get(&addr, &path)
                    .starts_with("HTTP/1.1 200")
                    .then_some(())
            });
        }
    }
    // Prometheus scrapes every worker's --metrics-bind port.
    for r in &running {
        if let Some(bind) = r.spec.flag("--metrics-bind") {
            let port: u16 = bind
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .parse()
                .expect("port");
            let response = http_get(&r.ports[&port].addr(), "/metrics");
            assert!(
                response.starts_with("HTTP/1.1 200"),
                "{}: /metrics: {response}",
                r.spec.name
            );
        }
    }
    // Every worker heartbeats: its heartbeat time is seen to advance twice.
    let ids: Vec<String> = running
        .iter()
        .filter(|r| r.spec.subcommand() == "worker")
        .map(|r| r.spec.node_id())
        .collect();
    let mut seen: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    wait_for(&format!("heartbeats of {ids:?}"), UP, || {
        let beats = heartbeats(&redis);
        for id in &ids {
            if let Some(t) = beats.get(id) {
                seen.entry(id.clone()).or_default().insert(*t);
            }
        }
        ids.iter()
            .all(|id| seen.get(id).is_some_and(|t| t.len() >= 3))
            .then_some(())
            .ok_or_else(|| format!("seen {seen:?}; listed {beats:?}"))
    });
    for r in &mut running {
        assert!(
            r.proc.running(),
            "{} stopped:\n{}",
            r.spec.name,
            r.proc.stderr()
        );
    }
    for r in &running {
        r.proc.signal("TERM");
    }
    for r in &mut running {
        let status = r.proc.wait(STOP);
        assert_eq!(
            status.code(),
            Some(0),
            "{} did not stop cleanly ({status}):\n{}",
            r.spec.name,
            r.proc.stderr()
        );
    }
}

#[test]
fn every_compose_technic_service_starts_stays_up_and_stops_cleanly() {
    let containers = compose_containers(&Image::load());
    let kinds: Vec<&str> = containers.iter().map(Container::subcommand).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "serve").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "worker").count(),
        3,
        "{kinds:?}"
    );
    run_all(containers);
}

#[test]
fn every_k8s_container_starts_stays_up_and_stops_cleanly() {
    let mounts = tempfile::tempdir().expect("temp dir");
    let containers = k8s_containers(&Image::load(), mounts.path());
    let kinds: Vec<&str> = containers.iter().map(Container::subcommand).collect();
    assert_eq!(
        kinds,
        ["serve", "worker"],
        "coordinator and worker Deployments"
    );
    run_all(containers);
}

// ---------------------------------------------------------------- schema

/// The validator scripts/test.sh installs (pinned there).
fn kubernetes_validate() -> PathBuf {
    let dir = std::env::var_os("PY_TEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/py/bin"));
    let tool = dir.join("kubernetes-validate");
    assert!(
        tool.is_file(),
        "kubernetes-validate not found in {} (PY_TEST_TOOLS or target/py/bin): run \
         scripts/test.sh, which installs the pinned Python test tools into target/py",
        dir.display()
    );
    tool
}

#[test]
fn the_manifests_pass_the_kubernetes_schema() {
    let validator = kubernetes_validate();
    let kustomization = &yaml_docs("cluster/k8s/kustomization.yaml")[0];
    for file in strings(&kustomization["resources"]) {
        let objects = yaml_docs(&format!("cluster/k8s/{file}")).len();
        let out = Command::new(&validator)
            .args(["--strict", "--kubernetes-version", "1.34", &file])
            .current_dir(repo().join("cluster/k8s"))
            .output()
            .expect("run kubernetes-validate");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{file}:\n{text}");
        assert_eq!(
            text.matches(" passed ").count(),
            objects,
            "{file}: every object validated:\n{text}"
        );
    }
}
