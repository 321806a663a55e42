//! The operations files (`cluster/`, `dashboards/`, `docker/`) checked against the real
//! tools and the real binary: promtool runs the alert rules' unit tests; every metric the
//! dashboard and the alerts query must be one the exporter serves; the compose file has
//! the topology the README promises and mounts files that exist; the Kubernetes manifests
//! probe the health endpoints the binary serves and their config loads with the real loader.
//!
//! promtool comes from the Debian package `prometheus` (`scripts/test.sh` installs it).

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_yaml_ng::Value;

use support::files::{read, repo, yaml_docs};
use support::ports::Port;
use support::promql::{metric_names, unexported};
use support::technic::{http_get, run_json, Proc, FAST_CLUSTER};
use support::wait::wait_for;

fn yaml(rel: &str) -> Value {
    let mut v: Value =
        serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"));
    v.apply_merge()
        .unwrap_or_else(|e| panic!("{rel}: merge keys: {e}"));
    v
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|seq| seq.iter().map(|x| s(x).to_string()).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- promtool

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo().join("cluster"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): run scripts/test.sh, which installs it (apt package prometheus)")
        });
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts_test.yml"]);
    // Also loads the rule file it names, relative to itself.
    promtool(&["check", "config", "prometheus.yml"]);
}

#[test]
fn every_alert_is_actionable_and_tested_firing_and_quiet() {
    let rules = yaml("cluster/alerts.yml");
    let mut alerts = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = s(&rule["alert"]).to_string();
            assert!(!name.is_empty(), "only alerting rules here: {rule:?}");
            for a in ["summary", "description"] {
                assert!(
                    s(&rule["annotations"][a]).len() > 20,
                    "{name}: annotation {a} missing or too short to say what to do"
                );
            }
            assert!(
                matches!(s(&rule["labels"]["severity"]), "warning" | "critical"),
                "{name}: severity"
            );
            alerts.push(name);
        }
    }
    for required in [
        "TechnicScanFailures",
        "TechnicSlowScans",
        "TechnicCacheHitRateLow",
        "TechnicClusterNodeDown",
        "TechnicCircuitBreakerOpen",
        "TechnicMlNeutralScans",
        "TechnicWebhookDeliveriesFailing",
    ] {
        assert!(alerts.iter().any(|a| a == required), "{required} missing");
    }
    let tests = yaml("cluster/alerts_test.yml");
    let (mut firing, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for t in tests["tests"].as_sequence().expect("tests") {
        for case in t["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = s(&case["alertname"]).to_string();
            match case["exp_alerts"].as_sequence() {
                Some(v) if !v.is_empty() => firing.insert(name),
                _ => quiet.insert(name),
            };
        }
    }
    for a in &alerts {
        assert!(firing.contains(a), "{a}: no test case where it fires");
        assert!(quiet.contains(a), "{a}: no test case where it stays quiet");
    }
}

/// The exporter's text: a live `technic serve`'s `/metrics`, scraped after one scan. Its
/// cluster's Redis is the test harness's redis-server, so the node gauge has been set.
fn exposition() -> String {
    let redis = support::redis::RedisServer::start();
    let port = Port::reserve();
    let bind = port.addr();
    let url = redis.url();
    let _serve = Proc::spawn(
        "serve",
        &["serve", "--bind", &bind, "--workers", "1", "--redis", &url],
        FAST_CLUSTER,
    );
    wait_for("technic serve to be ready", Duration::from_secs(60), || {
        std::net::TcpStream::connect(&bind).ok().and_then(|_| {
            http_get(&bind, "/health/ready")
                .starts_with("HTTP/1.1 200")
                .then_some(())
        })
    });
    let scanned = run_json(
        &[
            "scan",
            "--redis",
            &url,
            "--workers",
            "1",
            "--universe-size",
            "50",
            "--format",
            "json",
        ],
        FAST_CLUSTER,
    );
    assert_eq!(scanned["status"], "completed");
    let response = http_get(&bind, "/metrics");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// Every `expr` in the dashboards and the alert rules, with where it came from.
fn queries() -> Vec<(String, String)> {
    fn walk(v: &serde_json::Value, from: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(o) => {
                if let Some(e) = o.get("expr").and_then(|e| e.as_str()) {
                    out.push((from.to_string(), e.to_string()));
                }
                o.values().for_each(|x| walk(x, from, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, from, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join("dashboards")).expect("dashboards/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("read dashboard");
            let v: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            walk(&v, &path.display().to_string(), &mut out);
        }
    }
    let rules = yaml("cluster/alerts.yml");
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            out.push(("cluster/alerts.yml".into(), s(&rule["expr"]).to_string()));
        }
    }
    out
}

#[test]
fn dashboards_and_alerts_query_only_exported_metrics() {
    let text = exposition();
    let mut used = BTreeSet::new();
    let mut by_query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (from, expr) in queries() {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{from}: no metric in `{expr}`");
        for name in &names {
            by_query.entry(name.clone()).or_default().push(from.clone());
        }
        used.extend(names);
    }
    let missing = unexported(&used, &text);
    assert!(
        missing.is_empty(),
        "metrics queried but not exported: {missing:?}; used by: {by_query:?}\nexposition:\n{text}"
    );
    // Every family the README's Monitoring table lists is on the dashboard.
    for family in [
        "technic_scan_requests_total",
        "technic_scan_duration_seconds_bucket",
        "technic_active_scans",
        "technic_cache_hits_total",
        "technic_cache_misses_total",
        "technic_symbols_processed_total",
        "technic_provider_requests_total",
        "technic_circuit_state",
        "technic_cluster_nodes",
        "technic_worker_restarts_total",
    ] {
        assert!(
            by_query
                .get(family)
                .is_some_and(|f| f.iter().any(|f| f.contains("dashboards"))),
            "{family} is not on the dashboard"
        );
    }
}

#[test]
fn the_dashboard_is_well_formed() {
    let d: serde_json::Value =
        serde_json::from_str(&read("dashboards/technic.json")).expect("dashboard JSON");
    assert_eq!(d["uid"], "technic-overview");
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_i64().expect("id")),
            "duplicate panel id"
        );
        for k in ["h", "w", "x", "y"] {
            assert!(p["gridPos"][k].is_i64(), "{}: gridPos.{k}", p["title"]);
        }
        if p["type"] != "row" {
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{}: no query", p["title"]);
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
    }
    // Import asks for a Prometheus datasource (`__inputs`), which becomes the default of
    // the `datasource` variable the panels use (provisioned, the variable falls back to the
    // default datasource, as Grafana does not fill inputs in provisioned dashboards).
    let inputs = d["__inputs"].as_array().expect("__inputs");
    assert!(inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS"
        && i["type"] == "datasource"
        && i["pluginId"] == "prometheus"));
    let requires = d["__requires"].as_array().expect("__requires");
    assert!(requires
        .iter()
        .any(|r| r["type"] == "datasource" && r["id"] == "prometheus"));
    let mut panel_types: BTreeSet<&str> = panels
        .iter()
        .filter_map(|p| p["type"].as_str())
        .filter(|t| *t != "row")
        .collect();
    for r in requires.iter().filter(|r| r["type"] == "panel") {
        panel_types.remove(r["id"].as_str().unwrap_or_default());
    }
    assert!(
        panel_types.is_empty(),
        "panels not in __requires: {panel_types:?}"
    );
    let vars = d["templating"]["list"].as_array().expect("templating");
    assert!(vars.iter().any(|v| v["name"] == "datasource"
        && v["query"] == "prometheus"
        && v["current"]["value"] == "${DS_PROMETHEUS}"));
    let ds = yaml("dashboards/provisioning/datasources/prometheus.yml");
    assert_eq!(s(&ds["datasources"][0]["type"]), "prometheus");
}

// ---------------------------------------------------------------- compose

fn flag(cmd: &[String], name: &str) -> Option<String> {
    cmd.iter()
        .position(|a| a == name)
        .and_then(|i| cmd.get(i + 1))
        .cloned()
}

/// `redis-cluster://h:p,h:p` → the hosts.
fn redis_seeds(url: &str) -> Vec<String> {
    let rest = url
        .strip_prefix("redis-cluster://")
        .unwrap_or_else(|| panic!("not a cluster URL: {url}"));
    rest.split(',')
        .map(|hp| hp.split(':').next().unwrap_or("").to_string())
        .collect()
}

/// `docker/docker-compose.yml`, anchors and merge keys resolved.
struct Compose {
    services: BTreeMap<String, Value>,
}

impl Compose {
    fn load() -> Self {
        let doc = yaml("docker/docker-compose.yml");
        let services = doc["services"]
            .as_mapping()
            .expect("services")
            .iter()
            .map(|(k, v)| (s(k).to_string(), v.clone()))
            .collect();
        Compose { services }
    }

    fn get(&self, name: &str) -> &Value {
        self.services
            .get(name)
            .unwrap_or_else(|| panic!("service {name} missing"))
    }

    fn command(&self, name: &str) -> Vec<String> {
        strings(&self.get(name)["command"])
    }

    /// Services whose command satisfies `pred`, by name.
    fn running(&self, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        self.services
            .keys()
            .filter(|k| pred(&self.command(k)))
            .cloned()
            .collect()
    }

    fn redis_nodes(&self) -> Vec<String> {
        self.running(|c| {
            c.first().is_some_and(|c| c == "redis-server")
                && c.iter().any(|a| a == "--cluster-enabled")
        })
    }

    fn technic(&self, subcommand: &str) -> Vec<String> {
        self.running(|c| c.first().is_some_and(|c| c == subcommand))
    }

    fn init(&self) -> String {
        let init = self.running(|c| {
            c.iter()
                .any(|a| a.contains("--cluster create") && a.contains("--cluster-replicas 1"))
        });
        assert_eq!(init.len(), 1, "one cluster init service: {init:?}");
        init[0].clone()
    }

    /// Bind mounts: container path → source path (relative to `docker/`).
    fn mounts(&self) -> BTreeMap<String, String> {
        let mut mounts = BTreeMap::new();
        for (name, v) in &self.services {
            for m in strings(&v["volumes"]) {
                let mut parts = m.split(':');
                let (src, dst) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                if src.starts_with('.') || src.starts_with('/') {
                    let path = repo().join("docker").join(src);
                    assert!(path.exists(), "{name} mounts {src}, which does not exist");
                    mounts.insert(dst.to_string(), src.to_string());
                }
            }
        }
        mounts
    }
}

#[test]
fn compose_runs_a_six_node_redis_cluster_formed_by_one_init() {
    let c = Compose::load();
    let redis = c.redis_nodes();
    assert_eq!(redis.len(), 6, "6 Redis Cluster nodes: {redis:?}");
    let init = c.init();
    for r in &redis {
        assert!(
            c.get(r)["ports"].is_null(),
            "{r}: Redis must not be published"
        );
        assert!(
            !strings(&c.get(r)["healthcheck"]["test"]).is_empty(),
            "{r}: healthcheck"
        );
        assert_eq!(
            s(&c.get(&init)["depends_on"][r.as_str()]["condition"]),
            "service_healthy",
            "the init waits for {r}"
        );
        // The queue, its consumer groups and running scans' records have no TTL: under
        // memory pressure only keys with one (the cache, finished records) may go.
        let cmd = c.command(r);
        assert_eq!(
            flag(&cmd, "--maxmemory-policy").as_deref(),
            Some("volatile-lru"),
            "{r}: {cmd:?}"
        );
        assert_eq!(
            flag(&cmd, "--appendonly").as_deref(),
            Some("yes"),
            "{r}: survives a restart"
        );
    }
    let script = c.command(&init).join(" ");
    for n in 1..=6 {
        assert!(redis.contains(&format!("redis-{n}")), "redis-{n}");
    }
    assert!(
        script.contains("for n in 1 2 3 4 5 6") && script.contains("getent hosts redis-$$n"),
        "the init resolves all six nodes: {script}"
    );
}

#[test]
fn compose_runs_two_coordinators_and_three_workers_on_that_cluster() {
    let c = Compose::load();
    let (redis, init) = (c.redis_nodes(), c.init());
    let serve = c.technic("serve");
    assert_eq!(
        serve.len(),
        2,
        "two coordinators, so a scan outlives one: {serve:?}"
    );
    let mut published = BTreeSet::new();
    for name in &serve {
        let coord = c.get(name);
        let args = c.command(name);
        assert_eq!(flag(&args, "--bind").as_deref(), Some("0.0.0.0:8080"));
        assert_eq!(flag(&args, "--workers").as_deref(), Some("0"));
        assert!(
            s(&coord["environment"]["TECHNIC_API__TOKEN"]).starts_with("${TECHNIC_API__TOKEN:?"),
            "{name}: the token comes from the environment and is required"
        );
        assert!(strings(&coord["healthcheck"]["test"])
            .iter()
            .any(|a| a.ends_with("/health/ready")));
        for p in strings(&coord["ports"]) {
            assert!(
                p.starts_with("127.0.0.1:"),
                "published on loopback only: {p}"
            );
            assert!(published.insert(p.clone()), "{name}: {p} published twice");
        }
    }

    let workers = c.technic("worker");
    assert_eq!(workers.len(), 3, "three workers: {workers:?}");
    let ids: BTreeSet<String> = workers
        .iter()
        .map(|w| flag(&c.command(w), "--node-id").expect("--node-id"))
        .collect();
    assert_eq!(ids.len(), 3, "distinct node ids: {ids:?}");
    for w in &workers {
        assert!(c.get(w)["ports"].is_null(), "{w}: workers publish no port");
    }
    for name in workers.iter().chain(&serve) {
        // The cluster's Redis is the setting cluster.redis_url, the default of --redis.
        let url = s(&c.get(name)["environment"]["TECHNIC_CLUSTER__REDIS_URL"]).to_string();
        assert!(
            flag(&c.command(name), "--redis").is_none(),
            "{name}: one source"
        );
        for seed in redis_seeds(&url) {
            assert!(
                redis.contains(&seed),
                "{name}: seed {seed} is not a Redis node"
            );
        }
        assert_eq!(
            s(&c.get(name)["depends_on"][init.as_str()]["condition"]),
            "service_completed_successfully",
            "{name} waits for the cluster"
        );
        let build = c.get(name)["build"].clone();
        let dockerfile = repo()
            .join("docker")
            .join(s(&build["context"]))
            .join(s(&build["dockerfile"]));
        assert!(dockerfile.exists(), "{name}: {}", dockerfile.display());
    }
}

#[test]
fn compose_mounts_files_that_exist_where_the_configs_look() {
    let c = Compose::load();
    let mounts = c.mounts();
    let prom = c.get("prometheus");
    assert!(s(&prom["image"]).starts_with("prom/prometheus:"));
    assert!(s(&c.get("grafana")["image"]).starts_with("grafana/"));

    // Prometheus: its config where --config.file says, the rule files beside it, and
    // the scrape target is the coordinator's service and port.
    let cfg_dst = mounts
        .iter()
        .find(|(_, src)| src.as_str() == "../cluster/prometheus.yml")
        .map(|(d, _)| d.clone())
        .expect("cluster/prometheus.yml mounted");
    assert!(strings(&prom["command"]).contains(&format!("--config.file={cfg_dst}")));
    let prom_cfg = yaml("cluster/prometheus.yml");
    let cfg_dir = Path::new(&cfg_dst).parent().expect("dir");
    for rule_file in strings(&prom_cfg["rule_files"]) {
        let dst = cfg_dir.join(&rule_file);
        let src = mounts.get(dst.to_str().unwrap_or(""));
        assert_eq!(
            src.map(String::as_str),
            Some(format!("../cluster/{rule_file}").as_str()),
            "rule file {rule_file} mounted at {}",
            dst.display()
        );
    }
    // Every coordinator (job 0) and every worker (job 1), found by DNS under a name each of
    // them answers to (a network alias on a network Prometheus is on), on the port its
    // --bind / --metrics-bind opens.
    let prom_networks = strings(&prom["networks"]);
    for (job, command, bind_flag) in [(0, "serve", "--bind"), (1, "worker", "--metrics-bind")] {
        let sd = &prom_cfg["scrape_configs"][job]["dns_sd_configs"][0];
        let names = strings(&sd["names"]);
        assert_eq!(names.len(), 1, "one {command} name: {names:?}");
        let services = c.technic(command);
        assert!(!services.is_empty(), "no {command} service");
        for name in services {
            let bind = flag(&c.command(&name), bind_flag).expect(bind_flag);
            let port = bind.rsplit(':').next().unwrap_or_default();
            assert_eq!(
                sd["port"].as_u64().map(|p| p.to_string()).as_deref(),
                Some(port),
                "{name}"
            );
            let networks = c.get(&name)["networks"]
                .as_mapping()
                .unwrap_or_else(|| panic!("{name}: networks with aliases"))
                .clone();
            assert!(
                networks.iter().any(|(net, cfg)| {
                    prom_networks.iter().any(|p| p == s(net))
                        && strings(&cfg["aliases"]).contains(&names[0])
                }),
                "{name} answers to {} where Prometheus looks: {networks:?}",
                names[0]
            );
        }
    }

    // Grafana: both provisioning directories, and the dashboard where the provider reads.
    for dir in ["datasources", "dashboards"] {
        assert_eq!(
            mounts
                .get(&format!("/etc/grafana/provisioning/{dir}"))
                .map(String::as_str),
            Some(format!("../dashboards/provisioning/{dir}").as_str()),
            "grafana {dir} provisioning"
        );
    }
    let provider = yaml("dashboards/provisioning/dashboards/technic.yml");
    let dash_dir = s(&provider["providers"][0]["options"]["path"]);
    assert_eq!(
        mounts
            .get(&format!("{dash_dir}/technic.json"))
            .map(String::as_str),
        Some("../dashboards/technic.json"),
        "the dashboard is mounted where the provider reads"
    );
    let ds = yaml("dashboards/provisioning/datasources/prometheus.yml");
    assert_eq!(
        s(&ds["datasources"][0]["url"]),
        "http://prometheus:9090",
        "Grafana reaches the prometheus service"
    );
}

#[test]
fn the_dockerfile_builds_locked_and_runs_unprivileged() {
    let df = read("docker/Dockerfile");
    assert!(df.contains("cargo build --release --locked"));
    assert!(
        df.lines().filter(|l| l.starts_with("FROM ")).count() >= 2,
        "multi-stage"
    );
    let user = df
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "non-root: {user}"
    );
    assert!(df.contains(r#"ENTRYPOINT ["technic"]"#));
    for line in df
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let src = line.split_whitespace().nth(1).expect("COPY source");
        assert!(
            repo().join(src).exists(),
            "COPY {src}: not in the repository"
        );
    }
    let ignore = read("docker/Dockerfile.dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "**"),
        "context allow-list"
    );
}

// ---------------------------------------------------------------- kubernetes

#[test]
fn k8s_manifests_probe_the_health_endpoints_and_load_their_config() {
    let kustomization = yaml("cluster/k8s/kustomization.yaml");
    let mut objects = Vec::new();
    for file in strings(&kustomization["resources"]) {
        objects.extend(yaml_docs(&format!("cluster/k8s/{file}")));
    }
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| s(&o["kind"]) == kind && s(&o["metadata"]["name"]) == name)
            .unwrap_or_else(|| panic!("{kind} {name} missing"))
    };
    let coord = find("Deployment", "technic-coordinator");
    let c = &coord["spec"]["template"]["spec"]["containers"][0];
    let args = strings(&c["args"]);
    assert!(args.contains(&"serve".to_string()));
    assert_eq!(flag(&args, "--bind").as_deref(), Some("0.0.0.0:8080"));
    assert_eq!(s(&c["livenessProbe"]["httpGet"]["path"]), "/health/live");
    assert_eq!(s(&c["readinessProbe"]["httpGet"]["path"]), "/health/ready");
    let port_name = s(&c["ports"][0]["name"]);
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(8080));
    assert_eq!(s(&c["livenessProbe"]["httpGet"]["port"]), port_name);
    assert!(c["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .any(
            |e| s(&e["name"]) == "TECHNIC_API__TOKEN" && !e["valueFrom"]["secretKeyRef"].is_null()
        ));
    assert!(
        coord["spec"]["replicas"].as_u64() >= Some(2),
        "two coordinators, so a scan outlives one"
    );
    // The API Service, and a headless one through which Prometheus scrapes every pod.
    let pod_labels = &coord["spec"]["template"]["metadata"]["labels"];
    for name in ["coordinator", "coordinators"] {
        let svc = find("Service", name);
        assert_eq!(s(&svc["spec"]["ports"][0]["targetPort"]), port_name);
        for (k, v) in svc["spec"]["selector"].as_mapping().expect("selector") {
            assert_eq!(&pod_labels[s(k)], v, "{name} selects the coordinator pods");
        }
    }
    let csvc = find("Service", "coordinators");
    assert_eq!(s(&csvc["spec"]["clusterIP"]), "None", "headless");

    let workers = find("Deployment", "technic-worker");
    let w = &workers["spec"]["template"]["spec"]["containers"][0];
    let wargs = strings(&w["args"]);
    assert!(wargs.contains(&"worker".to_string()));
    let wenv = w["env"].as_sequence().expect("env");
    assert!(
        wenv.iter()
            .any(|e| s(&e["name"]) == "TECHNIC_CLUSTER__NODE_ID"
                && s(&e["valueFrom"]["fieldRef"]["fieldPath"]) == "metadata.name"),
        "a worker's node id is its pod's name"
    );
    assert_eq!(
        flag(&wargs, "--metrics-bind").as_deref(),
        Some("0.0.0.0:9101")
    );
    assert_eq!(
        s(&w["livenessProbe"]["httpGet"]["path"]),
        "/health/live",
        "the worker's liveness probe is on its metrics port"
    );
    assert_eq!(s(&w["livenessProbe"]["httpGet"]["port"]), "metrics");
    assert_eq!(w["ports"][0]["containerPort"].as_u64(), Some(9101));
    for d in [coord, workers] {
        let spec = &d["spec"]["template"]["spec"];
        let volumes: BTreeSet<&str> = spec["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|v| s(&v["name"]))
            .collect();
        for m in spec["containers"][0]["volumeMounts"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            assert!(
                volumes.contains(s(&m["name"])),
                "mount {:?} has no volume",
                m["name"]
            );
        }
        assert_eq!(
            spec["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true)
        );
    }

    // The config both mount loads with the real loader (unknown keys are errors).
    let cm = find("ConfigMap", "technic");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("technic.toml");
    std::fs::write(&path, s(&cm["data"]["technic.toml"])).expect("write");
    technic::config::Settings::load(Some(&path), &HashMap::new())
        .unwrap_or_else(|e| panic!("cluster/k8s/configmap.yaml technic.toml: {e:?}"));
    assert!(s(&cm["data"]["redis_url"]).starts_with("redis-cluster://"));
    for d in [coord, workers] {
        let env = d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence()
            .expect("env");
        assert!(env
            .iter()
            .any(|e| s(&e["name"]) == "TECHNIC_CLUSTER__REDIS_URL"
                && s(&e["valueFrom"]["configMapKeyRef"]["key"]) == "redis_url"));
    }
    // Workers are scraped through a headless Service on their metrics port.
    let wsvc = find("Service", "workers");
    assert_eq!(s(&wsvc["spec"]["clusterIP"]), "None", "headless");
    assert_eq!(s(&wsvc["spec"]["ports"][0]["targetPort"]), "metrics");
    let wlabels = &workers["spec"]["template"]["metadata"]["labels"];
    for (k, v) in wsvc["spec"]["selector"].as_mapping().expect("selector") {
        assert_eq!(&wlabels[s(k)], v, "the Service selects the worker pods");
    }
    let prom = yaml("cluster/prometheus.yml");
    let sd = &prom["scrape_configs"][1]["dns_sd_configs"][0];
    assert_eq!(strings(&sd["names"]), [s(&wsvc["metadata"]["name"])]);
    assert_eq!(sd["port"].as_u64(), w["ports"][0]["containerPort"].as_u64());
    let sd = &prom["scrape_configs"][0]["dns_sd_configs"][0];
    assert_eq!(strings(&sd["names"]), [s(&csvc["metadata"]["name"])]);
    assert_eq!(sd["port"].as_u64(), c["ports"][0]["containerPort"].as_u64());
}

#[test]
fn the_promql_reader_finds_metric_names_and_nothing_else() {
    let n = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        n("histogram_quantile(0.95, sum by (le) (rate(technic_scan_duration_seconds_bucket[$__rate_interval])))"),
        ["technic_scan_duration_seconds_bucket"]
    );
    assert_eq!(
        n(
            r#"sum(rate(a_total{outcome="failed",x=~"b|c}"}[15m])) / sum without(kind) (rate(b_total[15m])) > 0.05"#
        ),
        ["a_total", "b_total"]
    );
    assert_eq!(
        n("max_over_time(technic_circuit_state[2m]) == 2 and on (job) up offset 5m"),
        ["technic_circuit_state", "up"]
    );
    assert_eq!(n("x * 1e6 + y[5m:1m] unless ${var} z"), ["x", "y", "z"]);
    assert_eq!(n("topk(3, count by (a) (q))"), ["q"]);
}

#[test]
fn the_exposition_reader_maps_series_to_families() {
    let text = "# TYPE a counter\n# TYPE h histogram\nh_bucket{le=\"1\"} 0\n# TYPE g gauge\n# TYPE c_total counter\n# EOF\n";
    let used: BTreeSet<String> = [
        "a_total", "a", "h_bucket", "h_count", "h", "g", "c_total", "up", "nope",
    ]
    .map(String::from)
    .into();
    let missing: Vec<String> = unexported(&used, text).into_iter().collect();
    assert_eq!(missing, ["a", "h", "nope"]);
}
