//! Bitstamp `GET /api/v2/ticker/btcusd/` (lower-case pair, trailing slash; `btceur`, `ethusd`, ...).
//!
//! Every value is a string: `last` is the last trade price and `timestamp` the quote time in unix
//! seconds. A missing `timestamp` leaves the fetch time to stand in; a malformed one is an error,
//! since a wrong time would misjudge staleness. Errors carry `status: "error"` with a `reason`,
//! or a non-2xx `response_code` such as `"400.002"` (rate limit); both are checked before `last`.

use std::time::Duration;

use btc_contract::Pair;
use serde_json::Value;

use super::{Exchange, ParseError, Parsed, json, listed, price_field, unix_seconds_field};

pub struct Bitstamp;

/// The pairs Bitstamp lists, as its lower-case `assetcurrency` market names (exchange-apis.md for
/// `btcusd`; its trading pairs list has BTC and ETH against USD, EUR and GBP).
const PAIRS: [(&str, &str); 6] = [
    ("BTC-USD", "btcusd"),
    ("BTC-EUR", "btceur"),
    ("BTC-GBP", "btcgbp"),
    ("ETH-USD", "ethusd"),
    ("ETH-EUR", "etheur"),
    ("ETH-GBP", "ethgbp"),
];

impl Exchange for Bitstamp {
    fn default_base_url(&self) -> &'static str {
        "https://www.bitstamp.net"
    }

    fn path(&self, pair: &Pair) -> Option<String> {
        listed(&PAIRS, pair).map(|market| format!("/api/v2/ticker/{market}/"))
    }

    fn min_interval(&self) -> Duration {
        // 10,000 requests per 10 minutes (about 16/s) by secondary sources; one a second stays far
        // inside it and matches the design's poll interval.
        Duration::from_secs(1)
    }

    fn parse(&self, _pair: &Pair, body: &[u8]) -> Result<Parsed, ParseError> {
        let body = json(body)?;
        if let Some(error) = error_text(&body) {
            return Err(ParseError::Exchange(error.into()));
        }
        let price = price_field(body.get("last"), "last")?;
        let quote_time = match body.get("timestamp") {
            None | Some(Value::Null) => None,
            time => Some(unix_seconds_field(time, "timestamp")?),
        };
        Ok(Parsed { price, quote_time })
    }
}

/// The error in a body, if it is one: `status: "error"`, or a `response_code` outside 2xx.
fn error_text(body: &Value) -> Option<String> {
    let failed = body.get("status").and_then(Value::as_str) == Some("error");
    let code = body.get("response_code").filter(|c| !c.is_null());
    let code_is_error = code.is_some_and(|c| !c.as_str().is_some_and(|c| c.starts_with('2')));
    if !failed && !code_is_error {
        return None;
    }
    let mut parts = Vec::new();
    if let Some(code) = code {
        parts.push(text_of(code));
    }
    for field in ["code", "reason", "message"] {
        if let Some(value) = body.get(field).filter(|v| !v.is_null()) {
            parts.push(text_of(value));
        }
    }
    if parts.is_empty() {
        parts.push("status error".to_string());
    }
    Some(parts.join(": "))
}

/// A string without its quotes; anything else (Bitstamp's `reason` can be an object) as JSON.
fn text_of(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    const REAL: &str = r#"{"timestamp": "1764010799", "open": "96800", "high": "97800", "low": "95800", "last": "97012",
       "volume": "1234.56789012", "vwap": "96950", "bid": "97011", "ask": "97013", "side": "0",
       "open_24": "96500", "percent_change_24": "0.53"}"#;

    #[test]
    fn reads_the_last_price_and_its_time() {
        let parsed = Bitstamp.parse(&Pair::seed(), REAL.as_bytes()).expect("parses");
        assert_eq!(parsed.price.get(), 97_012.0);
        assert_eq!(parsed.quote_time, Utc.timestamp_opt(1_764_010_799, 0).single());
        let numeric_time =
            Bitstamp.parse(&Pair::seed(), br#"{"last": "97012.5", "timestamp": 1764010799}"#).expect("parses");
        assert_eq!(numeric_time.quote_time, Utc.timestamp_opt(1_764_010_799, 0).single());
        let no_time = Bitstamp.parse(&Pair::seed(), br#"{"last": "97012.5"}"#).expect("parses");
        assert_eq!(no_time.quote_time, None);
    }

    #[test]
    fn documented_errors_are_errors() {
        let limited = br#"{"response_code": "400.002", "reason": "Request rejected due to exceeded rate limit"}"#;
        assert_eq!(
            Bitstamp.parse(&Pair::seed(), limited),
            Err(ParseError::Exchange("400.002: Request rejected due to exceeded rate limit".into()))
        );
        let status = br#"{"status": "error", "reason": {"__all__": ["Invalid pair"]}, "code": "API0001"}"#;
        assert!(matches!(Bitstamp.parse(&Pair::seed(), status), Err(ParseError::Exchange(_))));
        let inside_a_ticker = br#"{"timestamp": "1764010799", "last": "97012", "status": "error", "reason": "x"}"#;
        assert!(matches!(Bitstamp.parse(&Pair::seed(), inside_a_ticker), Err(ParseError::Exchange(_))));
        let code_in_a_ticker = br#"{"timestamp": "1764010799", "last": "97012", "response_code": "500.000"}"#;
        assert!(matches!(Bitstamp.parse(&Pair::seed(), code_in_a_ticker), Err(ParseError::Exchange(_))));
    }

    #[test]
    fn failure_shapes_are_errors() {
        assert!(matches!(Bitstamp.parse(&Pair::seed(), b"<html>502 Bad Gateway</html>"), Err(ParseError::Json(_))));
        assert!(matches!(Bitstamp.parse(&Pair::seed(), &REAL.as_bytes()[..40]), Err(ParseError::Json(_))));
        assert_eq!(
            Bitstamp.parse(&Pair::seed(), br#"{"timestamp": "1764010799"}"#),
            Err(ParseError::MissingField("last"))
        );
        assert_eq!(Bitstamp.parse(&Pair::seed(), br#"{"last": ["97012"]}"#), Err(ParseError::MissingField("last")));
        assert!(matches!(Bitstamp.parse(&Pair::seed(), br#"["97012"]"#), Err(ParseError::MissingField(_))));
        assert!(matches!(
            Bitstamp.parse(&Pair::seed(), br#"{"last": "97012", "timestamp": "yesterday"}"#),
            Err(ParseError::Time(_))
        ));
        assert!(matches!(
            Bitstamp.parse(&Pair::seed(), br#"{"last": "97012", "timestamp": 1.5e9}"#),
            Err(ParseError::Time(_))
        ));
        assert!(matches!(
            Bitstamp.parse(&Pair::seed(), br#"{"last": "97012", "timestamp": {}}"#),
            Err(ParseError::MissingField(_))
        ));
        for bad in [r#""0""#, r#""-5""#, r#""NaN""#, r#""1e308""#, "1e308", r#""99999999999""#] {
            let body = format!(r#"{{"timestamp": "1764010799", "last": {bad}}}"#);
            assert!(
                matches!(Bitstamp.parse(&Pair::seed(), body.as_bytes()), Err(ParseError::Price(_))),
                "{bad} accepted"
            );
        }
    }
}
