//! Bitfinex `GET /v2/ticker/tBTCUSD` (public host `api-pub`; `tBTCEUR`, `tETHUSD`, ...).
//!
//! The answer is a bare array of numbers with no keys and no time: `[BID, BID_SIZE, ASK, ASK_SIZE,
//! DAILY_CHANGE, DAILY_CHANGE_RELATIVE, LAST_PRICE, VOLUME, HIGH, LOW]`, so index 6 is the price.
//! Since nothing names the fields, the first seven must all be numbers before index 6 is trusted.
//! Errors are arrays too, `["error", code, "message"]`, and a rate-limited IP gets
//! `{"error": "ERR_RATE_LIMIT"}` (documented), `["error", 11010, "ratelimit: error"]` or
//! `["error", null, "ERR_RATE_LIMIT"]` (seen): all are checked first, and the rate limits are told
//! apart from other errors, since the IP is blocked for 10-60 s and asking again does not help.

use std::time::Duration;

use btc_contract::Pair;
use serde_json::Value;

use super::{Exchange, ParseError, Parsed, json, listed, price_field, reported_error};

pub struct Bitfinex;

/// The pairs Bitfinex lists: trading symbols are `t` + the upper-case pair (exchange-apis.md for
/// `tBTCUSD`; its symbol list has BTC and ETH against USD, EUR and GBP).
const PAIRS: [(&str, &str); 6] = [
    ("BTC-USD", "tBTCUSD"),
    ("BTC-EUR", "tBTCEUR"),
    ("BTC-GBP", "tBTCGBP"),
    ("ETH-USD", "tETHUSD"),
    ("ETH-EUR", "tETHEUR"),
    ("ETH-GBP", "tETHGBP"),
];

/// Position of LAST_PRICE in the ticker array.
const LAST_PRICE: usize = 6;
/// The text and the code of Bitfinex's rate-limit errors.
const RATE_LIMIT_TEXT: &str = "ERR_RATE_LIMIT";
const RATE_LIMIT_CODE: i64 = 11010;

impl Exchange for Bitfinex {
    fn default_base_url(&self) -> &'static str {
        "https://api-pub.bitfinex.com"
    }

    fn path(&self, pair: &Pair) -> Option<String> {
        listed(&PAIRS, pair).map(|symbol| format!("/v2/ticker/{symbol}"))
    }

    fn min_interval(&self) -> Duration {
        // 90 requests a minute for this endpoint (one per 0.67 s); one a second leaves headroom
        // for retries, as a rate-limited IP is blocked for 10-60 s.
        Duration::from_secs(1)
    }

    fn parse(&self, _pair: &Pair, body: &[u8]) -> Result<Parsed, ParseError> {
        let body = json(body)?;
        if body.get("error").and_then(Value::as_str) == Some(RATE_LIMIT_TEXT) {
            return Err(ParseError::RateLimited(RATE_LIMIT_TEXT.into()));
        }
        reported_error(&body, "error")?;
        let fields = body.as_array().ok_or(ParseError::MissingField("ticker array"))?;
        if fields.first().and_then(Value::as_str) == Some("error") {
            return Err(array_error(fields));
        }
        if !fields.get(..=LAST_PRICE).is_some_and(|head| head.iter().all(Value::is_number)) {
            return Err(ParseError::MissingField("[6] LAST_PRICE (array of at least 7 numbers)"));
        }
        Ok(Parsed { price: price_field(fields.get(LAST_PRICE), "[6] LAST_PRICE")?, quote_time: None })
    }
}

/// `["error", code, "message"]`: a rate limit by its code or text, else the exchange's error.
fn array_error(fields: &[Value]) -> ParseError {
    let code = fields.get(1).unwrap_or(&Value::Null);
    let message = fields.get(2).and_then(Value::as_str).unwrap_or("");
    let text = format!("{code}: {message}");
    let rate_limited = code.as_i64() == Some(RATE_LIMIT_CODE)
        || message.contains(RATE_LIMIT_TEXT)
        || message.to_ascii_lowercase().starts_with("ratelimit");
    if rate_limited { ParseError::RateLimited(text.into()) } else { ParseError::Exchange(text.into()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = "[97011.0, 12.5, 97012.0, 10.3, 812.0, 0.0084, 97012.0, 1543.21, 97800.0, 95800.0]";

    #[test]
    fn reads_index_six() {
        let parsed = Bitfinex.parse(&Pair::seed(), REAL.as_bytes()).expect("parses");
        assert_eq!(parsed.price.get(), 97_012.0);
        assert_eq!(parsed.quote_time, None);
        let exactly_seven = Bitfinex.parse(&Pair::seed(), b"[1, 2, 3, 4, 5, 6, 97012.5]").expect("parses");
        assert_eq!(exactly_seven.price.get(), 97_012.5);
    }

    #[test]
    fn documented_errors_are_errors() {
        assert_eq!(
            Bitfinex.parse(&Pair::seed(), br#"["error", 20060, "maintenance"]"#),
            Err(ParseError::Exchange("20060: maintenance".into()))
        );
        assert!(matches!(
            Bitfinex.parse(&Pair::seed(), br#"["error", 10020, "limit: invalid"]"#),
            Err(ParseError::Exchange(_))
        ));
        assert_eq!(
            Bitfinex.parse(&Pair::seed(), br#"{"error": "ERR_RATE_LIMIT"}"#),
            Err(ParseError::RateLimited("ERR_RATE_LIMIT".into()))
        );
        // An error-shaped array padded out to ticker length is still an error.
        let padded = br#"["error", 10000, "unknown", 1, 2, 3, 97012.0, 4, 5, 6]"#;
        assert!(matches!(Bitfinex.parse(&Pair::seed(), padded), Err(ParseError::Exchange(_))));
    }

    #[test]
    fn a_rate_limit_inside_a_200_is_a_rate_limit_not_a_failure() {
        // The documented answer to a rate-limited IP, and the array forms seen from the v2 API
        // (code 11010; ERR_RATE_LIMIT with a null code).
        for body in [
            r#"{"error": "ERR_RATE_LIMIT"}"#,
            r#"["error", 11010, "ratelimit: error"]"#,
            r#"["error", null, "ERR_RATE_LIMIT"]"#,
        ] {
            assert_eq!(
                super::super::outcome(&Bitfinex.parse(&Pair::seed(), body.as_bytes())),
                "rate_limited",
                "{body}"
            );
        }
        assert_eq!(
            super::super::outcome(&Bitfinex.parse(&Pair::seed(), br#"["error", 20060, "maintenance"]"#)),
            "exchange_error"
        );
    }

    #[test]
    fn failure_shapes_are_errors() {
        assert!(matches!(Bitfinex.parse(&Pair::seed(), b"<html>520</html>"), Err(ParseError::Json(_))));
        assert!(matches!(Bitfinex.parse(&Pair::seed(), &REAL.as_bytes()[..40]), Err(ParseError::Json(_))));
        assert!(matches!(Bitfinex.parse(&Pair::seed(), b"[97011.0, 12.5, NaN]"), Err(ParseError::Json(_))));
        assert!(matches!(Bitfinex.parse(&Pair::seed(), b"[]"), Err(ParseError::MissingField(_))));
        assert!(matches!(
            Bitfinex.parse(&Pair::seed(), b"[97011.0, 12.5, 97012.0, 10.3, 812.0, 0.0084]"),
            Err(ParseError::MissingField(_))
        ));
        assert!(matches!(
            Bitfinex.parse(&Pair::seed(), br#"{"last_price": 97012.0}"#),
            Err(ParseError::MissingField(_))
        ));
        // Only numbers are trusted: a string or null in the first seven means the layout changed.
        for odd in [r#""97012.0""#, "null", "[97012.0]"] {
            let body = format!("[97011.0, 12.5, 97012.0, 10.3, 812.0, 0.0084, {odd}, 1543.21, 97800.0, 95800.0]");
            assert!(
                matches!(Bitfinex.parse(&Pair::seed(), body.as_bytes()), Err(ParseError::MissingField(_))),
                "{odd} accepted"
            );
        }
        let null_bid = "[null, 12.5, 97012.0, 10.3, 812.0, 0.0084, 97012.0, 1543.21, 97800.0, 95800.0]";
        assert!(matches!(Bitfinex.parse(&Pair::seed(), null_bid.as_bytes()), Err(ParseError::MissingField(_))));
        for bad in ["0", "0.0", "-5", "1e308", "-97012.0", "20000000"] {
            let body = format!("[97011.0, 12.5, 97012.0, 10.3, 812.0, 0.0084, {bad}, 1543.21, 97800.0, 95800.0]");
            assert!(
                matches!(Bitfinex.parse(&Pair::seed(), body.as_bytes()), Err(ParseError::Price(_))),
                "{bad} accepted"
            );
        }
    }
}
