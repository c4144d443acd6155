//! CoinGecko `GET /api/v3/simple/price?ids=bitcoin&vs_currencies=usd&include_last_updated_at=true`
//! (`ids=ethereum`, `vs_currencies=eur`, ...: one coin and one currency per request, one pair).
//!
//! `<id>.<currency>` (`bitcoin.usd`) is a JSON number and `<id>.last_updated_at` the quote time in
//! unix seconds (a missing one leaves the fetch time to stand in). The price is CoinGecko's volume-weighted
//! aggregate of the exchanges this publisher also polls, so it is a reference shown beside the tick,
//! never a vote. Errors are `{"status": {"error_code", "error_message"}}` (some answers use a bare
//! `{"error": "..."}`), checked before the coin. An unknown id answers `{}`: a missing field.

use std::time::Duration;

use btc_contract::Pair;
use serde_json::Value;

use super::{Exchange, ParseError, Parsed, json, listed, price_field, unix_seconds_field};

pub struct Coingecko;

/// A pair as CoinGecko names it: the coin's API id, the lower-case currency, and the two fields
/// the answer has them under (for errors that name the field).
#[derive(Clone, Copy)]
struct Names {
    id: &'static str,
    currency: &'static str,
    price_field: &'static str,
    time_field: &'static str,
}

const fn names(id: &'static str, currency: &'static str, price: &'static str, time: &'static str) -> Names {
    Names { id, currency, price_field: price, time_field: time }
}

/// The pairs asked of CoinGecko: coin ids `bitcoin` and `ethereum` (its /coins/list), currencies
/// lower-case ISO codes (its /simple/supported_vs_currencies has usd, eur, gbp), per
/// docs.coingecko.com's simple/price reference.
const PAIRS: [(&str, Names); 6] = [
    ("BTC-USD", names("bitcoin", "usd", "bitcoin.usd", "bitcoin.last_updated_at")),
    ("BTC-EUR", names("bitcoin", "eur", "bitcoin.eur", "bitcoin.last_updated_at")),
    ("BTC-GBP", names("bitcoin", "gbp", "bitcoin.gbp", "bitcoin.last_updated_at")),
    ("ETH-USD", names("ethereum", "usd", "ethereum.usd", "ethereum.last_updated_at")),
    ("ETH-EUR", names("ethereum", "eur", "ethereum.eur", "ethereum.last_updated_at")),
    ("ETH-GBP", names("ethereum", "gbp", "ethereum.gbp", "ethereum.last_updated_at")),
];

impl Exchange for Coingecko {
    fn default_base_url(&self) -> &'static str {
        "https://api.coingecko.com"
    }

    fn path(&self, pair: &Pair) -> Option<String> {
        let Names { id, currency, .. } = listed(&PAIRS, pair)?;
        Some(format!("/api/v3/simple/price?ids={id}&vs_currencies={currency}&include_last_updated_at=true"))
    }

    fn min_interval(&self) -> Duration {
        // Keyless calls are limited to 10-30 a minute, and the public answer is cached for 60 s,
        // so polling faster only spends the limit on identical answers.
        Duration::from_secs(60)
    }

    fn is_reference(&self) -> bool {
        true
    }

    fn parse(&self, pair: &Pair, body: &[u8]) -> Result<Parsed, ParseError> {
        let body = json(body)?;
        if let Some(error) = error_text(&body) {
            return Err(ParseError::Exchange(error.into()));
        }
        let names = listed(&PAIRS, pair).ok_or(ParseError::MissingField("a pair CoinGecko is asked for"))?;
        let coin = body.get(names.id).ok_or(ParseError::MissingField(names.id))?;
        let price = price_field(coin.get(names.currency), names.price_field)?;
        let quote_time = match coin.get("last_updated_at") {
            None | Some(Value::Null) => None,
            time => Some(unix_seconds_field(time, names.time_field)?),
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
        let parsed = Coingecko.parse(&Pair::seed(), REAL.as_bytes()).expect("parses");
        assert_eq!(parsed.price.get(), 97_012.35);
        assert_eq!(parsed.quote_time, Utc.timestamp_opt(1_764_010_740, 0).single());
        let integer = Coingecko.parse(&Pair::seed(), br#"{"bitcoin": {"usd": 97012}}"#).expect("parses");
        assert_eq!(integer.price.get(), 97_012.0);
        assert_eq!(integer.quote_time, None);
    }

    #[test]
    fn documented_errors_are_errors() {
        let body = br#"{"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit."}}"#;
        assert_eq!(
            Coingecko.parse(&Pair::seed(), body),
            Err(ParseError::Exchange("429: You've exceeded the Rate Limit.".into()))
        );
        let inside_a_price = br#"{"bitcoin": {"usd": 97012.35, "last_updated_at": 1764010740},
                                  "status": {"error_code": 10002, "error_message": "API Key Missing"}}"#;
        assert!(matches!(Coingecko.parse(&Pair::seed(), inside_a_price), Err(ParseError::Exchange(_))));
        assert!(matches!(
            Coingecko.parse(&Pair::seed(), br#"{"error": "invalid vs_currency"}"#),
            Err(ParseError::Exchange(_))
        ));
    }

    #[test]
    fn failure_shapes_are_errors() {
        assert!(matches!(
            Coingecko.parse(&Pair::seed(), b"<!DOCTYPE html><title>Just a moment...</title>"),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(Coingecko.parse(&Pair::seed(), &REAL.as_bytes()[..25]), Err(ParseError::Json(_))));
        assert_eq!(Coingecko.parse(&Pair::seed(), b"{}"), Err(ParseError::MissingField("bitcoin")));
        assert_eq!(
            Coingecko.parse(&Pair::seed(), br#"{"bitcoin": {"eur": 90000.0}}"#),
            Err(ParseError::MissingField("bitcoin.usd"))
        );
        assert_eq!(
            Coingecko.parse(&Pair::seed(), br#"{"bitcoin": {"usd": [97012.35]}}"#),
            Err(ParseError::MissingField("bitcoin.usd"))
        );
        assert!(matches!(
            Coingecko.parse(&Pair::seed(), br#"{"bitcoin": 97012.35}"#),
            Err(ParseError::MissingField(_))
        ));
        let bad_time = br#"{"bitcoin": {"usd": 97012.35, "last_updated_at": "recently"}}"#;
        assert!(matches!(Coingecko.parse(&Pair::seed(), bad_time), Err(ParseError::Time(_))));
        for bad in ["0", "0.0", "-5", "1e308", r#""NaN""#, r#""0""#, "20000000.5"] {
            let body = format!(r#"{{"bitcoin": {{"usd": {bad}, "last_updated_at": 1764010740}}}}"#);
            assert!(
                matches!(Coingecko.parse(&Pair::seed(), body.as_bytes()), Err(ParseError::Price(_))),
                "{bad} accepted"
            );
        }
    }
}
