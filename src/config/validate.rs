//! `Settings::validate`: one check per section, each adding its problems to one list, so a
//! user sees every problem of a configuration at once.

use crate::market::short_number;

use super::{
    ApiSettings, CacheSettings, ClusterSettings, DataSettings, MlSettings, ScanSettings, Settings,
    SettingsError, WeightSettings,
};

pub(super) fn all(s: &Settings) -> Result<(), SettingsError> {
    let mut p = Vec::new();
    cluster(&s.cluster, &mut p);
    data(&s.data, &mut p);
    scan(&s.scan, &mut p);
    api(&s.api, &mut p);
    cache(&s.cache, &mut p);
    ml(&s.ml, &mut p);
    if s.screens.misfire_grace_secs > 7 * 86_400 {
        p.push(format!(
            "screens.misfire_grace_secs must be at most 604800 (a week), got {}",
            s.screens.misfire_grace_secs
        ));
    }
    if s.screens.retry_max_ms < s.screens.retry_base_ms {
        p.push(format!(
            "screens.retry_max_ms ({}) must be at least screens.retry_base_ms ({})",
            s.screens.retry_max_ms, s.screens.retry_base_ms
        ));
    }
    at_least_one(
        "screens",
        &[
            ("tick_ms", s.screens.tick_ms),
            ("lease_ms", s.screens.lease_ms),
            ("history_runs", s.screens.history_runs as u64),
            ("webhook_attempts", s.screens.webhook_attempts as u64),
            ("retry_base_ms", s.screens.retry_base_ms),
            ("retry_max_ms", s.screens.retry_max_ms),
            ("webhook_timeout_ms", s.screens.webhook_timeout_ms),
            ("delivery_log_max", s.screens.delivery_log_max as u64),
            ("dead_letters_max", s.screens.dead_letters_max as u64),
        ],
        &mut p,
    );
    p.extend(log_filter_problems("log.level", &s.log.level));
    if p.is_empty() {
        Ok(())
    } else {
        Err(SettingsError { problems: p })
    }
}

/// The problems of a log filter (`log.level`, `RUST_LOG`): comma-separated directives,
/// each `LEVEL` or `TARGET=LEVEL`, where LEVEL is one of trace, debug, info, warn, error,
/// off and TARGET a module path such as `technic::cluster`. Stricter than tracing's own
/// parser, which takes a misspelt level for a target name and silently logs nothing.
pub fn log_filter_problems(name: &str, filter: &str) -> Vec<String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let level_ok = |l: &str| LEVELS.contains(&l.trim().to_ascii_lowercase().as_str());
    let target_ok = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-'))
    };
    let mut p = Vec::new();
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let ok = match directive.split_once('=') {
            Some((target, level)) => target_ok(target.trim()) && level_ok(level),
            None => level_ok(directive),
        };
        if !ok {
            p.push(format!(
                "{name}: {directive:?} is not LEVEL or TARGET=LEVEL (levels: {})",
                LEVELS.join(", ")
            ));
        }
    }
    p
}

/// `name must be at least 1` for every zero in `values`.
fn at_least_one(section: &str, values: &[(&str, u64)], p: &mut Vec<String>) {
    for (name, v) in values {
        if *v == 0 {
            p.push(format!("{section}.{name} must be at least 1"));
        }
    }
}

fn cluster(c: &ClusterSettings, p: &mut Vec<String>) {
    at_least_one(
        "cluster",
        &[
            ("shard_size", c.shard_size as u64),
            ("max_attempts", u64::from(c.max_attempts)),
            ("queue_capacity", c.queue_capacity as u64),
            ("prefetch_symbols", c.prefetch_symbols as u64),
        ],
        p,
    );
    for (name, v) in [
        ("shard_size", c.shard_size),
        ("prefetch_symbols", c.prefetch_symbols),
    ] {
        if v > 10_000 {
            p.push(format!("cluster.{name} must be at most 10000, got {v}"));
        }
    }
    if c.workers > Settings::MAX_WORKERS {
        p.push(format!(
            "cluster.workers must be at most {} (0: one per core), got {}",
            Settings::MAX_WORKERS,
            c.workers
        ));
    }
    if c.queue_name.is_empty() || c.queue_name.contains(['{', '}']) {
        p.push(format!(
            "cluster.queue_name must be non-empty without braces, got {:?}",
            c.queue_name
        ));
    }
    if c.queue_block_ms == 0 {
        p.push("cluster.queue_block_ms must be at least 1".to_string());
    }
    if c.visibility_timeout_ms <= c.queue_block_ms {
        p.push("cluster.visibility_timeout_ms must exceed cluster.queue_block_ms".to_string());
    }
    if c.cancelled_ttl_secs == 0 || c.results_ttl_secs == 0 {
        p.push("cluster.cancelled_ttl_secs and results_ttl_secs must be at least 1".to_string());
    }
    if c.heartbeat_ms == 0 || c.node_ttl_ms <= c.heartbeat_ms {
        p.push(format!(
            "cluster.node_ttl_ms ({}) must exceed cluster.heartbeat_ms ({}), which must be at least 1",
            c.node_ttl_ms, c.heartbeat_ms
        ));
    }
    if c.prune_down_after_secs.saturating_mul(1000) <= c.node_ttl_ms {
        p.push(format!(
            "cluster.prune_down_after_secs ({}) must exceed cluster.node_ttl_ms ({} ms): a node is only down once its entry expired",
            c.prune_down_after_secs, c.node_ttl_ms
        ));
    }
    if c.lease_renew_ms == 0 || c.lease_ms < 2 * c.lease_renew_ms {
        p.push(format!(
            "cluster.lease_ms ({}) must be at least twice cluster.lease_renew_ms ({}), which must be at least 1",
            c.lease_ms, c.lease_renew_ms
        ));
    }
    if c.visibility_timeout_ms <= c.heartbeat_ms {
        p.push("cluster.visibility_timeout_ms must exceed cluster.heartbeat_ms (nodes renew their shards every heartbeat)".to_string());
    }
    if c.node_id.contains(['{', '}', ' ']) {
        p.push(format!(
            "cluster.node_id must not contain braces or spaces, got {:?}",
            c.node_id
        ));
    }
}

fn data(d: &DataSettings, p: &mut Vec<String>) {
    if d.synthetic.days == 0 {
        p.push("data.synthetic.days must be at least 1".to_string());
    }
    let rate = d.synthetic.failure_rate;
    if !(0.0..=1.0).contains(&rate) {
        p.push(format!(
            "data.synthetic.failure_rate must be within 0..=1, got {rate}"
        ));
    }
    let trend = d.synthetic.trend_strength;
    if !(0.0..=2.0).contains(&trend) {
        p.push(format!(
            "data.synthetic.trend_strength must be within 0..=2, got {trend}"
        ));
    }
    let alpha = d.synthetic.alpha_strength;
    if !(0.0..=1.0).contains(&alpha) {
        p.push(format!(
            "data.synthetic.alpha_strength must be within 0..=1, got {alpha}"
        ));
    }
    let pg = &d.polygon;
    if !(pg.base_url.starts_with("http://") || pg.base_url.starts_with("https://")) {
        p.push(format!(
            "data.polygon.base_url must be an http(s) URL, got {:?}",
            pg.base_url
        ));
    }
    at_least_one(
        "data.polygon",
        &[
            ("requests_per_minute", u64::from(pg.requests_per_minute)),
            ("rate_limit_burst", u64::from(pg.rate_limit_burst)),
            ("timeout_ms", pg.timeout_ms),
            ("breaker_failures", u64::from(pg.breaker_failures)),
            ("breaker_open_ms", pg.breaker_open_ms),
            ("max_in_flight", pg.max_in_flight as u64),
            ("max_pages", pg.max_pages as u64),
            ("max_response_bytes", pg.max_response_bytes as u64),
            ("grouped_cache_days", pg.grouped_cache_days),
        ],
        p,
    );
    if pg.retry_max_ms < pg.retry_base_ms {
        p.push("data.polygon.retry_max_ms must be at least retry_base_ms".to_string());
    }
    if pg.breaker_open_max_ms < pg.breaker_open_ms {
        p.push("data.polygon.breaker_open_max_ms must be at least breaker_open_ms".to_string());
    }
}

fn scan(s: &ScanSettings, p: &mut Vec<String>) {
    p.extend(scoring_problems(
        "scan.",
        &s.weights,
        [s.account_size, s.risk_pct, s.target_rr, s.stop_atr_multiple],
    ));
    if s.max_universe_size == 0 {
        p.push("scan.max_universe_size must be at least 1".to_string());
    }
}

/// The largest weight of one score category.
pub const MAX_WEIGHT: f64 = 100.0;
/// The largest account a trade plan is sized for, in dollars.
pub const MAX_ACCOUNT_SIZE: f64 = 1e12;

/// The problems of the values that score and size a scan, wherever they come from (the
/// `[scan]` settings, a scan request): every weight finite in `0..=MAX_WEIGHT` and one at
/// least positive; then `[account_size, risk_pct, target_rr, stop_atr_multiple]` within
/// `(0, MAX_ACCOUNT_SIZE]`, `(0, 100]`, `(0, 100]` and `0.5..=3`. `prefix` is put before
/// each name (`scan.` for settings). NaN fails every range.
pub fn scoring_problems(prefix: &str, w: &WeightSettings, plan: [f64; 4]) -> Vec<String> {
    let mut p = Vec::new();
    let weights = [
        ("trend", w.trend),
        ("momentum", w.momentum),
        ("volume", w.volume),
        ("volatility", w.volatility),
        ("oscillator", w.oscillator),
        ("breakout", w.breakout),
    ];
    for (name, v) in weights {
        if !(0.0..=MAX_WEIGHT).contains(&v) {
            p.push(format!(
                "{prefix}weights.{name} must be within 0..={MAX_WEIGHT}, got {}",
                short_number(v)
            ));
        }
    }
    if weights.iter().all(|(_, v)| *v <= 0.0 || v.is_nan()) {
        p.push(format!(
            "{prefix}weights: at least one weight must be positive"
        ));
    }
    let [account, risk, rr, stop] = plan;
    let within = |v: f64, max: f64| v > 0.0 && v <= max;
    if !within(account, MAX_ACCOUNT_SIZE) {
        p.push(format!(
            "{prefix}account_size must be in (0, {MAX_ACCOUNT_SIZE:e}], got {}",
            short_number(account)
        ));
    }
    if !within(risk, 100.0) {
        p.push(format!(
            "{prefix}risk_pct must be in (0, 100], got {}",
            short_number(risk)
        ));
    }
    if !within(rr, 100.0) {
        p.push(format!(
            "{prefix}target_rr must be in (0, 100], got {}",
            short_number(rr)
        ));
    }
    if !(0.5..=3.0).contains(&stop) {
        p.push(format!(
            "{prefix}stop_atr_multiple must be within 0.5..=3 ATR, got {}",
            short_number(stop)
        ));
    }
    p
}

fn api(a: &ApiSettings, p: &mut Vec<String>) {
    if a.bind.parse::<std::net::SocketAddr>().is_err() {
        p.push(format!(
            "api.bind must be an IP:PORT address, got {:?}",
            a.bind
        ));
    }
    at_least_one(
        "api",
        &[
            ("max_body_bytes", a.max_body_bytes as u64),
            ("max_active_scans", a.max_active_scans as u64),
            ("max_lookback_days", a.max_lookback_days as u64),
            ("history_ttl_secs", a.history_ttl_secs),
            ("history_max_scans", a.history_max_scans as u64),
            ("sse_keep_alive_secs", a.sse_keep_alive_secs),
        ],
        p,
    );
}

fn cache(c: &CacheSettings, p: &mut Vec<String>) {
    p.extend(
        crate::market::symbol_problems(c.warm.symbols.iter().map(String::as_str))
            .into_iter()
            .map(|m| format!("cache.warm.symbols: {m}")),
    );
    if c.warm.max_symbols_per_second == 0 {
        p.push("cache.warm.max_symbols_per_second must be at least 1".to_string());
    }
    if let Err(e) = c.url.parse::<super::CacheTarget>() {
        p.push(format!("cache.url: {e}"));
    }
    if let Err(e) = c.ttl.market_hours() {
        p.extend(e.problems);
    }
}

/// Longest forward-return horizon a model may predict, in trading days.
pub const MAX_HORIZON: usize = 60;

fn ml(m: &MlSettings, p: &mut Vec<String>) {
    if !(0.0..=1.0).contains(&m.blend_weight) {
        p.push(format!(
            "ml.blend_weight must be within 0..=1, got {}",
            m.blend_weight
        ));
    }
    if !m.min_t_stat.is_finite() {
        p.push(format!(
            "ml.min_t_stat must be a number, got {}",
            m.min_t_stat
        ));
    }
    if !(m.learning_rate > 0.0 && m.learning_rate.is_finite()) {
        p.push(format!(
            "ml.learning_rate must be above 0, got {}",
            m.learning_rate
        ));
    }
    p.extend(horizon_problems("ml.horizons", &m.horizons));
    at_least_one(
        "ml",
        &[
            ("hidden", m.hidden as u64),
            ("epochs", m.epochs as u64),
            ("holdout_days", m.holdout_days as u64),
            ("history_days", m.history_days as u64),
        ],
        p,
    );
}

/// The problems of a list of forward-return horizons: at least one, each 1..=60 trading
/// days, no repeats.
pub fn horizon_problems(name: &str, horizons: &[usize]) -> Vec<String> {
    let mut p = Vec::new();
    if horizons.is_empty() {
        p.push(format!("{name} needs at least one horizon (e.g. 5,10)"));
    }
    for h in horizons {
        if !(1..=MAX_HORIZON).contains(h) {
            p.push(format!(
                "{name}: {h} is not a horizon of 1..={MAX_HORIZON} trading days"
            ));
        }
    }
    let mut seen = horizons.to_vec();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != horizons.len() {
        p.push(format!("{name} lists a horizon twice"));
    }
    p
}
