//! What the commands tell the operator on stderr: plain lines, or, in JSON log mode, one
//! JSON object per line in the shape of the log events (`timestamp`, `level`, `fields`,
//! `target`), so a log shipper never reads a mixed stream. Results stay on stdout.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Map, Value};

use crate::error::UserError;

static JSON: AtomicBool = AtomicBool::new(false);

/// Switches every later message to JSON lines (`log.format = "json"`).
pub fn json_mode(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

fn line(level: &str, message: &str, fields: Value) -> String {
    let mut f = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    f.insert("message".into(), Value::String(message.into()));
    json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": level,
        "fields": f,
        "target": "technic::cli",
    })
    .to_string()
}

/// A message with structured `fields` (a JSON object) for JSON mode; human mode prints the
/// message alone.
pub fn info_with(message: &str, fields: Value) {
    if is_json() {
        eprintln!("{}", line("INFO", message, fields));
    } else {
        eprintln!("{message}");
    }
}

pub fn info(message: &str) {
    info_with(message, Value::Null);
}

/// An error the command ends with: its code, message and suggestions.
pub fn error(e: &UserError) {
    if is_json() {
        let fields = json!({"code": e.code.as_str(), "suggestions": e.suggestions});
        eprintln!("{}", line("ERROR", &e.message, fields));
    } else {
        eprintln!("{}", e.render());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_the_message_and_fields() {
        let l: Value =
            serde_json::from_str(&line("INFO", "hello", json!({"stage": "done"}))).unwrap();
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["fields"]["message"], "hello");
        assert_eq!(l["fields"]["stage"], "done");
        assert_eq!(l["target"], "technic::cli");
    }
}
