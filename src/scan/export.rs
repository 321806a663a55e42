//! Export forms of scan output: numbers at full precision in the shortest form that
//! round-trips (the same in CSV and JSON, so a trader can diff them against TA-Lib), and
//! the report's result rows as CSV. Used by the CLI and the HTTP API alike.

use super::ScanResult;

/// The shortest decimal that parses back to exactly `x`, spelled as serde_json spells it
/// (`2.5e+20`, `1e-7`), so CSV and JSON agree; empty for NaN and infinities.
pub fn format_number(x: f64) -> String {
    if !x.is_finite() {
        return String::new();
    }
    let mut b = ryu::Buffer::new();
    let s = b.format_finite(x);
    match s.find('e') {
        Some(i) if s.as_bytes().get(i + 1) != Some(&b'-') => {
            format!("{}e+{}", &s[..i], &s[i + 1..])
        }
        _ => s.to_string(),
    }
}

/// Rows of JSON objects as CSV: the header from the first row's keys (in order), numbers
/// in shortest round-trip form, null as an empty cell.
pub fn json_rows_to_csv(rows: &[serde_json::Value]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Columns: the first row's keys, then keys only some rows have (e.g. fallback_source),
    // in first-seen order; a row without a column gets an empty cell.
    let mut header: Vec<&str> = Vec::new();
    for row in rows {
        if let serde_json::Value::Object(m) = row {
            for k in m.keys() {
                if !header.contains(&k.as_str()) {
                    header.push(k);
                }
            }
        }
    }
    if !header.is_empty() {
        let _ = w.write_record(&header);
        for row in rows {
            if let serde_json::Value::Object(m) = row {
                let _ = w.write_record(header.iter().map(|k| match m.get(*k) {
                    None | Some(serde_json::Value::Null) => String::new(),
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                }));
            }
        }
    }
    // Writing into a Vec cannot fail, and every field is valid UTF-8.
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// The results as CSV: one row per result, the columns of the JSON form.
pub fn results_csv(results: &[ScanResult]) -> Result<String, serde_json::Error> {
    let rows: Vec<serde_json::Value> = results
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    Ok(json_rows_to_csv(&rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_columns_are_the_union_of_row_keys() {
        let rows = vec![
            serde_json::json!({"symbol": "A", "close": 1.5}),
            serde_json::json!({"symbol": "B", "close": 2, "fallback_source": "csv"}),
        ];
        assert_eq!(
            json_rows_to_csv(&rows),
            "symbol,close,fallback_source\nA,1.5,\nB,2,csv\n"
        );
    }

    #[test]
    fn numbers_round_trip_in_shortest_form() {
        for x in [
            0.1,
            1.0 / 3.0,
            123456.789,
            1e-10,
            2.5e20,
            -0.0,
            100.0,
            1e16,
            7e-7,
        ] {
            let s = format_number(x);
            assert_eq!(s.parse::<f64>().expect("parses"), x, "{s}");
            assert_eq!(
                s,
                serde_json::to_string(&x).expect("json"),
                "CSV and JSON agree"
            );
        }
        assert_eq!(format_number(f64::NAN), "");
    }

    #[test]
    fn csv_rows_keep_key_order_and_blank_nulls() {
        let rows = vec![serde_json::json!({"b": 1.5, "a": null, "s": "x,y"})];
        assert_eq!(json_rows_to_csv(&rows), "b,a,s\n1.5,,\"x,y\"\n");
    }
}
