//! Output formats shared by the commands: numbers at full precision in the shortest
//! form that round-trips (the same in CSV and JSON), tables for people.

use std::io::Write;
use std::path::Path;

use crate::error::{ErrorCode, UserError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    Csv,
}

/// Writes `text` to `out` or stdout.
pub fn emit(text: &str, out: Option<&Path>) -> Result<(), UserError> {
    let io_err = |e: std::io::Error, what: &str| {
        UserError::new(
            ErrorCode::InvalidInput,
            format!("cannot write {what}: {e}"),
            vec!["check the path and its permissions".into()],
        )
    };
    match out {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| io_err(e, &path.display().to_string()))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|_| stdout.flush())
            {
                // A closed pipe (`| head`) is the reader's choice, not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.map_err(|e| io_err(e, "stdout")),
            }
        }
    }
}
