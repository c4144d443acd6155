//! CoinGecko `GET /api/v3/simple/price?ids=bitcoin&vs_currencies=usd&include_last_updated_at=true`.
//!
//! `bitcoin.usd` is a JSON number and `bitcoin.last_updated_at` the quote time in unix seconds (a
//! missing one leaves the fetch time to stand in). The price is CoinGecko's volume-weighted
//! aggregate of the exchanges this publisher also polls, so it is a reference shown beside the tick,
//! never a vote. Errors are `{"status": {"error_code", "error_message"}}` (some answers use a bare
//! `{"error": "..."}`), checked before `bitcoin`. An unknown id answers `{}`: a missing field.

use std::time::Duration;

use serde_json::Value;

use super::{Exchange, ParseError, Parsed, json, price_field, unix_seconds_field};

pub struct Coingecko;

impl Exchange for Coingecko {
    fn default_base_url(&self) -> &'static str {
        "https://api.coingecko.com"
    }

    fn path(&self) -> &'static str {
        "/api/v3/simple/price?ids=bitcoin&vs_currencies=usd&include_last_updated_at=true"
    }

    fn min_interval(&self) -> Duration {
        // Keyless calls are limited to 10-30 a minute, and the public answer is cached for 60 s,
        // so polling faster only spends the limit on identical answers.
        Duration::from_secs(60)
    }

    fn is_reference(&self) -> bool {
        true
    }

    fn parse(&self, body: &[u8]) -> Result<Parsed, ParseError> {
        let body = json(body)?;
        if let Some(error) = error_text(&body) {
            return Err(ParseError::Exchange(error.into()));
        }
        let bitcoin = body.get("bitcoin").ok_or(ParseError::MissingField("bitcoin"))?;
        let price = price_field(bitcoin.get("usd"), "bitcoin.usd")?;
        let quote_time = match bitcoin.get("last_updated_at") {
            None | Some(Value::Null) => None,
            time => Some(unix_seconds_field(time, "bitcoin.last_updated_at")?),
        };
        Ok(Parsed { price, quote_time })
    }
}

/// `status.error_code`/`status.error_message`, or a top-level `error`.
fn error_text(body: &Value) -> Option<String> {
    if let Some(status) = body.get("status").filter(|s| !s.is_null()) {
        let code = status.get("error_code").filter(|c| !c.is_null());
        let message = status.get("error_message").filter(|m| !m.is_null());
        if code.is_some() || message.is_some() {
            let code = code.map_or_else(String::new, Value::to_string);
            let message =
                message.map_or_else(String::new, |m| m.as_str().map_or_else(|| m.to_string(), str::to_string));
            return Some(format!("{code}: {message}"));
        }
    }
    let error = body.get("error").filter(|e| !e.is_null())?;
    Some(error.as_str().map_or_else(|| error.to_string(), str::to_string))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    const REAL: &str = r#"{"bitcoin": {"usd": 97012.35, "last_updated_at": 1764010740}}"#;

    #[test]
    fn reads_the_price_and_its_time() {
        let parsed = Coingecko.parse(REAL.as_bytes()).expect("parses");
        assert_eq!(parsed.price.get(), 97_012.35);
        assert_eq!(parsed.quote_time, Utc.timestamp_opt(1_764_010_740, 0).single());
        let integer = Coingecko.parse(br#"{"bitcoin": {"usd": 97012}}"#).expect("parses");
        assert_eq!(integer.price.get(), 97_012.0);
        assert_eq!(integer.quote_time, None);
    }

    #[test]
    fn documented_errors_are_errors() {
        let body = br#"{"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit."}}"#;
        assert_eq!(Coingecko.parse(body), Err(ParseError::Exchange("429: You've exceeded the Rate Limit.".into())));
        let inside_a_price = br#"{"bitcoin": {"usd": 97012.35, "last_updated_at": 1764010740},
                                  "status": {"error_code": 10002, "error_message": "API Key Missing"}}"#;
        assert!(matches!(Coingecko.parse(inside_a_price), Err(ParseError::Exchange(_))));
        assert!(matches!(Coingecko.parse(br#"{"error": "invalid vs_currency"}"#), Err(ParseError::Exchange(_))));
    }

    #[test]
    fn failure_shapes_are_errors() {
        assert!(matches!(Coingecko.parse(b"<!DOCTYPE html><title>Just a moment...</title>"), Err(ParseError::Json(_))));
        assert!(matches!(Coingecko.parse(&REAL.as_bytes()[..25]), Err(ParseError::Json(_))));
        assert_eq!(Coingecko.parse(b"{}"), Err(ParseError::MissingField("bitcoin")));
        assert_eq!(Coingecko.parse(br#"{"bitcoin": {"eur": 90000.0}}"#), Err(ParseError::MissingField("bitcoin.usd")));
        assert_eq!(
            Coingecko.parse(br#"{"bitcoin": {"usd": [97012.35]}}"#),
            Err(ParseError::MissingField("bitcoin.usd"))
        );
        assert!(matches!(Coingecko.parse(br#"{"bitcoin": 97012.35}"#), Err(ParseError::MissingField(_))));
        let bad_time = br#"{"bitcoin": {"usd": 97012.35, "last_updated_at": "recently"}}"#;
        assert!(matches!(Coingecko.parse(bad_time), Err(ParseError::Time(_))));
        for bad in ["0", "0.0", "-5", "1e308", r#""NaN""#, r#""0""#, "20000000.5"] {
            let body = format!(r#"{{"bitcoin": {{"usd": {bad}, "last_updated_at": 1764010740}}}}"#);
            assert!(matches!(Coingecko.parse(body.as_bytes()), Err(ParseError::Price(_))), "{bad} accepted");
        }
    }
}
