//! The user-facing error model: a stable code, a message and suggestions.
//!
//! One table maps codes to CLI exit codes ([`ErrorCode::exit_code`]) and one to HTTP
//! statuses ([`ErrorCode::http_status`]); the control plane uses nothing else. Messages are lowercase, no trailing period;
//! internal detail is logged where it happens, not carried here.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidConfig,
    InvalidInput,
    EmptyUniverse,
    DataProviderUnavailable,
    WorkersUnavailable,
    QueueUnavailable,
    CacheUnavailable,
    /// The alpha model could not be served: alphas are neutral.
    MlUnavailable,
    Internal,
    /// No scan with this id (live or in the history).
    ScanNotFound,
    /// The scan has not finished: its results are not there yet.
    ScanNotFinished,
    /// The scan already finished (cancel came too late).
    ScanNotRunning,
    /// The scan ended in an error: it has no results.
    ScanFailed,
    /// A one-shot scan whose process died before it finished: nobody will finish it.
    ScanAbandoned,
    /// This process lost the scan's lease: another coordinator finishes it.
    ScanSuperseded,
    /// A route without the right bearer token.
    Unauthorized,
    /// A change asked with the read-only token.
    Forbidden,
    /// A request line longer than the server reads.
    UriTooLong,
    /// Request headers larger than the server reads.
    HeadersTooLarge,
    PayloadTooLarge,
    /// Too many scans at once (`api.max_active_scans`).
    RateLimited,
    RouteNotFound,
    MethodNotAllowed,
    /// No screen, watchlist or webhook of this name.
    NotFound,
    /// A screen or watchlist of this name exists already (create, not replace).
    AlreadyExists,
    /// The store of screens, watchlists and webhooks cannot be read or written.
    StoreUnavailable,
    /// A run of this screen is in progress on this server.
    ScreenBusy,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidConfig => "INVALID_CONFIG",
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::EmptyUniverse => "EMPTY_UNIVERSE",
            ErrorCode::DataProviderUnavailable => "DATA_PROVIDER_UNAVAILABLE",
            ErrorCode::WorkersUnavailable => "WORKERS_UNAVAILABLE",
            ErrorCode::QueueUnavailable => "QUEUE_UNAVAILABLE",
            ErrorCode::CacheUnavailable => "CACHE_UNAVAILABLE",
            ErrorCode::MlUnavailable => "ML_UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::ScanNotFound => "SCAN_NOT_FOUND",
            ErrorCode::ScanNotFinished => "SCAN_NOT_FINISHED",
            ErrorCode::ScanNotRunning => "SCAN_NOT_RUNNING",
            ErrorCode::ScanFailed => "SCAN_FAILED",
            ErrorCode::ScanAbandoned => "SCAN_ABANDONED",
            ErrorCode::ScanSuperseded => "SCAN_SUPERSEDED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::UriTooLong => "URI_TOO_LONG",
            ErrorCode::HeadersTooLarge => "HEADERS_TOO_LARGE",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::RouteNotFound => "ROUTE_NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::StoreUnavailable => "STORE_UNAVAILABLE",
            ErrorCode::ScreenBusy => "SCREEN_BUSY",
        }
    }

    /// The CLI exit code: 2 for what the user must change, 3 for an unavailable
    /// dependency, 1 for anything else.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorCode::InvalidConfig
            | ErrorCode::InvalidInput
            | ErrorCode::EmptyUniverse
            | ErrorCode::ScanNotFound
            | ErrorCode::ScanNotFinished
            | ErrorCode::ScanNotRunning
            | ErrorCode::ScanFailed
            | ErrorCode::ScanAbandoned
            | ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::UriTooLong
            | ErrorCode::HeadersTooLarge
            | ErrorCode::PayloadTooLarge
            | ErrorCode::RouteNotFound
            | ErrorCode::MethodNotAllowed
            | ErrorCode::NotFound
            | ErrorCode::AlreadyExists => 2,
            ErrorCode::DataProviderUnavailable
            | ErrorCode::WorkersUnavailable
            | ErrorCode::QueueUnavailable
            | ErrorCode::CacheUnavailable
            | ErrorCode::MlUnavailable
            | ErrorCode::ScanSuperseded
            | ErrorCode::StoreUnavailable
            | ErrorCode::ScreenBusy
            | ErrorCode::RateLimited => 3,
            ErrorCode::Internal => 1,
        }
    }

    /// The HTTP status of the control plane: 4xx for what the caller must change, 409 for
    /// a request that does not fit the scan's state, 503 for an unavailable dependency.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidConfig | ErrorCode::InvalidInput => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::ScanNotFound | ErrorCode::RouteNotFound | ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::ScanNotFinished
            | ErrorCode::ScanNotRunning
            | ErrorCode::ScanFailed
            | ErrorCode::ScanAbandoned
            | ErrorCode::ScanSuperseded
            | ErrorCode::AlreadyExists
            | ErrorCode::ScreenBusy => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UriTooLong => 414,
            ErrorCode::HeadersTooLarge => 431,
            ErrorCode::EmptyUniverse => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::DataProviderUnavailable
            | ErrorCode::WorkersUnavailable
            | ErrorCode::QueueUnavailable
            | ErrorCode::CacheUnavailable
            | ErrorCode::StoreUnavailable
            | ErrorCode::MlUnavailable => 503,
        }
    }

    /// Whether the same request may succeed later without a change.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::DataProviderUnavailable
                | ErrorCode::WorkersUnavailable
                | ErrorCode::QueueUnavailable
                | ErrorCode::CacheUnavailable
                | ErrorCode::StoreUnavailable
                | ErrorCode::ScreenBusy
                | ErrorCode::RateLimited
                | ErrorCode::ScanNotFinished
        )
    }
}

/// An error a user sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct UserError {
    pub code: ErrorCode,
    pub message: String,
    pub suggestions: Vec<String>,
}

impl UserError {
    pub fn new(code: ErrorCode, message: impl Into<String>, suggestions: Vec<String>) -> Self {
        UserError {
            code,
            message: message.into(),
            suggestions,
        }
    }

    /// Multi-line text for a terminal: the message, then each suggestion.
    pub fn render(&self) -> String {
        let mut s = format!("error[{}]: {}", self.code.as_str(), self.message);
        for hint in &self.suggestions {
            s.push_str("\n  hint: ");
            s.push_str(hint);
        }
        s
    }
}
