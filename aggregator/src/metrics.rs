//! The aggregator's metrics, served at `/metrics` on its ops port.

use btc_common::metrics::seconds_since;
use btc_common::metrics::{self, Gauge, IntCounterVec, IntGauge, NatsGauge, Registry};
use btc_common::ops::ServiceMetrics;

pub struct AggregatorMetrics {
    registry: Registry,
    pub ticks: IntCounterVec,
    pub state_writes: IntCounterVec,
    pub lag: IntGauge,
    pub window_samples: IntGauge,
    pub newest_tick_timestamp: Gauge,
    newest_tick_age: Gauge,
    nats: NatsGauge,
}

impl Default for AggregatorMetrics {
    fn default() -> Self {
        let registry = Registry::new();
        let r = &registry;
        Self {
            ticks: metrics::counter_vec(
                r,
                "btc_aggregator_ticks_total",
                "Ticks read from the stream by outcome: appended, inserted (out of order), duplicate, too_old, already_applied, invalid.",
                &["outcome"],
            ),
            state_writes: metrics::counter_vec(
                r,
                "btc_aggregator_state_writes_total",
                "Writes of the state to KV by result: stored, already_newer (another aggregator was ahead), failed.",
                &["result"],
            ),
            lag: metrics::int_gauge(
                r,
                "btc_aggregator_lag_messages",
                "Ticks in the stream not yet delivered to this aggregator's consumer.",
            ),
            window_samples: metrics::int_gauge(r, "btc_aggregator_window_samples", "Ticks inside the rolling window."),
            newest_tick_timestamp: metrics::gauge(
                r,
                "btc_aggregator_newest_tick_timestamp_seconds",
                "Unix time of the newest tick in the window.",
            ),
            newest_tick_age: metrics::gauge(
                r,
                "btc_aggregator_newest_tick_age_seconds",
                "Seconds since the newest tick's time (at scrape); +Inf before the first.",
            ),
            nats: NatsGauge::new(r),
            registry,
        }
    }
}

impl ServiceMetrics for AggregatorMetrics {
    fn render(&self, client: &async_nats::Client) -> String {
        self.nats.observe(client);
        self.newest_tick_age.set(seconds_since(self.newest_tick_timestamp.get()));
        metrics::encode(&self.registry)
    }
}
