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
    pub worker_restarts: Counter,
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
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("technic");
    let scan_requests = Counter::default();
    registry.register("scan_requests", "Scans submitted", scan_requests.clone());
    let scan_duration =
        Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]);
    registry.register_with_unit(
        "scan_duration",
        "Wall-clock duration of finished scans",
        prometheus_client::registry::Unit::Seconds,
        scan_duration.clone(),
    );
    let active_scans = Gauge::default();
    registry.register("active_scans", "Scans in progress", active_scans.clone());
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
    Metrics {
        registry,
        scan_requests,
        scan_duration,
        active_scans,
        symbols_processed,
        worker_restarts,
        cache_hits,
        cache_misses,
        cache_decode_errors,
        cache_errors,
        queue_redeliveries,
        queue_errors,
        cluster_nodes,
        provider_requests,
        circuit_state,
    }
});

pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The content type of [`encode_metrics`]'s text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry in OpenMetrics text.
pub fn encode_metrics() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &metrics().registry);
    out
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
}
