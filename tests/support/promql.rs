//! Reading PromQL and Prometheus expositions just enough to know which metric names a
//! query selects and which an exporter serves (`tests/ops_files.rs`, which also tests them).

use std::collections::BTreeSet;

/// Series Prometheus makes itself, not the binary.
pub const PROMETHEUS_SERIES: &[&str] = &["up"];

/// Metric names a PromQL expression selects: string literals, label matchers, range and
/// subquery brackets, `by (…)`-style groupings, Grafana `$variables`, numbers and
/// durations are skipped; an identifier followed by `(` is a function, aggregation
/// operators and keywords are not metrics; every other identifier is a metric name.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    const GROUPING: &str = "by without on ignoring group_left group_right";
    const WORDS: &str = "and or unless bool offset inf nan \
        sum min max avg group count stddev stdvar topk bottomk quantile count_values";
    let is = |set: &str, w: &str| set.split_whitespace().any(|x| x == w);
    let c: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '"' || ch == '\'' || ch == '`' {
            i = skip_string(&c, i);
        } else if ch == '{' || ch == '[' {
            i = skip_group(&c, i, ch, if ch == '{' { '}' } else { ']' });
        } else if ch == '$' {
            i += 1;
            if c.get(i) == Some(&'{') {
                i = skip_group(&c, i, '{', '}');
            } else {
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
        } else if ch.is_ascii_digit()
            || (ch == '.' && c.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '.' || c[i] == '_') {
                i += 1;
            }
        } else if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == ':') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let mut j = i;
            while j < c.len() && c[j].is_whitespace() {
                j += 1;
            }
            let call = c.get(j) == Some(&'(');
            if is(GROUPING, &word) {
                if call {
                    i = skip_group(&c, j, '(', ')');
                }
            } else if !call && !is(WORDS, &word) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Index past the string literal starting at `i` (backslash escapes honoured).
fn skip_string(c: &[char], i: usize) -> usize {
    let quote = c[i];
    let mut j = i + 1;
    while j < c.len() && c[j] != quote {
        j += if c[j] == '\\' && quote != '`' { 2 } else { 1 };
    }
    j + 1
}

/// Index past the bracketed group opening at `i`, nesting and strings inside honoured.
fn skip_group(c: &[char], i: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    let mut j = i;
    while j < c.len() {
        match c[j] {
            '"' | '\'' | '`' => {
                j = skip_string(c, j);
                continue;
            }
            x if x == open => depth += 1,
            x if x == close => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    j
}

/// Every series name an exposition (OpenMetrics or Prometheus text) makes queryable:
/// the samples present, plus the names each `# TYPE` family yields when it has series
/// (a labelled family with none yet still declares itself).
pub fn queryable_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(f), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" if f.ends_with("_total") => &["", "_created"],
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                "gaugehistogram" => &["_bucket", "_gsum", "_gcount"],
                "summary" => &["", "_sum", "_count", "_created"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{f}{s}")));
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// The names in `used` the exposition does not serve (Prometheus's own series aside).
pub fn unexported(used: &BTreeSet<String>, exposition: &str) -> BTreeSet<String> {
    let served = queryable_names(exposition);
    used.iter()
        .filter(|n| !served.contains(*n) && !PROMETHEUS_SERIES.contains(&n.as_str()))
        .cloned()
        .collect()
}
