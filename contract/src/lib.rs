//! The public contract of the BTC price pipeline on NATS: the names of its subjects, stream and
//! buckets ([`names`]) and the versioned messages on them ([`message`]).
//!
//! This is all a NATS subscriber needs (`examples/print_ticks.rs` reads ticks with nothing else);
//! the services add their runtime (`btc-runtime`) on top. Change a name or a message here and the
//! README's "NATS subjects" section with it.

pub mod candle;
pub mod message;
pub mod names;

pub use candle::{Candle, Interval};
pub use names::{Pair, PairError};

pub use message::{
    DecodeError, Dispersion, MAX_PRICE, PriceState, QuoteStatus, SCHEMA_VERSION, SourceQuote, Tick, TickHead,
    WindowAverage,
};
