//! The user-facing error model: a stable code, a message and suggestions.
//!
//! One table ([`ErrorCode::exit_code`]) maps codes to CLI exit codes; the HTTP control
//! plane maps the same codes to statuses. Messages are lowercase, no trailing period;
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
    Internal,
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
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// The CLI exit code: 2 for what the user must change, 3 for an unavailable
    /// dependency, 1 for anything else.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorCode::InvalidConfig | ErrorCode::InvalidInput | ErrorCode::EmptyUniverse => 2,
            ErrorCode::DataProviderUnavailable
            | ErrorCode::WorkersUnavailable
            | ErrorCode::QueueUnavailable
            | ErrorCode::CacheUnavailable => 3,
            ErrorCode::Internal => 1,
        }
    }

    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::DataProviderUnavailable
                | ErrorCode::WorkersUnavailable
                | ErrorCode::QueueUnavailable
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
