//! The aggregator's metrics, served at `/metrics` on its ops port.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use btc_common::metrics::seconds_since;
use btc_common::metrics::{self, Gauge, IntCounterVec, IntGauge, NatsGauge, Registry};
use btc_common::ops::OpsState;

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

/// What the aggregator's ops port reports.
pub struct AggregatorOps {
    pub metrics: Arc<AggregatorMetrics>,
    pub client: async_nats::Client,
    /// Set once the window has been rebuilt from the stream.
    pub replayed: AtomicBool,
}

impl OpsState for AggregatorOps {
    fn readiness(&self) -> Result<(), String> {
        if !btc_common::nats::is_connected(&self.client) {
            return Err("not connected to NATS".into());
        }
        if !self.replayed.load(Ordering::Relaxed) {
            return Err("window not rebuilt from the stream yet".into());
        }
        Ok(())
    }

    fn metrics(&self) -> String {
        let m = &self.metrics;
        m.nats.observe(&self.client);
        m.newest_tick_age.set(seconds_since(m.newest_tick_timestamp.get()));
        metrics::encode(&m.registry)
    }
}
