//! The publisher's error type.

#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    #[error(transparent)]
    Nats(#[from] btc_common::CommonError),
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("no sources configured: set SOURCES")]
    NoSources,
}
