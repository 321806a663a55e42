//! Saved screens, watchlists, schedules and webhooks, end to end: real `technic serve`
//! processes (in process with the file store, and two over a real Redis), the real CLI,
//! and a webhook receiver on loopback that checks every signature.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use support::api::{assert_error, client, json_of, Server};
use support::redis::RedisServer;
use support::technic::{command, FAST_CLUSTER};
use support::wait::wait_for_async;

const SECRET: &str = "a-receiver-secret-0123";
const LONG: Duration = Duration::from_secs(90);

/// A webhook receiver: answers `status` (settable), keeps every request whose signature
/// checks, and counts those whose signature does not.
struct Receiver {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    /// While set, a request is recorded, then never answered.
    hang: Arc<std::sync::atomic::AtomicBool>,
    got: Arc<Mutex<Vec<Value>>>,
    forged: Arc<Mutex<usize>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let status = Arc::new(AtomicU16::new(200));
        let got = Arc::new(Mutex::new(Vec::new()));
        let forged = Arc::new(Mutex::new(0));
        let hang = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, g, f, h) = (status.clone(), got.clone(), forged.clone(), hang.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let (s, g, f, h) = (s.clone(), g.clone(), f.clone(), h.clone());
                    async move {
                        let mut mac =
                            Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
                        mac.update(&body);
                        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
                        let sent = headers
                            .get("x-technic-signature")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        if sent == want {
                            let v: Value = serde_json::from_slice(&body).expect("json body");
                            g.lock().unwrap().push(v);
                        } else {
                            *f.lock().unwrap() += 1;
                        }
                        if h.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_secs(600)).await;
                        }
                        axum::http::StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap()
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            addr,
            status,
            hang,
            got,
            forged,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn events(&self) -> Vec<Value> {
        assert_eq!(
            *self.forged.lock().unwrap(),
            0,
            "a request with a bad signature"
        );
        self.got.lock().unwrap().clone()
    }
}

async fn send(s: &Server, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    json_of(
        client()
            .request(method, s.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request"),
    )
    .await
}

async fn register(s: &Server, url: &str, screens: Value) -> String {
    let (st, v) = send(
        s,
        reqwest::Method::POST,
        "/api/v1/webhooks",
        json!({"url": url, "secret": SECRET, "screens": screens}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert!(v.get("secret").is_none(), "the secret is never shown: {v}");
    v["id"].as_str().expect("id").to_string()
}

/// The runs of `screen`, newest first, once there are at least `n`.
async fn runs(s: &Server, screen: &str, n: usize) -> Vec<Value> {
    wait_for_async(&format!("{n} runs of {screen}"), LONG, async || {
        let (st, v) = s
            .get(&format!("/api/v1/screens/{screen}/runs?limit=1000"))
            .await;
        assert_eq!(st, 200, "{v}");
        let runs = v["runs"].as_array().cloned().unwrap_or_default();
        if runs.len() >= n {
            Ok(runs)
        } else {
            Err(v)
        }
    })
    .await
}

#[tokio::test]
async fn screens_and_watchlists_are_saved_validated_and_a_watchlist_is_a_universe() {
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("screens.json");
    let store_s = store.display().to_string();
    let env = [("TECHNIC_SCREENS__PATH", store_s.as_str())];
    let mut s = Server::start(&["--workers", "2"], &env).await;

    // Watchlists: create (upper-cased, deduplicated), refuse a second of that name,
    // replace from CSV, export as CSV; a bad CSV row is named by its line.
    let (st, v) = send(
        &s,
        reqwest::Method::POST,
        "/api/v1/watchlists",
        json!({"name": "tech", "symbols": ["azgq", " DFVN", "AZGQ"]}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["symbols"], json!(["AZGQ", "DFVN"]));
    assert_eq!(v["version"], 1);
    let (st, v) = send(
        &s,
        reqwest::Method::POST,
        "/api/v1/watchlists",
        json!({"name": "tech", "symbols": ["CUCY"]}),
    )
    .await;
    assert_error(st, &v, 409, "ALREADY_EXISTS");
    let put = |body: &'static str| {
        client()
            .put(s.url("/api/v1/watchlists/tech"))
            .header("content-type", "text/csv")
            .body(body)
            .send()
    };
    let (st, v) = json_of(
        put("symbol\nCUCY\nnot a symbol!\nBWRU\n")
            .await
            .expect("put"),
    )
    .await;
    assert_error(st, &v, 400, "INVALID_INPUT");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("line 3"),
        "{v}"
    );
    let (st, v) = json_of(put("symbol\ncucy\nBWRU\nDROC\n").await.expect("put")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["version"], 2);
    let csv = client()
        .get(s.url("/api/v1/watchlists/tech?format=csv"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert_eq!(csv, "symbol\nCUCY\nBWRU\nDROC\n");

    // A scan over the watchlist scans its symbols and nothing else.
    let id = s
        .submit(r#"{"watchlist": "tech", "min_dollar_volume": 0, "min_price": 0}"#)
        .await;
    let done = s.wait_done(&id).await;
    assert_eq!(done["stage"], "done", "{done}");
    let (_, results) = s.get(&format!("/api/v1/scans/{id}/results")).await;
    let got: BTreeSet<String> = results["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["symbol"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        (done["universe_size"].clone(), done["scanned"].clone()),
        (json!(3), json!(3)),
        "{done}"
    );
    assert!(
        got.iter()
            .all(|x| ["CUCY", "BWRU", "DROC"].contains(&x.as_str())),
        "{got:?}"
    );
    let (st, v) = s.post("/api/v1/scans", r#"{"watchlist": "nope"}"#).await;
    assert_error(st, &v, 400, "INVALID_CONFIG");
    let (st, v) = s
        .post(
            "/api/v1/scans",
            r#"{"watchlist": "tech", "symbols": ["A"]}"#,
        )
        .await;
    assert_error(st, &v, 400, "INVALID_CONFIG");

    // Screens: every problem at once; create, refuse a duplicate, new versions, delete.
    let (st, v) = s
        .post(
            "/api/v1/screens",
            r#"{"name": "a b", "top": 0, "bogus": 1, "watchlist": "missing",
            "schedule": {"cron": "* * *", "timezone": "Mars/Base"}}"#,
        )
        .await;
    assert_error(st, &v, 400, "INVALID_CONFIG");
    let message = v["error"]["message"].as_str().unwrap();
    for needle in [
        "screen name",
        "3 fields",
        "Mars/Base",
        "bogus",
        "top",
        "missing",
        "6 problems",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    let body = r#"{"name": "weekly", "watchlist": "tech", "top": 2,
        "schedule": {"cron": "0 15 16 * * Mon-Fri", "timezone": "America/New_York"}}"#;
    let (st, v) = s.post("/api/v1/screens", body).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        (v["version"].clone(), v["config"]["top"].clone()),
        (json!(1), json!(2))
    );
    let (st, v) = s.post("/api/v1/screens", body).await;
    assert_error(st, &v, 409, "ALREADY_EXISTS");
    let (st, v) = send(
        &s,
        reqwest::Method::PUT,
        "/api/v1/screens/weekly",
        json!({"config": {"watchlist": "tech", "top": 3}}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["version"].clone(), v["config"]["top"].clone()),
        (json!(2), json!(3))
    );
    assert!(
        v.get("schedule").is_none(),
        "a PUT replaces the whole screen: {v}"
    );
    let (st, v) = send(&s, reqwest::Method::PUT, "/api/v1/screens/weekly",
        json!({"top": 2, "watchlist": "tech", "schedule": {"cron": "0 15 16 * * Mon-Fri", "timezone": "America/New_York"}})).await;
    assert_eq!((st, v["version"].clone()), (200, json!(3)), "{v}");

    // Run it now: the run records the version, and its first run's matches are all new.
    let (st, v) = s.post("/api/v1/screens/weekly/run", "").await;
    assert_eq!(st, 202, "{v}");
    let run_id = v["run_id"].as_str().unwrap().to_string();
    let r = runs(&s, "weekly", 1).await;
    assert_eq!(r[0]["run_id"], run_id.as_str());
    assert_eq!(
        (r[0]["version"].clone(), r[0]["trigger"].clone()),
        (json!(3), json!("manual"))
    );
    assert_eq!(
        r[0]["diff"]["new"].as_array().unwrap().len(),
        r[0]["matches"].as_u64().unwrap() as usize
    );

    // The file store outlives the process.
    s.stop();
    let s = Server::start(&["--workers", "1"], &env).await;
    let (st, v) = s.get("/api/v1/screens/weekly").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["version"], 3);
    assert!(v["next_tick"].is_string(), "{v}");
    assert_eq!(v["last_run"]["run_id"], run_id.as_str());
    let (st, v) = s.get("/api/v1/screens").await;
    assert_eq!(
        (st, v["screens"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{v}"
    );
    let (st, _) = send(
        &s,
        reqwest::Method::DELETE,
        "/api/v1/screens/weekly",
        Value::Null,
    )
    .await;
    assert_eq!(st, 204);
    let (st, v) = s.get("/api/v1/screens/weekly").await;
    assert_error(st, &v, 404, "NOT_FOUND");
    let (st, _) = send(
        &s,
        reqwest::Method::DELETE,
        "/api/v1/watchlists/tech",
        Value::Null,
    )
    .await;
    assert_eq!(st, 204);
}

fn write(dir: &Path, symbol: &str, text: &str) {
    std::fs::write(dir.join(format!("{symbol}.csv")), text).expect("write csv");
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    command(args, env).output().expect("technic")
}

/// [`cli`], which must succeed.
fn cli_ok(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let out = cli(args, env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// 300 daily bars from 2024-01-01 at 50: `flat` days unchanged, then `rising` days up 1 %
/// on 3× volume for the last 5 (a small zig-zag throughout). 280 + 20 scans `Long`; 300
/// flat scans `Avoid` (checked by the test).
fn bars(flat: usize, rising: usize) -> String {
    let mut out = String::from("date,open,high,low,close,volume\n");
    let mut c = 50.0f64;
    let d0 = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let n = flat + rising;
    for i in 0..n {
        let step = if i < flat { 0.0 } else { 0.01 } + if i % 2 == 1 { 0.003 } else { -0.003 };
        let next = c * (1.0 + step);
        let (hi, lo) = (c.max(next) * 1.004, c.min(next) * 0.996);
        let volume = if i + 5 >= n && rising > 0 {
            3_000_000
        } else {
            1_000_000
        } + (i % 5) * 20_000;
        let d = d0 + chrono::Duration::days(i as i64);
        out.push_str(&format!("{d},{c:.4},{hi:.4},{lo:.4},{next:.4},{volume}\n"));
        c = next;
    }
    out
}

#[test]
fn the_diff_is_exact_on_crafted_csv_data_through_the_cli() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("bars");
    std::fs::create_dir(&data).expect("mkdir");
    let (long, avoid) = (bars(280, 20), bars(300, 0));
    write(&data, "KEEP", &long);
    write(&data, "FLIP", &long);
    write(&data, "GONE", &avoid);
    let store = dir.path().join("screens.json").display().to_string();
    let data_arg = format!("csv:{}", data.display());
    let env = [("TECHNIC_SCREENS__PATH", store.as_str())];
    cli_ok(
        &[
            "screen",
            "save",
            "crafted",
            "--data",
            &data_arg,
            "--min-dollar-volume",
            "0",
        ],
        &env,
    );
    let run = || -> std::collections::BTreeMap<String, String> {
        let out = cli_ok(
            &[
                "screen", "run", "crafted", "--data", &data_arg, "--format", "json", "-q",
            ],
            &env,
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("report json");
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["symbol"].as_str().unwrap().to_string(),
                    r["signal"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let signals = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        run(),
        signals(&[("FLIP", "Long"), ("GONE", "Avoid"), ("KEEP", "Long")])
    );

    // GONE's file goes, NEWC's comes, FLIP's rise is gone: known in advance.
    std::fs::remove_file(data.join("GONE.csv")).expect("rm");
    write(&data, "NEWC", &long);
    write(&data, "FLIP", &avoid);
    assert_eq!(
        run(),
        signals(&[("FLIP", "Avoid"), ("KEEP", "Long"), ("NEWC", "Long")])
    );

    let out = cli_ok(&["screen", "runs", "crafted"], &env);
    let runs: Value = serde_json::from_slice(&out.stdout).expect("runs json");
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs}");
    assert_eq!(
        runs[0]["diff"],
        json!({"new": ["NEWC"], "dropped": ["GONE"], "changed": [{"symbol": "FLIP", "from": "Long", "to": "Avoid"}]}),
        "{runs}"
    );
    assert_eq!(runs[1]["diff"]["new"], json!(["FLIP", "GONE", "KEEP"]));
    // A third run over the same data differs in nothing.
    run();
    let out = cli_ok(&["screen", "runs", "crafted", "--limit", "1"], &env);
    let runs: Value = serde_json::from_slice(&out.stdout).expect("runs json");
    assert_eq!(
        runs[0]["diff"],
        json!({"new": [], "dropped": [], "changed": []})
    );

    // Watchlists from the CLI: a bad CSV names its file and line; a good one is a universe.
    let csv = dir.path().join("list.csv");
    std::fs::write(&csv, "ticker\nNEWC\nbad symbol!\n").expect("write");
    let out = cli(
        &["watchlist", "import", "mine", csv.to_str().unwrap()],
        &env,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{} line 3", csv.display())), "{err}");
    std::fs::write(&csv, "ticker\nnewc\nFLIP\n").expect("write");
    cli_ok(
        &["watchlist", "import", "mine", csv.to_str().unwrap()],
        &env,
    );
    let out = cli_ok(
        &[
            "scan",
            "--data",
            &data_arg,
            "--watchlist",
            "mine",
            "--format",
            "json",
            "-q",
            "--min-dollar-volume",
            "0",
        ],
        &env,
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let symbols: BTreeSet<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(symbols, BTreeSet::from(["FLIP", "NEWC"]));
    let out = cli(&["watchlist", "export", "mine"], &env);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "symbol\nNEWC\nFLIP\n");
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_then_a_dead_letter_and_the_next_event_once_it_recovers() {
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("screens.json").display().to_string();
    let env = [
        ("TECHNIC_SCREENS__PATH", store.as_str()),
        ("TECHNIC_SCREENS__WEBHOOK_ATTEMPTS", "3"),
        ("TECHNIC_SCREENS__RETRY_BASE_MS", "50"),
        ("TECHNIC_SCREENS__RETRY_MAX_MS", "200"),
        ("TECHNIC_CACHE__SCAN_RESULTS", "false"),
    ];
    let s = Server::start(&["--workers", "1", "--cache", "none"], &env).await;
    let (st, v) = s
        .post(
            "/api/v1/watchlists",
            r#"{"name": "few", "symbols": ["AZGQ"]}"#,
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let rx = Receiver::start().await;
    rx.status.store(500, Ordering::SeqCst);
    let hook = register(&s, &rx.url(), json!(["rising"])).await;
    // A webhook for another screen hears nothing.
    let quiet = Receiver::start().await;
    register(&s, &quiet.url(), json!(["other"])).await;
    let (st, v) = s
        .post(
            "/api/v1/screens",
            r#"{"name": "rising", "watchlist": "few", "min_dollar_volume": 0, "min_price": 0}"#,
        )
        .await;
    assert_eq!(st, 201, "{v}");

    let (st, _) = s.post("/api/v1/screens/rising/run", "").await;
    assert_eq!(st, 202);
    runs(&s, "rising", 1).await;
    let (_, dead) = s.get("/api/v1/webhooks/dead-letters").await;
    let dead = dead["deliveries"].as_array().cloned().unwrap_or_default();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        (
            dead[0]["webhook"].as_str(),
            dead[0]["attempts"].as_u64(),
            dead[0]["status"].as_u64()
        ),
        (Some(hook.as_str()), Some(3), Some(500))
    );
    let events = rx.events();
    assert_eq!(events.len(), 3, "three attempts of one event: {events:?}");
    assert!(
        events.iter().all(|e| e == &events[0]),
        "the same body each time (dedupe by id)"
    );
    assert_eq!(events[0]["new"], json!(["AZGQ"]));
    assert_eq!(events[0]["screen"], "rising");

    // No difference: nothing is sent.
    let (st, _) = s.post("/api/v1/screens/rising/run", "").await;
    assert_eq!(st, 202);
    runs(&s, "rising", 2).await;
    assert_eq!(rx.events().len(), 3);

    // The receiver recovers; the next difference reaches it once.
    rx.status.store(200, Ordering::SeqCst);
    let (st, v) = send(
        &s,
        reqwest::Method::PUT,
        "/api/v1/watchlists/few",
        json!({"symbols": ["AZGQ", "DFVN"]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.post("/api/v1/screens/rising/run", "").await;
    assert_eq!(st, 202);
    let run_id = v["run_id"].as_str().unwrap().to_string();
    runs(&s, "rising", 3).await;
    let events = rx.events();
    assert_eq!(events.len(), 4, "{events:?}");
    let last = &events[3];
    assert_eq!(
        (last["new"].clone(), last["run_id"].as_str()),
        (json!(["DFVN"]), Some(run_id.as_str()))
    );
    assert_ne!(last["id"], events[0]["id"]);
    assert!(quiet.events().is_empty());
    let (_, log) = s.get("/api/v1/webhooks/deliveries").await;
    let log = log["deliveries"].as_array().cloned().unwrap_or_default();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        (log[0]["delivered"].clone(), log[1]["delivered"].clone()),
        (json!(true), json!(false))
    );
    let metrics = client()
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "technic_webhook_deliveries_total{outcome=\"dead_letter\"} 1",
        "technic_webhook_deliveries_total{outcome=\"retried\"} 2",
        "technic_webhook_deliveries_total{outcome=\"delivered\"} 1",
        "technic_screen_runs_total{outcome=\"done\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
}

/// Two `technic serve`s on the Redis at `url` (node ids `serve-a`, `serve-b`), one local
/// worker each, no cache, with `extra` settings.
async fn two_serves(url: &str, extra: &[(&str, &str)]) -> (Server, Server) {
    let serve = async |id: &'static str| {
        let mut env = FAST_CLUSTER.to_vec();
        env.push(("TECHNIC_CLUSTER__NODE_ID", id));
        env.extend_from_slice(extra);
        Server::start(&["--redis", url, "--workers", "1", "--cache", "none"], &env).await
    };
    (serve("serve-a").await, serve("serve-b").await)
}

/// The node holding the leader lease.
async fn leader(s: &Server) -> String {
    wait_for_async("a leader", LONG, async || {
        let (_, v) = s.get("/api/v1/cluster/nodes").await;
        v["leader"].as_str().map(str::to_string).ok_or(v)
    })
    .await
}

#[tokio::test]
async fn a_schedule_fires_once_per_tick_on_two_serves_and_through_the_leaders_kill() {
    let redis = RedisServer::start();
    let (mut a, mut b) = two_serves(&redis.url(), &[]).await;
    let rx = Receiver::start().await;
    register(&a, &rx.url(), json!("all")).await;
    let (st, v) = a
        .post(
            "/api/v1/screens",
            r#"{"name": "every2s", "universe_size": 40,
            "schedule": {"cron": "*/2 * * * * *", "timezone": "UTC"}}"#,
        )
        .await;
    assert_eq!(st, 201, "{v}");
    // Both serves see the same screen.
    let (st, v) = b.get("/api/v1/screens/every2s").await;
    assert_eq!((st, v["version"].clone()), (200, json!(1)), "{v}");

    runs(&a, "every2s", 3).await;
    let first = leader(&a).await;
    let (survivor, killed) = if first == "serve-a" {
        a.kill9();
        (&b, "serve-a")
    } else {
        b.kill9();
        (&a, "serve-b")
    };
    let before = runs(survivor, "every2s", 1).await.len();
    let all = runs(survivor, "every2s", before + 4).await;
    assert_ne!(leader(survivor).await, killed);

    // Every tick from the first to the last ran once: 2 s apart, none twice, none missing.
    let mut ticks: Vec<i64> = all
        .iter()
        .map(|r| {
            assert_eq!(r["stage"], "done", "{r}");
            assert_eq!(r["trigger"], "schedule", "{r}");
            chrono::DateTime::parse_from_rfc3339(r["tick"].as_str().expect("tick"))
                .expect("rfc3339")
                .timestamp_millis()
        })
        .collect();
    ticks.reverse();
    for w in ticks.windows(2) {
        assert_eq!(w[1] - w[0], 2000, "ticks {ticks:?}");
    }
    // Synthetic data does not change between runs: only the first run differs (all new),
    // and it reached the receiver once, signed.
    let events = rx.events();
    let with_diff = all
        .iter()
        .filter(|r| r["diff"]["new"].as_array().is_some_and(|n| !n.is_empty()))
        .count();
    assert_eq!((with_diff, events.len()), (1, 1), "{events:?}");
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len());
    a.stop();
    b.stop();
}

#[tokio::test]
async fn on_a_redis_cluster_screens_watchlists_and_tick_claims_work() {
    let redis = support::redis::RedisCluster::start();
    let url = redis.target();
    let mut env = FAST_CLUSTER.to_vec();
    env.push(("TECHNIC_CLUSTER__NODE_ID", "serve-c"));
    let mut s = Server::start(
        &["--redis", &url, "--workers", "1", "--cache", "none"],
        &env,
    )
    .await;
    let (st, v) = s
        .post(
            "/api/v1/watchlists",
            r#"{"name": "pair", "symbols": ["AZGQ", "DFVN"]}"#,
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = s
        .post(
            "/api/v1/screens",
            r#"{"name": "often", "watchlist": "pair", "min_dollar_volume": 0,
            "min_price": 0, "schedule": {"cron": "* * * * * *"}}"#,
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let all = runs(&s, "often", 3).await;
    let ticks: BTreeSet<&str> = all
        .iter()
        .map(|r| r["tick"].as_str().expect("tick"))
        .collect();
    assert_eq!(ticks.len(), all.len(), "a tick ran twice: {all:?}");
    assert_eq!(all.last().unwrap()["matches"], 2, "{all:?}");
    s.stop();
}

#[tokio::test]
async fn a_leader_killed_mid_run_leaves_its_tick_to_the_other_serve_which_runs_it_once() {
    let redis = RedisServer::start();
    let (mut a, mut b) = two_serves(
        &redis.url(),
        &[
            ("TECHNIC_SCREENS__LEASE_MS", "2000"),
            ("TECHNIC_SCREENS__WEBHOOK_ATTEMPTS", "1"),
            ("TECHNIC_SCREENS__WEBHOOK_TIMEOUT_MS", "600000"),
        ],
    )
    .await;
    let rx = Receiver::start().await;
    // The first delivery hangs: the leader is mid-run (scanned, delivering, not recorded).
    rx.hang.store(true, Ordering::SeqCst);
    register(&a, &rx.url(), json!("all")).await;
    let (st, v) = a
        .post(
            "/api/v1/screens",
            r#"{"name": "every3s", "universe_size": 30,
            "schedule": {"cron": "*/3 * * * * *", "timezone": "UTC"}}"#,
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let first = wait_for_async("the first delivery", LONG, async || {
        let got = rx.got.lock().unwrap().clone();
        got.first().cloned().ok_or(got.len())
    })
    .await;
    let (killed, survivor) = if leader(&a).await == "serve-a" {
        a.kill9();
        ("serve-a", &b)
    } else {
        b.kill9();
        ("serve-b", &a)
    };
    rx.hang.store(false, Ordering::SeqCst);
    // The survivor leads, the dead run's claims lapse, and it runs that tick again whole:
    // the same event (same id) reaches the receiver, and the tick is recorded once.
    let runs = runs(survivor, "every3s", 3).await;
    assert_ne!(leader(survivor).await, killed);
    let events = rx.events();
    assert_eq!(events.len(), 2, "{events:?}");
    // The same event by a new scan of the same tick.
    for field in ["id", "tick", "new", "dropped", "changed"] {
        assert_eq!(events[1][field], first[field], "{field}: {events:?}");
    }
    assert_ne!(events[1]["run_id"], first["run_id"]);
    let ticks: Vec<&str> = runs
        .iter()
        .map(|r| r["tick"].as_str().expect("tick"))
        .collect();
    let unique: BTreeSet<&&str> = ticks.iter().collect();
    assert_eq!(
        unique.len(),
        ticks.len(),
        "a tick recorded twice: {ticks:?}"
    );
    let oldest = runs.last().unwrap();
    assert_eq!(oldest["tick"], first["tick"], "{runs:?}");
    assert_eq!(oldest["diff"]["new"], first["new"]);
    a.stop();
    b.stop();
}
