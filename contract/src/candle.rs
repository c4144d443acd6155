//! Candles: the open, high, low and close of a pair's price over a fixed interval, with its
//! time-weighted average, as the aggregator publishes them once an interval has closed.
//!
//! A candle describes the price *held* over its interval: a tick's price holds from the tick
//! until the next one, at most `MAX_HOLD` (the window's rule), and a price still holding when an
//! interval starts is carried into it. So `open` is the first price held in the interval (the
//! carried-in price where there is one), `close` the last, and an interval that only a carried-in
//! price covers (the first seconds after the last tick before an outage) has a candle with
//! `samples: 0`. An interval no price covers has no candle. With this definition candles combine
//! exactly: a 5-minute candle is its 1-minute candles put together ([`Candle::combine`]), which
//! is how the aggregator rebuilds the longer open candles after a restart.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::message::{DecodeError, MAX_PRICE, SCHEMA_VERSION};

/// The candle intervals, shortest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Interval {
    #[serde(rename = "1m")]
    OneMinute,
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "1h")]
    OneHour,
    #[serde(rename = "1d")]
    OneDay,
}

impl Interval {
    pub const ALL: [Interval; 4] = [Interval::OneMinute, Interval::FiveMinutes, Interval::OneHour, Interval::OneDay];

    /// `1m`, `5m`, `1h`, `1d`: in subjects, stream names, query parameters and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::OneMinute => "1m",
            Interval::FiveMinutes => "5m",
            Interval::OneHour => "1h",
            Interval::OneDay => "1d",
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            Interval::OneMinute => 60_000,
            Interval::FiveMinutes => 300_000,
            Interval::OneHour => 3_600_000,
            Interval::OneDay => 86_400_000,
        }
    }

    /// Start of the interval holding `time_ms` (intervals are aligned on the unix epoch, UTC).
    pub fn start_of(self, time_ms: i64) -> i64 {
        time_ms - time_ms.rem_euclid(self.millis())
    }

    /// The stream holding this interval's closed candles (each interval has its own retention).
    pub fn stream(self) -> &'static str {
        match self {
            Interval::OneMinute => "CANDLES_1M",
            Interval::FiveMinutes => "CANDLES_5M",
            Interval::OneHour => "CANDLES_1H",
            Interval::OneDay => "CANDLES_1D",
        }
    }

    /// Subjects of [`Interval::stream`]: `prices.candles.1m.>`.
    pub fn stream_subjects(self) -> String {
        format!("prices.candles.{}.>", self.as_str())
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Interval {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Interval::ALL
            .into_iter()
            .find(|interval| interval.as_str() == text)
            .ok_or_else(|| format!("unknown interval {text:?}; one of 1m, 5m, 1h, 1d"))
    }
}

/// One closed interval of one pair, as stored on `prices.candles.<interval>.<PAIR>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candle {
    pub schema_version: u32,
    /// `BTC-USD`.
    pub pair: String,
    pub interval: Interval,
    /// Start of the interval (inclusive).
    pub start: DateTime<Utc>,
    /// End of the interval (exclusive): `start` plus the interval.
    pub end: DateTime<Utc>,
    /// First price held in the interval.
    pub open: f64,
    /// Highest price held in the interval.
    pub high: f64,
    /// Lowest price held in the interval.
    pub low: f64,
    /// Last price held in the interval.
    pub close: f64,
    /// Time-weighted average of the price over the time a price covers (`close` while nothing is
    /// covered yet: an open candle of a single tick).
    pub time_weighted: f64,
    /// Ticks inside the interval (0 for an interval only a carried-in price covers).
    pub samples: u32,
    /// Time inside the interval a price covers, seconds.
    pub covered_seconds: f64,
    /// The exact integral behind `time_weighted`: the sum of each held price, in units of 1e-8,
    /// times the milliseconds it held, as a decimal string (it exceeds what a JSON number holds
    /// exactly). With `covered_ms` it lets candles be combined without rounding.
    pub price_ms_sum: String,
    /// Time inside the interval a price covers, milliseconds (exact).
    pub covered_ms: i64,
}

/// What [`Candle::combine`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CombineError {
    #[error("candles of different pairs or an unreadable sum")]
    Mismatch,
    #[error("the candles are not in order inside one {0} interval")]
    Outside(Interval),
}

impl Candle {
    /// Reads a candle from a stream message, refusing unknown schema versions and impossible
    /// prices.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let candle: Candle = serde_json::from_slice(bytes)?;
        if candle.schema_version != SCHEMA_VERSION {
            return Err(DecodeError::Version { found: candle.schema_version });
        }
        for price in [candle.open, candle.high, candle.low, candle.close] {
            if !(price.is_finite() && price > 0.0 && price <= MAX_PRICE) {
                return Err(DecodeError::Price(price));
            }
        }
        Ok(candle)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The exact integral, parsed.
    pub fn price_ms(&self) -> Option<i128> {
        self.price_ms_sum.parse().ok()
    }

    /// The `interval` candle made of `parts`, shorter candles of one pair, oldest first, all
    /// inside one `interval` interval: OHLC from the first and last and the extremes, sums added.
    /// `None` for no parts.
    pub fn combine(interval: Interval, parts: &[Candle]) -> Result<Option<Candle>, CombineError> {
        let (Some(first), Some(last)) = (parts.first(), parts.last()) else { return Ok(None) };
        let start_ms = interval.start_of(first.start.timestamp_millis());
        let end_ms = start_ms + interval.millis();
        let mut price_ms: i128 = 0;
        let (mut high, mut low, mut samples, mut covered_ms) = (f64::MIN, f64::MAX, 0u32, 0i64);
        let mut previous_end = start_ms;
        for part in parts {
            if part.pair != first.pair {
                return Err(CombineError::Mismatch);
            }
            let (part_start, part_end) = (part.start.timestamp_millis(), part.end.timestamp_millis());
            if part_start < previous_end || part_end > end_ms {
                return Err(CombineError::Outside(interval));
            }
            previous_end = part_end;
            price_ms += part.price_ms().ok_or(CombineError::Mismatch)?;
            (high, low) = (high.max(part.high), low.min(part.low));
            samples += part.samples;
            covered_ms += part.covered_ms;
        }
        Ok(Some(Candle::from_sums(
            &first.pair,
            interval,
            start_ms,
            Sums { open: first.open, high, low, close: last.close, samples, covered_ms, price_ms },
        )))
    }

    /// A candle from its exact sums.
    pub fn from_sums(pair: &str, interval: Interval, start_ms: i64, sums: Sums) -> Candle {
        // As the window's average: exact sums, one division at the end; with nothing covered yet
        // (an open candle of one tick) the price is all there is.
        let time_weighted = match sums.covered_ms {
            0 => sums.close,
            covered => sums.price_ms as f64 / covered as f64 / PRICE_SCALE,
        };
        Candle {
            schema_version: SCHEMA_VERSION,
            pair: pair.to_string(),
            interval,
            start: millis(start_ms),
            end: millis(start_ms + interval.millis()),
            open: sums.open,
            high: sums.high,
            low: sums.low,
            close: sums.close,
            time_weighted,
            samples: sums.samples,
            covered_seconds: sums.covered_ms as f64 / 1000.0,
            price_ms_sum: sums.price_ms.to_string(),
            covered_ms: sums.covered_ms,
        }
    }
}

/// Prices inside the exact sums are integers of 1e-8 (as in the aggregator's window).
pub const PRICE_SCALE: f64 = 1e8;

/// What a candle is made of, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sums {
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub samples: u32,
    pub covered_ms: i64,
    /// Sum of price (1e-8 units) x ms held.
    pub price_ms: i128,
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candle(start_ms: i64, interval: Interval, prices: (f64, f64, f64, f64), covered_ms: i64, price: f64) -> Candle {
        let (open, high, low, close) = prices;
        let price_ms = (price * PRICE_SCALE) as i128 * i128::from(covered_ms);
        Candle::from_sums(
            "BTC-USD",
            interval,
            start_ms,
            Sums { open, high, low, close, samples: 2, covered_ms, price_ms },
        )
    }

    #[test]
    fn intervals_are_aligned_on_the_epoch_and_named_as_in_subjects() {
        assert_eq!(Interval::OneMinute.start_of(1_800_000_059_999), 1_800_000_000_000);
        assert_eq!(Interval::OneHour.start_of(7_200_000), 7_200_000);
        assert_eq!(Interval::OneDay.start_of(-1), -86_400_000);
        assert_eq!("5m".parse::<Interval>(), Ok(Interval::FiveMinutes));
        assert!("2m".parse::<Interval>().is_err());
        assert_eq!(Interval::OneDay.stream_subjects(), "prices.candles.1d.>");
        assert_eq!(serde_json::to_string(&Interval::OneHour).expect("json"), "\"1h\"");
    }

    #[test]
    fn candles_combine_exactly_and_refuse_what_does_not_fit() {
        let a = candle(0, Interval::OneMinute, (100.0, 110.0, 90.0, 105.0), 60_000, 100.0);
        let b = candle(60_000, Interval::OneMinute, (105.0, 120.0, 95.0, 96.0), 30_000, 130.0);
        let five = Candle::combine(Interval::FiveMinutes, &[a.clone(), b.clone()]).expect("fits").expect("a candle");
        assert_eq!((five.open, five.high, five.low, five.close), (100.0, 120.0, 90.0, 96.0));
        assert_eq!((five.samples, five.covered_ms, five.covered_seconds), (4, 90_000, 90.0));
        assert_eq!(five.time_weighted, 110.0);
        assert_eq!((five.start.timestamp_millis(), five.end.timestamp_millis()), (0, 300_000));
        assert_eq!(
            Candle::combine(Interval::FiveMinutes, &[b.clone(), a]),
            Err(CombineError::Outside(Interval::FiveMinutes))
        );
        let later = candle(300_000, Interval::OneMinute, (1.0, 1.0, 1.0, 1.0), 1, 1.0);
        assert!(Candle::combine(Interval::FiveMinutes, &[b, later]).is_err());
        assert_eq!(Candle::combine(Interval::OneHour, &[]), Ok(None));
    }

    #[test]
    fn a_candle_round_trips_and_bad_ones_are_refused() {
        let a = candle(0, Interval::OneMinute, (100.0, 110.0, 90.0, 105.0), 60_000, 100.0);
        assert_eq!(Candle::decode(&a.encode()).expect("decodes"), a);
        let mut json: serde_json::Value = serde_json::from_slice(&a.encode()).expect("json");
        assert_eq!(json["interval"], "1m");
        json["high"] = serde_json::json!(1e300);
        assert!(Candle::decode(json.to_string().as_bytes()).is_err());
        json["high"] = serde_json::json!(110.0);
        json["schema_version"] = serde_json::json!(2);
        assert!(Candle::decode(json.to_string().as_bytes()).is_err());
    }
}
