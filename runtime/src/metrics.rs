//! Prometheus metrics: small constructors that register as they create (names and help texts are
//! fixed in code, so a failure here is a programming error caught by the first test), and the
//! text encoding served at `/metrics`.

use prometheus::core::Collector;
pub use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry,
};
use prometheus::{HistogramOpts, Opts};

/// Registers `metric` and hands it back (a failure is a programming error, see above).
fn registered<M: Collector + Clone + 'static>(registry: &Registry, metric: Result<M, prometheus::Error>) -> M {
    let metric = metric.expect("valid metric definition");
    registry.register(Box::new(metric.clone())).expect("metric registered once");
    metric
}

pub fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(registry, IntCounterVec::new(Opts::new(name, help), labels))
}

pub fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    registered(registry, IntCounter::with_opts(Opts::new(name, help)))
}

pub fn gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    registered(registry, Gauge::with_opts(Opts::new(name, help)))
}

pub fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    registered(registry, GaugeVec::new(Opts::new(name, help), labels))
}

pub fn int_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    registered(registry, IntGauge::with_opts(Opts::new(name, help)))
}

pub fn int_gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(registry, IntGaugeVec::new(Opts::new(name, help), labels))
}

pub fn histogram_vec(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    registered(registry, HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels))
}

/// The version the services were built as (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit they were built from, or `unknown` (see `build.rs`).
pub const REVISION: &str = env!("BTC_GIT_COMMIT");

/// Registers `btc_build_info{component, version, revision} 1`. Every replica of every service
/// exports it, so its absence means that no replica of `component` runs (the `Btc*Down` alerts),
/// and `count by (version, revision)` shows what runs where during a rollout.
pub fn build_info(registry: &Registry, component: &'static str) {
    let info = int_gauge_vec(
        registry,
        "btc_build_info",
        "Always 1; the labels say which service this is and the version and git commit it was built from.",
        &["component", "version", "revision"],
    );
    info.with_label_values(&[component, VERSION, REVISION]).set(1);
}

/// Latency buckets for HTTP requests served from memory, seconds.
pub const SERVER_LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
/// Latency buckets for calls to exchanges and NATS, seconds.
pub const CLIENT_LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The NATS connection state, shared by every service: `btc_nats_connected`.
pub struct NatsGauge(IntGauge);

impl NatsGauge {
    pub fn new(registry: &Registry) -> Self {
        Self(int_gauge(registry, "btc_nats_connected", "1 while the service holds a connection to NATS, else 0."))
    }

    pub fn observe(&self, client: &async_nats::Client) {
        self.0.set(i64::from(crate::nats::is_connected(client)));
    }
}

/// Seconds from `time` to now, never negative.
pub fn age_seconds(time: chrono::DateTime<chrono::Utc>) -> f64 {
    ((chrono::Utc::now() - time).num_milliseconds() as f64 / 1000.0).max(0.0)
}

/// Seconds from the unix time `timestamp` to now; +Inf for 0 (nothing happened yet), so an age
/// alert fires instead of reading "0 s old".
pub fn seconds_since(timestamp: f64) -> f64 {
    if timestamp <= 0.0 {
        return f64::INFINITY;
    }
    (chrono::Utc::now().timestamp_millis() as f64 / 1000.0 - timestamp).max(0.0)
}

/// The registry in the Prometheus text exposition format.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    if let Err(error) = prometheus::TextEncoder::new().encode_utf8(&registry.gather(), &mut text) {
        tracing::warn!(%error, "cannot encode metrics");
    }
    text
}

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
