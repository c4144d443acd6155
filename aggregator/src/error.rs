//! The aggregator's error type.

#[derive(Debug, thiserror::Error)]
pub enum AggregatorError {
    #[error(transparent)]
    Nats(#[from] btc_common::CommonError),
    #[error("cannot create consumer {name} on the ticks stream: {source}")]
    Consumer { name: String, source: async_nats::jetstream::stream::ConsumerError },
    #[error("cannot read the ticks stream: {0}")]
    Stream(String),
    #[error("cannot write the state to KV: {0}")]
    State(String),
}
