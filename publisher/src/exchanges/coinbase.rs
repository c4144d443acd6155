//! Coinbase `GET /v2/prices/BTC-USD/spot` (Data API v2, no key; `BTC-EUR`, `ETH-USD`, ...).
//!
//! `data.amount` is a decimal string: Coinbase's indicative spot price, not a last trade (the
//! sibling `/buy` and `/sell` endpoints add a 1 % fee and must not be used). The body has no time,
//! so the fetch time stands in. Errors come as `{"errors": [{"id", "message"}]}`, normally with a
//! 4xx status; the array is checked before `data` so an error never passes as a price.

use std::time::Duration;

use btc_contract::Pair;
use serde_json::Value;

use super::{Exchange, ParseError, Parsed, json, listed, price_field};

pub struct Coinbase;

/// The pairs Coinbase lists. Its product ids are `ASSET-CURRENCY` in upper case, the very spelling
/// of [`Pair`] (exchange-apis.md; Coinbase Exchange's product list has BTC and ETH against USD,
/// EUR and GBP).
const PAIRS: [(&str, &str); 6] = [
    ("BTC-USD", "BTC-USD"),
    ("BTC-EUR", "BTC-EUR"),
    ("BTC-GBP", "BTC-GBP"),
    ("ETH-USD", "ETH-USD"),
    ("ETH-EUR", "ETH-EUR"),
    ("ETH-GBP", "ETH-GBP"),
];

impl Exchange for Coinbase {
    fn default_base_url(&self) -> &'static str {
        "https://api.coinbase.com"
    }

    fn path(&self, pair: &Pair) -> Option<String> {
        listed(&PAIRS, pair).map(|product| format!("/v2/prices/{product}/spot"))
    }

    fn min_interval(&self) -> Duration {
        // Only the keyed limit is documented (10,000/h, about 2.8/s); the keyless one is not, so
        // stay at the one-a-second pace the other venues allow.
        Duration::from_secs(1)
    }

    fn parse(&self, pair: &Pair, body: &[u8]) -> Result<Parsed, ParseError> {
        let body = json(body)?;
        if let Some(errors) = body.get("errors").filter(|e| !e.is_null()) {
            return Err(ParseError::Exchange(describe_errors(errors).into()));
        }
        let data = body.get("data").ok_or(ParseError::MissingField("data"))?;
        // A base or currency other than the pair's means the URL points at another pair.
        for (field, wanted) in [("base", pair.asset()), ("currency", pair.currency())] {
            if let Some(got) = data.get(field).filter(|v| !v.is_null())
                && got.as_str() != Some(wanted)
            {
                return Err(ParseError::Exchange(format!("answer has {field} {got}, not {wanted}").into()));
            }
        }
        Ok(Parsed { price: price_field(data.get("amount"), "data.amount")?, quote_time: None })
    }
}

/// `[{"id": "rate_limit_exceeded", "message": "Too many requests"}]` as "rate_limit_exceeded: Too many requests".
fn describe_errors(errors: &Value) -> String {
    let Some(list) = errors.as_array() else {
        return errors.to_string();
    };
    if list.is_empty() {
        return "empty errors array".to_string();
    }
    let text: Vec<String> = list
        .iter()
        .map(|error| {
            let id = error.get("id").and_then(Value::as_str).unwrap_or("?");
            let message = error.get("message").and_then(Value::as_str).unwrap_or("");
            format!("{id}: {message}")
        })
        .collect();
    text.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = r#"{"data": {"amount": "97012.35", "base": "BTC", "currency": "USD"}}"#;

    #[test]
    fn reads_the_spot_amount() {
        let parsed = Coinbase.parse(&Pair::seed(), REAL.as_bytes()).expect("parses");
        assert_eq!(parsed.price.get(), 97_012.35);
        assert_eq!(parsed.quote_time, None);
        let older =
            Coinbase.parse(&Pair::seed(), br#"{"data": {"amount": "97012.35", "currency": "USD"}}"#).expect("parses");
        assert_eq!(older.price.get(), 97_012.35);
    }

    #[test]
    fn documented_errors_are_errors() {
        let body = br#"{"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}"#;
        assert_eq!(
            Coinbase.parse(&Pair::seed(), body),
            Err(ParseError::Exchange("rate_limit_exceeded: Too many requests".into()))
        );
        let with_data = br#"{"data": {"amount": "97012.35", "base": "BTC", "currency": "USD"},
                             "errors": [{"id": "not_found", "message": "Invalid currency"}]}"#;
        assert!(matches!(Coinbase.parse(&Pair::seed(), with_data), Err(ParseError::Exchange(_))));
        assert!(matches!(Coinbase.parse(&Pair::seed(), br#"{"errors": []}"#), Err(ParseError::Exchange(_))));
    }

    #[test]
    fn another_pair_is_an_error() {
        let body = br#"{"data": {"amount": "3012.35", "base": "ETH", "currency": "USD"}}"#;
        assert!(matches!(Coinbase.parse(&Pair::seed(), body), Err(ParseError::Exchange(_))));
        let body = br#"{"data": {"amount": "97012.35", "base": "BTC", "currency": "EUR"}}"#;
        assert!(matches!(Coinbase.parse(&Pair::seed(), body), Err(ParseError::Exchange(_))));
    }

    #[test]
    fn failure_shapes_are_errors() {
        assert!(matches!(Coinbase.parse(&Pair::seed(), b"<html>502 Bad Gateway</html>"), Err(ParseError::Json(_))));
        assert!(matches!(Coinbase.parse(&Pair::seed(), &REAL.as_bytes()[..30]), Err(ParseError::Json(_))));
        assert!(matches!(Coinbase.parse(&Pair::seed(), b""), Err(ParseError::Json(_))));
        assert_eq!(
            Coinbase.parse(&Pair::seed(), br#"{"data": {"base": "BTC"}}"#),
            Err(ParseError::MissingField("data.amount"))
        );
        assert_eq!(Coinbase.parse(&Pair::seed(), br#"{}"#), Err(ParseError::MissingField("data")));
        assert_eq!(
            Coinbase.parse(&Pair::seed(), br#"{"data": {"amount": true}}"#),
            Err(ParseError::MissingField("data.amount"))
        );
        assert!(matches!(Coinbase.parse(&Pair::seed(), br#"{"data": "97012.35"}"#), Err(ParseError::MissingField(_))));
        assert!(matches!(Coinbase.parse(&Pair::seed(), br#"[1, 2]"#), Err(ParseError::MissingField(_))));
        for bad in [r#""0""#, r#""0.00""#, r#""-5""#, r#""NaN""#, r#""inf""#, r#""1e308""#, "1e308", r#""""#] {
            let body = format!(r#"{{"data": {{"amount": {bad}, "base": "BTC", "currency": "USD"}}}}"#);
            assert!(
                matches!(Coinbase.parse(&Pair::seed(), body.as_bytes()), Err(ParseError::Price(_))),
                "{bad} accepted"
            );
        }
    }
}
