//! What every cluster scan is checked against: the embedded single-process scan of the
//! same synthetic universe, the ranked (symbol, TechRating) pairs, and the accounting of
//! every symbol exactly once.

use std::collections::HashSet;

use serde_json::Value;

use super::technic::run_json;

/// The embedded scan of the same universe (no Redis, local workers).
pub fn embedded(universe: usize) -> Value {
    let n = universe.to_string();
    run_json(
        &["scan", "--universe-size", &n, "--format", "json", "--quiet"],
        &[],
    )
}

/// (symbol, TechRating) in rank order.
pub fn ratings(report: &Value) -> Vec<(String, f64)> {
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["symbol"].as_str().expect("symbol").to_string(),
                r["tech_rating"].as_f64().expect("tech_rating"),
            )
        })
        .collect()
}

/// Every symbol of the universe accounted for exactly once: results, filtered or failed.
pub fn assert_complete(report: &Value, universe: usize) {
    let results = ratings(report);
    let unique: HashSet<&String> = results.iter().map(|(s, _)| s).collect();
    assert_eq!(unique.len(), results.len(), "a symbol came back twice");
    let filtered: u64 = report["filtered"]
        .as_object()
        .expect("filtered")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    let failed = report["failures"].as_array().expect("failures").len();
    assert_eq!(report["status"], "completed");
    assert_eq!(report["universe_size"], universe);
    assert_eq!(
        results.len() + filtered as usize + failed,
        universe,
        "every symbol once"
    );
    let per_node: u64 = report["nodes"]
        .as_object()
        .expect("nodes")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    // Symbols of shards that ran out of attempts are failed by no node.
    let exhausted = report["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter(|f| f["code"] == "SHARD_FAILED")
        .count();
    assert_eq!(
        per_node as usize + exhausted,
        universe,
        "per-node counts add up to the universe"
    );
}
