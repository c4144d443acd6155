//! The aggregator's error type.

#[derive(Debug, thiserror::Error)]
pub enum AggregatorError {
    #[error(transparent)]
    Nats(#[from] btc_runtime::RuntimeError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot read the ticks stream: {0}")]
    Stream(String),
    #[error("cannot publish a candle: {0}")]
    Candles(String),
    #[error("cannot write the state to KV: {0}")]
    State(String),
    #[error("unusable window checkpoint: {0}")]
    Checkpoint(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}
