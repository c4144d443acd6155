//! The message schema: ticks on the stream and the aggregated state in KV.
//!
//! Both are JSON with a `schema_version`. Version 1 may gain optional fields; anything that changes
//! the meaning of an existing field bumps the version, and readers refuse versions they do not know
//! rather than misread them.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Highest price the pipeline accepts, in any pair's currency: far above any BTC price in USD, EUR
/// or GBP, far below the absurd values (1e308, mis-scaled satoshis) a broken feed can send. The publisher never makes a quote
/// above it and readers refuse a tick above it, which also keeps the aggregator's exact integer
/// sums far from overflowing.
pub const MAX_PRICE: f64 = 10_000_000.0;

/// One consensus price of one pair for one round of the publisher, as stored on the pair's
/// subject ([`crate::names::Pair::ticks_subject`]). Prices are in the pair's currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    pub schema_version: u32,
    /// Currency pair, `BTC-USD` ([`crate::names::Pair`]); the subject's last token.
    pub pair: String,
    /// Start of the round's time slot. Ticks are ordered, de-duplicated and windowed by this time.
    #[serde(deserialize_with = "rfc3339::deserialize")]
    pub time: DateTime<Utc>,
    /// Time of the oldest quote used in the median: the data behind the price is this old. Later
    /// than `time` when every quote arrived during the round; earlier when a quote was reused
    /// from a previous round. Absent in ticks written before it existed.
    #[serde(default, deserialize_with = "rfc3339::deserialize_option", skip_serializing_if = "Option::is_none")]
    pub oldest_quote_time: Option<DateTime<Utc>>,
    /// Median of the quotes that were used, in the pair's currency.
    pub price: f64,
    /// How far apart the used quotes were: the confidence band of `price`.
    pub dispersion: Dispersion,
    /// Every fresh quote of the round, used or not, with the reason.
    pub sources: Vec<SourceQuote>,
}

/// Spread of the quotes a tick's median was taken over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dispersion {
    /// Lowest used quote, in the pair's currency.
    pub low: f64,
    /// Highest used quote, in the pair's currency.
    pub high: f64,
    /// Population standard deviation of the used quotes, in the pair's currency.
    pub std_dev: f64,
    /// Number of quotes used (at least the publisher's quorum).
    pub used: u32,
}

/// One exchange's quote inside a tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceQuote {
    /// Exchange name as in `SOURCES`, e.g. `kraken`.
    pub source: String,
    /// The exchange's price, in the pair's currency.
    pub price: f64,
    /// The exchange's own quote time where it gives one, else when the answer arrived.
    #[serde(deserialize_with = "rfc3339::deserialize")]
    pub quote_time: DateTime<Utc>,
    pub status: QuoteStatus,
}

/// Whether a quote went into the median.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuoteStatus {
    /// Part of the median.
    Used,
    /// Too far from the median: excluded until it comes back within half the threshold.
    Outlier,
    /// An aggregator's price (CoinGecko): shown as a sanity check, never a vote.
    Reference,
}

/// The rolling average the aggregator computes over the last `window_seconds` of tick time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowAverage {
    /// Length of the window, seconds (600).
    pub window_seconds: u32,
    /// Time-weighted average: each price weighted by how long it held inside the window.
    pub time_weighted: f64,
    /// Plain mean of the ticks inside the window.
    pub mean: f64,
    /// Number of ticks inside the window.
    pub samples: u32,
    /// Start of the span the average covers (the window start, or the first tick if later).
    #[serde(deserialize_with = "rfc3339::deserialize")]
    pub from: DateTime<Utc>,
    /// End of the span: the newest tick's time.
    #[serde(deserialize_with = "rfc3339::deserialize")]
    pub to: DateTime<Utc>,
    /// Time inside the window that a price covers, seconds (a price holds at most the
    /// aggregator's `MAX_HOLD` after its tick).
    pub covered_seconds: f64,
    /// Time inside the window that no price covers, seconds: `window_seconds - covered_seconds`
    /// (outages, and the time before the first tick of a cold start). 0 in states written before
    /// this field existed.
    #[serde(default)]
    pub gap_seconds: f64,
    /// True when the gaps add up to at most one `MAX_HOLD`: the average covers the window.
    pub complete: bool,
}

/// The value the aggregator writes to a pair's key ([`crate::names::Pair::state_key`]): what the
/// frontends serve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceState {
    pub schema_version: u32,
    /// The newest tick by tick time.
    pub latest: Tick,
    /// The average as of `latest.time`.
    pub average: WindowAverage,
    /// Stream sequence of the last tick applied; never goes backwards within one ticks stream.
    pub stream_sequence: u64,
    /// Creation time of the ticks stream the state was computed from. A stream deleted and
    /// created again starts its sequences at 1 again; a state from the newer stream supersedes
    /// any state from an older one. Absent in states written before it existed (the oldest).
    #[serde(default, deserialize_with = "rfc3339::deserialize_option", skip_serializing_if = "Option::is_none")]
    pub stream_created: Option<DateTime<Utc>>,
    /// The candles still open as of `latest`, one per interval (shortest first): what the
    /// candles route serves for the current interval. Closed candles are on their own streams.
    /// Absent in states written before candles existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_candles: Vec<crate::Candle>,
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid JSON for this schema: {0}")]
    Json(#[from] serde_json::Error),
    #[error("schema_version {found} is not supported (this build reads {SCHEMA_VERSION})")]
    Version { found: u32 },
    #[error("price {0} is not a finite number in (0, {MAX_PRICE}]")]
    Price(f64),
}

/// Reading the RFC 3339 times this schema is written with (chrono's serde form) by chrono's
/// dedicated RFC 3339 parser: chrono's own `Deserialize` goes through its general format parser,
/// which `make bench` showed as a quarter of the aggregator's decoding time (nine times per tick).
mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::Deserializer;
    use serde::de::{Error, Visitor};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        deserializer.deserialize_str(Rfc3339)
    }

    pub fn deserialize_option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        deserialize(deserializer).map(Some)
    }

    struct Rfc3339;

    impl Visitor<'_> for Rfc3339 {
        type Value = DateTime<Utc>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("an RFC 3339 date and time")
        }

        fn visit_str<E: Error>(self, text: &str) -> Result<Self::Value, E> {
            DateTime::parse_from_rfc3339(text).map(|time| time.with_timezone(&Utc)).map_err(E::custom)
        }
    }
}

/// The fields of a [`Tick`] that place its price in time: what the aggregator's window and candles
/// read from every tick. Reading only these skips the quotes, most of a tick's bytes, without
/// allocating; the whole tick is read where it is served.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TickHead<'a> {
    pub schema_version: u32,
    #[serde(borrow)]
    pub pair: Cow<'a, str>,
    #[serde(deserialize_with = "rfc3339::deserialize")]
    pub time: DateTime<Utc>,
    pub price: f64,
}

impl<'a> TickHead<'a> {
    /// Reads a tick's head, refusing what [`Tick::decode`] refuses in these fields.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let head: TickHead = serde_json::from_slice(bytes)?;
        check_tick(head.schema_version, head.price)?;
        Ok(head)
    }
}

/// The checks every reader of a tick makes: a known schema version and a possible price.
fn check_tick(schema_version: u32, price: f64) -> Result<(), DecodeError> {
    if schema_version != SCHEMA_VERSION {
        return Err(DecodeError::Version { found: schema_version });
    }
    if !(price.is_finite() && price > 0.0 && price <= MAX_PRICE) {
        return Err(DecodeError::Price(price));
    }
    Ok(())
}

impl Tick {
    /// Reads a tick from a stream message, refusing unknown schema versions and impossible prices.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let tick: Tick = serde_json::from_slice(bytes)?;
        check_tick(tick.schema_version, tick.price)?;
        Ok(tick)
    }

    /// The time the data behind the price is from: the oldest used quote's time where the tick
    /// carries it, else the round's start. Staleness is judged on it.
    pub fn data_time(&self) -> DateTime<Utc> {
        self.oldest_quote_time.unwrap_or(self.time)
    }

    pub fn encode(&self) -> Vec<u8> {
        // A struct of strings, numbers and timestamps always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl PriceState {
    /// Where the state stands in the history of the ticks: by stream, then by sequence. A state
    /// never replaces one that stands later.
    pub fn position(&self) -> (Option<DateTime<Utc>>, u64) {
        (self.stream_created, self.stream_sequence)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let state: PriceState = serde_json::from_slice(bytes)?;
        if state.schema_version != SCHEMA_VERSION {
            return Err(DecodeError::Version { found: state.schema_version });
        }
        Ok(state)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample_tick() -> Tick {
        let time = Utc.timestamp_millis_opt(1_764_010_800_000).single().expect("valid time");
        Tick {
            schema_version: SCHEMA_VERSION,
            pair: "BTC-USD".into(),
            time,
            oldest_quote_time: Some(time - chrono::Duration::milliseconds(1_500)),
            price: 97_012.35,
            dispersion: Dispersion { low: 97_010.0, high: 97_015.5, std_dev: 2.1, used: 3 },
            sources: vec![
                SourceQuote { source: "kraken".into(), price: 97_012.4, quote_time: time, status: QuoteStatus::Used },
                SourceQuote {
                    source: "gemini".into(),
                    price: 99_000.0,
                    quote_time: time,
                    status: QuoteStatus::Outlier,
                },
            ],
        }
    }

    #[test]
    fn tick_round_trips_through_json() {
        let tick = sample_tick();
        assert_eq!(Tick::decode(&tick.encode()).expect("decodes"), tick);
    }

    #[test]
    fn tick_json_has_the_documented_field_names() {
        let json: serde_json::Value = serde_json::from_slice(&sample_tick().encode()).expect("json");
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["time"], "2025-11-24T19:00:00Z");
        assert_eq!(json["sources"][1]["status"], "outlier");
        assert_eq!(json["dispersion"]["used"], 3);
    }

    #[test]
    fn state_round_trips_through_json() {
        let tick = sample_tick();
        let state = PriceState {
            schema_version: SCHEMA_VERSION,
            average: WindowAverage {
                window_seconds: 600,
                time_weighted: 97_000.5,
                mean: 97_001.0,
                samples: 600,
                from: tick.time - chrono::Duration::seconds(600),
                to: tick.time,
                covered_seconds: 598.0,
                gap_seconds: 2.0,
                complete: true,
            },
            latest: tick,
            stream_sequence: 42,
            stream_created: Some(Utc.timestamp_millis_opt(1_764_000_000_123).single().expect("valid time")),
            open_candles: Vec::new(),
        };
        assert_eq!(PriceState::decode(&state.encode()).expect("decodes"), state);
    }

    #[test]
    fn a_state_from_a_newer_stream_stands_later_whatever_its_sequence() {
        let at = |ms: i64| Utc.timestamp_millis_opt(ms).single();
        assert!((at(2_000), 1) > (at(1_000), 999_999));
        assert!((at(1_000), 2) > (at(1_000), 1));
        // States written before streams were told apart stand before any that carries one.
        assert!((at(1_000), 1) > (None, 999_999));
    }

    proptest::proptest! {
        #[test]
        fn prices_survive_json_to_the_last_bit(price in 0.000_000_01f64..=MAX_PRICE) {
            // Replicas and restarts compare states for equality: a 1-ulp drift in parsing would break it.
            let mut tick = sample_tick();
            tick.price = price;
            let decoded = Tick::decode(&tick.encode()).map(|t| t.price.to_bits());
            proptest::prop_assert_eq!(decoded.ok(), Some(price.to_bits()));
        }
    }

    #[test]
    fn a_tick_s_head_is_its_pair_time_and_price_whatever_its_quotes() {
        let tick = sample_tick();
        let bytes = tick.encode();
        let head = TickHead::decode(&bytes).expect("a head");
        assert_eq!((head.pair.as_ref(), head.time, head.price), (tick.pair.as_str(), tick.time, tick.price));
        assert!(matches!(head.pair, Cow::Borrowed(_)), "the pair is read in place");
        // The head does not read the quotes: a tick whose quotes do not read still has one.
        let mut broken: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        broken["sources"][0]["quote_time"] = serde_json::Value::from("yesterday");
        let broken = broken.to_string();
        assert!(Tick::decode(broken.as_bytes()).is_err());
        assert_eq!(TickHead::decode(broken.as_bytes()).ok(), Some(head));
        // An escaped pair is still read (into its own string).
        let escaped = String::from_utf8(bytes).expect("utf-8").replace("\"BTC-USD\"", "\"BTC\\u002dUSD\"");
        assert_eq!(TickHead::decode(escaped.as_bytes()).map(|h| h.pair.into_owned()).ok().as_deref(), Some("BTC-USD"));
    }

    #[test]
    fn times_read_with_any_precision_and_offset_and_bad_times_are_refused() {
        let json_with_time = |time: &str| {
            let mut json: serde_json::Value = serde_json::from_slice(&sample_tick().encode()).expect("json");
            json["time"] = serde_json::Value::from(time);
            json["sources"][0]["quote_time"] = serde_json::Value::from(time);
            json.to_string()
        };
        let at = |ms: i64| Utc.timestamp_millis_opt(ms).single().expect("valid time");
        for (text, expected) in [
            ("2025-11-24T19:00:00Z", at(1_764_010_800_000)),
            ("2025-11-24T19:00:00.123Z", at(1_764_010_800_123)),
            ("2025-11-24T20:00:00.123+01:00", at(1_764_010_800_123)),
        ] {
            let json = json_with_time(text);
            let tick = Tick::decode(json.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((tick.time, tick.sources[0].quote_time), (expected, expected), "{text}");
            assert_eq!(TickHead::decode(json.as_bytes()).map(|head| head.time).ok(), Some(expected), "{text}");
        }
        let nanos = Tick::decode(json_with_time("2025-11-24T19:00:00.002822832Z").as_bytes()).expect("nanoseconds");
        assert_eq!(nanos.time.timestamp_subsec_nanos(), 2_822_832);
        for bad in ["2025-11-24", "2025-13-24T19:00:00Z", "yesterday", "2025-11-24T19:00:00"] {
            let json = json_with_time(bad);
            assert!(matches!(Tick::decode(json.as_bytes()), Err(DecodeError::Json(_))), "{bad} was accepted");
            assert!(matches!(TickHead::decode(json.as_bytes()), Err(DecodeError::Json(_))), "{bad} was accepted");
        }
    }

    #[test]
    fn unknown_schema_version_is_refused() {
        let mut tick = sample_tick();
        tick.schema_version = 2;
        assert!(matches!(Tick::decode(&tick.encode()), Err(DecodeError::Version { found: 2 })));
        assert!(matches!(TickHead::decode(&tick.encode()), Err(DecodeError::Version { found: 2 })));
    }

    #[test]
    fn impossible_price_is_refused() {
        for price in [-1.0, 0.0, MAX_PRICE * 1.000_001, 1e300] {
            let mut tick = sample_tick();
            tick.price = price;
            assert!(matches!(Tick::decode(&tick.encode()), Err(DecodeError::Price(_))), "{price} accepted");
            assert!(matches!(TickHead::decode(&tick.encode()), Err(DecodeError::Price(_))), "{price} accepted");
        }
        let mut tick = sample_tick();
        tick.price = MAX_PRICE;
        assert!(Tick::decode(&tick.encode()).is_ok());
        assert!(TickHead::decode(&tick.encode()).is_ok());
        assert!(matches!(Tick::decode(b"{\"price\":"), Err(DecodeError::Json(_))));
        assert!(matches!(TickHead::decode(b"{\"price\":"), Err(DecodeError::Json(_))));
    }

    #[test]
    fn messages_written_before_the_optional_fields_existed_still_read() {
        let mut tick = serde_json::to_value(sample_tick()).expect("json");
        tick.as_object_mut().expect("object").remove("oldest_quote_time");
        let old = Tick::decode(tick.to_string().as_bytes()).expect("a tick without oldest_quote_time");
        assert_eq!((old.oldest_quote_time, old.data_time()), (None, old.time));
        let average = r#"{"window_seconds":600,"time_weighted":1.0,"mean":1.0,"samples":1,
            "from":"2025-11-24T19:00:00Z","to":"2025-11-24T19:00:00Z","covered_seconds":0.0,"complete":false}"#;
        let average: WindowAverage = serde_json::from_str(average).expect("an average without gap_seconds");
        assert_eq!(average.gap_seconds, 0.0);
    }

    #[test]
    fn the_data_time_is_the_oldest_used_quote() {
        let tick = sample_tick();
        assert_eq!(tick.data_time(), tick.time - chrono::Duration::milliseconds(1_500));
        let json: serde_json::Value = serde_json::from_slice(&tick.encode()).expect("json");
        assert_eq!(json["oldest_quote_time"], "2025-11-24T18:59:58.500Z");
    }
}
