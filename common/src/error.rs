//! Errors of the shared NATS plumbing.

/// What went wrong while connecting to NATS or setting up JetStream.
#[derive(Debug, thiserror::Error)]
pub enum CommonError {
    #[error("cannot read NATS credentials file {path}: {source}")]
    Credentials { path: String, source: std::io::Error },
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect { url: String, source: async_nats::ConnectError },
    #[error("cannot create or update JetStream stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error("cannot open, create or update KV bucket {bucket}: {reason}")]
    Bucket { bucket: String, reason: String },
}
