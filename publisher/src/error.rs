//! The publisher's error type.

#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    #[error(transparent)]
    Nats(#[from] btc_common::CommonError),
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("no sources configured: set SOURCES")]
    NoSources,
}
