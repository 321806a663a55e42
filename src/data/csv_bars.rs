//! The reader for one CSV file of daily bars, used by `technic indicators` and the `csv`
//! provider ([`super::csvdir`]).
//!
//! It accepts real-world files: a header row with columns found by name, case-insensitive
//! (`date`/`timestamp`, `open`, `high`, `low`, `close`, `volume`; `Adj Close` is not
//! `close`), extra columns ignored, quoted fields, CRLF, a BOM, and rows out of order
//! (sorted by date). Every error names the file and, where there is one, the line, and
//! quotes at most a short sanitised snippet of the offending field ([`snippet`]). Dates must
//! be distinct and not in the future (a day of slack for time zones).

use std::path::Path;

use chrono::NaiveDate;

use crate::market::{snippet, Bars};

/// Which columns a caller needs. The indicators table needs only high/low/close; a scan
/// needs all six.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    /// date, high, low, close (open and volume read when present, else NaN).
    Hlc,
    /// date, open, high, low, close, volume.
    Ohlcv,
}

/// A CSV file that cannot be read as daily bars.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CsvError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{path}: missing column(s) {}; found: {}", .missing.join(", "), .found.join(", "))]
    MissingColumns {
        path: String,
        missing: Vec<String>,
        found: Vec<String>,
    },
    #[error("{path}:{line}: {message}")]
    Malformed {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: no data rows")]
    Empty { path: String },
}

const NAMES: [&str; 6] = ["date", "open", "high", "low", "close", "volume"];

/// Reads one CSV file of daily bars (see the module doc for what is accepted).
pub fn read_bars_csv(path: &Path, columns: Columns) -> Result<Bars, CsvError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| CsvError::Io {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    parse_bars_csv(&bytes, &shown, columns)
}

/// Parses CSV bytes; `path` is only used in error messages.
pub fn parse_bars_csv(bytes: &[u8], path: &str, columns: Columns) -> Result<Bars, CsvError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let quoted = memchr::memchr(b'"', bytes).is_some();
    let mut lines = Lines {
        rest: bytes,
        line: 0,
    };
    let header = loop {
        match lines.next() {
            Some((_, l)) if l.iter().all(u8::is_ascii_whitespace) => continue,
            Some((_, l)) => break l,
            None => return Err(CsvError::Empty { path: path.into() }),
        }
    };
    let mut fields: Vec<&[u8]> = Vec::with_capacity(16);
    split(header, quoted, &mut fields);
    let found: Vec<String> = fields
        .iter()
        .map(|f| {
            String::from_utf8_lossy(f)
                .trim()
                .trim_matches('"')
                .to_string()
        })
        .collect();
    let lower: Vec<String> = found.iter().map(|f| f.to_ascii_lowercase()).collect();
    // What the error may show of a header that is not one (it may be any file's first line).
    let found: Vec<String> = found.iter().take(8).map(|f| snippet(f)).collect();
    let find = |name: &str| lower.iter().position(|c| c == name);
    let date_col = find("date")
        .or_else(|| find("timestamp"))
        .or_else(|| find("datetime"));
    let idx = [
        date_col,
        find("open"),
        find("high"),
        find("low"),
        find("close"),
        find("volume"),
    ];
    let required: &[usize] = match columns {
        Columns::Hlc => &[0, 2, 3, 4],
        Columns::Ohlcv => &[0, 1, 2, 3, 4, 5],
    };
    let missing: Vec<String> = required
        .iter()
        .filter(|&&k| idx[k].is_none())
        .map(|&k| {
            if k == 0 {
                "date (or timestamp)".to_string()
            } else {
                NAMES[k].to_string()
            }
        })
        .collect();
    if !missing.is_empty() {
        return Err(CsvError::MissingColumns {
            path: path.into(),
            missing,
            found,
        });
    }
    let width = idx.iter().flatten().max().map_or(0, |m| m + 1);

    let mut bars = Bars::with_capacity(bytes.len() / 48 + 1);
    let mut line_of = Vec::with_capacity(bytes.len() / 48 + 1);
    let latest = chrono::Utc::now().date_naive() + chrono::Days::new(1);
    for (line_no, line) in lines {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let bad = |message: String| CsvError::Malformed {
            path: path.into(),
            line: line_no,
            message,
        };
        split(line, quoted, &mut fields);
        if fields.len() < width {
            return Err(bad(format!(
                "expected at least {width} fields, found {}",
                fields.len()
            )));
        }
        let date_field = fields[idx[0].unwrap_or(0)];
        let date = parse_date(date_field).ok_or_else(|| {
            bad(format!(
                "cannot read date {:?}",
                snippet(&String::from_utf8_lossy(date_field))
            ))
        })?;
        if date > latest {
            return Err(bad(format!("date {date} is in the future")));
        }
        let mut v = [f64::NAN; 6];
        for k in 1..6 {
            if let Some(c) = idx[k] {
                v[k] = parse_number(fields[c]).ok_or_else(|| {
                    bad(format!(
                        "{} is not a number: {:?}",
                        NAMES[k],
                        snippet(&String::from_utf8_lossy(fields[c]))
                    ))
                })?;
            }
        }
        bars.push(date, v[1], v[2], v[3], v[4], v[5]);
        line_of.push(line_no);
    }
    if bars.is_empty() {
        return Err(CsvError::Empty { path: path.into() });
    }
    if let Some((date, first, second)) = first_duplicate(&bars.dates, &line_of) {
        return Err(CsvError::Malformed {
            path: path.into(),
            line: second,
            message: format!("date {date} repeats line {first}"),
        });
    }
    bars.sort_by_date();
    Ok(bars)
}

/// A date that appears twice, with the line it first appears on and the line repeating it
/// (the earliest such repeat in the file), if any.
fn first_duplicate(dates: &[NaiveDate], lines: &[usize]) -> Option<(NaiveDate, usize, usize)> {
    if dates.windows(2).all(|w| w[0] < w[1]) {
        return None;
    }
    let mut order: Vec<usize> = (0..dates.len()).collect();
    order.sort_by_key(|&i| (dates[i], lines[i]));
    order
        .windows(2)
        .filter(|w| dates[w[0]] == dates[w[1]])
        .map(|w| (dates[w[0]], lines[w[0]], lines[w[1]]))
        .min_by_key(|&(_, _, second)| second)
}

/// Line iterator over `\n`-terminated lines (a trailing `\r` stripped), 1-based numbers.
/// Quoted fields with embedded newlines are not supported: bar files never have them.
struct Lines<'a> {
    rest: &'a [u8],
    line: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        self.line += 1;
        let (line, rest) = match memchr::memchr(b'\n', self.rest) {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, &self.rest[self.rest.len()..]),
        };
        self.rest = rest;
        Some((self.line, line.strip_suffix(b"\r").unwrap_or(line)))
    }
}

/// Splits one line into fields. Without quotes in the file this is a plain split on
/// commas; otherwise fields may be `"quoted"` and the quotes are stripped.
fn split<'a>(line: &'a [u8], quoted: bool, out: &mut Vec<&'a [u8]>) {
    out.clear();
    if !quoted || memchr::memchr(b'"', line).is_none() {
        out.extend(line.split(|&b| b == b','));
        return;
    }
    // Rare path: quoted fields. Numbers and dates are never legitimately quoted with
    // embedded commas, so stripping quotes per field is enough for bar files.
    let mut start = 0;
    let mut in_quotes = false;
    for (i, &b) in line.iter().enumerate() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => {
                out.push(trim_quotes(&line[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(trim_quotes(&line[start..]));
}

fn trim_quotes(f: &[u8]) -> &[u8] {
    let f = f.trim_ascii();
    f.strip_prefix(b"\"")
        .and_then(|g| g.strip_suffix(b"\""))
        .unwrap_or(f)
}

fn parse_number(f: &[u8]) -> Option<f64> {
    let f = f.trim_ascii();
    if f.is_empty() {
        return None;
    }
    fast_float2::parse(f).ok()
}

/// Dates as `YYYY-MM-DD` (fast path), with a time part, `YYYY/MM/DD`, `MM/DD/YYYY`,
/// `YYYYMMDD`, or a Unix timestamp in seconds or milliseconds.
fn parse_date(f: &[u8]) -> Option<NaiveDate> {
    let f = f.trim_ascii();
    if f.len() >= 10
        && f[4] == b'-'
        && f[7] == b'-'
        && (f.len() == 10 || matches!(f[10], b' ' | b'T'))
    {
        let num = |s: &[u8]| -> Option<u32> {
            s.iter().try_fold(0u32, |acc, &b| {
                b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
            })
        };
        return NaiveDate::from_ymd_opt(num(&f[0..4])? as i32, num(&f[5..7])?, num(&f[8..10])?);
    }
    let s = std::str::from_utf8(f).ok()?;
    for fmt in ["%Y/%m/%d", "%m/%d/%Y", "%Y%m%d", "%d-%b-%Y", "%b %d, %Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
            if fmt != "%Y%m%d" || s.len() == 8 {
                return Some(d);
            }
        }
    }
    if s.bytes().all(|b| b.is_ascii_digit()) && s.len() >= 9 {
        let n: i64 = s.parse().ok()?;
        let secs = if n > 100_000_000_000 { n / 1000 } else { n };
        return chrono::DateTime::from_timestamp(secs, 0).map(|t| t.date_naive());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str, c: Columns) -> Result<Bars, CsvError> {
        parse_bars_csv(s.as_bytes(), "t.csv", c)
    }

    #[test]
    fn messy_file_with_extra_columns_adj_close_and_unsorted_rows() {
        let s = "\u{feff}Ticker,Date,Open,High,Low,Close,Adj Close,Volume\r\n\
                 AAPL,2024-01-03,2,3,1,2.5,9.9,100\r\n\
                 AAPL,2024-01-02,1,2,0.5,1.5,9.9,200\r\n";
        let b = parse(s, Columns::Ohlcv).expect("valid");
        assert_eq!(
            b.dates[0],
            NaiveDate::from_ymd_opt(2024, 1, 2).expect("date")
        );
        assert_eq!(
            b.close,
            vec![1.5, 2.5],
            "Close, not Adj Close, sorted by date"
        );
        assert_eq!(b.volume, vec![200.0, 100.0]);
    }

    #[test]
    fn quoted_fields_and_other_date_forms() {
        let s = "timestamp,high,low,close\n\"01/05/2024\",\"2\",\"1\",\"1.5\"\n1704153600000,2,1,1.25\n";
        let b = parse(s, Columns::Hlc).expect("valid");
        assert_eq!(b.close, vec![1.25, 1.5]);
        assert!(b.open[0].is_nan(), "open absent in Hlc mode");
    }

    #[test]
    fn missing_columns_are_all_listed() {
        let err =
            parse("Date,Close,Adj Close\n2024-01-02,1,1\n", Columns::Ohlcv).expect_err("missing");
        let msg = err.to_string();
        assert!(
            msg.contains("t.csv") && msg.contains("open, high, low, volume"),
            "{msg}"
        );
    }

    #[test]
    fn malformed_rows_name_file_and_line() {
        let s = "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1,2,abc,1.5,10\n";
        let err = parse(s, Columns::Ohlcv).expect_err("bad number");
        assert_eq!(err.to_string(), "t.csv:3: low is not a number: \"abc\"");
        let err = parse(
            "date,open,high,low,close,volume\n2024-13-02,1,2,0.5,1.5,10\n",
            Columns::Ohlcv,
        )
        .expect_err("bad date");
        assert!(
            err.to_string().starts_with("t.csv:2: cannot read date"),
            "{err}"
        );
        let err = parse(
            "date,open,high,low,close,volume\n2024-01-02,1,2\n",
            Columns::Ohlcv,
        )
        .expect_err("short");
        assert!(
            err.to_string()
                .starts_with("t.csv:2: expected at least 6 fields"),
            "{err}"
        );
        assert!(matches!(
            parse("date,close\n", Columns::Hlc),
            Err(CsvError::MissingColumns { .. })
        ));
        assert!(matches!(
            parse("", Columns::Hlc),
            Err(CsvError::Empty { .. })
        ));
    }
}
