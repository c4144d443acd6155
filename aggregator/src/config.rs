//! The aggregator's configuration (`aggregator --help`).

use std::time::Duration;

use btc_common::duration::parse_duration;
use btc_common::jetstream::StreamArgs;
use btc_common::names::AGGREGATOR_CONSUMER;
use btc_common::nats::NatsArgs;
use btc_common::telemetry::LogArgs;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "aggregator",
    version,
    about = "Keeps the rolling 10-minute BTC average from the JetStream ticks and writes it to NATS KV"
)]
pub struct AggregatorConfig {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    #[command(flatten)]
    pub log: LogArgs,
    /// Address of the ops HTTP port: /metrics, /liveness, /readiness.
    #[arg(long, env = "OPS_ADDR", default_value = "0.0.0.0:9091")]
    pub ops_addr: std::net::SocketAddr,
    /// Durable consumer name. Each aggregator replica needs its own (e.g. the pod name): every
    /// replica must see every tick to compute the same state.
    #[arg(long, env = "CONSUMER_NAME", default_value = AGGREGATOR_CONSUMER)]
    pub consumer_name: String,
    /// Length of the rolling window.
    #[arg(long, env = "AVERAGE_WINDOW", default_value = "10m", value_parser = parse_duration)]
    pub window: Duration,
    /// Ticks stamped further than this in the future (a publisher with a wrong clock) are refused.
    #[arg(long, env = "MAX_CLOCK_SKEW", default_value = "60s", value_parser = parse_duration)]
    pub max_clock_skew: Duration,
    /// Most ticks applied per state write (catching up after downtime writes once per batch).
    #[arg(long, env = "BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
}
