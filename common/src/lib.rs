//! The contract between the services of the BTC price pipeline.
//!
//! Publisher, aggregator and frontends all depend on this crate and on nothing of each other, so
//! the message schema, the NATS names and the JetStream setup cannot drift apart: change them here
//! and every service (and the README's "NATS subjects" section) follows.

pub mod backoff;
pub mod duration;
pub mod error;
pub mod jetstream;
pub mod message;
pub mod metrics;
pub mod names;
pub mod nats;
pub mod ops;
pub mod setup;
pub mod shutdown;
pub mod telemetry;
pub mod trace_context;

pub use error::CommonError;
pub use message::{Dispersion, MAX_PRICE, PriceState, QuoteStatus, SCHEMA_VERSION, SourceQuote, Tick, WindowAverage};
