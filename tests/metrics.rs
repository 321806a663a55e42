//! `/metrics` as Prometheus and promtool see it, on live `technic` processes: the format
//! follows `Accept` (the Prometheus text form passes `promtool check metrics`), every
//! labelled counter is there at 0 before any scan, and the coordinator keeps
//! `technic_cluster_nodes{state}` current by itself: a `kill -9`ed worker shows down with
//! nothing but scrapes in between, and is pruned after `cluster.prune_down_after_secs`.
//! `technic cluster forget` removes a node by hand.

mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::ports::Port;
use support::redis::RedisServer;
use support::technic::{command, http_get, run_json, Proc, FAST_CLUSTER};
use support::wait::wait_for;

const LONG: Duration = Duration::from_secs(60);

/// One GET with an optional `Accept`; (content type, body). Empty when it fails.
fn scrape(addr: &str, accept: Option<&str>) -> (String, String) {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return Default::default();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    if write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )
    .is_err()
    {
        return Default::default();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let Some((head, body)) = out.split_once("\r\n\r\n") else {
        return Default::default();
    };
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let ct = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (ct, body.to_string())
}

/// The value of one series (exact name and labels) in an exposition.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// `technic ARGS` on a reserved port given as `--bind`, once `/health/live` answers.
fn serve(args: &[&str], env: &[(&str, &str)]) -> (Proc, Port) {
    let port = Port::reserve();
    let bind = port.addr();
    let mut all = vec!["serve", "--bind", &bind];
    all.extend_from_slice(args);
    let p = Proc::spawn("serve", &all, env);
    wait_for("technic serve to answer", LONG, || {
        http_get(&bind, "/health/live")
            .starts_with("HTTP/1.1 200")
            .then_some(())
    });
    (p, port)
}

fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn accept_decides_the_format_and_promtool_passes_the_text_form() {
    let (_serve, port) = serve(&["--workers", "1"], &[]);
    let addr = port.addr();

    for accept in [None, Some("text/plain; version=0.0.4"), Some("*/*")] {
        let (ct, text) = scrape(&addr, accept);
        assert!(
            ct.starts_with("text/plain; version=0.0.4"),
            "{accept:?}: {ct}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        let (ok, report) = promtool_check(&text);
        assert!(ok, "promtool check metrics ({accept:?}):\n{report}\n{text}");
    }
    let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,\
                      application/openmetrics-text;version=0.0.1;q=0.4,\
                      text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    for accept in ["application/openmetrics-text", prometheus] {
        let (ct, text) = scrape(&addr, Some(accept));
        assert!(
            ct.starts_with("application/openmetrics-text"),
            "{accept}: {ct}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}

#[test]
fn every_labelled_counter_is_exported_at_zero_before_any_scan() {
    let (_serve, port) = serve(&["--workers", "1"], &[]);
    let (_, text) = scrape(&port.addr(), None);
    let mut series = Vec::new();
    for outcome in ["passed", "filtered", "failed"] {
        series.push(format!(
            r#"technic_symbols_processed_total{{outcome="{outcome}"}}"#
        ));
    }
    for kind in technic::cache::Kind::ALL {
        for family in ["cache_hits", "cache_misses"] {
            series.push(format!(
                r#"technic_{family}_total{{kind="{}"}}"#,
                kind.as_str()
            ));
        }
    }
    for outcome in technic::data::resilience::ProviderOutcome::ALL {
        series.push(format!(
            r#"technic_provider_requests_total{{provider="polygon",outcome="{}"}}"#,
            outcome.as_str()
        ));
    }
    for series in series {
        assert_eq!(value(&text, &series), Some(0.0), "{series} in:\n{text}");
    }
    assert_eq!(
        value(&text, "technic_scan_duration_seconds_bucket{le=\"0.005\"}"),
        Some(0.0)
    );
}

#[test]
fn a_killed_worker_shows_down_from_scrapes_alone_then_is_pruned() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut env = FAST_CLUSTER.to_vec();
    env.push(("TECHNIC_CLUSTER__PRUNE_DOWN_AFTER_SECS", "4"));
    let (serve, port) = serve(&["--redis", &url, "--workers", "0"], &env);
    let addr = port.addr();
    let gauge = |state: &str| {
        let (_, text) = scrape(&addr, None);
        value(
            &text,
            &format!(r#"technic_cluster_nodes{{state="{state}"}}"#),
        )
    };
    assert!(
        gauge("down").is_some(),
        "the node gauge is exported from the start"
    );

    let mut worker = Proc::worker("doomed", &url, &[], &env);
    wait_for("the worker to be counted up", LONG, || {
        (gauge("up") == Some(1.0)).then_some(())
    });
    worker.kill9();
    wait_for("the killed worker to be counted down", LONG, || {
        (gauge("down") == Some(1.0) && gauge("up") == Some(0.0)).then_some(())
    });
    wait_for("the down worker to be pruned", LONG, || {
        (gauge("down") == Some(0.0)).then_some(())
    });
    let nodes = run_json(&["cluster", "nodes", "--redis", &url, "--json"], &env);
    assert_eq!(
        nodes,
        serde_json::json!([]),
        "serve log:\n{}",
        serve.stderr()
    );
}

#[test]
fn cluster_forget_removes_a_node() {
    let redis = RedisServer::start();
    let url = redis.url();
    let env = FAST_CLUSTER;
    let ids = || -> Vec<String> {
        run_json(&["cluster", "nodes", "--redis", &url, "--json"], env)
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| n["id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let mut worker = Proc::worker("gone", &url, &[], env);
    wait_for("the worker to register", LONG, || {
        (ids() == ["gone"]).then_some(())
    });
    worker.kill9();

    let forgot = run_json(
        &["cluster", "forget", "gone", "--redis", &url, "--json"],
        env,
    );
    assert_eq!(forgot["forgotten"], "gone");
    assert!(ids().is_empty());

    let out = command(&["cluster", "forget", "gone", "--redis", &url], env)
        .output()
        .expect("run technic");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no node \"gone\""), "{stderr}");
}
