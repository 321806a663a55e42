//! Constructors of the user-facing errors a scan can end with.

use crate::data::DataError;
use crate::error::{ErrorCode, UserError};
use crate::scan::InvalidConfig;

use super::queue::QueueError;

/// A scan that could not run at all (per-symbol problems are failures in the report).
pub type ScanError = UserError;

impl UserError {
    pub fn invalid_config(e: InvalidConfig) -> Self {
        UserError::new(
            ErrorCode::InvalidConfig,
            format!("invalid scan config: {}", e.problems.join("; ")),
            e.problems.iter().map(|p| format!("fix: {p}")).collect(),
        )
    }

    pub fn empty_universe(known_sectors: &[String]) -> Self {
        let mut suggestions = vec![
            "loosen the universe filters (--symbols, --sectors, --industries, --min-market-cap)"
                .to_string(),
        ];
        if !known_sectors.is_empty() {
            suggestions.push(format!(
                "sectors in this universe: {}",
                known_sectors.join(", ")
            ));
        }
        UserError::new(
            ErrorCode::EmptyUniverse,
            "no symbols match the universe filters",
            suggestions,
        )
    }

    pub fn provider_unavailable(e: &DataError) -> Self {
        UserError::new(
            ErrorCode::DataProviderUnavailable,
            format!("cannot list the universe: {e}"),
            vec![e.suggestion().to_string()],
        )
    }

    pub fn workers_lost(reason: &str) -> Self {
        UserError::new(
            ErrorCode::WorkersUnavailable,
            format!("no workers left to run the scan: {reason}"),
            vec!["check the logs for the worker failures, then retry".into()],
        )
    }

    pub fn report_unreadable(reason: &str) -> Self {
        UserError::new(
            ErrorCode::WorkersUnavailable,
            format!("a worker sent a shard report this coordinator cannot read ({reason})"),
            vec![
                "run the same technic version on every node (`technic cluster nodes` shows each node's version)".into(),
                "then retry the scan".into(),
            ],
        )
    }

    pub fn queue(e: &QueueError) -> Self {
        let suggestion = match e {
            QueueError::Full { .. } => {
                "retry when running scans have finished, or raise cluster.queue_capacity"
            }
            _ => "check that the Redis given with --redis is running and reachable, then retry",
        };
        UserError::new(
            ErrorCode::QueueUnavailable,
            format!("cannot enqueue the scan: {e}"),
            vec![suggestion.into()],
        )
    }

    pub fn superseded() -> Self {
        UserError::new(
            ErrorCode::ScanSuperseded,
            "this process lost the scan's lease in redis; another coordinator owns it now",
            vec![
                "follow the scan on any technic serve: GET /api/v1/scans/{id}".into(),
                "check this process's connection to redis (renewals failed for longer than cluster.lease_ms)".into(),
            ],
        )
    }

    pub fn cache_unavailable() -> Self {
        UserError::new(
            ErrorCode::CacheUnavailable,
            "the cache was unavailable during the scan; it ran uncached from the data provider",
            vec![
                "check that Redis is running and reachable at the configured cache.url".into(),
                "caching resumes by itself once the cache answers again".into(),
            ],
        )
    }

    /// The scan's alphas are neutral: `message` says why.
    pub fn ml_unavailable(message: &str, suggestions: Vec<String>) -> Self {
        UserError::new(
            ErrorCode::MlUnavailable,
            format!("the alpha model was not served, so every alpha is neutral (0) and score is TechRating: {message}"),
            suggestions,
        )
    }

    pub fn internal(message: &str) -> Self {
        UserError::new(
            ErrorCode::Internal,
            message,
            vec!["retry; if it persists, report it with the logs".into()],
        )
    }
}

impl From<QueueError> for UserError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::InvalidUrl { .. } => UserError::new(
                ErrorCode::InvalidConfig,
                e.to_string(),
                vec![
                    "give --redis as redis://HOST:PORT or redis-cluster://HOST:PORT[,HOST:PORT...]"
                        .into(),
                ],
            ),
            e => UserError::new(
                ErrorCode::QueueUnavailable,
                e.to_string(),
                vec!["check that the Redis given with --redis is running and reachable".into()],
            ),
        }
    }
}
