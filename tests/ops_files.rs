//! The operations files (`cluster/`, `dashboards/`, `docker/`) checked against the real
//! tools and the real binary: promtool runs the alert rules' unit tests; every metric the
//! dashboard and the alerts query must be one the exporter serves; the compose file has
//! the topology the README promises and mounts files that exist; the Kubernetes manifests
//! probe the endpoints the design names and their config loads with the real loader.
//!
//! promtool comes from the Debian package `prometheus` (`scripts/test.sh` installs it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

/// Metrics the dashboard and alerts use that this branch does not export yet, with who
/// adds them. The check demands the missing set equal this list exactly, so the entry
/// must be deleted when the metric arrives.
const PENDING: &[&str] = &[
    "technic_cluster_nodes", // the cluster node registry (lead, `technic worker` / `cluster nodes`)
];

/// Series Prometheus makes itself, not the binary.
const PROMETHEUS_SERIES: &[&str] = &["up"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    let mut v: Value =
        serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"));
    v.apply_merge()
        .unwrap_or_else(|e| panic!("{rel}: merge keys: {e}"));
    v
}

fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            let mut v: Value = serde::Deserialize::deserialize(d)
                .unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"));
            v.apply_merge()
                .unwrap_or_else(|e| panic!("{rel}: merge keys: {e}"));
            v
        })
        .filter(|v| !v.is_null())
        .collect()
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

// ---------------------------------------------------------------- metric names

/// Metric names a PromQL expression selects: string literals, label matchers, range and
/// subquery brackets, `by (…)`-style groupings, Grafana `$variables`, numbers and
/// durations are skipped; an identifier followed by `(` is a function, aggregation
/// operators and keywords are not metrics; every other identifier is a metric name.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const WORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "inf",
        "nan",
    ];
    let c: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '"' || ch == '\'' || ch == '`' {
            i = skip_string(&c, i);
        } else if ch == '{' || ch == '[' {
            i = skip_group(&c, i, ch, if ch == '{' { '}' } else { ']' });
        } else if ch == '$' {
            i += 1;
            if c.get(i) == Some(&'{') {
                i = skip_group(&c, i, '{', '}');
            } else {
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
        } else if ch.is_ascii_digit()
            || (ch == '.' && c.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '.' || c[i] == '_') {
                i += 1;
            }
        } else if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == ':') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let mut j = i;
            while j < c.len() && c[j].is_whitespace() {
                j += 1;
            }
            let call = c.get(j) == Some(&'(');
            if GROUPING.contains(&word.as_str()) {
                if call {
                    i = skip_group(&c, j, '(', ')');
                }
            } else if !call && !WORDS.contains(&word.as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Index past the string literal starting at `i` (backslash escapes honoured).
fn skip_string(c: &[char], i: usize) -> usize {
    let quote = c[i];
    let mut j = i + 1;
    while j < c.len() && c[j] != quote {
        j += if c[j] == '\\' && quote != '`' { 2 } else { 1 };
    }
    j + 1
}

/// Index past the bracketed group opening at `i`, nesting and strings inside honoured.
fn skip_group(c: &[char], i: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    let mut j = i;
    while j < c.len() {
        match c[j] {
            '"' | '\'' | '`' => {
                j = skip_string(c, j);
                continue;
            }
            x if x == open => depth += 1,
            x if x == close => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    j
}

/// Every series name an exposition (OpenMetrics or Prometheus text) makes queryable:
/// the samples present, plus the names each `# TYPE` family yields when it has series
/// (a labelled family with none yet still declares itself).
fn queryable_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(f), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" if f.ends_with("_total") => &["", "_created"],
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                "gaugehistogram" => &["_bucket", "_gsum", "_gcount"],
                "summary" => &["", "_sum", "_count", "_created"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{f}{s}")));
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// The names in `used` the exposition does not serve (Prometheus's own series aside).
fn unexported(used: &BTreeSet<String>, exposition: &str) -> BTreeSet<String> {
    let served = queryable_names(exposition);
    used.iter()
        .filter(|n| !served.contains(*n) && !PROMETHEUS_SERIES.contains(&n.as_str()))
        .cloned()
        .collect()
}

/// The exporter's text. Today the library's registry after every family has a series;
/// at merge this becomes a scrape of a live `technic serve`'s `/metrics`.
fn exposition() -> String {
    use technic::telemetry::ProviderOutcomeLabels;
    use technic::telemetry::{metrics, KindLabel, OutcomeLabel, ProviderLabel};
    let m = metrics();
    m.symbols_processed
        .get_or_create(&OutcomeLabel { outcome: "passed" })
        .inc_by(0);
    m.cache_hits
        .get_or_create(&KindLabel { kind: "bars" })
        .inc_by(0);
    m.cache_misses
        .get_or_create(&KindLabel { kind: "bars" })
        .inc_by(0);
    m.provider_requests
        .get_or_create(&ProviderOutcomeLabels {
            provider: "polygon",
            outcome: "ok",
        })
        .inc_by(0);
    m.circuit_state
        .get_or_create(&ProviderLabel {
            provider: "polygon",
        })
        .set(0);
    technic::telemetry::encode_metrics()
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
    let pending: BTreeSet<String> = PENDING.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        missing, pending,
        "metrics queried but not exported (left) vs PENDING (right); used by: {by_query:?}\nexposition:\n{text}"
    );
    for p in PENDING {
        eprintln!(
            "pending (not exported on this branch yet): {p}, used by {:?}",
            by_query.get(*p)
        );
    }
    // Every family the design lists (DESIGN §8) is on the dashboard.
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
    let vars = d["templating"]["list"].as_array().expect("templating");
    assert!(vars
        .iter()
        .any(|v| v["name"] == "datasource" && v["query"] == "prometheus"));
    // The provisioned datasource and dashboard path agree with the compose mounts.
    let ds = yaml("dashboards/provisioning/datasources/prometheus.yml");
    assert_eq!(s(&ds["datasources"][0]["type"]), "prometheus");
    assert_eq!(s(&ds["datasources"][0]["url"]), "http://prometheus:9090");
}

// ---------------------------------------------------------------- compose

fn flag(cmd: &[String], name: &str) -> Option<String> {
    cmd.iter()
        .position(|a| a == name)
        .and_then(|i| cmd.get(i + 1))
        .cloned()
}

/// `redis-cluster://h:p,h:p` → the hosts, each of which must be a Redis service.
fn redis_seeds(url: &str) -> Vec<String> {
    let rest = url
        .strip_prefix("redis-cluster://")
        .unwrap_or_else(|| panic!("not a cluster URL: {url}"));
    rest.split(',')
        .map(|hp| hp.split(':').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn compose_has_the_cluster_topology_and_mounts_files_that_exist() {
    let doc = yaml("docker/docker-compose.yml");
    let services = doc["services"].as_mapping().expect("services");
    let svc: BTreeMap<String, &Value> = services
        .iter()
        .map(|(k, v)| (s(k).to_string(), v))
        .collect();
    let cmd = |v: &Value| strings(&v["command"]);

    let redis: Vec<&String> = svc
        .iter()
        .filter(|(_, v)| {
            cmd(v).first().is_some_and(|c| c == "redis-server")
                && cmd(v).contains(&"--cluster-enabled".to_string())
        })
        .map(|(k, _)| k)
        .collect();
    assert_eq!(redis.len(), 6, "6 Redis Cluster nodes: {redis:?}");
    for r in &redis {
        assert!(
            svc[*r]["ports"].is_null(),
            "{r}: Redis must not be published"
        );
        assert!(
            !s(&svc[*r]["healthcheck"]["test"][1]).is_empty(),
            "{r}: healthcheck"
        );
    }

    let init: Vec<&String> = svc
        .iter()
        .filter(|(_, v)| {
            cmd(v)
                .iter()
                .any(|c| c.contains("--cluster create") && c.contains("--cluster-replicas 1"))
        })
        .map(|(k, _)| k)
        .collect();
    assert_eq!(init.len(), 1, "one cluster init service");
    let init = init[0];
    for r in &redis {
        assert_eq!(
            s(&svc[init]["depends_on"][r.as_str()]["condition"]),
            "service_healthy",
            "init waits for {r}"
        );
    }

    let serve: Vec<&String> = svc
        .iter()
        .filter(|(_, v)| cmd(v).first().is_some_and(|c| c == "serve"))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(serve.len(), 1, "one coordinator");
    let coord = svc[serve[0]];
    let c = cmd(coord);
    assert_eq!(flag(&c, "--bind").as_deref(), Some("0.0.0.0:8080"));
    assert_eq!(flag(&c, "--workers").as_deref(), Some("0"));
    assert!(
        s(&coord["environment"]["TECHNIC_API__TOKEN"]).contains("TECHNIC_API__TOKEN"),
        "token from env"
    );
    assert!(strings(&coord["healthcheck"]["test"])
        .iter()
        .any(|a| a.ends_with("/health/ready")));
    for p in strings(&coord["ports"]) {
        assert!(
            p.starts_with("127.0.0.1:"),
            "coordinator published on loopback only: {p}"
        );
    }

    let workers: Vec<&String> = svc
        .iter()
        .filter(|(_, v)| cmd(v).first().is_some_and(|c| c == "worker"))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(workers.len(), 3, "three workers");
    let ids: BTreeSet<String> = workers
        .iter()
        .map(|w| flag(&cmd(svc[*w]), "--node-id").expect("--node-id"))
        .collect();
    assert_eq!(ids.len(), 3, "distinct node ids: {ids:?}");
    for w in &workers {
        assert!(svc[*w]["ports"].is_null(), "{w}: workers open no port");
    }
    for name in workers.iter().chain(serve.iter()) {
        let v = svc[*name];
        let url = flag(&cmd(v), "--redis").expect("--redis");
        for seed in redis_seeds(&url) {
            assert!(
                redis.contains(&&seed),
                "{name}: seed {seed} is not a Redis service"
            );
        }
        assert_eq!(
            s(&v["depends_on"][init.as_str()]["condition"]),
            "service_completed_successfully",
            "{name} waits for the cluster"
        );
        assert_eq!(s(&v["build"]["dockerfile"]), "docker/Dockerfile");
    }

    let prom = svc.get("prometheus").expect("prometheus");
    let graf = svc.get("grafana").expect("grafana");
    assert!(s(&prom["image"]).starts_with("prom/prometheus:"));
    assert!(s(&graf["image"]).starts_with("grafana/"));

    // Every bind mount exists, and the containers see the files where their configs look.
    let docker = repo().join("docker");
    let mut mounts: BTreeMap<String, String> = BTreeMap::new();
    for (name, v) in &svc {
        for m in strings(&v["volumes"]) {
            let mut parts = m.split(':');
            let (src, dst) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if src.starts_with('.') || src.starts_with('/') {
                let path = docker.join(src);
                assert!(path.exists(), "{name} mounts {src}, which does not exist");
                mounts.insert(dst.to_string(), src.to_string());
            }
        }
    }
    let build = docker
        .join(s(&coord["build"]["context"]))
        .join(s(&coord["build"]["dockerfile"]));
    assert!(build.exists(), "Dockerfile at {}", build.display());
    let prom_cfg = yaml("cluster/prometheus.yml");
    let cfg_dst = mounts
        .iter()
        .find(|(_, src)| src.ends_with("cluster/prometheus.yml"))
        .map(|(d, _)| d.clone())
        .expect("prometheus.yml mounted");
    assert!(strings(&prom["command"]).contains(&format!("--config.file={cfg_dst}")));
    let cfg_dir = Path::new(&cfg_dst).parent().expect("dir");
    for rule_file in strings(&prom_cfg["rule_files"]) {
        let dst = cfg_dir.join(&rule_file);
        assert!(
            mounts.contains_key(dst.to_str().unwrap_or("")),
            "rule file {rule_file} not mounted at {}",
            dst.display()
        );
    }
    let target = s(&prom_cfg["scrape_configs"][0]["static_configs"][0]["targets"][0]).to_string();
    assert_eq!(
        target,
        format!("{}:8080", serve[0]),
        "Prometheus scrapes the coordinator"
    );
    let provider = yaml("dashboards/provisioning/dashboards/technic.yml");
    let dash_dir = s(&provider["providers"][0]["options"]["path"]).to_string();
    assert!(
        mounts.contains_key(&format!("{dash_dir}/technic.json")),
        "dashboard mounted where the provider reads"
    );
    for dir in ["datasources", "dashboards"] {
        assert!(
            mounts.contains_key(&format!("/etc/grafana/provisioning/{dir}")),
            "grafana {dir} provisioning mounted"
        );
    }
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
    let svc = find("Service", "coordinator");
    assert_eq!(s(&svc["spec"]["ports"][0]["targetPort"]), port_name);
    let pod_labels = &coord["spec"]["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_mapping().expect("selector") {
        assert_eq!(
            &pod_labels[s(k)],
            v,
            "the Service selects the coordinator pods"
        );
    }

    let workers = find("Deployment", "technic-worker");
    let w = &workers["spec"]["template"]["spec"]["containers"][0];
    let wargs = strings(&w["args"]);
    assert!(wargs.contains(&"worker".to_string()));
    assert_eq!(flag(&wargs, "--node-id").as_deref(), Some("$(POD_NAME)"));
    assert!(w["ports"].is_null(), "workers open no port");

    // The config both mount loads with the real loader (unknown keys are errors).
    let cm = find("ConfigMap", "technic");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("technic.toml");
    std::fs::write(&path, s(&cm["data"]["technic.toml"])).expect("write");
    technic::config::Settings::load(Some(&path), &HashMap::new())
        .unwrap_or_else(|e| panic!("cluster/k8s/configmap.yaml technic.toml: {e:?}"));
    assert!(s(&cm["data"]["redis_url"]).starts_with("redis-cluster://"));
}
