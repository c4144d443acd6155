//! Exchange adapters: one file per exchange, each implementing [`Exchange`].
//!
//! An adapter knows its exchange's URL, which pairs it lists under which symbol (a small explicit
//! table per adapter: a pair missing from it is not quoted), its rate limit and its response
//! format, nothing else: it
//! turns the body of one HTTP 200 answer into a [`Parsed`] price or a [`ParseError`], and reads
//! the rate-limit signals the exchange sends without a 429: in the body
//! ([`ParseError::RateLimited`]) or in headers ([`Exchange::throttle`]). HTTP status codes,
//! timeouts, backoff and the circuit breaker are handled once, in `fetch` and `breaker`.
//! Adding an exchange means one new file here and one line in [`Source`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use btc_contract::Pair;
use chrono::{DateTime, TimeZone, Utc};
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::excerpt::Excerpt;
use crate::price::Price;

mod binance_us;
mod bitfinex;
mod bitstamp;
mod cexio;
mod coinbase;
mod coingecko;
mod gemini;
mod kraken;

/// What an adapter reads out of one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub price: Price,
    /// The exchange's own time for the price, where the format has one.
    pub quote_time: Option<DateTime<Utc>>,
}

/// Why an answer with HTTP status 200 still gave no price. Text from the answer is held as an
/// [`Excerpt`], cut and escaped, since these errors are logged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    Json(Excerpt),
    #[error("field {0} is missing or has the wrong type")]
    MissingField(&'static str),
    #[error("exchange reported an error: {0}")]
    Exchange(Excerpt),
    /// The exchange says, inside an HTTP 200, that the caller polls too fast: a rate limit like a
    /// 429, not a fault of the source.
    #[error("exchange reported a rate limit: {0}")]
    RateLimited(Excerpt),
    #[error("invalid price: {0}")]
    Price(Excerpt),
    #[error("invalid quote time: {0}")]
    Time(Excerpt),
}

/// A wait the headers of an answer ask for, although its status is not 429.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    /// What the exchange said, for logs.
    pub reason: String,
    pub wait: Duration,
}

/// One exchange's public ticker, for each pair it lists.
pub trait Exchange: Send + Sync {
    /// Base URL of the public API, without a trailing slash; `SOURCE_URLS` can replace it.
    fn default_base_url(&self) -> &'static str;
    /// Path and query of `pair`'s ticker, appended to the base URL; `None` when the exchange does
    /// not list the pair.
    fn path(&self, pair: &Pair) -> Option<String>;
    /// Shortest time between two requests, whatever their pair, that stays within the exchange's
    /// documented limit (a per-IP limit, so all of its pairs share it).
    fn min_interval(&self) -> Duration;
    /// True for aggregators of other exchanges (CoinGecko): shown beside the tick, never a vote.
    fn is_reference(&self) -> bool {
        false
    }
    /// Reads `pair`'s price out of an HTTP 200 body of its ticker.
    fn parse(&self, pair: &Pair, body: &[u8]) -> Result<Parsed, ParseError>;
    /// A wait the answer's headers ask for: an exchange that reports how much of its per-IP budget
    /// is spent (Binance.US) is left alone before the budget runs out. `now` is the wall clock.
    fn throttle(&self, _headers: &HeaderMap, _now: DateTime<Utc>) -> Option<Throttle> {
        None
    }
}

/// The exchanges the publisher can poll, by their `SOURCES` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Coinbase,
    Kraken,
    Bitstamp,
    Gemini,
    Bitfinex,
    BinanceUs,
    Cexio,
    Coingecko,
}

impl Source {
    pub const ALL: [Source; 8] = [
        Source::Coinbase,
        Source::Kraken,
        Source::Bitstamp,
        Source::Gemini,
        Source::Bitfinex,
        Source::BinanceUs,
        Source::Cexio,
        Source::Coingecko,
    ];

    /// The name used in `SOURCES`, `SOURCE_URLS`, logs and tick messages.
    pub fn name(self) -> &'static str {
        match self {
            Source::Coinbase => "coinbase",
            Source::Kraken => "kraken",
            Source::Bitstamp => "bitstamp",
            Source::Gemini => "gemini",
            Source::Bitfinex => "bitfinex",
            Source::BinanceUs => "binanceus",
            Source::Cexio => "cexio",
            Source::Coingecko => "coingecko",
        }
    }

    /// True if this exchange lists `pair`.
    pub fn quotes(self, pair: &Pair) -> bool {
        self.exchange().path(pair).is_some()
    }

    pub fn exchange(self) -> &'static dyn Exchange {
        match self {
            Source::Coinbase => &coinbase::Coinbase,
            Source::Kraken => &kraken::Kraken,
            Source::Bitstamp => &bitstamp::Bitstamp,
            Source::Gemini => &gemini::Gemini,
            Source::Bitfinex => &bitfinex::Bitfinex,
            Source::BinanceUs => &binance_us::BinanceUs,
            Source::Cexio => &cexio::Cexio,
            Source::Coingecko => &coingecko::Coingecko,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Source {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase();
        Source::ALL.into_iter().find(|source| source.name() == wanted).ok_or_else(|| {
            let known: Vec<&str> = Source::ALL.iter().map(|s| s.name()).collect();
            format!("unknown source {text:?}; known sources: {}", known.join(", "))
        })
    }
}

/// The symbol of `pair` in an adapter's table of the pairs its exchange lists (`BTC-USD` first).
pub(crate) fn listed<T: Copy>(table: &[(&str, T)], pair: &Pair) -> Option<T> {
    table.iter().find(|(name, _)| *name == pair.as_str()).map(|(_, symbol)| *symbol)
}

// Shared parsing helpers: exchanges switch between strings and numbers for the same field across
// versions and captures (exchange-apis.md, "Lenient types"), so every adapter accepts both.

/// Parses a body as JSON.
pub(crate) fn json(body: &[u8]) -> Result<Value, ParseError> {
    serde_json::from_slice(body).map_err(|error| ParseError::Json(error.to_string().into()))
}

/// The error an exchange reports inside an answer under `key`: a string, a list of strings or an
/// object. Absent, `null`, `""` and `[]` mean no error.
pub(crate) fn reported_error(body: &Value, key: &str) -> Result<(), ParseError> {
    let text = match body.get(key) {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join("; "),
        Some(other) => other.to_string(),
    };
    if text.is_empty() { Ok(()) } else { Err(ParseError::Exchange(text.into())) }
}

/// A price sent as a decimal string or a JSON number.
pub(crate) fn price_field(value: Option<&Value>, field: &'static str) -> Result<Price, ParseError> {
    let price = match value {
        Some(Value::String(text)) => Price::parse(text),
        Some(Value::Number(number)) => Price::new(number.as_f64().ok_or(ParseError::MissingField(field))?),
        _ => return Err(ParseError::MissingField(field)),
    };
    price.map_err(|error| ParseError::Price(format!("{field}: {error}").into()))
}

/// An integer sent as a string or a JSON number.
fn integer_field(value: Option<&Value>, field: &'static str) -> Result<i64, ParseError> {
    match value {
        Some(Value::Number(number)) => {
            number.as_i64().ok_or_else(|| ParseError::Time(format!("{field}: {number}").into()))
        }
        Some(Value::String(text)) => {
            text.trim().parse().map_err(|_| ParseError::Time(format!("{field}: {text:?}").into()))
        }
        _ => Err(ParseError::MissingField(field)),
    }
}

/// A unix time in seconds, as a string or a number.
pub(crate) fn unix_seconds_field(value: Option<&Value>, field: &'static str) -> Result<DateTime<Utc>, ParseError> {
    let seconds = integer_field(value, field)?;
    Utc.timestamp_opt(seconds, 0).single().ok_or_else(|| ParseError::Time(format!("{field}: {seconds}").into()))
}

/// A unix time in milliseconds, as a string or a number.
pub(crate) fn unix_millis_field(value: Option<&Value>, field: &'static str) -> Result<DateTime<Utc>, ParseError> {
    let millis = integer_field(value, field)?;
    Utc.timestamp_millis_opt(millis).single().ok_or_else(|| ParseError::Time(format!("{field}: {millis}").into()))
}

/// The `btc_publisher_fetches_total` outcome an adapter's reading of a 200 ends in.
#[cfg(test)]
pub(crate) fn outcome(result: &Result<Parsed, ParseError>) -> &'static str {
    result.as_ref().map_or_else(|error| crate::fetch::FetchError::from(error.clone()).kind(), |_| "ok")
}

#[cfg(test)]
mod tests;
