//! The alpha model end to end, as a user runs it: `technic ml train` on the synthetic
//! market with a planted factor (the positive control) and on a martingale market (the
//! negative control), then `technic scan --model` serving the result, and every way a
//! model can fail to be served degrading the scan to neutral alphas with a warning.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;
use support::api::{Server, DEADLINE};
use support::kept_env;
use support::redis::{query, RedisCluster, RedisServer};
use support::technic::{run_json, Proc, FAST_CLUSTER};
use support::wait::{wait_for, wait_for_async};

mod support;

const SYMBOLS: &str = "200";

/// The default synthetic market (a martingale) with the planted factor at `alpha`; small
/// enough to train in seconds.
fn technic(alpha: &str) -> Command {
    let mut c = Command::cargo_bin("technic").expect("binary built");
    c.env_clear().envs(kept_env()).envs([
        ("TECHNIC_DATA__SYNTHETIC__ALPHA_STRENGTH", alpha),
        ("TECHNIC_DATA__SYNTHETIC__DAYS", "360"),
        ("TECHNIC_ML__HISTORY_DAYS", "360"),
        ("TECHNIC_ML__EPOCHS", "150"),
    ]);
    c
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "stderr: {}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

struct Trained {
    _dir: tempfile::TempDir,
    planted: (PathBuf, Value),
    noise: (PathBuf, Value),
}

/// Both controls, trained once for every test of this file.
fn trained() -> &'static Trained {
    static T: OnceLock<Trained> = OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let train = |alpha: &str, name: &str| {
            let path = dir.path().join(name);
            let out = technic(alpha)
                .args([
                    "ml",
                    "train",
                    "--universe-size",
                    SYMBOLS,
                    "--holdout-days",
                    "60",
                ])
                .args(["--format", "json", "--out"])
                .arg(&path)
                .output()
                .unwrap();
            (path, json(&out))
        };
        Trained {
            planted: train("0.3", "planted.json"),
            noise: train("0", "noise.json"),
            _dir: dir,
        }
    })
}

fn scan(alpha: &str, extra: &[&str]) -> Output {
    technic(alpha)
        .args(["scan", "--universe-size", SYMBOLS, "--format", "json", "-q"])
        .args(extra)
        .output()
        .unwrap()
}

/// The planted market (alpha 0.3, 360 days) with the fast cluster timings, for the
/// processes of a cluster test.
fn planted_cluster_env() -> Vec<(&'static str, &'static str)> {
    let mut env = FAST_CLUSTER.to_vec();
    env.extend([
        ("TECHNIC_DATA__SYNTHETIC__ALPHA_STRENGTH", "0.3"),
        ("TECHNIC_DATA__SYNTHETIC__DAYS", "360"),
    ]);
    env
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The holdout Rank IC a model must reach on the market planted at strength `a`, for an
/// `h`-day horizon: a quarter of what perfect knowledge of the hidden signal would give.
/// The signal z (AR(1), persistence ρ, unit variance) at day t adds a·σ·ρᵏ·z to day
/// t+1+k's log return, so the h-day return carries c·σ·z, c = a(1 − ρʰ)/(1 − ρ), against
/// noise of about σ·√h: a correlation of c/√(c² + h). The model sees z only through the
/// day's volume, blurred by the volume's own noise: a quarter leaves room for that (0.12
/// at 5 days and 0.13 at 10 for a = 0.3; a model reaches about twice that).
fn planted_rank_ic_bar(a: f64, h: i32) -> f64 {
    let rho = technic::data::synthetic::FACTOR_PERSISTENCE;
    let c = a * (1.0 - rho.powi(h)) / (1.0 - rho);
    c / (c * c + f64::from(h)).sqrt() / 4.0
}

#[test]
fn the_planted_factor_is_found_and_accepted_and_pure_noise_is_refused() {
    let t = trained();
    let (file, planted) = &t.planted;
    assert_eq!(planted["accepted"], true, "{planted:#}");
    assert_eq!(planted["model"], path(file));
    for h in ["5", "10"] {
        let m = &planted["horizons"][h];
        for k in [
            "ic",
            "rank_ic",
            "icir",
            "t_stat",
            "ic_t_stat",
            "spread",
            "dates",
            "symbols",
        ] {
            assert!(m[k].is_number(), "{h}d {k}: {m:#}");
        }
        assert!(m["t_stat"].as_f64().unwrap() >= 2.0, "{m:#}");
        assert!(m["ic_t_stat"].as_f64().unwrap() >= 2.0, "{m:#}");
        let bar = planted_rank_ic_bar(0.3, h.parse().unwrap());
        assert!(m["rank_ic"].as_f64().unwrap() > bar, "{bar}: {m:#}");
        assert!(m["spread"].as_f64().unwrap() > 0.0, "{m:#}");
        assert_eq!(m["dates"], 60);
        assert_eq!(m["symbols"].as_u64(), Some(SYMBOLS.parse().unwrap()));
    }
    let (_, noise) = &t.noise;
    assert_eq!(noise["accepted"], false, "{noise:#}");
    for h in ["5", "10"] {
        let m = &noise["horizons"][h];
        assert!(m["t_stat"].as_f64().unwrap() < 2.0, "{m:#}");
        assert!(m["rank_ic"].as_f64().unwrap().abs() < 0.05, "{m:#}");
        assert_eq!(m["accepted"], false);
    }

    // The file holds what a server needs to check and serve it.
    let model: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!(model["format"], 1);
    assert_eq!(model["features"].as_array().unwrap().len(), 21);
    assert_eq!(model["normalisation"].as_array().unwrap().len(), 21);
    assert_eq!(model["accepted"], true);
    assert!(model["namespace"].as_str().unwrap().ends_with("-a0.3-t0"));
    let h5 = &model["horizons"][0];
    assert_eq!(h5["horizon"], 5);
    // The embargo: training ends at least 10 dates (the longest horizon) before the holdout.
    let day =
        |v: &Value| chrono::NaiveDate::parse_from_str(v.as_str().unwrap(), "%Y-%m-%d").unwrap();
    let gap = day(&h5["holdout"]["first"]) - day(&h5["train"]["last"]);
    assert!(gap.num_days() >= 14, "{gap}: {h5:#}");
}

/// Training on a CSV universe: the planted market copied to files by `technic snapshot`
/// trains the same model as the market itself (the same rows, to the bit, so the same
/// holdout figures), and a malformed file costs its symbol alone, named with its line.
#[test]
fn a_csv_universe_trains_the_same_model_and_a_malformed_file_is_left_out_by_name() {
    let t = trained();
    let dir = tempfile::tempdir().unwrap();
    let bars = dir.path().join("bars");
    let out = technic("0.3")
        .args(["snapshot", "--universe-size", SYMBOLS, "--out"])
        .arg(&bars)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let data = format!("csv:{}", bars.display());
    let train = |name: &str| {
        let out = technic("0")
            .args(["ml", "train", "--data", &data, "--holdout-days", "60"])
            .args(["--format", "json", "--out"])
            .arg(dir.path().join(name))
            .output()
            .unwrap();
        (json(&out), stderr(&out))
    };
    let (from_csv, _) = train("csv.json");
    assert_eq!(from_csv["accepted"], true, "{from_csv:#}");
    for h in ["5", "10"] {
        for figure in [
            "ic",
            "rank_ic",
            "t_stat",
            "ic_t_stat",
            "spread",
            "dates",
            "symbols",
        ] {
            assert_eq!(
                from_csv["horizons"][h][figure], t.planted.1["horizons"][h][figure],
                "{h}d {figure}"
            );
        }
    }

    let first = std::fs::read_dir(&bars)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n != "universe.csv"))
        .min()
        .unwrap();
    let text = std::fs::read_to_string(&first).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[3] = "2024-13-45,not,a,bar";
    std::fs::write(&first, lines.join("\n")).unwrap();
    let (damaged, said) = train("damaged.json");
    let file = first.file_name().unwrap().to_str().unwrap();
    assert!(
        said.contains("1 symbols could not be loaded")
            && said.contains(&format!("{file}:4"))
            && said.contains("DATA_INVALID"),
        "{said}"
    );
    let symbols = SYMBOLS.parse::<u64>().unwrap() - 1;
    assert_eq!(damaged["horizons"]["5"]["symbols"].as_u64(), Some(symbols));
    assert_eq!(damaged["accepted"], true, "{damaged:#}");
}

#[test]
fn a_scan_serves_an_accepted_model_and_ranks_by_its_alphas() {
    let t = trained();
    let file = path(&t.planted.0);
    let r = json(&scan("0.3", &["--model", file, "--sort", "alpha5d"]));
    assert!(
        r["warnings"].as_array().unwrap().is_empty(),
        "{:#}",
        r["warnings"]
    );
    let version = r["model"].as_str().expect("the serving model's version");
    assert_eq!(version.len(), 16);
    let results = r["results"].as_array().unwrap();
    assert!(results.len() > 20);
    let alpha5: Vec<f64> = results
        .iter()
        .map(|x| x["alpha_5d"].as_f64().unwrap())
        .collect();
    assert!(
        alpha5.windows(2).all(|w| w[0] >= w[1]),
        "sorted by alpha_5d"
    );
    assert!(
        alpha5[0] > 0.0 && alpha5[alpha5.len() - 1] < 0.0,
        "{alpha5:?}"
    );
    assert!(results
        .iter()
        .all(|x| x["alpha_10d"].as_f64().unwrap() != 0.0));
    // The blend moves the score off TechRating, in the direction of the alpha.
    let moved = results
        .iter()
        .filter(|x| x["score"].as_f64() != x["tech_rating"].as_f64())
        .count();
    assert!(moved > results.len() / 2, "{moved}");

    let by_score = json(&scan("0.3", &["--model", file, "--sort", "score"]));
    let scores: Vec<f64> = by_score["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]));

    // Without a model: no alphas, score is TechRating, no model and no warning.
    let plain = json(&scan("0.3", &[]));
    assert!(plain.get("model").is_none());
    assert!(plain["warnings"].as_array().unwrap().is_empty());
    for x in plain["results"].as_array().unwrap() {
        assert_eq!(x["alpha_5d"], 0.0);
        assert_eq!(x["score"], x["tech_rating"]);
    }
}

/// The scan completed with every alpha neutral and an `ML_UNAVAILABLE` warning whose
/// message contains `why`, on stdout (JSON) and in the CLI summary (stderr).
fn assert_neutral(out: &Output, why: &str) {
    let r = json(out);
    let w = &r["warnings"][0];
    assert_eq!(w["code"], "ML_UNAVAILABLE", "{r:#}");
    assert!(w["message"].as_str().unwrap().contains(why), "{w:#}");
    assert!(!w["suggestions"].as_array().unwrap().is_empty());
    assert!(r.get("model").is_none());
    let results = r["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for x in results {
        assert_eq!(
            (x["alpha_5d"].as_f64(), x["alpha_10d"].as_f64()),
            (Some(0.0), Some(0.0))
        );
        assert_eq!(x["score"], x["tech_rating"]);
    }
}

#[test]
fn a_model_that_cannot_be_served_leaves_the_alphas_neutral_and_says_why() {
    let t = trained();
    let dir = tempfile::tempdir().unwrap();
    let noise = path(&t.noise.0);

    // Not accepted: refused unless forced.
    assert_neutral(&scan("0", &["--model", noise]), "was not accepted");
    // The table's summary line (stderr) says it too.
    let out = technic("0")
        .args(["scan", "--universe-size", SYMBOLS, "-q", "--model", noise])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let summary = stderr(&out);
    assert!(
        summary.contains("warning [ML_UNAVAILABLE]") && summary.contains("--force"),
        "{summary}"
    );
    let forced = json(&scan("0", &["--model", noise, "--force"]));
    assert!(forced["model"].is_string(), "{forced:#}");
    assert!(forced["warnings"].as_array().unwrap().is_empty());

    // Missing, not JSON, another format, other features.
    let missing = dir.path().join("missing.json");
    assert_neutral(&scan("0.3", &["--model", path(&missing)]), "cannot be read");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "not json").unwrap();
    assert_neutral(
        &scan("0.3", &["--model", path(&garbage)]),
        "is not a technic model file",
    );
    let mut model: Value = serde_json::from_slice(&std::fs::read(&t.planted.0).unwrap()).unwrap();
    let edited = |model: &Value, name: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, serde_json::to_vec(model).unwrap()).unwrap();
        p
    };
    model["format"] = 99.into();
    let future = edited(&model, "future.json");
    assert_neutral(&scan("0.3", &["--model", path(&future)]), "model format 99");
    model["format"] = 1.into();
    model["features"][3] = "vol_realized_60".into();
    let other = edited(&model, "other.json");
    assert_neutral(
        &scan("0.3", &["--model", path(&other)]),
        "other features than this technic computes",
    );
    let err = json(&scan("0.3", &["--model", path(&other)]))["warnings"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.contains("vol_realized_60") && err.contains("vol_realized_20"),
        "{err}"
    );
}

/// `technic serve` with `ml.model`: `/health/detailed` reports the model's version, age
/// and holdout figures, and a scan through the API blends with it; with a model it cannot
/// serve the check fails, the whole degrades to `warn` (HTTP 200 still), and a scan
/// completes with neutral alphas, counted in the check and in `/metrics`.
#[tokio::test]
async fn serve_reports_the_model_in_its_health_and_counts_neutral_scans() {
    let t = trained();
    let env = |model: &str| {
        vec![
            ("TECHNIC_DATA__SYNTHETIC__ALPHA_STRENGTH", "0.3".to_string()),
            ("TECHNIC_DATA__SYNTHETIC__DAYS", "360".to_string()),
            ("TECHNIC_ML__MODEL", model.to_string()),
        ]
    };
    let start = |env: Vec<(&'static str, String)>| async move {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Server::start(&["--workers", "1"], &env).await
    };
    let model_check = |h: &Value| h["checks"]["ml-model:status"][0].clone();

    let s = start(env(path(&t.planted.0))).await;
    let (code, h) = s.get("/health/detailed").await;
    assert_eq!(code, 200, "{h:#}");
    let check = model_check(&h);
    assert_eq!(check["status"], "pass", "{check:#}");
    let version = check["observedValue"].as_str().unwrap().to_string();
    for horizon in ["5", "10"] {
        let (served, trained) = (
            &check["horizons"][horizon],
            &t.planted.1["horizons"][horizon],
        );
        for figure in ["rank_ic", "t_stat", "spread", "dates"] {
            assert_eq!(served[figure], trained[figure], "{horizon} {figure}");
        }
        assert_eq!(served["accepted"], true);
    }
    assert!((0..600).contains(&check["age_seconds"].as_i64().unwrap()));
    let id = s
        .submit(&format!(r#"{{"universe_size": {SYMBOLS}}}"#))
        .await;
    let done = s.wait_done(&id).await;
    assert_eq!(done["model"], version.as_str(), "{done:#}");
    assert_eq!(
        model_check(&s.get("/health/detailed").await.1)["scans"]["blended"],
        1
    );

    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, &std::fs::read(&t.planted.0).unwrap()[..100]).unwrap();
    let s = start(env(path(&corrupt))).await;
    let (code, h) = s.get("/health/detailed").await;
    assert_eq!((code, &h["status"]), (200, &Value::from("warn")), "{h:#}");
    let check = model_check(&h);
    assert_eq!(
        (&check["status"], &check["observedValue"]),
        (&Value::from("fail"), &Value::from("unavailable"))
    );
    assert!(check["output"]
        .as_str()
        .unwrap()
        .contains("is not a technic model file"));
    assert!(!check["suggestions"].as_array().unwrap().is_empty());
    let id = s
        .submit(&format!(r#"{{"universe_size": {SYMBOLS}}}"#))
        .await;
    let done = s.wait_done(&id).await;
    assert_eq!(done["stage"], "done");
    assert_eq!(done["warnings"][0]["code"], "ML_UNAVAILABLE", "{done:#}");
    assert!(done.get("model").is_none());
    let check = model_check(&s.get("/health/detailed").await.1);
    assert_eq!(
        (&check["scans"]["neutral"], &check["scans"]["blended"]),
        (&1.into(), &0.into())
    );
    let metrics = support::api::client()
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("technic_ml_scans_total{outcome=\"neutral\"} 1"),
        "{metrics}"
    );
}

/// (symbol, bits of alpha_5d, bits of alpha_10d) in rank order.
fn alpha_bits(report: &Value) -> Vec<(String, u64, u64)> {
    let bits = |x: &Value, k: &str| x[k].as_f64().expect(k).to_bits();
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|x| {
            let symbol = x["symbol"].as_str().expect("symbol").to_string();
            (symbol, bits(x, "alpha_5d"), bits(x, "alpha_10d"))
        })
        .collect()
}

/// One model, the same alphas to the last bit: embedded, then on 3 `technic worker`
/// processes with a coordinator over a 3-master Redis Cluster (which caches them under
/// the `ml` kind, one key per result), then again from that cache.
#[test]
fn the_same_model_gives_the_same_alphas_embedded_on_three_workers_and_from_redis_cluster() {
    let t = trained();
    let model = path(&t.planted.0);
    let embedded = json(&scan("0.3", &["--model", model]));
    assert!(embedded["model"].is_string(), "{embedded:#}");

    let redis = RedisCluster::start();
    let url = redis.target();
    let mut env = planted_cluster_env();
    env.push(("TECHNIC_ML__MODEL", model));
    let worker = |id: &str, more: &[&str]| Proc::worker(id, &url, more, &env);
    let w1 = worker("w1", &["--metrics-bind", "127.0.0.1:0"]);
    let _others = [worker("w2", &[]), worker("w3", &[])];
    wait_for("3 workers up", Duration::from_secs(90), || {
        let nodes = run_json(&["cluster", "nodes", "--redis", &url, "--json"], &env);
        let up = nodes.as_array().expect("nodes").iter();
        (up.filter(|n| n["state"] == "up").count() == 3).then_some(())
    });
    let cluster_scan = |extra: &[(&'static str, &'static str)]| {
        let mut env = env.clone();
        env.extend_from_slice(extra);
        let args = [
            "scan",
            "--redis",
            &url,
            "--workers",
            "0",
            "--universe-size",
            SYMBOLS,
            "--format",
            "json",
        ];
        Proc::spawn("coordinator", &args, &env).json(Duration::from_secs(120), 0)
    };
    let first = cluster_scan(&[]);
    assert_eq!(first["model"], embedded["model"]);
    assert_eq!(
        first["nodes"].as_object().expect("nodes").len(),
        3,
        "{}",
        first["nodes"]
    );
    assert_eq!(alpha_bits(&first), alpha_bits(&embedded));

    let ml_keys = || -> usize {
        redis
            .ports()
            .into_iter()
            .map(|p| {
                let keys: Vec<String> = query(p, ::redis::cmd("KEYS").arg("technic:v1:ml:*"));
                keys.len()
            })
            .sum()
    };
    let results = embedded["results"].as_array().expect("results").len();
    assert_eq!(ml_keys(), results, "one cached prediction per result");

    // Again, not from the scan-result cache: the features and alphas come from Redis.
    let again = cluster_scan(&[("TECHNIC_CACHE__SCAN_RESULTS", "false")]);
    assert!(again.get("from_cache").is_none());
    assert_eq!(alpha_bits(&again), alpha_bits(&embedded));
    assert_eq!(ml_keys(), results);
    let metrics = w1.metrics();
    let hits = metrics
        .lines()
        .find_map(|l| l.strip_prefix("technic_cache_hits_total{kind=\"ml\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("ml hits in w1's metrics:\n{metrics}"));
    assert!(hits > 0.0, "w1 served alphas from the cache: {metrics}");
}

#[test]
fn invalid_training_options_are_listed_together() {
    let out = technic("0")
        .args([
            "ml",
            "train",
            "--horizons",
            "0,x,5,5",
            "--holdout-days",
            "2",
        ])
        .args(["--epochs", "0", "--data", "nowhere:"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    for problem in [
        "\"x\" is not a number",
        "0 is not a horizon of 1..=60",
        "lists a horizon twice",
        "--holdout-days: 2 is too few",
        "--epochs must be at least 1",
        "--data",
    ] {
        assert!(e.contains(problem), "{problem}: {e}");
    }
}

/// `ml publish`: every node of a cluster switches to the published model, whatever its
/// own `ml.model` (none here): the cluster view and the health check show each node's
/// version and a scan spanning both nodes blends it, with the embedded scan's alphas to the
/// last bit. A model that was not accepted is refused without `--force` and nothing is
/// published. `ml withdraw` gives each node its own setting back.
#[tokio::test]
async fn a_published_model_is_served_by_every_node_until_it_is_withdrawn() {
    let t = trained();
    let redis = RedisServer::start();
    let url = redis.url();
    let env = planted_cluster_env();
    let s = Server::start(&["--redis", &url, "--workers", "1"], &env).await;
    let _w1 = Proc::worker("w1", &url, &[], &env);
    // Each up node's model as the cluster view shows it, once there are two.
    let models = |want: Option<&str>| {
        let s = &s;
        let want = want.map(String::from);
        async move || {
            let (_, body) = s.get("/api/v1/cluster/nodes").await;
            let nodes = body["nodes"].as_array().cloned().unwrap_or_default();
            let up: Vec<Option<String>> = nodes
                .iter()
                .filter(|n| n["state"] == "up")
                .map(|n| n["model"].as_str().map(String::from))
                .collect();
            if up.len() == 2 && up.iter().all(|m| *m == want) {
                Ok(())
            } else {
                Err(format!("{body:#}"))
            }
        }
    };
    wait_for_async("two nodes up without a model", DEADLINE, models(None)).await;

    let publish = |args: &[&str]| {
        let mut all = vec!["ml", "publish", "--redis", &url];
        all.extend_from_slice(args);
        support::technic::command(&all, &[]).output().unwrap()
    };
    let refused = publish(&[path(&t.noise.0)]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("was not accepted"),
        "{}",
        stderr(&refused)
    );
    let published: Vec<String> = query(redis.port(), ::redis::cmd("KEYS").arg("*:model"));
    assert!(published.is_empty(), "nothing published: {published:?}");

    let out = publish(&[path(&t.planted.0)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = said
        .strip_prefix("published model ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("the version in {said:?}"))
        .to_string();
    wait_for_async("both nodes serve it", DEADLINE, models(Some(&version))).await;

    let (code, h) = s.get("/health/detailed").await;
    let check = &h["checks"]["ml-model:status"][0];
    assert_eq!(code, 200);
    assert_eq!(
        (&check["status"], &check["observedValue"], &check["source"]),
        (
            &"pass".into(),
            &version.as_str().into(),
            &"published".into()
        ),
        "{check:#}"
    );
    assert_eq!(check["nodes"].as_object().map(|n| n.len()), Some(2));
    let id = s
        .submit(&format!(r#"{{"universe_size": {SYMBOLS}}}"#))
        .await;
    let done = s.wait_done(&id).await;
    assert_eq!(done["model"], version.as_str(), "{done:#}");
    assert_eq!(
        done["progress"]["per_node"].as_object().map(|n| n.len()),
        Some(2),
        "{done:#}"
    );
    let (_, report) = s.get(&format!("/api/v1/scans/{id}/results")).await;
    let embedded = json(&scan("0.3", &["--model", path(&t.planted.0)]));
    assert_eq!(alpha_bits(&report), alpha_bits(&embedded));

    let out = support::technic::command(&["ml", "withdraw", "--redis", &url], &[])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for_async("both nodes back to no model", DEADLINE, models(None)).await;
    let (_, h) = s.get("/health/detailed").await;
    assert_eq!(h["checks"]["ml-model:status"][0]["observedValue"], "none");
}
