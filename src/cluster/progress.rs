//! Progress of one scan, as the coordinator publishes it: to the CLI's progress bar now,
//! to SSE subscribers later. A `watch` channel, so a late subscriber sees the current
//! state first and a slow one only ever skips to the newest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Queued,
    ResolvingUniverse,
    /// Shards dispatched, no results back yet: workers are loading bars.
    Fetching,
    /// Results are flowing back from workers.
    Computing,
    Ranking,
    Done,
    Failed,
    Cancelled,
    /// A one-shot scan whose process died: nobody reads it any more.
    Abandoned,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Queued => "queued",
            Stage::ResolvingUniverse => "resolving_universe",
            Stage::Fetching => "fetching",
            Stage::Computing => "computing",
            Stage::Ranking => "ranking",
            Stage::Done => "done",
            Stage::Failed => "failed",
            Stage::Cancelled => "cancelled",
            Stage::Abandoned => "abandoned",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Stage::Done | Stage::Failed | Stage::Cancelled | Stage::Abandoned
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub scan_id: String,
    pub stage: Stage,
    /// 0.0–1.0 over symbols.
    pub fraction: f64,
    /// e.g. `Analyzing 1,500/5,000 symbols`.
    pub message: String,
    pub done: usize,
    pub total: usize,
    pub elapsed_seconds: f64,
    /// From the observed rate; `None` until there is one.
    pub eta_seconds: Option<f64>,
    /// Symbols finished per node id.
    pub per_node: BTreeMap<String, usize>,
}

impl Progress {
    pub fn queued(scan_id: &str) -> Self {
        Progress {
            scan_id: scan_id.to_string(),
            stage: Stage::Queued,
            fraction: 0.0,
            message: "Queued".into(),
            done: 0,
            total: 0,
            elapsed_seconds: 0.0,
            eta_seconds: None,
            per_node: BTreeMap::new(),
        }
    }
}

/// `1500` → `1,500`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The progress message while symbols are being analysed.
pub fn analyzing(done: usize, total: usize) -> String {
    format!("Analyzing {}/{} symbols", thousands(done), thousands(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_uses_thousands_separators() {
        assert_eq!(analyzing(1500, 5000), "Analyzing 1,500/5,000 symbols");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
