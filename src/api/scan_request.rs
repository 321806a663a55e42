//! The body of `POST /api/v1/scans`: the scan config as JSON, field names the
//! `technic scan` option names in snake_case. Absent fields take the server's defaults
//! (`[scan]`); every problem — unknown fields, wrong types, invalid values, the API's
//! bounds — is reported at once.

use chrono::{NaiveDate, Utc};
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::config::Settings;
use crate::error::ErrorCode;
use crate::scan::ScanConfig;

/// Options of `technic scan` that belong to the server, not to one scan.
const SERVER_OPTIONS: [&str; 7] = [
    "data", "format", "out", "cache", "redis", "workers", "quiet",
];

/// Parses and validates a submitted scan config.
pub fn parse(body: &[u8], settings: &Settings) -> Result<ScanConfig, ApiError> {
    let given = object(body).map_err(|p| invalid(vec![p]))?;
    fields(given, settings).map_err(invalid)
}

/// The JSON object of a body (`{}` for an empty body or `null`).
pub fn object(body: &[u8]) -> Result<Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        // `null` is the absent body of the OpenAPI document (the body is optional).
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err("the body must be a JSON object".into()),
        Err(e) => Err(format!("the body is not valid JSON: {e}")),
    }
}

/// The scan config of these fields over the server's defaults, or every problem.
pub fn fields(given: Map<String, Value>, settings: &Settings) -> Result<ScanConfig, Vec<String>> {
    let defaults = ScanConfig::from_settings(&settings.scan);
    let mut merged = match serde_json::to_value(&defaults) {
        Ok(Value::Object(m)) => m,
        // A struct always serialises to an object.
        _ => Map::new(),
    };
    // Optional in the config (absent from the defaults' serialisation).
    merged.insert("watchlist".into(), Value::Null);
    let mut problems = Vec::new();
    for (key, value) in given {
        let Some(default) = merged.get(&key).cloned() else {
            problems.push(if SERVER_OPTIONS.contains(&key.as_str()) {
                format!("{key} is a server option, not a scan field: set it when starting `technic serve`")
            } else {
                format!("unknown field {key:?}")
            });
            continue;
        };
        let value = match (&key[..], default, value) {
            // A partial weights object keeps the other weights.
            ("weights", Value::Object(mut base), Value::Object(over)) => {
                base.extend(over);
                Value::Object(base)
            }
            ("symbols", _, Value::Array(items)) => Value::Array(
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Value::String(s.trim().to_ascii_uppercase()),
                        other => other,
                    })
                    .collect(),
            ),
            (_, _, v) => v,
        };
        let mut trial = merged.clone();
        trial.insert(key.clone(), value.clone());
        match serde_json::from_value::<ScanConfig>(Value::Object(trial)) {
            Ok(_) => {
                merged.insert(key, value);
            }
            Err(e) => problems.push(format!("{key}: {e}")),
        }
    }
    let config = match serde_json::from_value::<ScanConfig>(Value::Object(merged)) {
        Ok(c) => c,
        Err(e) => {
            problems.push(format!("{e}"));
            defaults
        }
    };
    if let Err(e) = config.validate(settings.scan.max_universe_size) {
        problems.extend(e.problems);
    }
    problems.extend(config.universe_conflict());
    problems.extend(bounds(&config, settings, Utc::now().date_naive()));
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

/// The API's own bounds on what one scan may ask for.
fn bounds(c: &ScanConfig, settings: &Settings, today: NaiveDate) -> Vec<String> {
    let api = &settings.api;
    let mut p = Vec::new();
    if c.lookback_days > api.max_lookback_days {
        p.push(format!(
            "lookback_days {} is above the limit of {} (api.max_lookback_days)",
            c.lookback_days, api.max_lookback_days
        ));
    }
    if let Some(d) = c.as_of {
        if d < api.min_as_of || d > today {
            p.push(format!(
                "as_of {d} is outside {}..={today} (api.min_as_of to today)",
                api.min_as_of
            ));
        }
    }
    p
}

pub fn invalid(problems: Vec<String>) -> ApiError {
    let mut suggestions: Vec<String> = problems.iter().map(|p| format!("fix: {p}")).collect();
    suggestions.push(
        "omit a field to take the server's default; the fields are listed in GET /api/v1/openapi.json (ScanRequest)"
            .into(),
    );
    ApiError::new(
        ErrorCode::InvalidConfig,
        format!(
            "invalid scan config ({} problem{}): {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("; ")
        ),
        suggestions,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_take_defaults_and_symbols_are_uppercased() {
        let s = Settings::defaults();
        let c = parse(
            br#"{"symbols":["aapl"," msft"],"top":5,"weights":{"trend":1.0}}"#,
            &s,
        )
        .expect("valid");
        assert_eq!(c.symbols, ["AAPL", "MSFT"]);
        assert_eq!(c.top, Some(5));
        assert_eq!(c.weights.trend, 1.0);
        assert_eq!(c.weights.momentum, s.scan.weights.momentum);
        assert_eq!(c.min_price, s.scan.min_price);
        assert_eq!(
            parse(b"", &s).expect("empty body").min_bars,
            s.scan.min_bars
        );
    }

    #[test]
    fn every_problem_is_listed() {
        let s = Settings::defaults();
        let e = parse(
            br#"{"min_price":"abc","top":0,"bogus":1,"data":"csv:x","universe_size":999999,"lookback_days":6000,"as_of":"1900-01-01"}"#,
            &s,
        )
        .expect_err("invalid");
        assert_eq!(e.0.code, ErrorCode::InvalidConfig);
        for needle in [
            "min_price",
            "top",
            "bogus",
            "data",
            "universe_size",
            "lookback_days",
            "as_of",
            "7 problems",
        ] {
            assert!(
                e.0.message.contains(needle),
                "{needle} missing: {}",
                e.0.message
            );
        }
    }
}
