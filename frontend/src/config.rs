//! Configuration shared by both frontends (`bitcoin-api --help`, `rest-api --help`).

use std::net::SocketAddr;
use std::time::Duration;

use btc_runtime::duration::parse_duration;
use btc_runtime::nats::NatsArgs;
use btc_runtime::pairs::PairsArgs;
use btc_runtime::telemetry::LogArgs;

impl FrontendConfig {
    pub fn limits(&self) -> crate::hardening::Limits {
        crate::hardening::Limits {
            max_header_bytes: self.max_header_bytes,
            request_timeout: self.http_request_timeout,
            cors_origins: self.cors_allowed_origins.iter().filter(|o| !o.trim().is_empty()).cloned().collect(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, clap::Parser)]
#[command(
    version,
    about = "Price HTTP frontend (Poem + OpenAPI), served from the NATS KV state of every configured pair"
)]
pub struct FrontendConfig {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub pairs: PairsArgs,
    /// Address to listen on [default: 0.0.0.0:8080 for bitcoin-api, 0.0.0.0:8081 for rest-api].
    #[arg(long, env = "LISTEN_ADDR")]
    pub listen_addr: Option<SocketAddr>,
    /// On SIGTERM, how long to keep serving with readiness failing before stopping, so the load
    /// balancer stops sending traffic first (Kubernetes removes endpoints concurrently with SIGTERM).
    #[arg(long, env = "SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
    /// Largest total size of a request's headers, bytes (larger: 431).
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// Longest time to answer one request (longer: 503).
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http_request_timeout: Duration,
    /// A connection with no traffic for this long is closed (idle keep-alive and stalled clients).
    #[arg(long, env = "HTTP_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub http_idle_timeout: Duration,
    /// Longest time a client may take to send a whole request head (request line and headers),
    /// counted from the connection's start for its first request and from the first byte for the
    /// next ones; longer: the connection is closed (slow clients trickling their headers).
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http_header_read_timeout: Duration,
    /// Address of the ops port: `/metrics`, `/liveness`, `/readiness`, for Prometheus and the
    /// cluster; the public port does not serve `/metrics`
    /// [default: 0.0.0.0:9092 for bitcoin-api, 0.0.0.0:9093 for rest-api].
    #[arg(long, env = "OPS_ADDR")]
    pub ops_addr: Option<SocketAddr>,
    /// `true`: a request's server span continues the trace of its `traceparent` header (for
    /// callers inside the mesh). `false`: it starts a new trace and only links the caller's, so
    /// that outsiders neither choose trace ids nor force sampling.
    #[arg(long, env = "TRUST_INCOMING_TRACE_CONTEXT", action = clap::ArgAction::Set, default_value_t = false)]
    pub trust_incoming_trace_context: bool,
    /// Origins allowed to call the API from a browser (CORS), comma-separated; empty: none.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
    /// Threads serving requests (tokio workers, the equivalent of gunicorn's workers)
    /// [default: one per CPU the process may use, which follows a container's CPU limit].
    #[arg(long, env = "WORKER_THREADS")]
    pub worker_threads: Option<std::num::NonZeroUsize>,
    /// Newest tick older than this: price endpoints answer 503 and readiness fails.
    #[arg(long, env = "STALE_AFTER", default_value = "30s", value_parser = parse_duration)]
    pub stale_after: Duration,
    /// Streams (`/{asset}/{currency}/stream`) open at once in this process; beyond it a stream
    /// is answered 503 with `Retry-After`.
    #[arg(long, env = "STREAM_LIMIT", default_value_t = crate::feeds::DEFAULT_STREAM_LIMIT)]
    pub stream_limit: usize,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn worker_threads_default_to_the_runtime_s_choice_and_zero_is_refused() {
        let parse =
            |args: &[&str]| FrontendConfig::try_parse_from(std::iter::once("bitcoin-api").chain(args.iter().copied()));
        assert_eq!(parse(&[]).expect("defaults parse").worker_threads, None);
        let two = parse(&["--worker-threads", "2"]).expect("2 parses").worker_threads;
        assert_eq!(two.map(std::num::NonZeroUsize::get), Some(2));
        let zero = parse(&["--worker-threads", "0"]).expect_err("0 threads is refused");
        assert!(zero.to_string().contains("worker-threads"), "{zero}");
    }

    #[test]
    fn incoming_trace_context_is_not_trusted_unless_set() {
        let parse =
            |args: &[&str]| FrontendConfig::try_parse_from(std::iter::once("rest-api").chain(args.iter().copied()));
        let defaults = parse(&[]).expect("defaults parse");
        assert!(!defaults.trust_incoming_trace_context);
        assert_eq!(defaults.http_header_read_timeout, Duration::from_secs(10));
        assert_eq!(defaults.ops_addr, None);
        assert!(parse(&["--trust-incoming-trace-context", "true"]).expect("true").trust_incoming_trace_context);
        assert!(parse(&["--trust-incoming-trace-context", "yes"]).is_err(), "only true or false");
    }
}
