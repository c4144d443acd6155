//! The aggregator's configuration (`aggregator --help`).

use std::time::Duration;

use btc_contract::names::AGGREGATOR_CONSUMER;
use btc_runtime::duration::parse_duration;
use btc_runtime::nats::NatsArgs;
use btc_runtime::pairs::PairsArgs;
use btc_runtime::stream_config::StreamArgs;
use btc_runtime::telemetry::LogArgs;

use crate::state::WindowRules;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "aggregator",
    version,
    about = "Keeps each pair's rolling 10-minute average from the JetStream ticks and writes it to NATS KV"
)]
pub struct AggregatorConfig {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub pairs: PairsArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    #[command(flatten)]
    pub log: LogArgs,
    /// Address of the ops HTTP port: /metrics, /liveness, /readiness.
    #[arg(long, env = "OPS_ADDR", default_value = "0.0.0.0:9091")]
    pub ops_addr: std::net::SocketAddr,
    /// Durable consumer name. Each aggregator replica needs its own (e.g. the pod name): every
    /// replica must see every tick of its pairs to compute the same state.
    #[arg(long, env = "CONSUMER_NAME", default_value = AGGREGATOR_CONSUMER)]
    pub consumer_name: String,
    /// Length of the rolling window.
    #[arg(long, env = "AVERAGE_WINDOW", default_value = "10m", value_parser = parse_duration)]
    pub window: Duration,
    /// How long a price holds at most after its tick. Time in the window that no price covers is
    /// a gap: weighted by nothing and reported as `gap_seconds`; the window is complete while the
    /// gaps add up to at most this.
    #[arg(long, env = "MAX_HOLD", default_value = "5s", value_parser = parse_duration)]
    pub max_hold: Duration,
    /// Ticks stamped more than this after the time the stream stored them (a publisher clock
    /// running ahead of the NATS server's) are refused.
    #[arg(long, env = "MAX_CLOCK_SKEW", default_value = "60s", value_parser = parse_duration)]
    pub max_clock_skew: Duration,
    /// Most ticks applied per state write (catching up after downtime writes once per batch).
    #[arg(long, env = "BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
}

impl AggregatorConfig {
    /// Settings that are valid one by one but not together.
    pub fn validate(&self) -> Result<(), crate::AggregatorError> {
        if self.max_hold.is_zero() || self.max_hold >= self.window {
            return Err(crate::AggregatorError::Config(format!(
                "MAX_HOLD ({:?}) must be above 0 and below AVERAGE_WINDOW ({:?})",
                self.max_hold, self.window
            )));
        }
        Ok(())
    }

    /// The window's rules: every replica needs the same ones to compute the same state.
    pub fn rules(&self) -> WindowRules {
        WindowRules { window: self.window, max_hold: self.max_hold, max_clock_skew: self.max_clock_skew }
    }
}
