//! The publisher's metrics, served at `/metrics` on its ops port. A figure that is per pair has a
//! `pair` label, whose values are only the configured pairs (`PAIRS`).

use btc_contract::Pair;
use btc_runtime::metrics::seconds_since;
use btc_runtime::metrics::{
    self, GaugeVec, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, NatsGauge, Registry,
};
use btc_runtime::ops::ServiceMetrics;

pub struct PublisherMetrics {
    registry: Registry,
    pub fetches: IntCounterVec,
    pub fetch_duration: HistogramVec,
    pub outliers: IntCounterVec,
    pub publish_attempts: IntCounter,
    pub ticks: IntCounterVec,
    pub rounds_without_tick: IntCounterVec,
    pub source_up: IntGaugeVec,
    pub circuit_open: IntGaugeVec,
    pub last_tick_timestamp: GaugeVec,
    last_tick_age: GaugeVec,
    pub lease_active: IntGauge,
    pub lease_transitions: IntCounterVec,
    nats: NatsGauge,
    /// The configured pairs, whose tick age is computed at each scrape.
    pairs: Vec<Pair>,
}

/// Values of the `transition` label of `btc_publisher_lease_transitions_total`.
pub const LEASE_TRANSITIONS: [&str; 3] = ["acquired", "lost", "released"];

impl Default for PublisherMetrics {
    /// The metrics with no pair known in advance (a pair's series appear with its first tick).
    fn default() -> Self {
        Self::for_pairs(&[])
    }
}

impl PublisherMetrics {
    /// The metrics of a publisher of `pairs`: each pair's tick series exist from the start, its
    /// tick age +Inf until its first tick, so an age alert fires for a pair that never had one.
    pub fn for_pairs(pairs: &[Pair]) -> Self {
        let registry = Registry::new();
        metrics::build_info(&registry, "publisher");
        let exchanges = ExchangeSeries::new(&registry);
        let ticks = TickSeries::new(&registry);
        let metrics = Self {
            fetches: exchanges.fetches,
            fetch_duration: exchanges.fetch_duration,
            outliers: exchanges.outliers,
            source_up: exchanges.source_up,
            circuit_open: exchanges.circuit_open,
            publish_attempts: ticks.publish_attempts,
            ticks: ticks.ticks,
            rounds_without_tick: ticks.rounds_without_tick,
            last_tick_timestamp: ticks.last_tick_timestamp,
            last_tick_age: ticks.last_tick_age,
            lease_active: metrics::int_gauge(
                &registry,
                "btc_publisher_lease_active",
                "1 while this replica holds the lease and polls the exchanges, 0 while it stands by.",
            ),
            lease_transitions: lease_transitions(&registry),
            nats: NatsGauge::new(&registry),
            registry,
            pairs: pairs.to_vec(),
        };
        for pair in pairs {
            for result in ["acked", "duplicate", "failed"] {
                metrics.ticks.with_label_values(&[pair.as_str(), result]);
            }
            metrics.last_tick_timestamp.with_label_values(&[pair.as_str()]);
        }
        metrics
    }
}

/// The series about the exchanges, per source.
struct ExchangeSeries {
    fetches: IntCounterVec,
    fetch_duration: HistogramVec,
    outliers: IntCounterVec,
    source_up: IntGaugeVec,
    circuit_open: IntGaugeVec,
}

impl ExchangeSeries {
    fn new(r: &Registry) -> Self {
        Self {
            fetches: metrics::counter_vec(
                r,
                "btc_publisher_fetches_total",
                "Exchange requests by source, pair and outcome (ok, timeout, transport, rate_limited, http_status, redirect, insecure_url, invalid_body, invalid_price, exchange_error, body_too_large, unlisted).",
                &["source", "pair", "outcome"],
            ),
            fetch_duration: metrics::histogram_vec(
                r,
                "btc_publisher_fetch_duration_seconds",
                "Duration of exchange requests, body included.",
                &["source"],
                metrics::CLIENT_LATENCY_BUCKETS,
            ),
            outliers: metrics::counter_vec(
                r,
                "btc_publisher_outliers_total",
                "Times a source's quote of a pair was excluded as too far from that pair's median.",
                &["source", "pair"],
            ),
            source_up: metrics::int_gauge_vec(
                r,
                "btc_publisher_source_up",
                "1 if the source's last request for the pair gave a valid quote, else 0.",
                &["source", "pair"],
            ),
            circuit_open: metrics::int_gauge_vec(
                r,
                "btc_publisher_circuit_open",
                "1 while the circuit breaker of the source's pair is open, else 0.",
                &["source", "pair"],
            ),
        }
    }
}

/// The series about the rounds' ticks and their publishing.
struct TickSeries {
    publish_attempts: IntCounter,
    ticks: IntCounterVec,
    rounds_without_tick: IntCounterVec,
    last_tick_timestamp: GaugeVec,
    last_tick_age: GaugeVec,
}

impl TickSeries {
    fn new(r: &Registry) -> Self {
        Self {
            publish_attempts: metrics::counter(
                r,
                "btc_publisher_publish_attempts_total",
                "JetStream publish attempts of ticks, retries included.",
            ),
            ticks: metrics::counter_vec(
                r,
                "btc_publisher_ticks_total",
                "Ticks by pair and result: acked (stored), duplicate (already stored by another publisher or a retry), failed (given up).",
                &["pair", "result"],
            ),
            rounds_without_tick: metrics::counter_vec(
                r,
                "btc_publisher_rounds_without_tick_total",
                "Rounds that published nothing for a pair, by pair and reason (no_quotes, no_quorum).",
                &["pair", "reason"],
            ),
            last_tick_timestamp: metrics::gauge_vec(
                r,
                "btc_publisher_last_tick_timestamp_seconds",
                "Unix time of the pair's newest tick JetStream acknowledged.",
                &["pair"],
            ),
            last_tick_age: metrics::gauge_vec(
                r,
                "btc_publisher_last_tick_age_seconds",
                "Seconds since the pair's newest acknowledged tick's time (at scrape); +Inf before the first.",
                &["pair"],
            ),
        }
    }
}

fn lease_transitions(registry: &Registry) -> IntCounterVec {
    let counter = metrics::counter_vec(
        registry,
        "btc_publisher_lease_transitions_total",
        "Changes of this replica's lease: acquired (it starts polling), lost (expired or taken over), released (on shutdown).",
        &["transition"],
    );
    // Every series from the start, so that increase() sees the first transition.
    for transition in LEASE_TRANSITIONS {
        counter.with_label_values(&[transition]);
    }
    counter
}

impl ServiceMetrics for PublisherMetrics {
    fn render(&self, client: &async_nats::Client) -> String {
        self.nats.observe(client);
        for pair in &self.pairs {
            let timestamp = self.last_tick_timestamp.with_label_values(&[pair.as_str()]).get();
            self.last_tick_age.with_label_values(&[pair.as_str()]).set(seconds_since(timestamp));
        }
        metrics::encode(&self.registry)
    }
}
