//! Telemetry: tracing initialisation and every Prometheus metric technic exports.
//!
//! Metric names follow Prometheus conventions (`technic_` prefix, base units, `_total`
//! counters) and are defined here only; label values come from small fixed sets.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::config::LogFormat;

/// Starts tracing to stderr. `RUST_LOG` (passed in as `env_filter`) wins over `level`.
pub fn init_tracing(format: LogFormat, level: &str, env_filter: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_new(env_filter.unwrap_or(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// `provider`: the [`Policy::provider`](crate::data::resilience::Policy) of a remote
/// provider (`polygon`); `outcome`: one of [`ProviderOutcome`](crate::data::resilience::ProviderOutcome)'s
/// names. Both are `&'static str` from fixed sets in code, never request data.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderOutcomeLabels {
    pub provider: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabel {
    pub provider: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
}

/// The process-wide metrics.
pub struct Metrics {
    pub registry: Registry,
    pub scan_requests: Counter,
    pub scan_duration: Histogram,
    pub active_scans: Gauge,
    /// outcome: passed | filtered | failed
    pub symbols_processed: Family<OutcomeLabel, Counter>,
    /// Scans of the scan book this process ended, by outcome: written (its record is the
    /// scan's one report), superseded (taken over first: not written), unwritten (Redis
    /// unreachable); and scans it took over (taken_over).
    pub scan_records: Family<OutcomeLabel, Counter>,
    /// Scans this process finished whose shards were asked for alphas (a model set on a
    /// node), by outcome: blended (every shard served the same model) | neutral (the
    /// model could not serve somewhere: every alpha 0, `ML_UNAVAILABLE`).
    pub ml_scans: Family<OutcomeLabel, Counter>,
    pub worker_restarts: Counter,
    /// Rounds of the cache warmer run by this process (the leader's duty).
    pub cache_warm_runs: Counter,
    /// kind: bars | features | ml | scan | meta
    pub cache_hits: Family<KindLabel, Counter>,
    pub cache_misses: Family<KindLabel, Counter>,
    pub cache_decode_errors: Counter,
    pub cache_errors: Counter,
    /// Shards the Redis work queue took from consumers presumed dead (idle past the
    /// visibility timeout) or re-queued for a consumer that died.
    pub queue_redeliveries: Counter,
    pub queue_errors: Counter,
    /// Nodes of the registry by state (up | draining | down), as last listed by this process.
    pub cluster_nodes: Family<StateLabel, Gauge>,
    /// One per HTTP attempt of a remote provider (retries count again), recorded by the
    /// resilience layer. outcome: ok | error | timeout | rate_limited | rejected.
    pub provider_requests: Family<ProviderOutcomeLabels, Counter>,
    /// A remote provider's circuit breaker, set on every transition:
    /// 0 closed, 1 half-open, 2 open (ordered by severity, so `max` aggregates).
    pub circuit_state: Family<ProviderLabel, Gauge>,
    /// Schedule ticks of saved screens this process fired (claimed and ran; the leader's).
    pub screen_ticks: Counter,
    /// Runs of saved screens this process ended, by outcome: done | failed.
    pub screen_runs: Family<OutcomeLabel, Counter>,
    /// Webhook delivery attempts' outcomes: delivered | retried (an attempt failed and
    /// another follows) | dead_letter (the last attempt failed).
    pub webhook_deliveries: Family<OutcomeLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

/// Upper bounds (seconds) of the scan-duration buckets: from 5 ms (a small scan on a
/// laptop) to 5 min.
pub const SCAN_DURATION_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Every `outcome` of `technic_symbols_processed_total`.
pub const SYMBOL_OUTCOMES: [&str; 3] = ["passed", "filtered", "failed"];
/// Every `outcome` of `technic_ml_scans_total`.
pub const ML_OUTCOMES: [&str; 2] = ["blended", "neutral"];
/// Every `kind` of the cache counters (`cache::Kind::as_str`).
pub const CACHE_KINDS: [&str; 5] = ["bars", "features", "ml", "scan", "meta"];
/// Every remote `provider` of `technic_provider_requests_total` (`Policy::provider`).
pub const PROVIDERS: [&str; 1] = ["polygon"];
/// Every `outcome` of `technic_provider_requests_total` (`ProviderOutcome::as_str`).
pub const PROVIDER_OUTCOMES: [&str; 5] = ["ok", "error", "timeout", "rate_limited", "rejected"];
/// Every `outcome` of `technic_screen_runs_total`.
pub const SCREEN_RUN_OUTCOMES: [&str; 2] = ["done", "failed"];
/// Every `outcome` of `technic_webhook_deliveries_total`.
pub const DELIVERY_OUTCOMES: [&str; 3] = ["delivered", "retried", "dead_letter"];
/// Every `state` of `technic_cluster_nodes` (`NodeState::as_str`).
pub const NODE_STATES: [&str; 3] = ["up", "draining", "down"];

/// Creates every known series of the labelled families at 0, so each is exported from
/// start-up and `rate()`/`increase()` see the first increment.
fn export_known_series(m: &Metrics) {
    for outcome in SYMBOL_OUTCOMES {
        let _ = m.symbols_processed.get_or_create(&OutcomeLabel { outcome });
    }
    for outcome in ML_OUTCOMES {
        let _ = m.ml_scans.get_or_create(&OutcomeLabel { outcome });
    }
    for kind in CACHE_KINDS {
        let _ = m.cache_hits.get_or_create(&KindLabel { kind });
        let _ = m.cache_misses.get_or_create(&KindLabel { kind });
    }
    for provider in PROVIDERS {
        for outcome in PROVIDER_OUTCOMES {
            let _ = m
                .provider_requests
                .get_or_create(&ProviderOutcomeLabels { provider, outcome });
        }
    }
    for state in NODE_STATES {
        let _ = m.cluster_nodes.get_or_create(&StateLabel { state });
    }
    for outcome in SCREEN_RUN_OUTCOMES {
        let _ = m.screen_runs.get_or_create(&OutcomeLabel { outcome });
    }
    for outcome in DELIVERY_OUTCOMES {
        let _ = m
            .webhook_deliveries
            .get_or_create(&OutcomeLabel { outcome });
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("technic");
    let scan_requests = Counter::default();
    registry.register("scan_requests", "Scans submitted", scan_requests.clone());
    let scan_duration = Histogram::new(SCAN_DURATION_BUCKETS);
    registry.register_with_unit(
        "scan_duration",
        "Wall-clock duration of finished scans",
        prometheus_client::registry::Unit::Seconds,
        scan_duration.clone(),
    );
    let active_scans = Gauge::default();
    registry.register("active_scans", "Scans in progress", active_scans.clone());
    let cache_warm_runs = Counter::default();
    registry.register(
        "cache_warm_runs",
        "Rounds of the cache warmer this process ran (only the leader warms)",
        cache_warm_runs.clone(),
    );
    let scan_records = Family::<OutcomeLabel, Counter>::default();
    registry.register(
        "scan_records",
        "Scan book records this process ended or took over, by outcome",
        scan_records.clone(),
    );
    let ml_scans = Family::<OutcomeLabel, Counter>::default();
    registry.register(
        "ml_scans",
        "Scans finished with an alpha model set, by outcome: blended, neutral (the model could not serve)",
        ml_scans.clone(),
    );
    let screen_ticks = Counter::default();
    registry.register(
        "screen_ticks",
        "Schedule ticks of saved screens this process fired (only the leader fires)",
        screen_ticks.clone(),
    );
    let screen_runs = Family::<OutcomeLabel, Counter>::default();
    registry.register(
        "screen_runs",
        "Runs of saved screens this process ended, by outcome: done, failed",
        screen_runs.clone(),
    );
    let webhook_deliveries = Family::<OutcomeLabel, Counter>::default();
    registry.register(
        "webhook_deliveries",
        "Webhook delivery attempts by outcome: delivered, retried, dead_letter (the last attempt failed)",
        webhook_deliveries.clone(),
    );
    let symbols_processed = Family::<OutcomeLabel, Counter>::default();
    registry.register(
        "symbols_processed",
        "Symbols evaluated, by outcome",
        symbols_processed.clone(),
    );
    let worker_restarts = Counter::default();
    registry.register(
        "worker_restarts",
        "Worker actors restarted after a failure",
        worker_restarts.clone(),
    );
    let cache_hits = Family::<KindLabel, Counter>::default();
    registry.register(
        "cache_hits",
        "Cache lookups served, by kind",
        cache_hits.clone(),
    );
    let cache_misses = Family::<KindLabel, Counter>::default();
    registry.register(
        "cache_misses",
        "Cache lookups missed (absent, undecodable or cache unavailable), by kind",
        cache_misses.clone(),
    );
    let cache_decode_errors = Counter::default();
    registry.register(
        "cache_decode_errors",
        "Cached values that failed to decode",
        cache_decode_errors.clone(),
    );
    let cache_errors = Counter::default();
    registry.register(
        "cache_errors",
        "Cache backend operations that failed",
        cache_errors.clone(),
    );
    let queue_redeliveries = Counter::default();
    registry.register(
        "queue_redeliveries",
        "Shards re-queued or claimed from dead consumers by the Redis work queue",
        queue_redeliveries.clone(),
    );
    let queue_errors = Counter::default();
    registry.register(
        "queue_errors",
        "Redis work queue operations that failed",
        queue_errors.clone(),
    );
    let cluster_nodes = Family::<StateLabel, Gauge>::default();
    registry.register(
        "cluster_nodes",
        "Nodes in the cluster registry by state, as last listed by this process",
        cluster_nodes.clone(),
    );
    let provider_requests = Family::<ProviderOutcomeLabels, Counter>::default();
    registry.register(
        "provider_requests",
        "HTTP attempts to remote data providers, by provider and outcome (ok, error, timeout, rate_limited, rejected)",
        provider_requests.clone(),
    );
    let circuit_state = Family::<ProviderLabel, Gauge>::default();
    registry.register(
        "circuit_state",
        "Circuit breaker state per remote data provider: 0 closed, 1 half-open, 2 open",
        circuit_state.clone(),
    );
    let build_info = Family::<BuildLabels, Gauge>::default();
    build_info
        .get_or_create(&BuildLabels {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
    registry.register("build_info", "Build information", build_info);
    let m = Metrics {
        registry,
        scan_requests,
        scan_duration,
        active_scans,
        symbols_processed,
        scan_records,
        ml_scans,
        worker_restarts,
        cache_warm_runs,
        cache_hits,
        cache_misses,
        cache_decode_errors,
        cache_errors,
        queue_redeliveries,
        queue_errors,
        cluster_nodes,
        provider_requests,
        circuit_state,
        screen_ticks,
        screen_runs,
        webhook_deliveries,
    };
    export_known_series(&m);
    m
});

pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The content type of [`encode_metrics`]'s text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of [`encode_prometheus_text`]'s text.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The registry in OpenMetrics text.
pub fn encode_metrics() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &metrics().registry);
    out
}

/// The registry in the Prometheus text format 0.0.4 (what `promtool check metrics` and
/// clients that do not ask for OpenMetrics read): the OpenMetrics text with each counter's
/// `# HELP`/`# TYPE` named after its `_total` samples, without `# UNIT` and `# EOF`.
pub fn encode_prometheus_text() -> String {
    openmetrics_to_text(&encode_metrics())
}

fn openmetrics_to_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            (counters.contains(name) && !name.ends_with("_total"))
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(l.trim_end()),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The format a scrape asked for in its `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    OpenMetrics,
    PrometheusText,
}

impl Exposition {
    /// OpenMetrics when `Accept` lists `application/openmetrics-text` with a quality above
    /// 0 and at least that of `text/plain`; the Prometheus text format otherwise
    /// (no header, `*/*`, `text/plain`, anything else).
    pub fn negotiate(accept: Option<&str>) -> Exposition {
        let (mut openmetrics, mut text) = (0.0_f64, 0.0_f64);
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(1.0, |(_, v)| v.trim().parse::<f64>().unwrap_or(0.0));
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Exposition::OpenMetrics
        } else {
            Exposition::PrometheusText
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::OpenMetrics => OPENMETRICS,
            Exposition::PrometheusText => PROMETHEUS_TEXT,
        }
    }

    /// The registry in this format.
    pub fn encode(self) -> String {
        match self {
            Exposition::OpenMetrics => encode_metrics(),
            Exposition::PrometheusText => encode_prometheus_text(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn families_are_exported_with_conventional_names() {
        super::metrics().scan_requests.inc();
        let text = super::encode_metrics();
        for name in [
            "technic_scan_requests_total",
            "technic_scan_duration_seconds",
            "technic_active_scans",
            "technic_worker_restarts_total",
            "technic_queue_redeliveries_total",
            "technic_queue_errors_total",
            "technic_build_info",
            "technic_provider_requests",
            "technic_circuit_state",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    #[test]
    fn labelled_counters_are_exported_at_zero_from_the_start() {
        let text = super::encode_prometheus_text();
        for series in [
            r#"technic_symbols_processed_total{outcome="passed"}"#,
            r#"technic_cache_misses_total{kind="meta"}"#,
            r#"technic_provider_requests_total{provider="polygon",outcome="rejected"}"#,
            r#"technic_cluster_nodes{state="down"}"#,
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
    }

    #[test]
    fn the_text_format_names_counter_families_after_their_samples() {
        let om = "# HELP technic_x Things.\n# TYPE technic_x counter\ntechnic_x_total 3\n\
                  # HELP technic_d_seconds Time.\n# TYPE technic_d_seconds histogram\n# UNIT technic_d_seconds seconds\n\
                  technic_d_seconds_sum 0.0\n# EOF\n";
        let text = super::openmetrics_to_text(om);
        assert_eq!(
            text,
            "# HELP technic_x_total Things.\n# TYPE technic_x_total counter\ntechnic_x_total 3\n\
             # HELP technic_d_seconds Time.\n# TYPE technic_d_seconds histogram\ntechnic_d_seconds_sum 0.0\n"
        );
    }

    #[test]
    fn accept_decides_the_format() {
        use super::Exposition::{self, OpenMetrics, PrometheusText};
        for (accept, want) in [
            (None, PrometheusText),
            (Some("*/*"), PrometheusText),
            (Some("text/plain"), PrometheusText),
            (Some("text/plain; version=0.0.4"), PrometheusText),
            (Some("application/openmetrics-text"), OpenMetrics),
            (
                Some("application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"),
                OpenMetrics,
            ),
            (
                Some("application/openmetrics-text;q=0.2,text/plain;q=0.9"),
                PrometheusText,
            ),
            (Some("application/openmetrics-text;q=0"), PrometheusText),
        ] {
            assert_eq!(Exposition::negotiate(accept), want, "{accept:?}");
        }
    }
}
