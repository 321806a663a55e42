//! The multi-host rig (tests/support/rig.rs): the docker-compose topology as real
//! processes, one network namespace per host, watched by a real Prometheus with the alert
//! rules of cluster/alerts.yml and a real Alertmanager with cluster/alertmanager.yml.
//!
//! Between a fault and its alert only Prometheus talks to technic: no API call moves a
//! gauge here. The rigs of this file run one at a time (each is 12 hosts on two cores).

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::rig::{alert_for, node_down_alert, Rig, WORKERS};
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
    let want: Vec<String> = std::iter::once("coordinator")
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
    assert!(jobs.contains(&"technic-coordinator"), "{seen:?}");
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
fn a_killed_worker_fires_the_node_down_alert_and_alertmanager_delivers_it() {
    let alert = node_down_alert();
    let hold = alert_for(&alert);
    let (_guard, mut rig, t0) = start();
    for h in std::iter::once("coordinator").chain(WORKERS) {
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
    eprintln!("rig test done in {:?}", t0.elapsed());
}
