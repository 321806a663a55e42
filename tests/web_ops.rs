//! The dashboard's operator pages in a real headless Chromium against a real
//! `technic serve`: performance and cache after two scans (chart points, hit rate, Clear,
//! Warm, TTL edit), the cache killed under the page, the cluster page of one process (with
//! a narrow screen, the keyboard and hidden-tab polling) and of a multi-process cluster
//! with a worker killed. Screenshots go to `target/screenshots/`.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::api::Server;
use support::redis::RedisServer;
use support::web::{num, start_and_follow, Browser, ONE_BROWSER, SLOW};

#[tokio::test]
async fn two_scans_chart_two_points_cache_hits_and_clear_empties_it() {
    let _one = ONE_BROWSER.lock().await;
    let redis = RedisServer::start();
    // Both scans compute (the second from cached features), so both are timed and the
    // cache's hit rate moves; the scan-result cache would answer the second outright.
    let s = Server::start(
        &["--workers", "2", "--redis", &redis.url()],
        &[SLOW, ("TECHNIC_CACHE__SCAN_RESULTS", "false")],
    )
    .await;
    let b = Browser::start().await;
    b.open(&s.url("/")).await;
    b.set_input("scan-universe-size", "200").await;
    for _ in 0..2 {
        let seen = start_and_follow(&b).await;
        assert_eq!(seen.last(), Some(&100.0), "{seen:?}");
    }

    b.nav("Performance").await;
    let points = b
        .wait_for("two points in the chart", || async {
            let p = num(b.attr("perf-chart", "data-points").await);
            (p == 2.0).then_some(p)
        })
        .await;
    assert_eq!(points, 2.0);
    // uPlot drew it: a canvas inside the chart, and a speedup against the cold scan.
    let canvas = b
        .client
        .find(fantoccini::Locator::Css("[data-testid=perf-chart] canvas"))
        .await;
    assert!(canvas.is_ok(), "no canvas in the chart");
    let speedup = b.wait_text("perf-speedup", |t| t.ends_with('×')).await;
    let x: f64 = speedup.trim_end_matches('×').parse().expect("speedup");
    assert!(x > 0.0, "{speedup}");
    let table = b.rows("perf-table").await;
    assert_eq!(table.len(), 2, "{table:?}");
    b.screenshot("performance").await;

    b.nav("Cache").await;
    let badge = b
        .wait_text("cache-badge", |t| t.starts_with("Cache active · "))
        .await;
    let rate: f64 = badge
        .trim_start_matches("Cache active · ")
        .trim_end_matches("% hit rate")
        .parse()
        .unwrap_or_else(|_| panic!("badge: {badge}"));
    assert!(rate > 0.0, "{badge}");
    let keys = b.wait_text("cache-keys-total", |t| t != "—").await;
    let n: u64 = keys.replace(',', "").parse().expect("key count");
    assert!(n > 0, "{keys}");
    let kinds = b.rows("cache-kinds").await;
    assert!(!kinds.is_empty());
    b.wait_for("the hit/miss chart", || async {
        (num(b.attr("cache-chart", "data-points").await) > 0.0).then_some(())
    })
    .await;
    b.resize(1280, 1700).await;
    b.screenshot("cache").await;
    b.resize(1280, 1000).await;

    // Clear asks first; cancelling keeps the keys, confirming removes them all.
    b.click("cache-clear").await;
    b.click("confirm-cancel").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, st) = s.get("/api/v1/cache/stats").await;
    let total: u64 = st["keys_per_kind"]
        .as_object()
        .expect("keys")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert!(total > 0, "cancel kept the keys: {st}");
    b.click("cache-clear").await;
    b.click("confirm-ok").await;
    b.wait_text("cache-keys-total", |t| t == "0").await;
    let (_, st) = s.get("/api/v1/cache/stats").await;
    let total: u64 = st["keys_per_kind"]
        .as_object()
        .expect("keys")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(total, 0, "{st}");

    // Warm (after its confirmation) loads the symbols given into the cache.
    let (_, list) = s.get("/api/v1/scans").await;
    let last = list["scans"][0]["id"].as_str().expect("id").to_string();
    let (_, res) = s
        .get(&format!("/api/v1/scans/{last}/results?limit=3"))
        .await;
    let three: Vec<&str> = res["results"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["symbol"].as_str())
        .collect();
    assert_eq!(three.len(), 3);
    b.set_input("cache-warm-symbols", &three.join(", ")).await;
    b.click("cache-warm").await;
    b.click("confirm-ok").await;
    let status = b
        .wait_text("cache-action-status", |t| t.starts_with("Warmed:"))
        .await;
    let loaded: u64 = status
        .split(" · ")
        .find_map(|p| p.strip_suffix(" loaded"))
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("{status}"));
    assert!(loaded >= 3, "the three symbols were loaded: {status}");
    let keys = b
        .wait_text("cache-keys-total", |t| t != "0" && t != "—")
        .await;
    assert!(keys.replace(',', "").parse::<u64>().expect("count") > 0);

    // TTL settings: shown from the API, edited through it; a bad value is the API's
    // INVALID_CONFIG in the error panel.
    let shown = b
        .wait_for("the TTL form", || async {
            b.by_testid("ttl-features_secs")
                .await
                .prop("value")
                .await
                .ok()
                .flatten()
                .filter(|v| !v.is_empty())
        })
        .await;
    let (_, ttl) = s.get("/api/v1/cache/ttl").await;
    assert_eq!(shown, ttl["features_secs"].to_string());
    b.set_input("ttl-features_secs", "600").await;
    b.click("ttl-save").await;
    b.wait_for("the new TTL in the API", || async {
        let (_, t) = s.get("/api/v1/cache/ttl").await;
        (t["features_secs"] == 600).then_some(())
    })
    .await;
    b.set_input("ttl-market_open", "25:99").await;
    b.click("ttl-save").await;
    let panel = b
        .wait_text("error-panel", |t| t.contains("INVALID_CONFIG"))
        .await;
    assert!(
        !b.rows_of_list("error-suggestions").await.is_empty(),
        "{panel}"
    );
    let (_, t) = s.get("/api/v1/cache/ttl").await;
    assert_eq!(
        t["market_open"], ttl["market_open"],
        "a bad value changes nothing"
    );
    b.close().await;
}

#[tokio::test]
async fn a_killed_cache_shows_unavailable_and_suggestions_then_recovers() {
    let _one = ONE_BROWSER.lock().await;
    let mut redis = RedisServer::start();
    let s = Server::start(&["--workers", "1", "--redis", &redis.url()], &[]).await;
    let b = Browser::start().await;
    b.open(&s.url("/#cache")).await;
    b.wait_text("cache-badge", |t| t.starts_with("Cache active"))
        .await;
    assert!(!b
        .by_testid("error-panel")
        .await
        .is_displayed()
        .await
        .expect("displayed"));

    redis.kill();
    b.wait_text("cache-badge", |t| t == "Cache unavailable")
        .await;
    b.wait_for("the error panel", || async {
        b.by_testid("error-panel")
            .await
            .is_displayed()
            .await
            .ok()
            .filter(|d| *d)
    })
    .await;
    let panel = b.text("error-panel").await;
    assert!(panel.contains("CACHE_UNAVAILABLE"), "{panel}");
    let suggestions = b.rows_of_list("error-suggestions").await;
    assert!(!suggestions.is_empty(), "{panel}");
    assert!(
        suggestions.iter().any(|s| s.contains("Redis")),
        "{suggestions:?}"
    );
    // The last known figures stay, dimmed as stale.
    let stale = b
        .client
        .execute(
            "return document.getElementById('page-cache').classList.contains('stale')",
            vec![],
        )
        .await
        .expect("class");
    assert_eq!(stale, Value::Bool(true));
    b.screenshot("cache-unavailable").await;

    // Back up: Retry (or the next poll) clears the panel and the badge is active again.
    redis.restart();
    b.wait_for("the cache to answer again", || async {
        let (st, _) = s.get("/api/v1/cache/stats").await;
        (st == 200).then_some(())
    })
    .await;
    if b.by_testid("error-panel")
        .await
        .is_displayed()
        .await
        .unwrap_or(false)
    {
        b.click("error-retry").await;
    }
    b.wait_text("cache-badge", |t| t.starts_with("Cache active"))
        .await;
    b.wait_for("the error panel to go", || async {
        (!b.by_testid("error-panel")
            .await
            .is_displayed()
            .await
            .unwrap_or(true))
        .then_some(())
    })
    .await;
    b.close().await;
}

#[tokio::test]
async fn the_cluster_page_lists_the_nodes_and_narrow_screens_stay_readable() {
    let _one = ONE_BROWSER.lock().await;
    let s = Server::start(&["--workers", "2"], &[]).await;
    let b = Browser::start().await;
    b.open(&s.url("/")).await;
    b.nav("Cluster").await;
    let (_, api) = s.get("/api/v1/cluster/nodes").await;
    let nodes = api["nodes"].as_array().expect("nodes");
    assert!(!nodes.is_empty());
    let rows = b
        .wait_for("the node rows", || async {
            let r = b.rows("cluster-nodes").await;
            (r.len() == nodes.len()).then_some(r)
        })
        .await;
    for (row, node) in rows.iter().zip(nodes) {
        assert_eq!(row[0], node["id"].as_str().expect("id"));
        assert!(
            row[1].contains(node["state"].as_str().expect("state")),
            "{row:?}"
        );
        assert_eq!(row[4], node["workers"].to_string());
        // The alpha model the node serves (none here).
        assert_eq!(row[9], node["model"].as_str().unwrap_or("—"), "{row:?}");
    }
    b.screenshot("cluster").await;

    // Polling stops while the tab is hidden and resumes when it is shown: the page's
    // fetches are counted, the visibility is switched as the browser would switch it.
    let calls = || async {
        b.client
            .execute("return window.__calls", vec![])
            .await
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    };
    let set_hidden = |hidden: bool| {
        b.client.execute(
            "Object.defineProperty(document, 'hidden', {value: arguments[0], configurable: true});
             document.dispatchEvent(new Event('visibilitychange'));",
            vec![serde_json::json!(hidden)],
        )
    };
    b.client
        .execute(
            "window.__calls = 0; const f = window.fetch;
             window.fetch = (...a) => { window.__calls++; return f(...a); };",
            vec![],
        )
        .await
        .expect("count fetches");
    b.wait_for("a poll while shown", || async {
        (calls().await >= 1).then_some(())
    })
    .await;
    set_hidden(true).await.expect("hide");
    let before = calls().await;
    // Absence can only be shown over a window: three cluster poll periods (2 s each).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = calls().await;
    assert!(
        after <= before + 1,
        "polled while hidden: {before} → {after}"
    );
    set_hidden(false).await.expect("show");
    b.wait_for("polling to resume", || async {
        (calls().await > after).then_some(())
    })
    .await;

    // A phone-sized window: the page does not scroll sideways (tables scroll in their card).
    b.resize(390, 844).await;
    b.nav("Scanner").await;
    let overflow = b
        .client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        )
        .await
        .expect("scroll width");
    assert!(overflow.as_f64().unwrap_or(1.0) <= 0.0, "{overflow}");
    b.screenshot("scanner-narrow").await;

    // Keyboard: from the skip link (the first stop), Tab reaches the navigation links and
    // Enter follows one.
    b.client
        .execute(
            "window.scrollTo(0,0); document.querySelector('.skip').focus()",
            vec![],
        )
        .await
        .expect("focus the skip link");
    let mut stops = Vec::new();
    for _ in 0..6 {
        b.press(fantoccini::key::Key::Tab).await;
        stops.push(b.focused_text().await);
        if stops.last().is_some_and(|t| t == "Cache") {
            break;
        }
    }
    assert_eq!(
        stops,
        ["Scanner", "Performance", "Cache"],
        "Tab stops from the skip link"
    );
    b.press(fantoccini::key::Key::Enter).await;
    b.wait_for("the Cache page", || async {
        let u = b.client.current_url().await.ok()?;
        u.as_str().ends_with("#cache").then_some(())
    })
    .await;
    b.close().await;
}

/// Heartbeats every 200 ms and a node down 1.5 s after its last one, so a killed worker is
/// marked down within seconds.
const FAST_CLUSTER: &[(&str, &str)] = &[
    ("TECHNIC_CLUSTER__HEARTBEAT_MS", "200"),
    ("TECHNIC_CLUSTER__NODE_TTL_MS", "1500"),
];

/// A `technic worker` process, killed (SIGKILL) on drop or by [`Worker::kill`].
struct Worker(std::process::Child);

impl Worker {
    fn start(redis: &str, id: &str) -> Worker {
        Worker::start_with(redis, id, &[])
    }

    /// With extra settings in its environment.
    fn start_with(redis: &str, id: &str, env: &[(&str, &str)]) -> Worker {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_technic"));
        cmd.env_clear()
            .envs(support::kept_env())
            .args([
                "worker",
                "--redis",
                redis,
                "--workers",
                "1",
                "--node-id",
                id,
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for (k, v) in FAST_CLUSTER.iter().chain(env) {
            cmd.env(k, v);
        }
        Worker(cmd.spawn().expect("spawn technic worker"))
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        support::end_children([&mut self.0]);
    }
}

/// The cluster page of a multi-process cluster: a coordinator and two `technic worker`
/// processes over one Redis; killing one (SIGKILL) marks its row down while the other
/// stays up.
#[tokio::test]
async fn the_cluster_page_marks_a_killed_worker_process_down() {
    let _one = ONE_BROWSER.lock().await;
    let redis = RedisServer::start();
    let s = Server::start(&["--workers", "1", "--redis", &redis.url()], FAST_CLUSTER).await;
    let _w1 = Worker::start(&redis.url(), "w1");
    let mut w2 = Worker::start(&redis.url(), "w2");
    let b = Browser::start().await;
    b.open(&s.url("/#cluster")).await;
    let state_of = |id: &'static str| {
        let b = &b;
        async move {
            b.client
                .execute(
                    "const r = document.querySelector(`[data-testid=cluster-nodes] tr[data-node=\"${arguments[0]}\"]`);
                     return r ? [r.dataset.state, r.className] : null;",
                    vec![serde_json::json!(id)],
                )
                .await
                .ok()
                .and_then(|v| serde_json::from_value::<Option<(String, String)>>(v).ok())
                .flatten()
        }
    };
    for id in ["w1", "w2"] {
        b.wait_for(&format!("{id} up on the page"), || async {
            state_of(id).await.filter(|(s, _)| s == "up")
        })
        .await;
    }
    w2.kill();
    let (_, class) = b
        .wait_for("w2 down on the page", || async {
            state_of("w2").await.filter(|(s, _)| s == "down")
        })
        .await;
    assert!(
        class.contains("node-down"),
        "a down node stands out: {class}"
    );
    assert_eq!(
        state_of("w1").await.map(|(s, _)| s).as_deref(),
        Some("up"),
        "the other worker stays up"
    );
    let row = b.rows("cluster-nodes").await;
    assert!(
        row.iter().any(|r| r[0] == "w2" && r[1].contains("down")),
        "{row:?}"
    );
    b.screenshot("cluster-node-down").await;
    b.close().await;
}

/// The Cluster page while two slow worker processes run a coordinator's scan: the queue's
/// depth, the scan's symbols per node (both workers, adding up to the scan's count) and a
/// throughput chart with a series per node.
#[tokio::test]
async fn the_cluster_page_shows_the_queue_each_nodes_share_and_throughput() {
    let _one = ONE_BROWSER.lock().await;
    let redis = RedisServer::start();
    let s = Server::start(&["--workers", "0", "--redis", &redis.url()], FAST_CLUSTER).await;
    // 20 ms per symbol and 10-symbol shards: 400 symbols take about 4 s on two workers.
    let slow = [
        ("TECHNIC_DATA__SYNTHETIC__LATENCY_MS", "20"),
        ("TECHNIC_CLUSTER__SHARD_SIZE", "10"),
    ];
    let _w1 = Worker::start_with(&redis.url(), "slow-w1", &slow);
    let _w2 = Worker::start_with(&redis.url(), "slow-w2", &slow);
    let b = Browser::start().await;
    b.open(&s.url("/#cluster")).await;
    b.wait_text("cluster-summary", |t| t.starts_with("2 nodes"))
        .await;
    let id = s.submit(r#"{"universe_size": 400}"#).await;
    let queue = b
        .wait_text("cluster-queue", |t| {
            t.contains("in flight") && !t.starts_with("0 shards pending · 0 in flight")
        })
        .await;
    assert!(queue.contains("to retry"), "{queue}");
    let row = b
        .wait_for("both workers in the running scan's row", || async {
            b.rows("cluster-scans")
                .await
                .into_iter()
                .find(|r| r[0] == id && r[3].contains("slow-w1") && r[3].contains("slow-w2"))
        })
        .await;
    // "done / total", and the per-node counts add up to at most the done count.
    let num = |t: &str| t.trim().replace(',', "").parse::<u64>().expect("a count");
    let (done, total) = row[2].split_once('/').expect("done / total");
    assert_eq!(num(total), 400, "{row:?}");
    let shares: u64 = row[3]
        .split(" · ")
        .map(|p| num(p.rsplit_once(':').expect("node: count").1))
        .sum();
    assert!(shares <= num(done) + 20, "{row:?}");
    let points = b
        .wait_for("a throughput series per worker", || async {
            let p: usize = b.attr("cluster-chart", "data-points").await?.parse().ok()?;
            (p >= 2).then_some(p)
        })
        .await;
    assert!(points >= 2);
    let legend = b.text("cluster-chart").await;
    assert!(
        legend.contains("slow-w1") && legend.contains("slow-w2"),
        "{legend}"
    );
    b.screenshot("cluster-queue-scans-throughput").await;
    s.wait_done(&id).await;
    b.wait_for("the finished scan leaves the table", || async {
        b.rows("cluster-scans")
            .await
            .iter()
            .all(|r| r[0] != id)
            .then_some(())
    })
    .await;
    b.close().await;
}

/// The Cache page of a coordinator that looks nothing up itself (`--workers 0`): after two
/// scans run by two worker processes, it shows each worker's hits in the By node table.
#[tokio::test]
async fn the_cache_page_shows_every_nodes_share_of_a_shared_cache() {
    let _one = ONE_BROWSER.lock().await;
    let redis = RedisServer::start();
    let s = Server::start(&["--workers", "0", "--redis", &redis.url()], FAST_CLUSTER).await;
    let _w1 = Worker::start(&redis.url(), "cache-w1");
    let _w2 = Worker::start(&redis.url(), "cache-w2");
    // Two configs over the same symbols: the second computes from cached features (the
    // same config again would be answered from its report, with no worker lookup).
    for body in [
        r#"{"universe_size": 120}"#,
        r#"{"universe_size": 120, "top": 10}"#,
    ] {
        let id = s.submit(body).await;
        assert_eq!(s.wait_done(&id).await["stage"], "done");
    }
    // A TTL change: each worker's row shows the version it writes with once it follows.
    let r = support::api::client()
        .put(s.url("/api/v1/cache/ttl"))
        .header("content-type", "application/json")
        .body(r#"{"features_secs": 1234}"#)
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    let int = |t: &str| t.replace(',', "").parse::<f64>().unwrap_or(0.0);
    let b = Browser::start().await;
    b.open(&s.url("/#cache")).await;
    let rows = b
        .wait_for(
            "both workers in the By node table, at TTL version 1",
            || async {
                let rows = b.rows("cache-nodes").await;
                let row = |id: &str| rows.iter().find(|r| r[0] == id);
                let ok = |id: &str| row(id).is_some_and(|r| int(&r[1]) > 0.0 && r[4] == "v1");
                (ok("cache-w1") && ok("cache-w2")).then_some(rows)
            },
        )
        .await;
    let total: f64 = rows.iter().map(|r| int(&r[1])).sum();
    let kinds = b.rows("cache-kinds").await;
    let all_hits: f64 = kinds.iter().map(|r| int(&r[2])).sum();
    assert_eq!(
        total, all_hits,
        "the nodes' hits add up to the kinds': {rows:?} {kinds:?}"
    );
    assert!(
        b.text("cache-badge").await.contains("hit rate"),
        "the badge moves with the workers' lookups"
    );
    b.screenshot("cache-per-node").await;
    b.close().await;
}

/// The Cache page shows the leader's last warm pass and its precision: a serve that starts
/// on a Redis where 40 symbols were scanned before warms them, and after a scan of 10 of
/// them the page says 10 were requested (25 %).
#[tokio::test]
async fn the_cache_page_shows_the_warm_pass_and_its_precision() {
    let _one = ONE_BROWSER.lock().await;
    let redis = RedisServer::start();
    let url = redis.url();
    support::technic::scan_through(&url, 40);
    let s = Server::start(
        &["--workers", "1", "--cache", &url],
        &[("TECHNIC_CACHE__WARM__TOP_REQUESTED", "40")],
    )
    .await;
    let b = Browser::start().await;
    b.open(&s.url("/#cache")).await;
    b.wait_text("cache-warming", |t| t.contains("40 symbols"))
        .await;
    let id = s.submit(r#"{"universe_size": 10}"#).await;
    s.wait_done(&id).await;
    let text = b
        .wait_text("cache-warming", |t| t.contains("10 requested since"))
        .await;
    assert!(text.contains("precision 25"), "{text}");
    // A cold scan (the first) and a fully cached one (this): the time hits save.
    let saved = b
        .wait_text("cache-saved", |t| t.starts_with("time saved by hits"))
        .await;
    assert!(saved.contains("per hit"), "{saved}");
    b.screenshot("cache-warming").await;
    b.close().await;
}

#[tokio::test]
async fn the_screens_and_watchlists_pages_save_schedule_run_and_show_diffs_and_dead_letters() {
    let _one = ONE_BROWSER.lock().await;
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("screens.json").display().to_string();
    let s = Server::start(
        &["--workers", "2"],
        &[
            ("TECHNIC_SCREENS__PATH", store.as_str()),
            ("TECHNIC_SCREENS__WEBHOOK_ATTEMPTS", "2"),
            ("TECHNIC_SCREENS__RETRY_BASE_MS", "50"),
        ],
    )
    .await;
    let b = Browser::start().await;
    b.open(&s.url("/")).await;

    // A watchlist typed in.
    b.nav("Watchlists").await;
    b.set_input("watchlist-name", "picks").await;
    b.set_input("watchlist-symbols", "azgq, DFVN").await;
    b.click("watchlist-save").await;
    let rows = b
        .wait_for("the watchlist's row", || async {
            let rows = b.rows("watchlists-table").await;
            rows.iter().any(|r| r[0] == "picks").then_some(rows)
        })
        .await;
    assert_eq!(rows[0][..4], ["picks", "2", "AZGQ, DFVN", "1"], "{rows:?}");

    // A webhook nobody listens to: its deliveries become dead letters.
    b.nav("Screens").await;
    let closed = support::ports::Port::reserve();
    let url = format!("http://{}/hook", closed.addr());
    b.set_input("webhook-url", &url).await;
    b.set_input("webhook-secret", "a-secret-of-16-chars").await;
    b.click("webhook-add").await;
    b.wait_for("the webhook's row", || async {
        b.rows("webhooks-table")
            .await
            .iter()
            .any(|r| r.get(1) == Some(&url))
            .then_some(())
    })
    .await;

    // The Scanner's options (a top 1) saved as a scheduled screen over the watchlist.
    b.nav("Scanner").await;
    b.set_input("scan-top", "1").await;
    b.set_input("scan-min-price", "0").await;
    b.set_input("scan-min-dollar-volume", "0").await;
    b.nav("Screens").await;
    b.set_input("screen-name", "mine").await;
    b.wait_for("the watchlist in the universe list", || async {
        let e = b.by_testid("screen-watchlist").await;
        e.select_by_value("picks").await.ok()
    })
    .await;
    // Every 20 s: the first run's diff stays on screen until the next.
    b.set_input("screen-cron", "*/20 * * * * *").await;
    b.set_input("screen-timezone", "UTC").await;
    b.click("screen-save").await;
    let diff = b
        .wait_text("screen-diff", |t| t.starts_with("+1 new"))
        .await;
    let (_, v) = s.get("/api/v1/screens/mine").await;
    assert_eq!(v["config"]["watchlist"], "picks", "{v}");
    assert_eq!(v["config"]["top"], 1, "{v}");
    assert_eq!(v["schedule"]["cron"], "*/20 * * * * *", "{v}");
    let first = v["last_run"]["diff"]["new"][0]
        .as_str()
        .expect("a new match")
        .to_string();
    assert!(diff.contains(&first), "{diff} vs {v}");
    assert_ne!(b.text("screen-next-tick").await, "—");

    // The failed delivery shows in the log and as a dead letter.
    let dead = b
        .wait_for("a dead letter", || async {
            let rows = b.rows("dead-table").await;
            rows.iter().any(|r| r.get(3) == Some(&url)).then_some(rows)
        })
        .await;
    assert_eq!(
        (dead[0][1].as_str(), dead[0][4].as_str()),
        ("mine", "2"),
        "{dead:?}"
    );
    let (_, api_dead) = s.get("/api/v1/webhooks/dead-letters").await;
    assert_eq!(
        dead[0][2],
        api_dead["deliveries"][0]["event"]["id"].as_str().unwrap()
    );
    let log = b.rows("deliveries-table").await;
    assert_eq!(log[0][3], "failed", "{log:?}");

    // Run now adds a manual run with no change.
    b.click("screen-run").await;
    b.wait_for("a manual run", || async {
        let (_, v) = s.get("/api/v1/screens/mine/runs?limit=100").await;
        v["runs"]
            .as_array()?
            .iter()
            .any(|r| r["trigger"] == "manual")
            .then_some(())
    })
    .await;
    b.wait_text("screen-diff", |t| t == "no change").await;
    b.screenshot("screens").await;
    b.close().await;
}
