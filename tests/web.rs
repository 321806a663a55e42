//! The dashboard in a real headless Chromium (chromedriver + fantoccini) against a real
//! `technic serve`: a scan started from the page (progress to 100 %, the API's rows,
//! sorting, a real CSV download), cancel, performance and cache after two scans, clear,
//! the cache killed under the page, an invalid option and Retry, the token, the cluster
//! page, and the page's files over plain HTTP. Screenshots of each page go to
//! `target/screenshots/`.

mod api_support;
mod support;
mod web_support;

use std::time::{Duration, Instant};

use api_support::Server;
use serde_json::Value;
use support::redis::RedisServer;
use web_support::{Browser, ONE_BROWSER};

/// Enough injected latency per symbol that a scan of a few hundred symbols takes about a
/// second on two workers: long enough to watch the bar move, short enough for a test.
const SLOW: (&str, &str) = ("TECHNIC_DATA__SYNTHETIC__LATENCY_MS", "4");

fn num(s: Option<String>) -> f64 {
    s.and_then(|v| v.parse().ok()).unwrap_or(-1.0)
}

/// Clicks Start and follows `aria-valuenow` until the stage is terminal; returns every
/// value seen, in order.
async fn start_and_follow(b: &Browser) -> Vec<f64> {
    b.click("scan-start").await;
    let mut seen = Vec::new();
    let start = Instant::now();
    loop {
        let v = num(b.attr("scan-progress", "aria-valuenow").await);
        if seen.last() != Some(&v) {
            seen.push(v);
        }
        let stage = b.text("scan-stage").await;
        if ["done", "failed", "cancelled"].contains(&stage.as_str()) {
            // The scan may have ended between the two reads: the bar's last value.
            let v = num(b.attr("scan-progress", "aria-valuenow").await);
            if seen.last() != Some(&v) {
                seen.push(v);
            }
            return seen;
        }
        assert!(
            start.elapsed() < web_support::DEADLINE,
            "scan never finished: {seen:?}, stage {stage}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The scan id the page is showing, from its CSV link.
async fn shown_scan_id(b: &Browser) -> String {
    let href = b
        .wait_for("the CSV link", || async {
            b.attr("results-csv", "href").await
        })
        .await;
    href.split("/api/v1/scans/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .expect("scan id in the link")
        .to_string()
}

#[tokio::test]
async fn a_scan_from_the_page_fills_the_table_sorts_and_downloads_csv() {
    let _one = ONE_BROWSER.lock().await;
    let s = Server::start(&["--workers", "2"], &[SLOW]).await;
    let b = Browser::start().await;
    b.open(&s.url("/")).await;
    b.set_input("scan-universe-size", "300").await;
    let seen = start_and_follow(&b).await;

    // The bar advanced through intermediate values, never backwards, and reached 100.
    assert_eq!(b.text("scan-stage").await, "done");
    assert_eq!(seen.last(), Some(&100.0), "{seen:?}");
    assert!(
        seen.iter().any(|v| *v > 0.0 && *v < 100.0),
        "no intermediate progress seen: {seen:?}"
    );
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    let bar = b.text("scan-progress").await;
    assert!(bar.starts_with("done"), "the stage is in the bar: {bar}");

    // The table has the API's rows, in the API's order.
    let id = shown_scan_id(&b).await;
    let (_, api) = s.get(&format!("/api/v1/scans/{id}/results")).await;
    let api_rows = api["results"].as_array().expect("results");
    let want: Vec<&str> = api_rows
        .iter()
        .map(|r| r["symbol"].as_str().expect("symbol"))
        .collect();
    let rows = b
        .wait_for("the results table", || async {
            let r = b.rows("results-table").await;
            (r.len() == want.len()).then_some(r)
        })
        .await;
    assert!(want.len() > 50, "{}", want.len());
    let got: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(got, want);
    // Signals are coloured by class.
    let classes: Vec<String> = serde_json::from_value(
        b.client
            .execute(
                "return [...document.querySelectorAll('#results-body .signal')].map(e => e.className)",
                vec![],
            )
            .await
            .expect("classes"),
    )
    .expect("strings");
    assert!(classes.iter().all(|c| c.starts_with("signal ")
        && ["strong-long", "long", "avoid", "short", "strong-short"]
            .iter()
            .any(|k| c.ends_with(k))));
    b.screenshot("scanner").await;

    // Sorting by Symbol reorders the table alphabetically; a second click reverses it.
    b.client
        .find(fantoccini::Locator::Css("th[data-key=symbol] button"))
        .await
        .expect("symbol header")
        .click()
        .await
        .expect("click");
    let sorted = b.rows("results-table").await;
    let syms: Vec<&str> = sorted.iter().map(|r| r[1].as_str()).collect();
    let mut alpha = want.clone();
    alpha.sort_unstable();
    assert_eq!(syms, alpha);
    assert_ne!(syms, want, "sorting changed the order");
    b.client
        .find(fantoccini::Locator::Css("th[data-key=symbol] button"))
        .await
        .expect("symbol header")
        .click()
        .await
        .expect("click");
    let rev: Vec<String> = b
        .rows("results-table")
        .await
        .into_iter()
        .map(|r| r[1].clone())
        .collect();
    alpha.reverse();
    assert_eq!(rev, alpha);
    let aria = b
        .client
        .find(fantoccini::Locator::Css("th[data-key=symbol]"))
        .await
        .expect("th")
        .attr("aria-sort")
        .await
        .expect("attr");
    assert_eq!(aria.as_deref(), Some("descending"));

    // The CSV link downloads a real file: a header, then one line per result.
    b.click("results-csv").await;
    let file = b
        .wait_for("the CSV download", || async {
            let entries = std::fs::read_dir(b.downloads.path()).ok()?;
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "csv"))
        })
        .await;
    assert_eq!(
        file.file_name().and_then(|n| n.to_str()),
        Some(format!("technic-{id}.csv").as_str())
    );
    let csv = b
        .wait_for("the whole CSV", || async {
            let t = std::fs::read_to_string(&file).ok()?;
            (t.lines().count() == want.len() + 1).then_some(t)
        })
        .await;
    let header = csv.lines().next().expect("header");
    assert!(
        header.starts_with("symbol,") || header.contains(",symbol,"),
        "{header}"
    );
    assert!(csv.lines().nth(1).expect("row").starts_with(want[0]));
    // The JSON link is the API's results document.
    let json_href = b.attr("results-json", "href").await.expect("json link");
    let json_href = if json_href.starts_with('/') {
        s.url(&json_href)
    } else {
        json_href
    };
    let (st, doc) = api_support::json_of(
        api_support::client()
            .get(&json_href)
            .send()
            .await
            .expect("json download"),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(doc["results"], api["results"]);
    b.close().await;
}

#[tokio::test]
async fn cancel_mid_scan_shows_cancelled() {
    let _one = ONE_BROWSER.lock().await;
    let s = Server::start(
        &["--workers", "2"],
        &[("TECHNIC_DATA__SYNTHETIC__LATENCY_MS", "10")],
    )
    .await;
    let b = Browser::start().await;
    b.open(&s.url("/")).await;
    b.set_input("scan-universe-size", "3000").await;
    b.click("scan-start").await;
    b.wait_for("the scan to be under way", || async {
        let v = num(b.attr("scan-progress", "aria-valuenow").await);
        let cancel_enabled = b
            .by_testid("scan-cancel")
            .await
            .is_enabled()
            .await
            .unwrap_or(false);
        (v > 0.0 && cancel_enabled).then_some(())
    })
    .await;
    b.click("scan-cancel").await;
    b.wait_text("scan-stage", |t| t == "cancelled").await;
    let bar = b.text("scan-progress").await;
    assert!(bar.starts_with("cancelled"), "{bar}");
    assert!(num(b.attr("scan-progress", "aria-valuenow").await) < 100.0);
    // The API agrees.
    let (_, list) = s.get("/api/v1/scans").await;
    assert_eq!(list["scans"][0]["stage"], "cancelled", "{list}");
    // Start is available again.
    assert!(b
        .by_testid("scan-start")
        .await
        .is_enabled()
        .await
        .expect("enabled"));
    b.close().await;
}

#[tokio::test]
async fn two_scans_chart_two_points_cache_hits_and_clear_empties_it() {
    let _one = ONE_BROWSER.lock().await;
    let redis = RedisServer::start();
    let s = Server::start(&["--workers", "2", "--redis", &redis.url()], &[SLOW]).await;
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
async fn an_invalid_option_shows_invalid_config_and_retry_runs_the_fixed_scan() {
    let _one = ONE_BROWSER.lock().await;
    let s = Server::start(&["--workers", "1"], &[]).await;
    let b = Browser::start().await;
    b.open(&s.url("/")).await;
    b.set_input("scan-universe-size", "0").await;
    b.click("scan-start").await;
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
    assert!(panel.contains("INVALID_CONFIG"), "{panel}");
    // The API's own message and suggestions, verbatim.
    let (st, api) = s.post("/api/v1/scans", r#"{"universe_size": 0}"#).await;
    assert_eq!(st, 400);
    let message = api["error"]["message"].as_str().expect("message");
    assert!(panel.contains(message), "{panel} vs {message}");
    let suggestions = b.rows_of_list("error-suggestions").await;
    let want: Vec<String> =
        serde_json::from_value(api["error"]["suggestions"].clone()).expect("suggestions");
    assert!(!want.is_empty());
    assert_eq!(suggestions, want);
    b.screenshot("error-invalid-config").await;

    // Fix the option, press Retry: the scan runs and the panel goes away.
    b.set_input("scan-universe-size", "40").await;
    b.click("error-retry").await;
    b.wait_text("scan-stage", |t| t == "done").await;
    assert_eq!(
        b.attr("scan-progress", "aria-valuenow").await.as_deref(),
        Some("100")
    );
    assert!(!b
        .by_testid("error-panel")
        .await
        .is_displayed()
        .await
        .expect("displayed"));
    let rows = b
        .wait_for("results", || async {
            let r = b.rows("results-table").await;
            (!r.is_empty()).then_some(r)
        })
        .await;
    assert!(rows.len() <= 40);
    b.close().await;
}

#[tokio::test]
async fn the_token_is_entered_once_and_sent_with_mutating_calls() {
    let _one = ONE_BROWSER.lock().await;
    let s = Server::start(&["--workers", "1", "--token", "web-test-token"], &[]).await;
    let b = Browser::start().await;
    b.open(&s.url("/")).await;
    b.set_input("scan-universe-size", "30").await;
    b.click("scan-start").await;
    let panel = b
        .wait_text("error-panel", |t| t.contains("UNAUTHORIZED"))
        .await;
    assert!(panel.contains("API token"), "{panel}");
    b.set_input("api-token", "web-test-token").await;
    b.client
        .find(fantoccini::Locator::Css("#token-form button"))
        .await
        .expect("save")
        .click()
        .await
        .expect("click");
    b.click("error-retry").await;
    b.wait_text("scan-stage", |t| t == "done").await;
    // A reload shows the newest scan again (its stage and rows), and the token is kept
    // for the session: the next start still sends it.
    b.open(&s.url("/")).await;
    b.wait_text("scan-stage", |t| t == "done").await;
    b.wait_for("the last scan's rows after a reload", || async {
        (!b.rows("results-table").await.is_empty()).then_some(())
    })
    .await;
    b.set_input("scan-universe-size", "30").await;
    b.click("scan-start").await;
    b.wait_text("scan-stage", |t| t == "done").await;
    let (_, list) = s.get("/api/v1/scans").await;
    assert_eq!(list["scans"].as_array().map(Vec::len), Some(2), "{list}");
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
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_technic"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
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
        for (k, v) in FAST_CLUSTER {
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
        self.kill();
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

/// The page and its assets over plain HTTP: content types, the CSP, revalidation with the
/// ETag, an unknown asset answered in the API's error shape, and no token needed to read.
#[tokio::test]
async fn the_page_and_assets_are_served_from_the_binary() {
    let s = Server::start(&["--workers", "1", "--token", "t0ken"], &[]).await;
    let c = api_support::client();
    for (path, ct) in [
        ("/", "text/html; charset=utf-8"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
        (
            "/assets/uPlot.iife.min.js",
            "text/javascript; charset=utf-8",
        ),
        ("/assets/uPlot.min.css", "text/css; charset=utf-8"),
    ] {
        let r = c.get(s.url(path)).send().await.expect("get");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let h = r.headers().clone();
        assert_eq!(h["content-type"], ct, "{path}");
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        let csp = h["content-security-policy"].to_str().expect("csp");
        assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"));
        let etag = h["etag"].clone();
        let body = r.bytes().await.expect("body");
        assert!(!body.is_empty());
        let again = c
            .get(s.url(path))
            .header("if-none-match", etag)
            .send()
            .await
            .expect("revalidate");
        assert_eq!(again.status().as_u16(), 304, "{path}");
    }
    let (st, v) = s.get("/assets/missing.js").await;
    api_support::assert_error(st, &v, 404, "ROUTE_NOT_FOUND");
    let html = c
        .get(s.url("/"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(html.contains("data-testid=\"scan-start\""));
}
