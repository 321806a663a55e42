//! The multi-host rig (tests/support/rig.rs): the docker-compose topology as real
//! processes, one network namespace per host, watched by a real Prometheus with the alert
//! rules of cluster/alerts.yml and a real Alertmanager with cluster/alertmanager.yml.
//!
//! Between a fault and its alert (and its resolution) only Prometheus talks to technic: no
//! API call moves a gauge there. The PromQL test does call the API, to run scans against a
//! fake Polygon before it queries every expression of the dashboard and the alert rules.
//! The rigs of this file run one at a time (each is 12 hosts on two cores).

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_polygon::FakePolygon;
use support::reports::{embedded, ratings};
use support::rig::{alert_for, node_down_alert, Rig, Source, COORDINATORS, WORKERS};
use support::wait::wait_for;

const SCRAPE: Duration = Duration::from_secs(30);

/// One rig at a time.
static RIG: Mutex<()> = Mutex::new(());

fn start() -> (std::sync::MutexGuard<'static, ()>, Rig, Instant) {
    let guard = RIG.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    let rig = Rig::start();
    eprintln!(
        "rig up in {:?} ({})",
        t0.elapsed(),
        if rig.namespaced() {
            "network namespaces"
        } else {
            "loopback fallback"
        }
    );
    (guard, rig, t0)
}

/// Prometheus' active targets, as `(job, instance, health)`.
fn targets(rig: &Rig) -> Result<Vec<(String, String, String)>, String> {
    let data = rig.prometheus_api("targets?state=active")?;
    Ok(data["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&t["labels"]["job"]),
                s(&t["labels"]["instance"]),
                s(&t["health"]),
            )
        })
        .collect())
}

/// `up` of one instance, as Prometheus last scraped it.
fn up(rig: &Rig, instance: &str) -> Result<f64, String> {
    let r = rig.query(&format!(r#"up{{instance="{instance}"}}"#))?;
    let v = r
        .first()
        .and_then(|s| s["value"][1].as_str())
        .ok_or_else(|| format!("no up for {instance}: {r:?}"))?;
    v.parse().map_err(|e| format!("{v}: {e}"))
}

fn wait_up(rig: &Rig, instance: &str, want: f64) {
    wait_for(
        &format!("up{{instance={instance}}} == {want}"),
        SCRAPE,
        || match up(rig, instance)? {
            v if v == want => Ok(()),
            v => Err(format!("up = {v}")),
        },
    );
}

/// `Ok` when the coordinator's `GET /api/v1/cluster/nodes` lists `id` in `state`.
fn node_state(rig: &Rig, id: &str, state: &str) -> Result<(), String> {
    let url = format!("http://{}/api/v1/cluster/nodes", rig.addr("coordinator"));
    let v = rig.get_json(&url)?;
    let seen = v["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["id"] == id)
        .map(|n| n["state"].clone());
    match seen {
        Some(s) if s == state => Ok(()),
        other => Err(format!("{id}: {other:?}")),
    }
}

#[test]
fn the_committed_alertmanager_config_is_valid() {
    let out = std::process::Command::new("amtool")
        .args(["check-config", "cluster/alertmanager.yml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run amtool (prometheus-alertmanager; scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "amtool check-config cluster/alertmanager.yml: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rig_targets_are_up_a_partitioned_worker_is_down_and_alerts_reach_the_webhook() {
    let (_guard, mut rig, t0) = start();

    // Every target of cluster/prometheus.yml, scraped across the namespaces.
    let want: Vec<String> = COORDINATORS
        .into_iter()
        .chain(WORKERS)
        .map(|h| rig.addr(h).to_string())
        .collect();
    let seen = wait_for("every Prometheus target up", SCRAPE, || {
        let t = targets(&rig)?;
        let mut instances: Vec<String> = t.iter().map(|(_, i, _)| i.clone()).collect();
        instances.sort();
        let mut expected = want.clone();
        expected.sort();
        if instances == expected && t.iter().all(|(_, _, h)| h == "up") {
            Ok(t)
        } else {
            Err(format!("{t:?}"))
        }
    });
    let jobs: Vec<&str> = seen.iter().map(|(j, _, _)| j.as_str()).collect();
    assert_eq!(
        jobs.iter().filter(|j| **j == "technic-coordinator").count(),
        2,
        "{seen:?}"
    );
    assert_eq!(
        jobs.iter().filter(|j| **j == "technic-workers").count(),
        3,
        "{seen:?}"
    );
    for instance in &want {
        wait_up(&rig, instance, 1.0);
    }

    // The Alertmanager → webhook path, with a synthetic alert.
    let labels =
        json!({ "alertname": "TechnicRigSynthetic", "severity": "none", "instance": "rig" });
    rig.push_alert(&labels, "synthetic alert of the rig test")
        .unwrap_or_else(|e| panic!("post to alertmanager: {e}\n{}", rig.logs()));
    let delivered = wait_for("the synthetic alert at the webhook", SCRAPE, || {
        rig.deliveries
            .alerts()
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "TechnicRigSynthetic")
            .ok_or_else(|| format!("deliveries: {:?}", rig.deliveries.all()))
    });
    assert_eq!(delivered["status"], "firing", "{delivered}");
    assert_eq!(
        delivered["annotations"]["summary"],
        "synthetic alert of the rig test"
    );

    // A partitioned worker: its scrape fails and its heartbeats stop reaching Redis; once
    // healed it is scraped again and heartbeats again.
    let worker = rig.addr("worker-2").to_string();
    wait_for("w2 up at the coordinator", SCRAPE, || {
        node_state(&rig, "w2", "up")
    });
    rig.partition("worker-2");
    wait_up(&rig, &worker, 0.0);
    for other in want.iter().filter(|i| **i != worker) {
        assert_eq!(
            up(&rig, other),
            Ok(1.0),
            "{other} while worker-2 is cut off"
        );
    }
    wait_for("w2 down at the coordinator", SCRAPE, || {
        node_state(&rig, "w2", "down")
    });
    rig.heal("worker-2");
    wait_up(&rig, &worker, 1.0);
    wait_for("w2 up again at the coordinator", SCRAPE, || {
        node_state(&rig, "w2", "up")
    });

    // Teardown leaves no namespace, link or process behind.
    let tag = rig.tag();
    let pids: Vec<u32> = rig.pids();
    drop(rig);
    if let Some(tag) = tag {
        assert_eq!(
            Rig::traces(&tag),
            Vec::<String>::new(),
            "left after teardown"
        );
    }
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} left after teardown"
        );
    }
    eprintln!("rig test done in {:?}", t0.elapsed());
}

#[test]
fn a_killed_worker_fires_the_node_down_alert_and_its_restart_resolves_it() {
    let alert = node_down_alert();
    let hold = alert_for(&alert);
    let (_guard, mut rig, t0) = start();
    for h in COORDINATORS.into_iter().chain(WORKERS) {
        wait_up(&rig, &rig.addr(h).to_string(), 1.0);
    }

    // From here on only Prometheus scrapes technic.
    rig.kill9("worker-3");
    let killed = Instant::now();
    let state = |rig: &Rig| -> Result<Vec<String>, String> {
        Ok(rig
            .alerts(&alert)?
            .iter()
            .map(|a| a["state"].as_str().unwrap_or_default().to_string())
            .collect())
    };
    wait_for(&format!("{alert} pending"), SCRAPE, || {
        let s = state(&rig)?;
        if s.iter().any(|s| s == "pending") {
            Ok(())
        } else {
            Err(format!("{alert}: {s:?}"))
        }
    });
    wait_for(&format!("{alert} firing"), hold + SCRAPE, || {
        let s = state(&rig)?;
        if s.iter().any(|s| s == "firing") {
            Ok(())
        } else {
            Err(format!("{alert}: {s:?}"))
        }
    });
    eprintln!("{alert} firing {:?} after the kill", killed.elapsed());
    let delivered = wait_for(&format!("{alert} at the webhook"), SCRAPE, || {
        rig.deliveries
            .alerts()
            .into_iter()
            .find(|a| a["labels"]["alertname"] == alert.as_str() && a["status"] == "firing")
            .ok_or_else(|| format!("deliveries: {:?}", rig.deliveries.all()))
    });
    assert_eq!(delivered["labels"]["severity"], "critical", "{delivered}");

    // The same node back (same command, same node id): it heartbeats again, every
    // process's `technic_cluster_nodes{state="down"}` drops to 0, Prometheus resolves the
    // alert and Alertmanager sends `resolved` for every instance it notified as firing.
    rig.restart("worker-3");
    let back = Instant::now();
    let resolved = wait_for(&format!("{alert} resolved at the webhook"), SCRAPE, || {
        let alerts: Vec<Value> = rig
            .deliveries
            .alerts()
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == alert.as_str())
            .collect();
        let instances = |status: &str| -> std::collections::BTreeSet<String> {
            alerts
                .iter()
                .filter(|a| a["status"] == status)
                .map(|a| {
                    a["labels"]["instance"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        };
        let (firing, resolved) = (instances("firing"), instances("resolved"));
        if !resolved.is_empty() && firing.is_subset(&resolved) {
            Ok(resolved)
        } else {
            Err(format!("firing {firing:?}, resolved {resolved:?}"))
        }
    });
    wait_for(&format!("{alert} inactive in Prometheus"), SCRAPE, || {
        let s = state(&rig)?;
        if s.is_empty() {
            Ok(())
        } else {
            Err(format!("{alert}: {s:?}"))
        }
    });
    eprintln!(
        "{alert} resolved for {resolved:?} {:?} after the restart",
        back.elapsed()
    );
    eprintln!("rig test done in {:?}", t0.elapsed());
}

/// The Grafana variables a dashboard query may use, as a test sets them: every interval
/// and range 1 minute (at the rig's 1 s scrape that is 60 samples a series).
const GRAFANA_BUILTINS: [(&str, &str); 8] = [
    ("__rate_interval", "1m"),
    ("__interval_ms", "60000"),
    ("__interval", "1m"),
    ("__range_ms", "60000"),
    ("__range_s", "60"),
    ("__range", "1m"),
    ("__from", "0"),
    ("__to", "0"),
];

/// `expr` with every Grafana variable replaced (`$x`, `${x}`, `${x:fmt}`, `[[x]]`): the
/// built-ins by [`GRAFANA_BUILTINS`], the dashboard's template variables by their current
/// value, or `.*` when that is "All", unset or itself a variable (an import input such as
/// `${DS_PROMETHEUS}`). Longest names first, so `$__interval` does not eat
/// `$__interval_ms`.
fn substitute(expr: &str, templating: &Value) -> String {
    let mut vars: Vec<(String, String)> = GRAFANA_BUILTINS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for v in templating["list"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        let current = &v["current"]["value"];
        let value = current
            .as_str()
            .or_else(|| current.as_array().and_then(|a| a.first()?.as_str()))
            .filter(|s| !s.is_empty() && !s.contains('$') && *s != "$__all")
            .unwrap_or(".*")
            .to_string();
        vars.push((name, value));
    }
    vars.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut out = expr.to_string();
    for (k, v) in &vars {
        for form in [format!("${{{k}}}"), format!("[[{k}]]"), format!("${k}")] {
            out = out.replace(&form, v);
        }
        while let Some(i) = out.find(&format!("${{{k}:")) {
            let end = out[i..].find('}').map_or(out.len(), |e| i + e + 1);
            out.replace_range(i..end, v);
        }
    }
    out
}

/// The rule's operand: every top-level comparison (`==`, `!=`, `>`, `<`, `>=`, `<=`,
/// outside parentheses, brackets, braces and strings) made a `bool` comparison. An alert
/// expression is empty whenever its alert is not firing; `A > bool X` instead yields a 0/1
/// sample for every sample of `A` (NaN included), so it is empty exactly when the operand
/// has no data, which is what this test requires.
fn operand(expr: &str) -> String {
    let c: Vec<char> = expr.chars().collect();
    let mut out = String::new();
    let (mut depth, mut i) = (0i32, 0);
    while i < c.len() {
        let ch = c[i];
        match ch {
            '"' | '\'' | '`' => {
                let start = i;
                i += 1;
                while i < c.len() && c[i] != ch {
                    i += if c[i] == '\\' && ch != '`' { 2 } else { 1 };
                }
                i = (i + 1).min(c.len());
                out.extend(&c[start..i]);
                continue;
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        let two: String = c[i..(i + 2).min(c.len())].iter().collect();
        let op = if ["==", "!=", ">=", "<="].contains(&two.as_str()) {
            Some(2)
        } else if ch == '>' || ch == '<' {
            Some(1)
        } else {
            None
        };
        match op {
            Some(n) if depth == 0 => {
                out.extend(&c[i..i + n]);
                i += n;
                let rest: String = c[i..].iter().collect();
                if !rest.trim_start().starts_with("bool") {
                    out.push_str(" bool");
                }
            }
            _ => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

/// Every panel query of `dashboards/technic.json` (rows' nested panels included), as
/// `(what, expr)` with Grafana's variables substituted.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/technic.json");
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard"))
        .expect("dashboard JSON");
    fn walk(panels: &Value, templating: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    let (title, id) = (&p["title"], &t["refId"]);
                    let what = format!(
                        "panel {:?} {}",
                        title.as_str().unwrap_or("?"),
                        id.as_str().unwrap_or("?")
                    );
                    out.push((what, substitute(expr, templating)));
                }
            }
            walk(&p["panels"], templating, out);
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &d["templating"], &mut out);
    out
}

/// Every alert rule of `cluster/alerts.yml`, as `(what, operand expr)` ([`operand`]).
fn alert_queries() -> Vec<(String, String)> {
    let rules = support::rig::read_yaml("cluster/alerts.yml");
    rules["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|r| {
            let name = r["alert"].as_str().or(r["record"].as_str())?.to_string();
            Some((format!("rule {name}"), operand(r["expr"].as_str()?)))
        })
        .collect()
}

/// Expressions allowed to return no data on the rig, with why. Empty: the scenario below
/// produces data for every one.
const NO_DATA_ALLOWED: &[(&str, &str)] = &[];

#[test]
fn grafana_and_variable_substitution_and_comparison_operands() {
    let templating = json!({"list": [
        {"name": "job", "current": {"value": "$__all"}},
        {"name": "node", "current": {"value": "w1"}},
        {"name": "datasource", "type": "datasource", "current": {"value": "${DS_PROMETHEUS}"}}
    ]});
    assert_eq!(
        substitute(
            r#"rate(x{job=~"$job",node="${node}"}[$__rate_interval]) + y[$__interval_ms]"#,
            &templating
        ),
        r#"rate(x{job=~".*",node="w1"}[1m]) + y[60000]"#
    );
    assert_eq!(substitute("${job:regex}", &templating), ".*");
    assert_eq!(
        operand(r#"sum(a{x=~"a>b"}) / sum(b) > 0.05"#),
        r#"sum(a{x=~"a>b"}) / sum(b) > bool 0.05"#
    );
    assert_eq!(operand("up == 0"), "up == bool 0");
    assert_eq!(
        operand("max_over_time(x[2m]) >= bool 2"),
        "max_over_time(x[2m]) >= bool 2"
    );
    assert_eq!(operand("a / (b < 3)"), "a / (b < 3)");
}

#[test]
fn every_dashboard_and_alert_expression_returns_data_after_scans_from_a_fake_polygon() {
    let fake = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let bars = rt.block_on(support::polygon::market(30, 300));
        FakePolygon::new(bars, Default::default(), Duration::ZERO)
    };
    let guard = RIG.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    let rig = Rig::start_with(Source::Polygon(fake.clone()));
    eprintln!("rig up in {:?}", t0.elapsed());
    for h in COORDINATORS.into_iter().chain(WORKERS) {
        wait_up(&rig, &rig.addr(h).to_string(), 1.0);
    }

    // Two identical scans (the second is served from the cache), then a smaller one.
    let scan = |body: &Value| -> Value {
        let id = rig
            .api("POST", "scans", Some(body))
            .unwrap_or_else(|e| panic!("submit: {e}\n{}", rig.logs()))["id"]
            .as_str()
            .expect("scan id")
            .to_string();
        let done = wait_for(&format!("scan {id} finished"), SCRAPE * 2, || {
            let v = rig.api("GET", &format!("scans/{id}"), None)?;
            match v["stage"].as_str() {
                Some("done" | "failed" | "cancelled") => Ok(v),
                _ => Err(v.to_string()),
            }
        });
        assert_eq!(done["stage"], "done", "{done}\n{}", rig.logs());
        done
    };
    let body = json!({
        "as_of": support::polygon::as_of(),
        "lookback_days": 120,
        "min_price": 0,
        "min_dollar_volume": 0,
    });
    scan(&body);
    scan(&body);
    let mut some = body.clone();
    some["symbols"] = json!(fake.symbols()[..5]);
    scan(&some);
    assert!(fake.count("/v") > 0, "the fake Polygon got no request");

    // The scans moved the cache, provider, scan and symbol series.
    for moved in [
        "sum(technic_scan_requests_total) >= 3",
        "sum(technic_scan_duration_seconds_count) >= 3",
        "sum(technic_symbols_processed_total) > 0",
        "sum(technic_cache_hits_total) > 0",
        "sum(technic_cache_misses_total) > 0",
        r#"sum(technic_provider_requests_total{provider="polygon",outcome="ok"}) > 0"#,
    ] {
        wait_for(moved, SCRAPE, || match rig.query(moved)? {
            r if r.is_empty() => Err(format!("{moved}: empty")),
            r => Ok(r),
        });
    }

    let queries: Vec<(String, String)> = dashboard_queries()
        .into_iter()
        .chain(alert_queries())
        .collect();
    assert!(queries.len() >= 10, "{queries:?}");
    for (what, expr) in &queries {
        assert!(!expr.contains('$'), "{what}: a variable left in {expr}");
    }
    // Every expression at once, until each has data (rates need two scrapes of a series).
    let empty = |rig: &Rig| -> Vec<String> {
        queries
            .iter()
            .filter(|(what, _)| !NO_DATA_ALLOWED.iter().any(|(w, _)| w == what))
            .filter_map(|(what, expr)| match rig.query(expr) {
                Ok(r) if !r.is_empty() => None,
                Ok(_) => Some(format!("{what}: {expr} (no data)")),
                Err(e) => Some(format!("{what}: {expr} ({e})")),
            })
            .collect()
    };
    let poll = support::wait::poll(SCRAPE, || match empty(&rig) {
        e if e.is_empty() => Ok(()),
        e => Err(e.join("\n")),
    });
    if let Err(e) = poll {
        panic!(
            "PromQL expressions without data on the rig: {}",
            e.last.unwrap_or_default()
        );
    }
    for (what, expr) in &queries {
        eprintln!("{what}: {expr} → {:?}", rig.query(expr).map(|r| r.len()));
    }
    drop(rig);
    drop(guard);
    eprintln!("rig test done in {:?}", t0.elapsed());
}

/// `technic_scan_records_total{outcome}` of a coordinator, straight from its `/metrics`.
fn records(rig: &Rig, host: &str, outcome: &str) -> u64 {
    let text = rig
        .get_text(&format!("http://{}/metrics", rig.addr(host)))
        .unwrap_or_else(|e| panic!("{e}"));
    let series = format!("technic_scan_records_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

/// Two coordinators on their own hosts, three workers, the synthetic market at 20 ms per
/// symbol. A scan submitted to `coordinator` survives it twice:
/// - `kill -9` of `coordinator` mid-scan: `coordinator-2` takes it over and finishes it,
///   with the embedded scan's results, and both list it once (the first after a restart);
/// - `coordinator` cut off the network mid-scan (its link down: it still runs, but reaches
///   neither Redis nor anyone): `coordinator-2` takes over and finishes; once the link is
///   back the cut-off owner gives the scan up and writes no second report.
#[test]
fn a_scan_outlives_its_coordinator_killed_or_cut_off_on_another_host() {
    const UNIVERSE: usize = 1500;
    const LONG: Duration = Duration::from_secs(120);
    let guard = RIG.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    let mut rig = Rig::start_with(Source::SlowSynthetic(20));
    eprintln!("rig up in {:?}", t0.elapsed());
    let want = ratings(&embedded(UNIVERSE));
    let body = json!({ "universe_size": UNIVERSE });
    let state =
        |rig: &Rig, host: &str, id: &str| rig.api_on(host, "GET", &format!("scans/{id}"), None);
    let progress_at_least = |rig: &Rig, host: &str, id: &str, done: u64| {
        wait_for(&format!("{done} symbols of {id} on {host}"), LONG, || {
            let v = state(rig, host, id)?;
            if v["progress"]["done"].as_u64() >= Some(done) || v["stage"] == "done" {
                Ok(v)
            } else {
                Err(v.to_string())
            }
        })
    };
    let finished = |rig: &Rig, id: &str| -> Value {
        let v = wait_for(&format!("{id} done on coordinator-2"), LONG, || {
            let v = state(rig, "coordinator-2", id)?;
            if v["stage"] == "done" {
                Ok(v)
            } else {
                Err(v.to_string())
            }
        });
        let results = rig
            .api_on("coordinator-2", "GET", &format!("scans/{id}/results"), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ratings(&results), want, "identical to the embedded scan");
        v
    };
    let listed = |rig: &Rig, host: &str, id: &str| -> usize {
        let v = rig
            .api_on(host, "GET", "scans", None)
            .unwrap_or_else(|e| panic!("{e}"));
        v["scans"]
            .as_array()
            .expect("scans")
            .iter()
            .filter(|s| s["id"] == id)
            .count()
    };
    let submit = |rig: &Rig| -> String {
        rig.api("POST", "scans", Some(&body))
            .unwrap_or_else(|e| panic!("submit: {e}\n{}", rig.logs()))["id"]
            .as_str()
            .expect("scan id")
            .to_string()
    };

    // 1. kill -9 of the owner.
    let id = submit(&rig);
    let seen = progress_at_least(&rig, "coordinator-2", &id, 200);
    assert_eq!(seen["owner"], "coordinator", "{seen}");
    rig.kill9("coordinator");
    let killed = Instant::now();
    let taken = wait_for("coordinator-2 to take the scan over", LONG, || {
        let v = state(&rig, "coordinator-2", &id)?;
        if v["owner"] == "coordinator-2" || v["stage"] == "done" {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    });
    let takeover = killed.elapsed();
    let then = taken["progress"]["done"].as_u64().unwrap_or(0);
    progress_at_least(&rig, "coordinator-2", &id, then + 1);
    let resumed = killed.elapsed();
    let done = finished(&rig, &id);
    eprintln!(
        "kill -9 of the coordinator host's serve: taken over after {:.2} s, progress again after {:.2} s, scan {:.2} s",
        takeover.as_secs_f64(),
        resumed.as_secs_f64(),
        done["timing"]["total_seconds"].as_f64().unwrap_or(0.0)
    );
    assert_eq!(records(&rig, "coordinator-2", "written"), 1, "one report");
    rig.restart("coordinator");
    wait_for("coordinator back", LONG, || rig.api("GET", "scans", None));
    assert_eq!(listed(&rig, "coordinator", &id), 1);
    assert_eq!(listed(&rig, "coordinator-2", &id), 1);

    // 2. The owner cut off the network, then back.
    let id = submit(&rig);
    let seen = progress_at_least(&rig, "coordinator-2", &id, 200);
    assert_eq!(seen["owner"], "coordinator", "{seen}");
    rig.partition("coordinator");
    let cut = Instant::now();
    finished(&rig, &id);
    eprintln!(
        "coordinator cut off: scan done on coordinator-2 {:.2} s later",
        cut.elapsed().as_secs_f64()
    );
    rig.heal("coordinator");
    wait_for("the cut-off owner to show the scan done", LONG, || {
        let v = state(&rig, "coordinator", &id)?;
        if v["stage"] == "done" {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    });
    wait_for("the cut-off owner to give the scan up", LONG, || {
        let log = rig.log("coordinator");
        (log.contains("lost the scan's lease") || log.contains("taken over before its record"))
            .then_some(())
            .ok_or("not yet")
    });
    assert_eq!(
        records(&rig, "coordinator", "written"),
        0,
        "no second report"
    );
    assert_eq!(
        records(&rig, "coordinator-2", "written"),
        2,
        "one report per scan"
    );
    assert_eq!(listed(&rig, "coordinator", &id), 1);
    assert_eq!(listed(&rig, "coordinator-2", &id), 1);
    drop(rig);
    drop(guard);
}

/// One scan of the chaos suite: submitted to `coordinator-2` (never faulted here), `fault`
/// applied once 300 symbols are done, then awaited to the end. Checks the results against
/// the embedded scan (every symbol once) and returns the scan's total seconds.
fn chaos_scan(rig: &mut Rig, want: &[(String, f64)], fault: impl FnOnce(&mut Rig)) -> f64 {
    const UNIVERSE: usize = 1500;
    const LONG: Duration = Duration::from_secs(180);
    let body = json!({ "universe_size": UNIVERSE });
    let id = wait_for("submit to coordinator-2", LONG, || {
        rig.api_on("coordinator-2", "POST", "scans", Some(&body))
    })["id"]
        .as_str()
        .expect("scan id")
        .to_string();
    let state = |rig: &Rig| rig.api_on("coordinator-2", "GET", &format!("scans/{id}"), None);
    wait_for("300 symbols done", LONG, || {
        let v = state(rig)?;
        if v["progress"]["done"].as_u64() >= Some(300) {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });
    let t = std::time::Instant::now();
    fault(rig);
    eprintln!("fault applied in {:.1} s", t.elapsed().as_secs_f64());
    let done = wait_for(&format!("{id} done"), LONG, || {
        let v = state(rig)?;
        if v["stage"] == "done" {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    });
    assert_eq!(done["scanned"], UNIVERSE, "every symbol once: {done}");
    assert_eq!(done["failures"].as_array().map(Vec::len), Some(0), "{done}");
    let results = wait_for("results", LONG, || {
        rig.api_on("coordinator-2", "GET", &format!("scans/{id}/results"), None)
    });
    assert_eq!(ratings(&results), want, "identical to the embedded scan");
    done["timing"]["total_seconds"]
        .as_f64()
        .expect("total_seconds")
}

/// The chaos suite on the rig: a 1,500-symbol scan (20 ms per symbol, three workers, no
/// cache) under each fault, with results identical to the embedded scan and the time the
/// fault added printed (the README's chaos table). The coordinator's own faults (killed, cut
/// off past its lease) are in `a_scan_outlives_its_coordinator_killed_or_cut_off_…`. Before
/// each fault on Redis the cluster is let settle (replicas resynced after the previous
/// fault): a master whose replica is still syncing is never failed over, by Redis' design.
#[test]
fn chaos_every_fault_ends_in_the_embedded_results() {
    let guard = RIG.lock().unwrap_or_else(|e| e.into_inner());
    let mut rig = Rig::start_with(Source::SlowSynthetic(20));
    let want = ratings(&embedded(1500));
    let mut table: Vec<(&str, f64)> = Vec::new();
    let clean = chaos_scan(&mut rig, &want, |_| {});
    table.push(("none (clean run)", clean));
    table.push((
        "a worker cut off the network for 20 s, then back",
        chaos_scan(&mut rig, &want, |rig| {
            rig.partition("worker-1");
            std::thread::sleep(Duration::from_secs(20));
            rig.heal("worker-1");
        }),
    ));
    table.push((
        "a worker killed and restarted at once with the same node id",
        chaos_scan(&mut rig, &want, |rig| {
            rig.kill9("worker-2");
            rig.restart("worker-2");
        }),
    ));
    rig.wait_redis_settled();
    table.push((
        "the queue's Redis master paused 8 s (SIGSTOP)",
        chaos_scan(&mut rig, &want, |rig| {
            let master = rig.queue_master().expect("master");
            rig.signal(&master, libc::SIGSTOP);
            std::thread::sleep(Duration::from_secs(8));
            rig.signal(&master, libc::SIGCONT);
        }),
    ));
    rig.wait_redis_settled();
    table.push((
        "the queue's Redis master cut off 10 s: its replica takes over while it runs on",
        chaos_scan(&mut rig, &want, |rig| {
            let master = rig.queue_master().expect("master");
            rig.partition(&master);
            std::thread::sleep(Duration::from_secs(10));
            rig.heal(&master);
        }),
    ));
    rig.wait_redis_settled();
    table.push((
        "the queue's Redis master killed (kill -9), restarted once its replica took over",
        chaos_scan(&mut rig, &want, |rig| {
            let master = rig.queue_master().expect("master");
            rig.kill9(&master);
            wait_for("the replica to take over", Duration::from_secs(60), || {
                rig.queue_master()
                    .ok()
                    .filter(|m| *m != master)
                    .ok_or("no new master yet")
            });
            rig.restart(&master);
        }),
    ));
    eprintln!("| fault | scan (s) | added (s) |");
    for (fault, secs) in &table {
        eprintln!("| {fault} | {secs:.1} | {:+.1} |", secs - clean);
    }
    drop(rig);
    drop(guard);
}
