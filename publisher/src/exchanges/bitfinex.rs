//! Bitfinex `GET /v2/ticker/tBTCUSD` (public host `api-pub`).
//!
//! The answer is a bare array of numbers with no keys and no time: `[BID, BID_SIZE, ASK, ASK_SIZE,
//! DAILY_CHANGE, DAILY_CHANGE_RELATIVE, LAST_PRICE, VOLUME, HIGH, LOW]`, so index 6 is the price.
//! Since nothing names the fields, the first seven must all be numbers before index 6 is trusted.
//! Errors are arrays too, `["error", code, "message"]`, and a rate-limited IP gets
//! `{"error": "ERR_RATE_LIMIT"}`; both are checked first.

use std::time::Duration;

use serde_json::Value;

use super::{Exchange, ParseError, Parsed, json, price_field, reported_error};

pub struct Bitfinex;

/// Position of LAST_PRICE in the ticker array.
const LAST_PRICE: usize = 6;

impl Exchange for Bitfinex {
    fn default_base_url(&self) -> &'static str {
        "https://api-pub.bitfinex.com"
    }

    fn path(&self) -> &'static str {
        "/v2/ticker/tBTCUSD"
    }

    fn min_interval(&self) -> Duration {
        // 90 requests a minute for this endpoint (one per 0.67 s); one a second leaves headroom
        // for retries, as a rate-limited IP is blocked for 10-60 s.
        Duration::from_secs(1)
    }

    fn parse(&self, body: &[u8]) -> Result<Parsed, ParseError> {
        let body = json(body)?;
        reported_error(&body, "error")?;
        let fields = body.as_array().ok_or(ParseError::MissingField("ticker array"))?;
        if fields.first().and_then(Value::as_str) == Some("error") {
            let code = fields.get(1).map_or_else(String::new, Value::to_string);
            let message = fields.get(2).and_then(Value::as_str).unwrap_or("");
            return Err(ParseError::Exchange(format!("{code}: {message}")));
        }
        if !fields.get(..=LAST_PRICE).is_some_and(|head| head.iter().all(Value::is_number)) {
            return Err(ParseError::MissingField("[6] LAST_PRICE (array of at least 7 numbers)"));
        }
        Ok(Parsed { price: price_field(fields.get(LAST_PRICE), "[6] LAST_PRICE")?, quote_time: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = "[97011.0, 12.5, 97012.0, 10.3, 812.0, 0.0084, 97012.0, 1543.21, 97800.0, 95800.0]";

    #[test]
    fn reads_index_six() {
        let parsed = Bitfinex.parse(REAL.as_bytes()).expect("parses");
        assert_eq!(parsed.price.get(), 97_012.0);
        assert_eq!(parsed.quote_time, None);
        let exactly_seven = Bitfinex.parse(b"[1, 2, 3, 4, 5, 6, 97012.5]").expect("parses");
        assert_eq!(exactly_seven.price.get(), 97_012.5);
    }

    #[test]
    fn documented_errors_are_errors() {
        assert_eq!(
            Bitfinex.parse(br#"["error", 20060, "maintenance"]"#),
            Err(ParseError::Exchange("20060: maintenance".into()))
        );
        assert!(matches!(Bitfinex.parse(br#"["error", 10020, "limit: invalid"]"#), Err(ParseError::Exchange(_))));
        assert_eq!(
            Bitfinex.parse(br#"{"error": "ERR_RATE_LIMIT"}"#),
            Err(ParseError::Exchange("ERR_RATE_LIMIT".into()))
        );
        // An error-shaped array padded out to ticker length is still an error.
        let padded = br#"["error", 10000, "unknown", 1, 2, 3, 97012.0, 4, 5, 6]"#;
        assert!(matches!(Bitfinex.parse(padded), Err(ParseError::Exchange(_))));
    }

    #[test]
    fn failure_shapes_are_errors() {
        assert!(matches!(Bitfinex.parse(b"<html>520</html>"), Err(ParseError::Json(_))));
        assert!(matches!(Bitfinex.parse(&REAL.as_bytes()[..40]), Err(ParseError::Json(_))));
        assert!(matches!(Bitfinex.parse(b"[97011.0, 12.5, NaN]"), Err(ParseError::Json(_))));
        assert!(matches!(Bitfinex.parse(b"[]"), Err(ParseError::MissingField(_))));
        assert!(matches!(
            Bitfinex.parse(b"[97011.0, 12.5, 97012.0, 10.3, 812.0, 0.0084]"),
            Err(ParseError::MissingField(_))
        ));
        assert!(matches!(Bitfinex.parse(br#"{"last_price": 97012.0}"#), Err(ParseError::MissingField(_))));
        // Only numbers are trusted: a string or null in the first seven means the layout changed.
        for odd in [r#""97012.0""#, "null", "[97012.0]"] {
            let body = format!("[97011.0, 12.5, 97012.0, 10.3, 812.0, 0.0084, {odd}, 1543.21, 97800.0, 95800.0]");
            assert!(matches!(Bitfinex.parse(body.as_bytes()), Err(ParseError::MissingField(_))), "{odd} accepted");
        }
        let null_bid = "[null, 12.5, 97012.0, 10.3, 812.0, 0.0084, 97012.0, 1543.21, 97800.0, 95800.0]";
        assert!(matches!(Bitfinex.parse(null_bid.as_bytes()), Err(ParseError::MissingField(_))));
        for bad in ["0", "0.0", "-5", "1e308", "-97012.0", "20000000"] {
            let body = format!("[97011.0, 12.5, 97012.0, 10.3, 812.0, 0.0084, {bad}, 1543.21, 97800.0, 95800.0]");
            assert!(matches!(Bitfinex.parse(body.as_bytes()), Err(ParseError::Price(_))), "{bad} accepted");
        }
    }
}
