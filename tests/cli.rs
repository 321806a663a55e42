//! The `technic` binary as a user runs it: real processes, real files.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;
use support::kept_env;

mod support;

fn technic() -> Command {
    let mut c = Command::cargo_bin("technic").expect("binary built");
    // Isolate from the developer's environment.
    c.env_clear().envs(kept_env());
    c
}

fn run(args: &[&str]) -> Output {
    technic().args(args).output().expect("runs")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn results_without_timing(v: &Value) -> Value {
    v["results"].clone()
}

#[test]
fn default_scan_prints_a_table_and_a_timing_line() {
    let out = run(&["scan", "--universe-size", "300"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("TechRating") && table.contains("Signal"),
        "{table}"
    );
    // Header + 25 rows by default (the table has box lines around them).
    let rows = table.lines().filter(|l| l.starts_with('│')).count();
    assert_eq!(rows, 26, "{table}");
    assert!(
        stderr(&out).contains("300 symbols scanned in"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn json_report_has_the_documented_shape_sorted_results_and_is_deterministic() {
    let a = json(&run(&[
        "scan",
        "--universe-size",
        "400",
        "--format",
        "json",
        "-q",
    ]));
    for key in ["results", "failures", "universe_size", "scanned", "timing"] {
        assert!(a.get(key).is_some(), "missing {key}");
    }
    for key in [
        "total_seconds",
        "symbols_per_second",
        "cache_hit_rate",
        "stages",
    ] {
        assert!(a["timing"].get(key).is_some(), "missing timing.{key}");
    }
    for key in ["universe", "fetch", "compute", "rank"] {
        assert!(
            a["timing"]["stages"][key].is_number(),
            "missing stage {key}"
        );
    }
    assert_eq!(a["universe_size"], 400);
    assert!(
        a["timing"]["cache_hit_rate"].is_null(),
        "a one-shot scan skips the in-process cache unless asked"
    );
    let results = a["results"].as_array().expect("array");
    assert!(results.len() > 300);
    let first = &results[0];
    for key in [
        "symbol",
        "sector",
        "close",
        "rsi_14",
        "macd_hist",
        "atr_pct_14",
        "trend",
        "momentum",
        "volume",
        "volatility",
        "oscillator",
        "breakout",
        "tech_rating",
        "signal",
        "entry",
        "stop",
        "target",
        "reward_risk",
        "position_size",
    ] {
        assert!(first.get(key).is_some(), "result misses {key}");
    }
    let tr: Vec<f64> = results
        .iter()
        .map(|r| r["tech_rating"].as_f64().expect("number"))
        .collect();
    assert!(
        tr.windows(2).all(|w| w[0] >= w[1]),
        "sorted by TechRating descending"
    );

    let b = json(&run(&[
        "scan",
        "--universe-size",
        "400",
        "--format",
        "json",
        "-q",
        "--workers",
        "1",
    ]));
    assert_eq!(
        results_without_timing(&a),
        results_without_timing(&b),
        "same seed, same results, any worker count"
    );
}

#[test]
fn filters_and_top_apply() {
    let v = json(&run(&[
        "scan",
        "--universe-size",
        "500",
        "--format",
        "json",
        "-q",
        "--min-price",
        "20",
        "--sectors",
        "energy,utilities",
        "--top",
        "7",
        "--signals",
        "long,avoid",
    ]));
    let results = v["results"].as_array().expect("array");
    assert!(!results.is_empty() && results.len() <= 7);
    for r in results {
        assert!(r["close"].as_f64().expect("close") >= 20.0);
        assert!(["Energy", "Utilities"].contains(&r["sector"].as_str().expect("sector")));
        assert!(["Long", "Avoid"].contains(&r["signal"].as_str().expect("signal")));
    }
}

#[test]
fn csv_output_to_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out.csv");
    let out = run(&[
        "scan",
        "--universe-size",
        "200",
        "--format",
        "csv",
        "--top",
        "5",
        "-q",
        "--out",
        path.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "output went to the file");
    let text = std::fs::read_to_string(&path).expect("written");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    assert!(
        header.starts_with("symbol,sector,industry,close,rsi_14,"),
        "{header}"
    );
    assert_eq!(lines.count(), 5);
}

#[test]
fn invalid_options_are_all_listed_with_exit_status_2() {
    let out = run(&[
        "scan",
        "--min-price",
        "cheap",
        "--top",
        "0",
        "--as-of",
        "yesterday",
        "--signals",
        "moon",
        "--lookback-days",
        "-3",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("INVALID_CONFIG") && err.contains("(5 problems)"),
        "{err}"
    );
    for needle in ["--min-price", "--top", "--as-of", "moon", "--lookback-days"] {
        assert!(err.contains(needle), "{needle} not reported: {err}");
    }
}

/// Counts that once exhausted memory, and numbers that made every rating NaN, are refused
/// with exit status 2 before anything starts.
#[test]
fn absurd_worker_counts_and_weights_exit_2_with_every_problem() {
    let out = run(&[
        "scan",
        "--workers",
        "1000000",
        "--symbols",
        "AAPL,../x,/etc/passwd",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    for needle in [
        "--workers: 1000000 is above the limit",
        "\"../X\"",
        "\"/ETC/PASSWD\"",
    ] {
        assert!(err.contains(needle), "{needle} not reported: {err}");
    }
    // A malformed --redis is the user's to fix (2, not CACHE_UNAVAILABLE's 3), said once.
    let out = run(&["scan", "--redis", "redis://[bad"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("(1 problem)") && stderr(&out).contains("--redis"),
        "{}",
        stderr(&out)
    );
    let out = technic()
        .args(["scan"])
        .env("TECHNIC_CLUSTER__WORKERS", "99999999999999999999")
        .env("TECHNIC_SCAN__WEIGHTS__TREND", "NaN")
        .env("TECHNIC_CACHE__WARM__SYMBOLS", "SPY,../x")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    for needle in [
        "cluster.workers must be at most",
        "scan.weights.trend",
        "cache.warm.symbols: symbol \"../x\"",
    ] {
        assert!(err.contains(needle), "{needle} not reported: {err}");
    }
}

#[test]
fn an_empty_universe_is_a_clear_message() {
    let out = run(&["scan", "--universe-size", "100", "--sectors", "Crypto"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("EMPTY_UNIVERSE") && err.contains("sectors in this universe: "),
        "{err}"
    );
    // Everything filtered after compute: a message with the reasons, not an empty table.
    let out = run(&["scan", "--universe-size", "100", "--min-tech-rating", "999"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("no symbols passed the filters")
            && stderr(&out).contains("below min_tech_rating")
    );
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

#[test]
fn csv_universe_round_trips_and_bad_files_fail_per_symbol() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf8");
    let snap = run(&["snapshot", "--universe-size", "60", "--out", d]);
    assert!(snap.status.success(), "{}", stderr(&snap));
    let synthetic = json(&run(&[
        "scan",
        "--universe-size",
        "60",
        "--format",
        "json",
        "-q",
    ]));
    let from_csv = json(&run(&[
        "scan",
        "--data",
        &format!("csv:{d}"),
        "--format",
        "json",
        "-q",
    ]));
    assert_eq!(
        synthetic["results"], from_csv["results"],
        "CSV snapshot scans exactly like its source"
    );

    // Break three files in three ways; the scan goes on and names file and line.
    let names: Vec<String> = from_csv["results"].as_array().expect("results")[..3]
        .iter()
        .map(|r| r["symbol"].as_str().expect("symbol").to_string())
        .collect();
    let path = |s: &str| dir.path().join(format!("{s}.csv"));
    let text = std::fs::read_to_string(path(&names[0])).expect("read");
    let broken: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 6 {
                l.replacen(',', ",oops", 2)
            } else {
                l.to_string()
            }
        })
        .collect();
    write(&path(&names[0]), &broken.join("\n"));
    write(
        &path(&names[1]),
        "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,-1.5,10\n",
    );
    write(
        &path(&names[2]),
        "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,NaN,10\n",
    );
    let v = json(&run(&[
        "scan",
        "--data",
        &format!("csv:{d}"),
        "--format",
        "json",
        "-q",
    ]));
    let failures = v["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 3, "{failures:?}");
    for f in failures {
        assert_eq!(f["code"], "DATA_INVALID");
    }
    let msg = |s: &str| {
        failures.iter().find(|f| f["symbol"] == s).expect("failure")["message"]
            .as_str()
            .expect("text")
            .to_string()
    };
    assert!(
        msg(&names[0]).contains(&format!("{}.csv:7:", names[0])),
        "{}",
        msg(&names[0])
    );
    assert!(
        msg(&names[1]).contains("close is -1.5"),
        "{}",
        msg(&names[1])
    );
    assert!(
        msg(&names[2]).contains("close is NaN"),
        "{}",
        msg(&names[2])
    );
    assert_eq!(v["scanned"], 57);
}

#[test]
fn indicators_reads_messy_files_like_clean_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut clean = String::from("date,open,high,low,close,volume\n");
    let mut messy = String::from("Ticker,Volume,Adj Close,Close,Low,High,Open,Date\n");
    let mut rows = Vec::new();
    let mut p = 50.0f64;
    for i in 0..260 {
        p *= 1.0 + 0.013 * ((i as f64 * 0.7).sin() + 0.3 * (i as f64 * 1.3).cos());
        let date =
            chrono::NaiveDate::from_ymd_opt(2023, 1, 2).expect("date") + chrono::Days::new(i);
        let (h, l) = (p * 1.01, p * 0.985);
        clean.push_str(&format!("{date},{p},{h},{l},{p},1000\n"));
        rows.push(format!("XYZ,1000,{},{p},{l},{h},{p},{date}", p * 0.9));
    }
    rows.reverse();
    messy.push_str(&rows.join("\n"));
    write(&dir.path().join("clean.csv"), &clean);
    write(&dir.path().join("messy.csv"), &messy);
    let a = run(&[
        "indicators",
        "--csv",
        dir.path().join("clean.csv").to_str().expect("utf8"),
    ]);
    let b = run(&[
        "indicators",
        "--csv",
        dir.path().join("messy.csv").to_str().expect("utf8"),
    ]);
    assert!(a.status.success() && b.status.success(), "{}", stderr(&b));
    assert_eq!(a.stdout, b.stdout);
    let text = String::from_utf8_lossy(&a.stdout);
    assert_eq!(
        text.lines().next(),
        Some("date,sma_20,sma_50,sma_200,ema_20,rsi_14,macd,macd_signal,macd_hist,atr_14,bb_upper,bb_middle,bb_lower,adx_14")
    );
    assert_eq!(text.lines().count(), 261);
    assert!(
        text.lines()
            .nth(1)
            .expect("row")
            .starts_with("2023-01-02,,,"),
        "NaN cells are empty"
    );

    let j = run(&[
        "indicators",
        "--csv",
        dir.path().join("messy.csv").to_str().expect("utf8"),
        "--format",
        "json",
    ]);
    let rows: Value = serde_json::from_slice(&j.stdout).expect("json");
    assert_eq!(rows.as_array().expect("rows").len(), 260);
    assert!(rows[0]["sma_20"].is_null());
    assert!(rows[259]["adx_14"].is_number());
}

#[test]
fn indicators_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("bad.csv");
    write(&f, "Date,Close,Adj Close\n2024-01-02,1,1\n");
    let out = run(&["indicators", "--csv", f.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad.csv: missing column(s) high, low"),
        "{}",
        stderr(&out)
    );
    write(
        &f,
        "date,high,low,close\n2024-01-02,2,1,1.5\n2024-01-03,2,x,1.5\n",
    );
    let out = run(&["indicators", "--csv", f.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad.csv:3: low is not a number"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ctrl_c_cancels_and_prints_the_partial_report() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command as Std, Stdio};
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("partial.json");
    let mut child = Std::new(assert_cmd::cargo::cargo_bin("technic"))
        .args([
            "scan",
            "--universe-size",
            "3000",
            "--format",
            "json",
            "--out",
            out_path.to_str().expect("utf8"),
        ])
        // 3 ms per symbol: about 5 s of work on 2 workers, so the interrupt lands mid-scan.
        .env("TECHNIC_DATA__SYNTHETIC__LATENCY_MS", "3")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    // Wait until results flow (stderr is not a terminal: one line per stage).
    let mut before = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("utf8");
        if line.starts_with("[computing]") {
            break;
        }
        before.push(line);
    }
    assert!(
        child.try_wait().expect("status").is_none(),
        "the scan ended before it was interrupted: {before:?}"
    );
    let status = Std::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let rest: Vec<String> = lines.map(|l| l.expect("utf8")).collect();
    let code = child.wait().expect("exits").code();
    assert_eq!(code, Some(130), "stderr after interrupt: {rest:?}");
    assert!(
        rest.iter().any(|l| l.starts_with("[cancelled]")),
        "{rest:?}"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(&out_path).expect("partial report written"))
            .expect("json");
    assert_eq!(report["status"], "cancelled");
    let scanned = report["scanned"].as_u64().expect("count");
    assert!(scanned > 0 && scanned < 3000, "partial: {scanned}");
}

#[test]
fn json_log_mode_writes_only_json_lines_on_stderr_and_results_on_stdout() {
    for (how, extra_env) in [
        (vec!["--log-format", "json"], None),
        (vec![], Some(("TECHNIC_LOG__FORMAT", "json"))),
    ] {
        let mut cmd = technic();
        if let Some((k, v)) = extra_env {
            cmd.env(k, v);
        }
        let mut args = how.clone();
        args.extend(["scan", "--universe-size", "120", "--top", "3"]);
        let out = cmd.args(&args).output().expect("runs");
        assert!(out.status.success(), "{how:?}: {}", stderr(&out));
        let err = stderr(&out);
        let lines: Vec<Value> = err
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l:?}")))
            .collect();
        // Progress per stage, then the summary with the report's timing.
        assert!(
            lines.iter().any(|l| l["fields"]["stage"] == "done"),
            "{err}"
        );
        let summary = lines.last().expect("a summary line");
        assert_eq!(summary["fields"]["scanned"], 120, "{err}");
        assert!(summary["fields"]["timing"]["total_seconds"].is_number());
        // The table is still on stdout, for the user.
        assert!(String::from_utf8_lossy(&out.stdout).contains("TechRating"));
    }
    // Errors too.
    let out = run(&["--log-format", "json", "scan", "--top", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let e: Value = serde_json::from_str(stderr(&out).trim()).expect("one JSON line");
    assert_eq!(e["level"], "ERROR");
    assert_eq!(e["fields"]["code"], "INVALID_CONFIG");
}

#[test]
fn an_invalid_log_level_is_an_error_not_silence() {
    for (k, v) in [("TECHNIC_LOG__LEVEL", "verbose"), ("RUST_LOG", "infoo")] {
        let out = technic()
            .env(k, v)
            .args(["scan", "--universe-size", "10"])
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{k}={v}: {}", stderr(&out));
        assert!(stderr(&out).contains(v), "{}", stderr(&out));
    }
    let ok = technic()
        .env("RUST_LOG", "technic::cluster=debug,warn")
        .args(["scan", "--universe-size", "10", "-q"])
        .output()
        .expect("runs");
    assert!(ok.status.success(), "{}", stderr(&ok));
}

#[test]
fn shell_completions_name_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        for cmd in ["scan", "serve", "worker", "snapshot"] {
            assert!(script.contains(cmd), "{shell} completion lacks {cmd}");
        }
    }
    assert_eq!(run(&["completions", "tcsh"]).status.code(), Some(2));
}
