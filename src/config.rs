//! Settings: the one configuration struct, and how it is loaded.
//!
//! Layers, lowest first: `configs/default.toml` (embedded, documents every setting) <
//! a user file (`--config`) < `TECHNIC_SECTION__KEY` environment variables < CLI flags
//! (applied by the CLI on top of the loaded struct). The environment is passed in as a
//! map, never read here, so tests stay isolated. Knows nothing of other modules.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The embedded defaults, also the reference documentation of every setting.
pub const DEFAULT_TOML: &str = include_str!("../configs/default.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub data: DataSettings,
    pub cluster: ClusterSettings,
    pub scan: ScanSettings,
    pub cache: CacheSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    pub url: String,
    pub memory_max_bytes: u64,
    pub retry_after_ms: u64,
    pub connect_timeout_ms: u64,
    pub response_timeout_ms: u64,
    pub warm: WarmSettings,
    pub ttl: crate::cache::TtlSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmSettings {
    pub symbols: Vec<String>,
    pub top_requested: usize,
    pub max_symbols_per_second: usize,
    pub refresh_before_secs: u64,
    pub interval_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    pub source: String,
    pub synthetic: SyntheticSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSettings {
    pub seed: u64,
    pub symbols: usize,
    pub days: usize,
    pub end_date: chrono::NaiveDate,
    pub latency_ms: u64,
    pub poison_symbols: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    pub workers: usize,
    pub shard_size: usize,
    pub max_attempts: u32,
    pub max_restarts: u32,
    pub restart_window_secs: u64,
    pub restart_backoff_base_ms: u64,
    pub restart_backoff_max_ms: u64,
    pub queue_capacity: usize,
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
                .with_list_parse_key("cache.warm.symbols")
                .source(Some(technic_env)),
        );
        let settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| SettingsError::one(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The embedded defaults alone.
    pub fn defaults() -> Self {
        // The embedded file is parsed by a unit test, so this cannot fail in a build that passed it.
        Self::load(None, &HashMap::new()).expect("embedded configs/default.toml is valid")
    }

    /// Checks cross-field rules; lists every problem at once.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let mut p = Vec::new();
        let c = &self.cluster;
        if c.shard_size == 0 {
            p.push("cluster.shard_size must be at least 1".to_string());
        }
        if c.max_attempts == 0 {
            p.push("cluster.max_attempts must be at least 1".to_string());
        }
        if c.queue_capacity == 0 {
            p.push("cluster.queue_capacity must be at least 1".to_string());
        }
        if self.data.synthetic.days == 0 {
            p.push("data.synthetic.days must be at least 1".to_string());
        }
        let s = &self.scan;
        if !(s.risk_pct > 0.0 && s.risk_pct <= 100.0) {
            p.push(format!(
                "scan.risk_pct must be in (0, 100], got {}",
                s.risk_pct
            ));
        }
        if s.account_size.is_nan() || s.account_size <= 0.0 {
            p.push(format!(
                "scan.account_size must be positive, got {}",
                s.account_size
            ));
        }
        if s.target_rr.is_nan() || s.target_rr <= 0.0 {
            p.push(format!(
                "scan.target_rr must be positive, got {}",
                s.target_rr
            ));
        }
        if !(0.5..=3.0).contains(&s.stop_atr_multiple) {
            p.push(format!(
                "scan.stop_atr_multiple must be within 0.5..=3 ATR, got {}",
                s.stop_atr_multiple
            ));
        }
        if s.max_universe_size == 0 {
            p.push("scan.max_universe_size must be at least 1".to_string());
        }
        if self.cache.warm.max_symbols_per_second == 0 {
            p.push("cache.warm.max_symbols_per_second must be at least 1".to_string());
        }
        if let Err(e) = self.cache.url.parse::<crate::cache::CacheTarget>() {
            p.push(format!("cache.url: {e}"));
        }
        if let Err(problems) = crate::cache::SmartTtl::new(
            self.cache.ttl.clone(),
            std::sync::Arc::new(crate::cache::SystemClock),
        ) {
            p.extend(problems);
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(SettingsError { problems: p })
        }
    }

    /// Worker actors to run locally: `cluster.workers`, or one per core when it is 0.
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
        ]);
        let err = Settings::load(None, &env).expect_err("invalid");
        assert_eq!(err.problems.len(), 3, "{err}");
    }
}
