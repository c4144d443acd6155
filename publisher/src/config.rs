//! The publisher's configuration: every knob, its default and its meaning (`publisher --help`).

use std::collections::BTreeMap;
use std::time::Duration;

use btc_contract::Pair;
use btc_runtime::duration::parse_duration;
use btc_runtime::nats::NatsArgs;
use btc_runtime::pairs::PairsArgs;
use btc_runtime::setup::SetupArgs;
use btc_runtime::stream_config::StreamArgs;
use btc_runtime::telemetry::LogArgs;

use crate::breaker::BreakerRules;
use crate::consensus::ConsensusRules;
use crate::exchanges::Source;
use crate::fetch::Plaintext;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "publisher",
    version,
    about = "Polls crypto exchanges and publishes one consensus tick per pair and round to NATS JetStream",
    args_conflicts_with_subcommands = true
)]
pub struct PublisherConfig {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    #[command(flatten)]
    pub log: LogArgs,
    /// Address of the ops HTTP port: /metrics, /liveness, /readiness.
    #[arg(long, env = "OPS_ADDR", default_value = "0.0.0.0:9090")]
    pub ops_addr: std::net::SocketAddr,
    /// Exchanges to poll, comma-separated.
    #[arg(
        long,
        env = "SOURCES",
        value_delimiter = ',',
        default_value = "coinbase,kraken,bitstamp,gemini,bitfinex,binanceus,cexio,coingecko"
    )]
    pub sources: Vec<Source>,
    /// Pairs to price: every pair needs QUORUM voting sources that list it, or the publisher
    /// refuses to start.
    #[command(flatten)]
    pub pairs: PairsArgs,
    /// Base URL overrides, `name=url` comma-separated (mirrors, local stand-ins). An https override
    /// is held to what the exchanges' own URLs are: verified TLS, no redirect followed. Plain
    /// `http://` is for local stand-ins: with one such URL the client may speak http, and the
    /// publisher says so in a warning at start.
    #[arg(long, env = "SOURCE_URLS", value_delimiter = ',', value_parser = parse_source_url)]
    pub source_urls: Vec<(Source, String)>,
    /// Length of a round; each source is still held to its own minimum interval.
    #[arg(long, env = "POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// When a round stops waiting for slow exchanges, as a fraction of POLL_INTERVAL after the
    /// slot's start (0.8 = 800 ms of a 1 s round). Their requests go on in the background; a quote
    /// that arrives later is used by the next round while it is fresh (MAX_QUOTE_AGE). The rest
    /// of the interval is left for the consensus and the publish.
    #[arg(long, env = "ROUND_DEADLINE_FRACTION", default_value_t = 0.8, value_parser = parse_deadline_fraction)]
    pub round_deadline_fraction: f64,
    /// Timeout of one exchange request, body included.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// A quote older than this (by the exchange's own quote time) is not used.
    #[arg(long, env = "MAX_QUOTE_AGE", default_value = "30s", value_parser = parse_duration)]
    pub max_quote_age: Duration,
    /// Minimum number of agreeing sources for a tick.
    #[arg(long, env = "QUORUM", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub quorum: u32,
    /// Relative distance from the median that makes a quote an outlier (0.02 = 2 %).
    #[arg(long, env = "OUTLIER_THRESHOLD", default_value_t = 0.02, value_parser = parse_threshold)]
    pub outlier_threshold: f64,
    /// Consecutive failures that open a source's circuit breaker.
    #[arg(long, env = "BREAKER_FAILURES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_failures: u32,
    /// How long an open breaker waits before one trial request (doubles per failed trial, max 5m).
    #[arg(long, env = "BREAKER_COOLDOWN", default_value = "10s", value_parser = parse_duration)]
    pub breaker_cooldown: Duration,
    /// Wait after a rate-limit signal that names no wait of its own (a 429 without `Retry-After`,
    /// Kraken's `EAPI:Rate limit exceeded`, Bitfinex's `ERR_RATE_LIMIT`).
    #[arg(long, env = "RATE_LIMIT_BACKOFF", default_value = "30s", value_parser = parse_duration)]
    pub rate_limit_backoff: Duration,
    /// How long a tick is retried (same Nats-Msg-Id) before it is given up.
    #[arg(long, env = "PUBLISH_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub publish_timeout: Duration,
    /// How long the lease to poll lasts without a renewal (renewed every round); a standby replica
    /// takes over within it plus two rounds. At least twice the poll interval.
    #[arg(long, env = "LEASE_TTL", default_value = "3s", value_parser = parse_duration)]
    pub lease_ttl: Duration,
    /// This replica's name in the lease (the chart passes the pod name); default: the host name.
    #[arg(long, env = "POD_NAME")]
    pub replica_name: Option<String>,
}

/// What the binary does instead of publishing.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Create the ticks and candle streams, the state, lease and checkpoint buckets, or bring them
    /// to this configuration, then exit: the setup step, as the NATS admin (the chart's hook Job, `make run`).
    Setup(SetupCommand),
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetupCommand {
    #[command(flatten)]
    pub setup: SetupArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

impl PublisherConfig {
    /// The sources to poll with the base URL each one uses, in `SOURCES` order, without repeats.
    pub fn endpoints(&self) -> Vec<(Source, String)> {
        let overrides: BTreeMap<Source, &String> = self.source_urls.iter().map(|(s, url)| (*s, url)).collect();
        let mut seen = Vec::new();
        for &source in &self.sources {
            if !seen.iter().any(|(s, _)| *s == source) {
                let url =
                    overrides.get(&source).map_or(source.exchange().default_base_url().to_string(), |u| u.to_string());
                seen.push((source, url));
            }
        }
        seen
    }

    /// The configured pairs, in `PAIRS` order, without repeats.
    pub fn pairs(&self) -> Vec<Pair> {
        self.pairs.pairs()
    }

    /// Plain http only when an operator's `SOURCE_URLS` asks for it; the exchanges' own URLs are
    /// all https.
    pub fn plaintext(&self) -> Plaintext {
        let http = self.endpoints().iter().any(|(_, url)| url.starts_with("http://"));
        if http { Plaintext::Allowed } else { Plaintext::Refused }
    }

    pub fn consensus_rules(&self) -> ConsensusRules {
        ConsensusRules { quorum: self.quorum as usize, outlier_threshold: self.outlier_threshold }
    }

    /// How long after its slot's start a round waits for its requests.
    pub fn round_deadline(&self) -> Duration {
        self.poll_interval.mul_f64(self.round_deadline_fraction)
    }

    pub fn breaker_rules(&self) -> BreakerRules {
        BreakerRules {
            failures_to_open: self.breaker_failures,
            cooldown: self.breaker_cooldown,
            rate_limit_backoff: self.rate_limit_backoff,
            ..BreakerRules::default()
        }
    }
}

fn parse_source_url(text: &str) -> Result<(Source, String), String> {
    let (name, url) = text.split_once('=').ok_or_else(|| format!("{text:?} is not name=url"))?;
    let source: Source = name.parse()?;
    let url = url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("URL for {source} must start with http:// or https://, got {url:?}"));
    }
    Ok((source, url.trim_end_matches('/').to_string()))
}

fn parse_threshold(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if value > 0.0 && value < 1.0 {
        Ok(value)
    } else {
        Err(format!("outlier threshold must be between 0 and 1 (0.02 = 2 %), got {value}"))
    }
}

fn parse_deadline_fraction(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if value > 0.0 && value < 1.0 {
        Ok(value)
    } else {
        Err(format!("round deadline must be a fraction of the poll interval between 0 and 1 (0.8), got {value}"))
    }
}

#[cfg(test)]
mod tests;
