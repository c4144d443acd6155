//! What the aggregator's unit tests share: the production window rules and ticks as the publisher
//! writes them, at times counted from one fixed instant.

use std::time::Duration;

use btc_contract::Pair;
use chrono::{DateTime, TimeZone, Utc};

use crate::state::WindowRules;

pub const RULES: WindowRules = WindowRules {
    window: Duration::from_secs(600),
    max_hold: Duration::from_secs(5),
    max_clock_skew: Duration::from_secs(60),
};

/// The pair of the fixture ticks.
pub fn seed() -> Pair {
    Pair::seed()
}

/// `ms` milliseconds after the fixed instant.
pub fn at_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_800_000_000_000 + ms).single().expect("valid time")
}

/// `seconds` after the fixed instant.
pub fn at(seconds: i64) -> DateTime<Utc> {
    at_ms(seconds * 1000)
}

/// A tick's JSON at `time_ms`, as the publisher writes it.
pub fn tick_ms(time_ms: i64, price: f64) -> Vec<u8> {
    format!(
        r#"{{"schema_version":1,"pair":"BTC-USD","time":"{}","price":{price},
        "dispersion":{{"low":{price},"high":{price},"std_dev":0,"used":3}},"sources":[]}}"#,
        at_ms(time_ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
    .into_bytes()
}

/// A tick's JSON at `seconds`.
pub fn tick(seconds: i64, price: f64) -> Vec<u8> {
    tick_ms(seconds * 1000, price)
}

/// A tick's JSON at `time_ms` whose head reads and whose quotes do not (`sources` is a number).
pub fn tick_with_broken_quotes(time_ms: i64, price: f64) -> Vec<u8> {
    String::from_utf8_lossy(&tick_ms(time_ms, price)).replace(r#""sources":[]"#, r#""sources":7"#).into_bytes()
}
