//! Configuration shared by both frontends (`bitcoin-api --help`, `rest-api --help`).

use std::net::SocketAddr;
use std::time::Duration;

use btc_common::duration::parse_duration;
use btc_common::nats::NatsArgs;
use btc_common::telemetry::LogArgs;

#[derive(Debug, Clone, clap::Parser)]
#[command(version, about = "BTC price HTTP frontend (Poem + OpenAPI), served from the NATS KV state")]
pub struct FrontendConfig {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub log: LogArgs,
    /// Address to listen on [default: 0.0.0.0:8080 for bitcoin-api, 0.0.0.0:8081 for rest-api].
    #[arg(long, env = "LISTEN_ADDR")]
    pub listen_addr: Option<SocketAddr>,
    /// On SIGTERM, how long to keep serving with readiness failing before stopping, so the load
    /// balancer stops sending traffic first (Kubernetes removes endpoints concurrently with SIGTERM).
    #[arg(long, env = "SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
    /// Newest tick older than this: price endpoints answer 503 and readiness fails.
    #[arg(long, env = "STALE_AFTER", default_value = "30s", value_parser = parse_duration)]
    pub stale_after: Duration,
}
