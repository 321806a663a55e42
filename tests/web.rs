//! The dashboard's Scanner page in a real headless Chromium (chromedriver + fantoccini)
//! against a real `technic serve`: a scan started from the page (progress to 100 %, the
//! API's rows, sorting, a real CSV download, the JSON link), cancel, an invalid option and
//! Retry, the token, the alpha model's columns and warning; and the page's files over
//! plain HTTP. The operator pages (performance,
//! cache, cluster) are in `tests/web_ops.rs`. Screenshots go to `target/screenshots/`.

mod support;

use support::api::Server;
use support::web::{num, start_and_follow, Browser, ONE_BROWSER, SLOW};

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
    let (st, doc) = support::api::json_of(
        support::api::client()
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
    b.enter_token("web-test-token").await;
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
    b.scan("30").await;
    let (_, list) = s.get("/api/v1/scans").await;
    assert_eq!(list["scans"].as_array().map(Vec::len), Some(2), "{list}");
    b.close().await;
}

/// The page with the read-only token: before it, nothing can be read (the newest scan is
/// not shown); entered, the newest scan and its rows appear, the CSV downloads through the
/// token, the Cluster page lists the node; a start is refused as FORBIDDEN.
#[tokio::test]
async fn the_read_only_token_reads_everything_and_starts_nothing() {
    let _one = ONE_BROWSER.lock().await;
    let s = Server::start(
        &["--workers", "1", "--token", "full-web-token"],
        &[("TECHNIC_API__READ_TOKEN", "read-web-token")],
    )
    .await;
    let r = support::api::client()
        .post(s.url("/api/v1/scans"))
        .bearer_auth("full-web-token")
        .body(r#"{"universe_size": 25}"#)
        .send()
        .await
        .expect("submit");
    let (st, v) = support::api::json_of(r).await;
    assert_eq!(st, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let done = s.wait_done(&id).await;
    let b = Browser::start().await;
    b.open(&s.url("/")).await;
    b.nav("Cluster").await;
    b.wait_text("error-panel", |t| t.contains("UNAUTHORIZED"))
        .await;
    b.nav("Scanner").await;
    assert!(b.rows("results-table").await.is_empty());
    b.enter_token("read-web-token").await;
    b.wait_text("scan-stage", |t| t == "done").await;
    let rows = b
        .wait_for("the newest scan's rows", || async {
            let r = b.rows("results-table").await;
            (!r.is_empty()).then_some(r)
        })
        .await;
    assert_eq!(
        Some(rows.len()),
        done["results_count"].as_u64().map(|n| n as usize),
        "{done}"
    );
    b.click("results-csv").await;
    let csv = b
        .wait_for("the CSV download", || async {
            let f = std::fs::read_dir(b.downloads.path())
                .ok()?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "csv"))?;
            let t = std::fs::read_to_string(&f).ok()?;
            (t.lines().count() == rows.len() + 1).then_some(t)
        })
        .await;
    assert!(
        csv.starts_with("symbol,") || csv.lines().next().is_some_and(|h| h.contains(",symbol,")),
        "{csv}"
    );
    b.nav("Cluster").await;
    b.wait_for("the node on the Cluster page", || async {
        (!b.rows("cluster-nodes").await.is_empty()).then_some(())
    })
    .await;
    b.nav("Scanner").await;
    b.set_input("scan-universe-size", "20").await;
    b.click("scan-start").await;
    let panel = b
        .wait_text("error-panel", |t| t.contains("FORBIDDEN"))
        .await;
    assert!(panel.contains("full token"), "{panel}");
    let (_, list) = s.get("/api/v1/scans").await;
    assert_eq!(list["scans"].as_array().map(Vec::len), Some(1), "{list}");
    b.close().await;
}

/// The page and its assets over plain HTTP: content types, the CSP, revalidation with the
/// ETag, an unknown asset answered in the API's error shape, and no token needed to load
/// them (the page asks for the token).
#[tokio::test]
async fn the_page_and_assets_are_served_from_the_binary() {
    let s = Server::start(&["--workers", "1", "--token", "t0ken"], &[]).await;
    let c = support::api::client();
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
    support::api::assert_error(st, &v, 404, "ROUTE_NOT_FOUND");
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

/// The same scan again is answered from the scan-result cache, and the summary says which
/// scan computed it; its results are the first scan's.
#[tokio::test]
async fn a_repeated_scan_says_it_came_from_the_scan_cache() {
    let _one = ONE_BROWSER.lock().await;
    let s = Server::start(&["--workers", "1"], &[]).await;
    let b = Browser::start().await;
    b.open(&s.url("/")).await;
    b.scan("20").await;
    let first = b.wait_text("scan-summary", |t| t.contains("results")).await;
    assert!(!first.contains("scan cache"), "computed: {first}");
    let (_, list) = s.get("/api/v1/scans").await;
    let first_id = list["scans"][0]["id"].as_str().expect("an id").to_string();
    b.click("scan-start").await;
    let again = b
        .wait_text("scan-summary", |t| {
            t.contains("answered from the scan cache")
        })
        .await;
    assert!(again.contains(&first_id), "names the scan: {again}");
    b.screenshot("scan-from-cache").await;
    b.close().await;
}

/// A scan that ran with its cache down completes, and the page says so: the report's
/// CACHE_UNAVAILABLE warning with its suggestions under the summary.
#[tokio::test]
async fn a_scan_with_the_cache_down_shows_its_warning() {
    let _one = ONE_BROWSER.lock().await;
    let mut redis = support::redis::RedisServer::start();
    let url = redis.url();
    redis.kill();
    let s = Server::start(&["--workers", "1", "--cache", &url], &[]).await;
    let b = Browser::start().await;
    b.open(&s.url("/")).await;
    b.scan("20").await;
    let warnings = b
        .wait_text("scan-warnings", |t| t.contains("CACHE_UNAVAILABLE"))
        .await;
    assert!(
        warnings.contains("Redis"),
        "the suggestions are shown: {warnings}"
    );
    b.screenshot("scan-warnings").await;
    // The next scan, with the cache still down, reports it again.
    b.click("scan-start").await;
    b.wait_text("scan-stage", |t| t == "done").await;
    assert!(b.text("scan-warnings").await.contains("CACHE_UNAVAILABLE"));
    b.close().await;
}

/// A serve with an alpha model: the Scanner's table gains Score, α 5d and α 10d after
/// TechRating, filled from the API's rows, and the summary names the model. A serve whose
/// model cannot serve shows the ML_UNAVAILABLE warning and no alpha columns. The
/// Performance page shows the model's holdout figures, or why it cannot serve.
#[tokio::test]
async fn the_scanner_shows_the_alpha_columns_and_a_broken_models_warning() {
    let _one = ONE_BROWSER.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("model.json");
    let model = model.to_str().expect("utf-8 path");
    let market = [
        ("TECHNIC_DATA__SYNTHETIC__ALPHA_STRENGTH", "0.3"),
        ("TECHNIC_DATA__SYNTHETIC__DAYS", "360"),
        ("TECHNIC_ML__HISTORY_DAYS", "360"),
        ("TECHNIC_ML__EPOCHS", "150"),
    ];
    let train = [
        "ml",
        "train",
        "--universe-size",
        "200",
        "--holdout-days",
        "60",
    ];
    let out = support::technic::command(&train, &market)
        .args(["--out", model])
        .output()
        .expect("technic ml train");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let serve = |model: String| async move {
        let mut env = market.to_vec();
        env.push(("TECHNIC_ML__MODEL", &model));
        Server::start(&["--workers", "1"], &env).await
    };
    let s = serve(model.to_string()).await;
    let b = Browser::start().await;
    b.open(&s.url("/")).await;
    b.scan("50").await;
    let summary = b
        .wait_text("scan-summary", |t| t.contains("alphas by model"))
        .await;
    let (_, list) = s.get("/api/v1/scans").await;
    let id = list["scans"][0]["id"].as_str().expect("an id").to_string();
    let (_, state) = s.get(&format!("/api/v1/scans/{id}")).await;
    let version = state["model"].as_str().expect("the report names the model");
    assert!(summary.contains(version), "{summary}");
    let table = b.text("results-table").await;
    let at = |label: &str| {
        table
            .find(label)
            .unwrap_or_else(|| panic!("{label}: {table}"))
    };
    assert!(at("TechRating") < at("Score") && at("Score") < at("α 5d") && at("α 5d") < at("α 10d"));
    let (_, api) = s.get(&format!("/api/v1/scans/{id}/results")).await;
    let first = &api["results"][0];
    let row = &b.rows("results-table").await[0];
    // Columns: #, Symbol, Sector, Signal, TechRating, Score, α 5d, α 10d, …
    assert_eq!(row[1], first["symbol"].as_str().unwrap());
    assert_eq!(row[5], format!("{:.1}", first["score"].as_f64().unwrap()));
    assert_eq!(
        row[6],
        format!("{:.2}%", first["alpha_5d"].as_f64().unwrap() * 100.0)
    );
    b.screenshot("scan-alphas").await;

    // The Performance page: the model's holdout figures, as the API reports them.
    let (_, served) = s.get("/api/v1/ml/model").await;
    assert_eq!(served["observedValue"], version, "{served:#}");
    b.nav("Performance").await;
    b.wait_text("model-badge", |t| t == format!("Model {version}"))
        .await;
    let summary = b.text("model-summary").await;
    assert!(
        summary.contains("accepted") && summary.contains("1 blended, 0 neutral"),
        "{summary}"
    );
    let rows = b.rows("model-table").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, horizon) in rows.iter().zip(["5", "10"]) {
        let figures = &served["horizons"][horizon];
        assert_eq!(row[0], format!("{horizon} d"));
        assert_eq!(
            row[1],
            format!("{:.4}", figures["rank_ic"].as_f64().unwrap())
        );
        assert_eq!(
            row[5],
            format!("{:.1}", figures["t_stat"].as_f64().unwrap())
        );
        assert_eq!(
            row[6],
            format!("{:.1}", figures["ic_t_stat"].as_f64().unwrap())
        );
        assert_eq!(row[10], "yes");
    }
    b.screenshot("performance-model").await;
    b.close().await;
    drop(s);

    let s = serve("/nonexistent/model.json".into()).await;
    let b = Browser::start().await;
    b.open(&s.url("/")).await;
    b.scan("20").await;
    let warnings = b
        .wait_text("scan-warnings", |t| t.contains("ML_UNAVAILABLE"))
        .await;
    assert!(
        warnings.contains("cannot be read") && warnings.contains("technic ml train"),
        "{warnings}"
    );
    assert!(!b.text("results-table").await.contains("α 5d"));
    b.nav("Performance").await;
    b.wait_text("model-badge", |t| t == "Model unavailable")
        .await;
    let summary = b.text("model-summary").await;
    assert!(
        summary.contains("cannot be read") && summary.contains("0 blended, 1 neutral"),
        "{summary}"
    );
    assert!(b.rows("model-table").await.is_empty());
    b.close().await;
}
