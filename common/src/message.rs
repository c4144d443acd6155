//! The message schema: ticks on the stream and the aggregated state in KV.
//!
//! Both are JSON with a `schema_version`. Version 1 may gain optional fields; anything that changes
//! the meaning of an existing field bumps the version, and readers refuse versions they do not know
//! rather than misread them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// One consensus price for one round of the publisher, as stored on [`crate::names::TICK_SUBJECT`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    pub schema_version: u32,
    /// Currency pair, `BTC-USD`.
    pub pair: String,
    /// Start of the round's time slot. Ticks are ordered and windowed by this time.
    #[serde(deserialize_with = "rfc3339::deserialize")]
    pub time: DateTime<Utc>,
    /// Median of the quotes that were used, in USD.
    pub price: f64,
    /// How far apart the used quotes were: the confidence band of `price`.
    pub dispersion: Dispersion,
    /// Every fresh quote of the round, used or not, with the reason.
    pub sources: Vec<SourceQuote>,
}

/// Spread of the quotes a tick's median was taken over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dispersion {
    /// Lowest used quote, USD.
    pub low: f64,
    /// Highest used quote, USD.
    pub high: f64,
    /// Population standard deviation of the used quotes, USD.
    pub std_dev: f64,
    /// Number of quotes used (at least the publisher's quorum).
    pub used: u32,
}

/// One exchange's quote inside a tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceQuote {
    /// Exchange name as in `SOURCES`, e.g. `kraken`.
    pub source: String,
    /// The exchange's price, USD.
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
    /// Length of the covered span, seconds.
    pub covered_seconds: f64,
    /// True once prices cover the whole window (no cold-start gap).
    pub complete: bool,
}

/// The value the aggregator writes to [`crate::names::STATE_KEY`]: what the frontends serve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceState {
    pub schema_version: u32,
    /// The newest tick by tick time.
    pub latest: Tick,
    /// The average as of `latest.time`.
    pub average: WindowAverage,
    /// Stream sequence of the last tick applied; never goes backwards.
    pub stream_sequence: u64,
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid JSON for this schema: {0}")]
    Json(#[from] serde_json::Error),
    #[error("schema_version {found} is not supported (this build reads {SCHEMA_VERSION})")]
    Version { found: u32 },
    #[error("price {0} is not a finite positive number")]
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

impl Tick {
    /// Reads a tick from a stream message, refusing unknown schema versions and impossible prices.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let tick: Tick = serde_json::from_slice(bytes)?;
        if tick.schema_version != SCHEMA_VERSION {
            return Err(DecodeError::Version { found: tick.schema_version });
        }
        if !(tick.price.is_finite() && tick.price > 0.0) {
            return Err(DecodeError::Price(tick.price));
        }
        Ok(tick)
    }

    pub fn encode(&self) -> Vec<u8> {
        // A struct of strings, numbers and timestamps always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl PriceState {
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
                covered_seconds: 600.0,
                complete: true,
            },
            latest: tick,
            stream_sequence: 42,
        };
        assert_eq!(PriceState::decode(&state.encode()).expect("decodes"), state);
    }

    #[test]
    fn prices_survive_json_to_the_last_bit() {
        // Replicas and restarts compare states for equality: a 1-ulp drift in parsing would break it.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..10_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut tick = sample_tick();
            tick.price = 1.0 + (seed % 100_000_000_000) as f64 / 997.0;
            assert_eq!(Tick::decode(&tick.encode()).expect("decodes").price.to_bits(), tick.price.to_bits());
        }
    }

    #[test]
    fn times_read_with_any_precision_and_offset_and_bad_times_are_refused() {
        let with_time = |time: &str| {
            let mut json: serde_json::Value = serde_json::from_slice(&sample_tick().encode()).expect("json");
            json["time"] = serde_json::Value::from(time);
            json["sources"][0]["quote_time"] = serde_json::Value::from(time);
            Tick::decode(json.to_string().as_bytes())
        };
        let at = |ms: i64| Utc.timestamp_millis_opt(ms).single().expect("valid time");
        for (text, expected) in [
            ("2025-11-24T19:00:00Z", at(1_764_010_800_000)),
            ("2025-11-24T19:00:00.123Z", at(1_764_010_800_123)),
            ("2025-11-24T20:00:00.123+01:00", at(1_764_010_800_123)),
        ] {
            let tick = with_time(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((tick.time, tick.sources[0].quote_time), (expected, expected), "{text}");
        }
        let nanos = with_time("2025-11-24T19:00:00.002822832Z").expect("nanoseconds");
        assert_eq!(nanos.time.timestamp_subsec_nanos(), 2_822_832);
        for bad in ["2025-11-24", "2025-13-24T19:00:00Z", "yesterday", "2025-11-24T19:00:00"] {
            assert!(matches!(with_time(bad), Err(DecodeError::Json(_))), "{bad} was accepted");
        }
    }

    #[test]
    fn unknown_schema_version_is_refused() {
        let mut tick = sample_tick();
        tick.schema_version = 2;
        assert!(matches!(Tick::decode(&tick.encode()), Err(DecodeError::Version { found: 2 })));
    }

    #[test]
    fn impossible_price_is_refused() {
        let mut tick = sample_tick();
        tick.price = -1.0;
        assert!(matches!(Tick::decode(&tick.encode()), Err(DecodeError::Price(_))));
        assert!(matches!(Tick::decode(b"{\"price\":"), Err(DecodeError::Json(_))));
    }
}
