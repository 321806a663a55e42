//! Settings: the one configuration struct, and how it is loaded.
//!
//! Layers, lowest first: `configs/default.toml` (embedded, documents every setting) <
//! a user file (`--config`) < `TECHNIC_SECTION__KEY` environment variables < CLI flags
//! (applied by the CLI on top of the loaded struct). The environment is passed in as a
//! map, never read here, so tests stay isolated. Imports only the Redis URL syntax
//! (`redis_link`): everything else reads its settings from here.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

mod targets;
mod validate;

pub use targets::{CacheTarget, InvalidCacheUrl, MarketHours, TtlSettings, TTL_SECS_MAX};
pub use validate::{horizon_problems, log_filter_problems, scoring_problems};

/// The embedded defaults, also the reference documentation of every setting.
pub const DEFAULT_TOML: &str = include_str!("../../configs/default.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub data: DataSettings,
    pub cluster: ClusterSettings,
    pub scan: ScanSettings,
    pub cache: CacheSettings,
    pub log: LogSettings,
    pub api: ApiSettings,
    pub ml: MlSettings,
    pub screens: ScreenSettings,
}

/// `[screens]`: saved screens, watchlists, schedules and webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenSettings {
    /// The store's file without a cluster Redis; empty: `$XDG_DATA_HOME/technic/screens.json`
    /// (else `~/.local/share/technic/screens.json`).
    pub path: String,
    /// How often the leader looks for due ticks.
    pub tick_ms: u64,
    /// A tick missed (no leader, a leader that died) is still run this long after it.
    pub misfire_grace_secs: u64,
    /// A tick's claim and a screen's run lock last this long unless renewed (every quarter
    /// of it) by the process running it.
    pub lease_ms: u64,
    /// Runs kept per screen.
    pub history_runs: usize,
    /// Attempts per webhook delivery, the first included.
    pub webhook_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub webhook_timeout_ms: u64,
    pub delivery_log_max: usize,
    pub dead_letters_max: usize,
}

/// `[ml]`: the alpha model, how it is trained and how it is served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlSettings {
    /// The model file a scan serves; empty: none (no alphas, `score` = TechRating).
    pub model: String,
    /// Serve a model that was not accepted.
    pub force: bool,
    /// Weight of the alpha z-score in the blended `score` (0..=1).
    pub blend_weight: f64,
    /// The holdout t-statistic of the daily Rank ICs a model needs to be accepted.
    pub min_t_stat: f64,
    pub horizons: Vec<usize>,
    /// Bars per symbol a training run loads.
    pub history_days: usize,
    pub holdout_days: usize,
    /// Dates between training and holdout (raised to the longest horizon).
    pub embargo_days: usize,
    pub architecture: Architecture,
    pub hidden: usize,
    pub epochs: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

/// The network an alpha model fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// A weighted sum of the inputs.
    Linear,
    /// One hidden ReLU layer (`ml.hidden` units).
    Mlp,
}

/// `[api]`: the HTTP control plane of `technic serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Listen address; a non-loopback address needs a token.
    pub bind: String,
    /// Bearer token for every route (reads and changes); empty: none, and every route
    /// is open (loopback binds only). Never logged.
    pub token: Secret,
    /// A second bearer token that may only read (dashboards, scrapers); empty: none.
    /// Needs `token`.
    pub read_token: Secret,
    /// Whether `/health`, `/health/*` answer without a token when one is set.
    pub open_health: bool,
    /// Whether `/metrics` answers without a token when one is set.
    pub open_metrics: bool,
    pub max_body_bytes: usize,
    /// Scans running at once; more are refused with RATE_LIMITED.
    pub max_active_scans: usize,
    /// Largest `lookback_days` a scan submitted over HTTP may ask for.
    pub max_lookback_days: usize,
    /// Earliest `as_of` date accepted (the latest is today, UTC).
    pub min_as_of: chrono::NaiveDate,
    /// How long finished scans (with their results) stay in the history.
    pub history_ttl_secs: u64,
    /// Most scans kept in the history.
    pub history_max_scans: usize,
    /// SSE keep-alive comment interval.
    pub sse_keep_alive_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    pub url: String,
    pub memory_max_bytes: u64,
    pub retry_after_ms: u64,
    pub connect_timeout_ms: u64,
    pub response_timeout_ms: u64,
    /// Answer a config already scanned on the same data version from its cached report.
    pub scan_results: bool,
    pub warm: WarmSettings,
    pub ttl: TtlSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmSettings {
    pub symbols: Vec<String>,
    pub top_requested: usize,
    pub max_symbols_per_second: usize,
    pub refresh_before_secs: u64,
    pub interval_secs: u64,
    /// Symbols requested within this many seconds are refreshed ahead of expiry.
    pub recent_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    pub source: String,
    /// Sources tried, in order, for symbols the primary cannot serve (e.g. `["csv:DIR"]`).
    #[serde(default)]
    pub fallback: Vec<String>,
    pub synthetic: SyntheticSettings,
    pub polygon: PolygonSettings,
}

/// `[data.polygon]`: the Polygon REST client and its resilience knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolygonSettings {
    pub base_url: String,
    /// Never logged, never in an error or a report; `Debug` and `Serialize` redact it.
    pub api_key: Secret,
    pub requests_per_minute: u32,
    pub rate_limit_burst: u32,
    pub timeout_ms: u64,
    pub max_retries: usize,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub retry_after_max_ms: u64,
    pub breaker_failures: u32,
    pub breaker_open_ms: u64,
    pub breaker_open_max_ms: u64,
    pub max_in_flight: usize,
    pub max_pages: usize,
    pub max_response_bytes: usize,
    pub bulk: BulkMode,
    pub grouped_cache_days: u64,
    pub grouped_ttl_secs: u64,
    pub symbols: Vec<String>,
    pub ticker_type: String,
}

/// When the Polygon provider builds histories from grouped-daily snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkMode {
    /// Grouped-daily when it needs fewer requests than per-symbol loads.
    Auto,
    Always,
    Never,
}

/// A secret setting (an API key). Its `Debug` and `Serialize` forms are redacted, so it
/// cannot leak through a logged or printed `Settings`; read it with [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it (an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }

    fn shown(&self) -> &'static str {
        if self.is_empty() {
            ""
        } else {
            "<redacted>"
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({:?})", self.shown())
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.shown())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSettings {
    pub seed: u64,
    pub symbols: usize,
    pub days: usize,
    pub end_date: chrono::NaiveDate,
    pub latency_ms: u64,
    /// Fraction (0..=1) of symbols whose loads fail with `DATA_UNAVAILABLE`; which ones is
    /// decided by the seed, so a run is reproducible.
    #[serde(default)]
    pub failure_rate: f64,
    /// Strength (0..=1) of the planted predictive factor; 0 is none (see the synthetic
    /// provider's module doc).
    #[serde(default)]
    pub alpha_strength: f64,
    /// Scale (0..=2) of the drift of the trend regimes; 0, the default, is a martingale
    /// (see the synthetic provider's module doc).
    #[serde(default)]
    pub trend_strength: f64,
    pub poison_symbols: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    pub workers: usize,
    /// The cluster's Redis URL, the default of `--redis`; empty: none (in-process).
    #[serde(default)]
    pub redis_url: String,
    pub shard_size: usize,
    pub max_attempts: u32,
    pub max_restarts: u32,
    pub restart_window_secs: u64,
    pub restart_backoff_base_ms: u64,
    pub restart_backoff_max_ms: u64,
    pub queue_capacity: usize,
    pub queue_name: String,
    pub queue_block_ms: u64,
    /// A worker pulls small shards several at a time, holding at most this many symbols of
    /// work ahead of the one it runs (always at least one shard).
    pub prefetch_symbols: usize,
    pub visibility_timeout_ms: u64,
    pub cancelled_ttl_secs: u64,
    pub results_ttl_secs: u64,
    pub node_id: String,
    pub heartbeat_ms: u64,
    pub node_ttl_ms: u64,
    /// A down node's registry entry is pruned this long after its last heartbeat.
    pub prune_down_after_secs: u64,
    pub drain_timeout_secs: u64,
    /// A scan owner's lease in Redis, and how often it is renewed (and orphans looked for).
    pub lease_ms: u64,
    pub lease_renew_ms: u64,
    /// This machine's host name, for node ids and the registry. Not a setting: the node
    /// assembly fills it in at start-up (`localhost` until then).
    #[serde(skip, default = "localhost")]
    pub host: String,
}

fn localhost() -> String {
    "localhost".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanSettings {
    pub lookback_days: usize,
    pub min_bars: usize,
    pub min_price: f64,
    pub min_dollar_volume: f64,
    pub table_rows: usize,
    pub account_size: f64,
    pub risk_pct: f64,
    pub target_rr: f64,
    pub stop_atr_multiple: f64,
    pub max_universe_size: usize,
    pub weights: WeightSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightSettings {
    pub trend: f64,
    pub momentum: f64,
    pub volume: f64,
    pub volatility: f64,
    pub oscillator: f64,
    pub breakout: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// Every problem found while loading settings, listed together.
#[derive(Debug, thiserror::Error)]
#[error("invalid settings:\n  - {}", .problems.join("\n  - "))]
pub struct SettingsError {
    pub problems: Vec<String>,
}

impl SettingsError {
    fn one(problem: impl Into<String>) -> Self {
        SettingsError {
            problems: vec![problem.into()],
        }
    }
}

impl Settings {
    /// Loads the layered settings. `env` holds the process environment (only `TECHNIC_*`
    /// keys are read); `file` is an optional user TOML file.
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            if !path.exists() {
                return Err(SettingsError::one(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let technic_env: HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("TECHNIC_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("TECHNIC")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("data.synthetic.poison_symbols")
                .with_list_parse_key("data.fallback")
                .with_list_parse_key("data.polygon.symbols")
                .with_list_parse_key("cache.warm.symbols")
                .with_list_parse_key("ml.horizons")
                .source(Some(technic_env)),
        );
        let mut settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| SettingsError::one(e.to_string()))?;
        // Polygon's own variable, for users who already export it; the setting wins.
        if settings.data.polygon.api_key.is_empty() {
            if let Some(key) = env.get("POLYGON_API_KEY").filter(|k| !k.trim().is_empty()) {
                settings.data.polygon.api_key = Secret::new(key.trim());
            }
        }
        settings.validate()?;
        Ok(settings)
    }

    /// The embedded defaults alone.
    pub fn defaults() -> Self {
        // The embedded file is parsed by a unit test, so this cannot fail in a build that passed it.
        Self::load(None, &HashMap::new()).expect("embedded configs/default.toml is valid")
    }

    /// Checks every section (see `validate.rs`); lists every problem at once.
    pub fn validate(&self) -> Result<(), SettingsError> {
        validate::all(self)
    }

    /// This node's id: `cluster.node_id`, or `HOST-PID` when that is empty.
    pub fn node_id(&self) -> String {
        if !self.cluster.node_id.is_empty() {
            return self.cluster.node_id.clone();
        }
        format!("{}-{}", self.cluster.host, std::process::id())
    }

    /// Worker actors to run locally: `cluster.workers`, or one per core when it is 0.
    /// Worker actors one process may run: well above any machine's cores, well below what
    /// would exhaust memory on start-up.
    pub const MAX_WORKERS: usize = 1024;

    pub fn local_workers(&self) -> usize {
        match self.cluster.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse_and_validate() {
        let s = Settings::defaults();
        assert_eq!(s.data.synthetic.symbols, 5000);
        assert_eq!(s.data.synthetic.days, 500);
        assert_eq!(s.cluster.shard_size, 64);
        assert_eq!(s.scan.weights.trend, 3.0);
    }

    #[test]
    fn env_overrides_nested_keys() {
        let env = HashMap::from([
            ("TECHNIC_CLUSTER__WORKERS".to_string(), "3".to_string()),
            ("TECHNIC_DATA__SYNTHETIC__SEED".to_string(), "7".to_string()),
            (
                "TECHNIC_SCAN__WEIGHTS__TREND".to_string(),
                "2.5".to_string(),
            ),
            (
                "TECHNIC_DATA__SYNTHETIC__POISON_SYMBOLS".to_string(),
                "AAA,BBB".to_string(),
            ),
            ("UNRELATED".to_string(), "x".to_string()),
        ]);
        let s = Settings::load(None, &env).expect("valid env");
        assert_eq!(s.cluster.workers, 3);
        assert_eq!(s.local_workers(), 3);
        assert_eq!(s.data.synthetic.seed, 7);
        assert_eq!(s.scan.weights.trend, 2.5);
        assert_eq!(s.data.synthetic.poison_symbols, ["AAA", "BBB"]);
    }

    #[test]
    fn the_cluster_redis_url_is_a_setting() {
        assert_eq!(Settings::defaults().cluster.redis_url, "");
        let url = "redis-cluster://a:6379,b:6379";
        let env = HashMap::from([("TECHNIC_CLUSTER__REDIS_URL".to_string(), url.to_string())]);
        assert_eq!(
            Settings::load(None, &env).expect("valid").cluster.redis_url,
            url
        );
        // Not TECHNIC_<SECTION>__<KEY>: refused, not silently ignored.
        let env = HashMap::from([("TECHNIC_REDIS_URL".to_string(), url.to_string())]);
        assert!(Settings::load(None, &env).is_err());
    }

    #[test]
    fn user_file_overrides_and_unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[cluster]\nshard_size = 16\n").expect("write");
        let s = Settings::load(Some(&path), &HashMap::new()).expect("valid file");
        assert_eq!(s.cluster.shard_size, 16);
        assert_eq!(s.cluster.max_attempts, 3);

        std::fs::write(&path, "[cluster]\nshard_sise = 16\n").expect("write");
        let err = Settings::load(Some(&path), &HashMap::new()).expect_err("typo must fail");
        assert!(err.to_string().contains("shard_sise"), "{err}");
    }

    #[test]
    fn validation_lists_every_problem() {
        let env = HashMap::from([
            ("TECHNIC_CLUSTER__SHARD_SIZE".to_string(), "0".to_string()),
            ("TECHNIC_SCAN__RISK_PCT".to_string(), "0".to_string()),
            (
                "TECHNIC_SCAN__STOP_ATR_MULTIPLE".to_string(),
                "9".to_string(),
            ),
            (
                "TECHNIC_DATA__SYNTHETIC__ALPHA_STRENGTH".to_string(),
                "1.5".to_string(),
            ),
        ]);
        let err = Settings::load(None, &env).expect_err("invalid");
        assert_eq!(err.problems.len(), 4, "{err}");
        assert!(
            err.to_string()
                .contains("data.synthetic.alpha_strength must be within 0..=1, got 1.5"),
            "{err}"
        );
    }

    #[test]
    fn queue_settings_are_validated() {
        let env = HashMap::from([
            (
                "TECHNIC_CLUSTER__QUEUE_NAME".to_string(),
                "a{b}".to_string(),
            ),
            (
                "TECHNIC_CLUSTER__VISIBILITY_TIMEOUT_MS".to_string(),
                "100".to_string(),
            ),
            (
                "TECHNIC_CLUSTER__QUEUE_BLOCK_MS".to_string(),
                "200".to_string(),
            ),
            (
                "TECHNIC_CLUSTER__NODE_TTL_MS".to_string(),
                "1000".to_string(),
            ),
            ("TECHNIC_CLUSTER__NODE_ID".to_string(), "a b".to_string()),
        ]);
        let err = Settings::load(None, &env).expect_err("invalid");
        let text = err.to_string();
        for part in [
            "queue_name",
            "visibility_timeout_ms must exceed cluster.queue_block_ms",
            "visibility_timeout_ms must exceed cluster.heartbeat_ms",
            "node_ttl_ms (1000) must exceed cluster.heartbeat_ms (1000)",
            "node_id must not contain",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert_eq!(err.problems.len(), 5, "{err}");
    }

    /// Numbers that would exhaust memory or make every rating NaN are refused, all at once.
    #[test]
    fn counts_weights_and_sizes_are_range_checked_together() {
        let env: HashMap<String, String> = [
            ("TECHNIC_CLUSTER__WORKERS", "99999999999999999999"),
            ("TECHNIC_CLUSTER__SHARD_SIZE", "1000000"),
            ("TECHNIC_SCAN__WEIGHTS__TREND", "NaN"),
            ("TECHNIC_SCAN__WEIGHTS__MOMENTUM", "1e308"),
            ("TECHNIC_SCAN__ACCOUNT_SIZE", "1e308"),
            ("TECHNIC_SCAN__TARGET_RR", "inf"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let err = Settings::load(None, &env).expect_err("invalid");
        let text = err.to_string();
        for part in [
            "cluster.workers must be at most 1024",
            "cluster.shard_size must be at most 10000",
            "scan.weights.trend must be within 0..=100, got NaN",
            "scan.weights.momentum must be within 0..=100",
            "scan.account_size must be in (0, 1e12]",
            "scan.target_rr must be in (0, 100], got inf",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert_eq!(err.problems.len(), 6, "{err}");
        let zero: HashMap<String, String> = [
            "TREND",
            "MOMENTUM",
            "VOLUME",
            "VOLATILITY",
            "OSCILLATOR",
            "BREAKOUT",
        ]
        .iter()
        .map(|w| (format!("TECHNIC_SCAN__WEIGHTS__{w}"), "0".to_string()))
        .collect();
        let err = Settings::load(None, &zero).expect_err("no weight");
        assert!(err
            .to_string()
            .contains("at least one weight must be positive"));
    }

    #[test]
    fn down_nodes_are_pruned_after_a_setting_that_outlasts_the_node_ttl() {
        let s = Settings::load(None, &HashMap::new()).expect("defaults");
        assert_eq!(s.cluster.prune_down_after_secs, 900);
        let env = HashMap::from([(
            "TECHNIC_CLUSTER__PRUNE_DOWN_AFTER_SECS".to_string(),
            "5".to_string(),
        )]);
        let err = Settings::load(None, &env).expect_err("5 s is within the 5 s node TTL");
        assert!(
            err.to_string()
                .contains("prune_down_after_secs (5) must exceed"),
            "{err}"
        );
        let env = HashMap::from([(
            "TECHNIC_CLUSTER__PRUNE_DOWN_AFTER_SECS".to_string(),
            "6".to_string(),
        )]);
        assert_eq!(
            Settings::load(None, &env)
                .expect("valid")
                .cluster
                .prune_down_after_secs,
            6
        );
    }

    #[test]
    fn polygon_key_from_either_variable_and_never_shown() {
        let key = "pk_live_0123456789abcdef";
        let s = Settings::load(
            None,
            &HashMap::from([("POLYGON_API_KEY".to_string(), key.to_string())]),
        )
        .expect("valid");
        assert_eq!(s.data.polygon.api_key.expose(), key);
        let ours = HashMap::from([
            ("POLYGON_API_KEY".to_string(), "other".to_string()),
            (
                "TECHNIC_DATA__POLYGON__API_KEY".to_string(),
                key.to_string(),
            ),
        ]);
        let s = Settings::load(None, &ours).expect("valid");
        assert_eq!(
            s.data.polygon.api_key.expose(),
            key,
            "the technic setting wins"
        );
        let shown = format!(
            "{s:?} {:#?} {}",
            s,
            serde_json::to_string(&s).expect("json")
        );
        assert!(!shown.contains(key), "key leaked: {shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn the_polygon_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/polygon.toml");
        let s =
            Settings::load(Some(&path), &HashMap::new()).expect("configs/polygon.toml is valid");
        assert_eq!(s.data.source, "polygon");
        assert_eq!(s.data.fallback, ["csv:./snapshot"]);
        assert_eq!(s.data.polygon.requests_per_minute, 6000);
        assert_eq!(s.scan.lookback_days, 250);
    }

    #[test]
    fn fallback_list_and_failure_rate_from_env() {
        let env = HashMap::from([
            (
                "TECHNIC_DATA__FALLBACK".to_string(),
                "csv:/a,csv:/b".to_string(),
            ),
            (
                "TECHNIC_DATA__SYNTHETIC__FAILURE_RATE".to_string(),
                "0.1".to_string(),
            ),
            (
                "TECHNIC_DATA__POLYGON__REQUESTS_PER_MINUTE".to_string(),
                "100".to_string(),
            ),
        ]);
        let s = Settings::load(None, &env).expect("valid");
        assert_eq!(s.data.fallback, ["csv:/a", "csv:/b"]);
        assert_eq!(s.data.synthetic.failure_rate, 0.1);
        assert_eq!(s.data.polygon.requests_per_minute, 100);
        let bad = HashMap::from([
            (
                "TECHNIC_DATA__SYNTHETIC__FAILURE_RATE".to_string(),
                "1.5".to_string(),
            ),
            (
                "TECHNIC_DATA__POLYGON__TIMEOUT_MS".to_string(),
                "0".to_string(),
            ),
            (
                "TECHNIC_DATA__POLYGON__BASE_URL".to_string(),
                "ftp://x".to_string(),
            ),
        ]);
        assert_eq!(
            Settings::load(None, &bad)
                .expect_err("invalid")
                .problems
                .len(),
            3
        );
    }
}
