//! What every service of the BTC price pipeline runs on: the shared command-line options (NATS,
//! TLS, logging), the NATS connection, JetStream setup, telemetry, the ops port, metrics helpers,
//! shutdown and one [`backoff::Backoff`].
//!
//! The public contract (names and messages) is `btc-contract`, which this crate builds on; the
//! services depend on both and on nothing of each other.

pub mod backoff;
pub mod direct_batch;
pub mod duration;
pub mod error;
pub mod jetstream;
pub mod metrics;
pub mod nats;
pub mod ops;
pub mod pairs;
pub mod running;
pub mod setup;
pub mod shutdown;
pub mod stream_config;
pub mod telemetry;
pub mod trace_context;

pub use error::RuntimeError;
