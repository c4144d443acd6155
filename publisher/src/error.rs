//! The publisher's error type.

#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    #[error(transparent)]
    Nats(#[from] btc_runtime::RuntimeError),
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("no sources configured: set SOURCES")]
    NoSources,
    #[error(transparent)]
    Pairs(#[from] crate::pairs::PairQuorumError),
    #[error("LEASE_TTL {ttl:?} is below twice POLL_INTERVAL {poll_interval:?}: the lease is renewed once per round")]
    LeaseTtl { ttl: std::time::Duration, poll_interval: std::time::Duration },
}
