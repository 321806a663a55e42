//! The soak: many scans through the API against one `technic serve` and its workers, with
//! the resident memory sampled as they go. Every scan must finish `done`, and memory must be
//! flat once the caches and the history are full.
//!
//! `SOAK_SCANS` scans (default 100, the test command's size); `scripts/soak.sh` runs 1,000
//! against a release build and prints the samples. The scans cycle through a few configs
//! (universe sizes and `as_of` dates), so the cache reaches a steady set of keys, and the
//! history is capped (`api.history_max_scans`) below the number of scans, so it fills and
//! then turns over.

mod support;

use std::time::Instant;

use support::api::Server;

fn scans() -> usize {
    std::env::var("SOAK_SCANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_scans_end_done_with_flat_memory() {
    let n = scans();
    // Every scan computes (the scan-result cache would answer the repeated configs).
    let s = Server::start(
        &["--workers", "2"],
        &[
            ("TECHNIC_API__HISTORY_MAX_SCANS", "20"),
            ("TECHNIC_CACHE__SCAN_RESULTS", "false"),
        ],
    )
    .await;
    let configs = [
        r#"{"universe_size": 400}"#,
        r#"{"universe_size": 400, "as_of": "2025-06-30"}"#,
        r#"{"universe_size": 300, "top": 20, "sort": "momentum"}"#,
        r#"{"universe_size": 400, "as_of": "2025-03-31", "min_price": 5}"#,
    ];
    let start = Instant::now();
    let mut samples: Vec<(usize, u64)> = Vec::new();
    let every = (n / 10).max(1);
    for i in 1..=n {
        let id = s.submit(configs[i % configs.len()]).await;
        let v = s.wait_done(&id).await;
        assert_eq!(v["stage"], "done", "scan {i}: {v}\n{}", s.log());
        if i % every == 0 {
            samples.push((i, s.rss_kib()));
        }
    }
    let elapsed = start.elapsed();
    eprintln!(
        "{n} scans in {:.1} s; RSS (KiB) after scans: {samples:?}",
        elapsed.as_secs_f64()
    );
    let (_, after_half) = samples[samples.len() / 2 - 1];
    let (_, last) = *samples.last().expect("samples");
    assert!(
        last <= after_half + after_half / 5 + 16 * 1024,
        "memory grows in the second half: {samples:?}"
    );
    // The history turned over: only the newest are kept.
    let (status, list) = s.get("/api/v1/scans").await;
    assert_eq!(status, 200, "{list}");
    let listed = list["scans"].as_array().expect("scans").len();
    assert!(listed <= 20 + 8, "history kept {listed} scans");
}
