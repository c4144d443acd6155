//! Gemini `GET /v1/pubticker/btcusd` (`btceur`, `ethusd`, ...).
//!
//! `last` is the last executed trade as a decimal string. The quote time is `volume.timestamp` in
//! milliseconds: an integer in the docs, a string in a real capture, so both are accepted; a missing
//! one leaves the fetch time to stand in. `volume`'s other keys are the pair's currency codes.
//! Errors are `{"result": "error", "reason", "message"}`, checked before `last`.

use std::time::Duration;

use btc_contract::Pair;
use serde_json::Value;

use super::{Exchange, ParseError, Parsed, json, listed, price_field, unix_millis_field};

pub struct Gemini;

/// The pairs Gemini lists, as its lower-case `assetcurrency` symbols (exchange-apis.md for
/// `btcusd`; Gemini's symbol list has BTC and ETH against USD, EUR and GBP since it opened its
/// EUR and GBP books).
const PAIRS: [(&str, &str); 6] = [
    ("BTC-USD", "btcusd"),
    ("BTC-EUR", "btceur"),
    ("BTC-GBP", "btcgbp"),
    ("ETH-USD", "ethusd"),
    ("ETH-EUR", "etheur"),
    ("ETH-GBP", "ethgbp"),
];

impl Exchange for Gemini {
    fn default_base_url(&self) -> &'static str {
        "https://api.gemini.com"
    }

    fn path(&self, pair: &Pair) -> Option<String> {
        listed(&PAIRS, pair).map(|symbol| format!("/v1/pubticker/{symbol}"))
    }

    fn min_interval(&self) -> Duration {
        // Public endpoints: 120 requests a minute, and the docs recommend at most one a second.
        Duration::from_secs(1)
    }

    fn parse(&self, _pair: &Pair, body: &[u8]) -> Result<Parsed, ParseError> {
        let body = json(body)?;
        if body.get("result").and_then(Value::as_str) == Some("error") {
            let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or("").to_string();
            return Err(ParseError::Exchange(format!("{}: {}", field("reason"), field("message")).into()));
        }
        let price = price_field(body.get("last"), "last")?;
        let quote_time = match body.get("volume").and_then(|v| v.get("timestamp")) {
            None | Some(Value::Null) => None,
            time => Some(unix_millis_field(time, "volume.timestamp")?),
        };
        Ok(Parsed { price, quote_time })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    const REAL: &str = r#"{"bid": "97011.98", "ask": "97013.02", "last": "97012.35",
       "volume": {"BTC": "2210.505328803", "USD": "214443211.463379586263", "timestamp": 1764010799000}}"#;

    #[test]
    fn reads_the_last_price_and_its_time() {
        let parsed = Gemini.parse(&Pair::seed(), REAL.as_bytes()).expect("parses");
        assert_eq!(parsed.price.get(), 97_012.35);
        assert_eq!(parsed.quote_time, Utc.timestamp_millis_opt(1_764_010_799_000).single());
        let string_time = REAL.replace("1764010799000", r#""1764010799123""#);
        let parsed = Gemini.parse(&Pair::seed(), string_time.as_bytes()).expect("parses");
        assert_eq!(parsed.quote_time, Utc.timestamp_millis_opt(1_764_010_799_123).single());
        let no_time = Gemini.parse(&Pair::seed(), br#"{"last": "97012.35", "volume": {"BTC": "1"}}"#).expect("parses");
        assert_eq!(no_time.quote_time, None);
    }

    #[test]
    fn documented_errors_are_errors() {
        let body = br#"{"result": "error", "reason": "RateLimit", "message": "Requests were made too frequently"}"#;
        assert_eq!(
            Gemini.parse(&Pair::seed(), body),
            Err(ParseError::Exchange("RateLimit: Requests were made too frequently".into()))
        );
        let inside_a_ticker =
            br#"{"result": "error", "reason": "System", "message": "Maintenance", "last": "97012.35"}"#;
        assert!(matches!(Gemini.parse(&Pair::seed(), inside_a_ticker), Err(ParseError::Exchange(_))));
    }

    #[test]
    fn failure_shapes_are_errors() {
        assert!(matches!(
            Gemini.parse(&Pair::seed(), b"<html>503 Service Unavailable</html>"),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(Gemini.parse(&Pair::seed(), &REAL.as_bytes()[..60]), Err(ParseError::Json(_))));
        assert_eq!(
            Gemini.parse(&Pair::seed(), br#"{"bid": "97011.98", "ask": "97013.02"}"#),
            Err(ParseError::MissingField("last"))
        );
        assert_eq!(Gemini.parse(&Pair::seed(), br#"{"last": null}"#), Err(ParseError::MissingField("last")));
        assert!(matches!(Gemini.parse(&Pair::seed(), br#""97012.35""#), Err(ParseError::MissingField(_))));
        let bad_time = REAL.replace("1764010799000", r#""soon""#);
        assert!(matches!(Gemini.parse(&Pair::seed(), bad_time.as_bytes()), Err(ParseError::Time(_))));
        let absurd_time = REAL.replace("1764010799000", "9223372036854775807");
        assert!(matches!(Gemini.parse(&Pair::seed(), absurd_time.as_bytes()), Err(ParseError::Time(_))));
        for bad in [r#""0""#, r#""-5""#, r#""NaN""#, r#""1e308""#, "1e308", "-97012.35"] {
            let body = REAL.replace(r#""last": "97012.35""#, &format!(r#""last": {bad}"#));
            assert!(
                matches!(Gemini.parse(&Pair::seed(), body.as_bytes()), Err(ParseError::Price(_))),
                "{bad} accepted"
            );
        }
    }
}
