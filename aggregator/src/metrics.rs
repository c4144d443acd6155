//! The aggregator's metrics, served at `/metrics` on its ops port.

use btc_contract::Pair;
use btc_runtime::metrics::seconds_since;
use btc_runtime::metrics::{
    self, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, NatsGauge, Registry,
};
use btc_runtime::ops::ServiceMetrics;

use crate::aggregates::Aggregates;
use crate::state::TickOutcome;
use crate::window::Applied;

pub struct AggregatorMetrics {
    registry: Registry,
    /// `btc_aggregator_ticks_total` by outcome, resolved once: a labelled lookup per tick hashes
    /// the label under a lock.
    ticks: TickOutcomes,
    pub state_writes: IntCounterVec,
    /// `btc_aggregator_checkpoint_writes_total` by result: counted by the task that writes.
    pub checkpoint_writes: IntCounterVec,
    window_starts: IntCounterVec,
    candles: IntCounterVec,
    pub lag: IntGauge,
    /// The window's gauges of each configured pair, in the configured order.
    windows: Vec<WindowGauges>,
    nats: NatsGauge,
}

/// One pair's window gauges, resolved once.
struct WindowGauges {
    samples: IntGauge,
    newest_tick_timestamp: Gauge,
    newest_tick_age: Gauge,
    store_delay: Gauge,
}

impl AggregatorMetrics {
    /// The metrics of an aggregator of `pairs`: the `pair` label takes only these values.
    pub fn new(pairs: &[Pair]) -> Self {
        let registry = Registry::new();
        let r = &registry;
        metrics::build_info(r, "aggregator");
        let gauges = WindowVecs::new(r);
        Self {
            windows: pairs.iter().map(|pair| gauges.of(pair)).collect(),
            ticks: TickOutcomes::new(&metrics::counter_vec(
                r,
                "btc_aggregator_ticks_total",
                "Ticks read from the stream by outcome: appended, inserted (out of order), duplicate, too_old, already_applied, invalid, future.",
                &["outcome"],
            )),
            state_writes: metrics::counter_vec(
                r,
                "btc_aggregator_state_writes_total",
                "Writes of the state to KV by result: stored, already_newer (another aggregator was ahead), failed.",
                &["result"],
            ),
            checkpoint_writes: metrics::counter_vec(
                r,
                "btc_aggregator_checkpoint_writes_total",
                "Writes of a pair's window checkpoint to KV by result: stored, failed (retried at the next checkpoint), too_large (over 1 MB: not written).",
                &["result"],
            ),
            window_starts: metrics::counter_vec(
                r,
                "btc_aggregator_window_starts_total",
                "Pair windows set up at a start or after the stream changed, by where from: checkpoint (then only the ticks after it are read), replay (the whole window read from the stream).",
                &["from"],
            ),
            candles: metrics::counter_vec(
                r,
                "btc_aggregator_candles_total",
                "Closed candles published, by interval and result: stored, duplicate (already stored by a replay or another aggregator), failed (retried).",
                &["interval", "result"],
            ),
            lag: metrics::int_gauge(
                r,
                "btc_aggregator_lag_messages",
                "Ticks in the stream not yet delivered to this aggregator's consumer.",
            ),
            nats: NatsGauge::new(r),
            registry,
        }
    }
}

/// The per-pair window gauges, registered once.
struct WindowVecs {
    samples: IntGaugeVec,
    newest_tick_timestamp: GaugeVec,
    newest_tick_age: GaugeVec,
    store_delay: GaugeVec,
}

impl WindowVecs {
    fn new(r: &Registry) -> Self {
        Self {
            samples: metrics::int_gauge_vec(
                r,
                "btc_aggregator_window_samples",
                "Ticks inside the rolling window.",
                &["pair"],
            ),
            newest_tick_timestamp: metrics::gauge_vec(
                r,
                "btc_aggregator_newest_tick_timestamp_seconds",
                "Unix time of the newest tick in the window.",
                &["pair"],
            ),
            newest_tick_age: metrics::gauge_vec(
                r,
                "btc_aggregator_newest_tick_age_seconds",
                "Seconds since the newest tick's time (at scrape); +Inf before the first.",
                &["pair"],
            ),
            store_delay: metrics::gauge_vec(
                r,
                "btc_aggregator_tick_store_delay_seconds",
                "Seconds between the newest tick's own time and its storage in the stream (the NATS server's clock): \
                 the publisher's round and publish time plus the clock skew between publisher and server; negative when \
                 the publisher's clock runs ahead.",
                &["pair"],
            ),
        }
    }

    fn of(&self, pair: &Pair) -> WindowGauges {
        let label = [pair.as_str()];
        // Resolved up front, so a pair without a tick yet is exported too (its age +Inf).
        WindowGauges {
            samples: self.samples.with_label_values(&label),
            newest_tick_timestamp: self.newest_tick_timestamp.with_label_values(&label),
            newest_tick_age: self.newest_tick_age.with_label_values(&label),
            store_delay: self.store_delay.with_label_values(&label),
        }
    }
}

struct TickOutcomes {
    appended: IntCounter,
    inserted: IntCounter,
    duplicate: IntCounter,
    too_old: IntCounter,
    already_applied: IntCounter,
    invalid: IntCounter,
    future: IntCounter,
}

impl TickOutcomes {
    fn new(by_outcome: &IntCounterVec) -> Self {
        let of = |outcome: &str| by_outcome.with_label_values(&[outcome]);
        Self {
            appended: of("appended"),
            inserted: of("inserted"),
            duplicate: of("duplicate"),
            too_old: of("too_old"),
            already_applied: of("already_applied"),
            invalid: of("invalid"),
            future: of("future"),
        }
    }
}

impl AggregatorMetrics {
    pub fn count_tick(&self, outcome: TickOutcome) {
        let counter = match outcome {
            TickOutcome::Applied(Applied::Appended) => &self.ticks.appended,
            TickOutcome::Applied(Applied::Inserted) => &self.ticks.inserted,
            TickOutcome::Applied(Applied::Duplicate) => &self.ticks.duplicate,
            TickOutcome::Applied(Applied::TooOld) => &self.ticks.too_old,
            TickOutcome::AlreadyApplied => &self.ticks.already_applied,
            TickOutcome::Invalid => &self.ticks.invalid,
            TickOutcome::Future => &self.ticks.future,
        };
        counter.inc();
    }

    /// A pair's window set up `from` its checkpoint or by replay.
    pub fn count_window_start(&self, from: &str) {
        self.window_starts.with_label_values(&[from]).inc();
    }

    pub fn count_candle(&self, interval: btc_contract::Interval, result: &str) {
        self.candles.with_label_values(&[interval.as_str(), result]).inc();
    }

    /// The windows' gauges, once per batch rather than per tick.
    pub fn observe_window(&self, aggregates: &Aggregates) {
        for (aggregate, gauges) in aggregates.iter().zip(&self.windows) {
            if let Some(newest) = aggregate.newest_time_ms() {
                gauges.newest_tick_timestamp.set(newest as f64 / 1000.0);
            }
            if let Some(delay) = aggregate.store_delay_seconds() {
                gauges.store_delay.set(delay);
            }
            gauges.samples.set(i64::from(aggregate.samples()));
        }
    }
}

impl ServiceMetrics for AggregatorMetrics {
    fn render(&self, client: &async_nats::Client) -> String {
        self.nats.observe(client);
        for gauges in &self.windows {
            gauges.newest_tick_age.set(seconds_since(gauges.newest_tick_timestamp.get()));
        }
        metrics::encode(&self.registry)
    }
}
