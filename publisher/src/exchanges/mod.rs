//! Exchange adapters: one file per exchange, each implementing [`Exchange`].
//!
//! An adapter knows its exchange's URL, its rate limit and its response format, nothing else: it
//! turns the body of one HTTP 200 answer into a [`Parsed`] price or a [`ParseError`], and reads
//! the rate-limit signals the exchange sends without a 429: in the body
//! ([`ParseError::RateLimited`]) or in headers ([`Exchange::throttle`]). HTTP status codes,
//! timeouts, backoff and the circuit breaker are handled once, in `fetch` and `breaker`.
//! Adding an exchange means one new file here and one line in [`Source`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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

/// One exchange's public BTC/USD ticker.
pub trait Exchange: Send + Sync {
    /// Base URL of the public API, without a trailing slash; `SOURCE_URLS` can replace it.
    fn default_base_url(&self) -> &'static str;
    /// Path and query of the BTC/USD ticker, appended to the base URL.
    fn path(&self) -> &'static str;
    /// Shortest time between two requests that stays within the exchange's documented limit.
    fn min_interval(&self) -> Duration;
    /// True for aggregators of other exchanges (CoinGecko): shown beside the tick, never a vote.
    fn is_reference(&self) -> bool {
        false
    }
    /// Reads the price out of an HTTP 200 body.
    fn parse(&self, body: &[u8]) -> Result<Parsed, ParseError>;
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
mod tests {
    use proptest::prelude::*;
    use proptest::sample::Index;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    use super::*;

    #[test]
    fn source_names_round_trip() {
        for source in Source::ALL {
            assert_eq!(source.name().parse::<Source>(), Ok(source));
        }
        assert_eq!(" Kraken ".parse::<Source>(), Ok(Source::Kraken));
        assert!("mtgox".parse::<Source>().unwrap_err().contains("known sources"));
    }

    #[test]
    fn every_adapter_has_an_https_url_a_path_and_a_rate_limit() {
        for source in Source::ALL {
            let exchange = source.exchange();
            assert!(exchange.default_base_url().starts_with("https://"), "{source}");
            assert!(!exchange.default_base_url().ends_with('/'), "{source}");
            assert!(exchange.path().starts_with('/'), "{source}");
            assert!(exchange.min_interval() >= Duration::from_millis(500), "{source}");
        }
        assert!(Source::Coingecko.exchange().min_interval() >= Duration::from_secs(60));
        assert!(Source::Coingecko.exchange().is_reference());
    }

    #[test]
    fn only_binance_us_reads_a_budget_from_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-mbx-used-weight-1m", "1199".parse().expect("header value"));
        headers.insert("x-mbx-used-weight", "1199".parse().expect("header value"));
        for source in Source::ALL {
            let throttle = source.exchange().throttle(&headers, Utc::now());
            assert_eq!(throttle.is_some(), source == Source::BinanceUs, "{source}: {throttle:?}");
        }
    }

    #[test]
    fn lenient_fields_accept_strings_and_numbers() {
        let v: Value = serde_json::json!({"s": "97012.5", "n": 97012.5, "t": "1764010799", "tn": 1764010799});
        assert_eq!(price_field(v.get("s"), "s"), price_field(v.get("n"), "n"));
        assert_eq!(unix_seconds_field(v.get("t"), "t"), unix_seconds_field(v.get("tn"), "tn"));
        assert_eq!(price_field(v.get("x"), "x"), Err(ParseError::MissingField("x")));
    }

    /// Real-format bodies from exchange-apis.md, one per source, as the fuzz corpus.
    const REAL_BODIES: [(Source, &str); 8] = [
        (Source::Coinbase, r#"{"data": {"amount": "97012.35", "base": "BTC", "currency": "USD"}}"#),
        (
            Source::Kraken,
            r#"{"error": [], "result": {"XXBTZUSD": {"a": ["97012.40000", "1", "1.000"], "b": ["97012.30000", "2", "2.000"], "c": ["97012.40000", "0.00012000"], "v": ["512.34567890", "2345.67890123"], "p": ["96950.12345", "96500.98765"], "t": [12345, 67890], "l": ["96100.00000", "95800.00000"], "h": ["97500.00000", "97800.00000"], "o": "96800.10000"}}}"#,
        ),
        (
            Source::Bitstamp,
            r#"{"timestamp": "1764010799", "open": "96800", "high": "97800", "low": "95800", "last": "97012", "volume": "1234.56789012", "vwap": "96950", "bid": "97011", "ask": "97013", "side": "0", "open_24": "96500", "percent_change_24": "0.53"}"#,
        ),
        (
            Source::Gemini,
            r#"{"bid": "97011.98", "ask": "97013.02", "last": "97012.35", "volume": {"BTC": "2210.505328803", "USD": "214443211.463379586263", "timestamp": 1764010799000}}"#,
        ),
        (Source::Bitfinex, "[97011.0, 12.5, 97012.0, 10.3, 812.0, 0.0084, 97012.0, 1543.21, 97800.0, 95800.0]"),
        (Source::BinanceUs, r#"{"symbol": "BTCUSD", "price": "97012.35000000"}"#),
        (Source::Cexio, r#"{"lprice": "97012.5", "curr1": "BTC", "curr2": "USD"}"#),
        (Source::Coingecko, r#"{"bitcoin": {"usd": 97012.35, "last_updated_at": 1764010740}}"#),
    ];

    #[rustfmt::skip]
    const TOKENS: [&str; 22] = [
        "0", "-", "-5", "1e308", "NaN", "\"NaN\"", "0.0", "\"\"", "null", "true", "[", "]", "{", "}", ",", ":", "\"",
        "\"error\"", "99999999999", "9223372036854775808", "[\"error\", 1, \"x\"]", "{\"error\": \"x\"}",
    ];

    /// One change to a real body; positions are taken relative to the body as it is by then.
    #[derive(Debug, Clone)]
    enum Edit {
        Flip(Index, u8),
        Insert(Index, Index),
        Cut(Index, usize),
        Truncate(Index),
        /// Another digit where there is one: a price that still parses, but a different one.
        Digit(Index, u8),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Edit::Flip(at, byte)),
            (any::<Index>(), any::<Index>()).prop_map(|(at, token)| Edit::Insert(at, token)),
            (any::<Index>(), 0..12usize).prop_map(|(at, len)| Edit::Cut(at, len)),
            any::<Index>().prop_map(Edit::Truncate),
            (any::<Index>(), 0..10u8).prop_map(|(at, digit)| Edit::Digit(at, digit)),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
        let at = |index: &Index, bytes: &Vec<u8>| index.index(bytes.len() + 1);
        match edit {
            Edit::Flip(i, byte) => {
                let at = at(i, bytes);
                if at < bytes.len() {
                    bytes[at] = *byte;
                }
            }
            Edit::Insert(i, token) => {
                let at = at(i, bytes);
                bytes.splice(at..at, TOKENS[token.index(TOKENS.len())].bytes());
            }
            Edit::Cut(i, len) => {
                let at = at(i, bytes);
                let end = (at + len).min(bytes.len());
                bytes.drain(at..end);
            }
            Edit::Truncate(i) => {
                let at = at(i, bytes);
                bytes.truncate(at);
            }
            Edit::Digit(i, digit) => {
                let at = at(i, bytes);
                if at < bytes.len() && bytes[at].is_ascii_digit() {
                    bytes[at] = b'0' + digit;
                }
            }
        }
    }

    /// Random bytes, or a real body with a few byte flips, JSON-token insertions, cuts and
    /// truncations: mostly-valid JSON reaches the adapters' field logic, not only the JSON parser.
    fn fuzz_input() -> impl Strategy<Value = Vec<u8>> {
        let junk = proptest::collection::vec(any::<u8>(), 0..64);
        let edited = (any::<Index>(), proptest::collection::vec(edit(), 0..4)).prop_map(|(body, edits)| {
            let mut bytes = REAL_BODIES[body.index(REAL_BODIES.len())].1.as_bytes().to_vec();
            for edit in &edits {
                apply(&mut bytes, edit);
            }
            bytes
        });
        prop_oneof![1 => junk, 3 => edited]
    }

    #[test]
    fn the_real_bodies_parse() {
        for (source, body) in REAL_BODIES {
            assert!(source.exchange().parse(body.as_bytes()).is_ok(), "{source}: corpus body does not parse");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn no_input_panics_an_adapter_or_yields_an_impossible_price(input in fuzz_input()) {
            use crate::price::MAX_PLAUSIBLE_PRICE;

            let shown = String::from_utf8_lossy(&input);
            for source in Source::ALL {
                // A panic fails the case, and proptest shrinks the input to a small one.
                if let Ok(parsed) = source.exchange().parse(&input) {
                    let price = parsed.price.get();
                    prop_assert!(
                        price.is_finite() && price > 0.0 && price <= MAX_PLAUSIBLE_PRICE,
                        "{} accepted {} from {:?}", source, price, shown
                    );
                }
            }
        }
    }

    /// Guards against a generator that only ever produces junk, which would test nothing.
    #[test]
    fn the_fuzz_input_often_reaches_the_adapters_field_logic() {
        let mut runner = TestRunner::deterministic();
        let strategy = fuzz_input();
        let mut accepted = 0;
        for _ in 0..2_000 {
            let input = strategy.new_tree(&mut runner).expect("an input").current();
            accepted += Source::ALL.iter().filter(|source| source.exchange().parse(&input).is_ok()).count();
        }
        assert!(accepted > 100, "only {accepted} inputs parsed");
    }
}
