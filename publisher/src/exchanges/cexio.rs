//! cex.io `GET /api/last_price/BTC/USD` (the legacy public API; `BTC/EUR`, `ETH/USD`, ...).
//!
//! The answer is `{"lprice": "97012.5", "curr1": "BTC", "curr2": "USD"}`: the last trade price as
//! a decimal string, no time. `curr1`/`curr2` are checked when present so another pair cannot pass
//! as the pair asked for. Errors are `{"error": "<text>"}`, checked before `lprice`.

use std::time::Duration;

use btc_contract::Pair;

use super::{Exchange, ParseError, Parsed, json, listed, price_field, reported_error};

pub struct Cexio;

/// The pairs cex.io lists, as the `ASSET/CURRENCY` path segments of its public API
/// (exchange-apis.md for BTC/USD; its currency list has BTC and ETH against USD, EUR and GBP).
const PAIRS: [(&str, &str); 6] = [
    ("BTC-USD", "BTC/USD"),
    ("BTC-EUR", "BTC/EUR"),
    ("BTC-GBP", "BTC/GBP"),
    ("ETH-USD", "ETH/USD"),
    ("ETH-EUR", "ETH/EUR"),
    ("ETH-GBP", "ETH/GBP"),
];

impl Exchange for Cexio {
    fn default_base_url(&self) -> &'static str {
        "https://cex.io"
    }

    fn path(&self, pair: &Pair) -> Option<String> {
        listed(&PAIRS, pair).map(|symbols| format!("/api/last_price/{symbols}"))
    }

    fn min_interval(&self) -> Duration {
        // Public methods are limited to 600 requests per 10 minutes: exactly one a second.
        Duration::from_secs(1)
    }

    fn parse(&self, pair: &Pair, body: &[u8]) -> Result<Parsed, ParseError> {
        let body = json(body)?;
        reported_error(&body, "error")?;
        for (field, wanted) in [("curr1", pair.asset()), ("curr2", pair.currency())] {
            if let Some(got) = body.get(field).filter(|v| !v.is_null())
                && got.as_str() != Some(wanted)
            {
                return Err(ParseError::Exchange(format!("answer has {field} {got}, not {wanted}").into()));
            }
        }
        Ok(Parsed { price: price_field(body.get("lprice"), "lprice")?, quote_time: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = r#"{"lprice": "97012.5", "curr1": "BTC", "curr2": "USD"}"#;

    #[test]
    fn reads_the_last_price() {
        let parsed = Cexio.parse(&Pair::seed(), REAL.as_bytes()).expect("parses");
        assert_eq!(parsed.price.get(), 97_012.5);
        assert_eq!(parsed.quote_time, None);
        let bare = Cexio.parse(&Pair::seed(), br#"{"lprice": "97012.5"}"#).expect("parses");
        assert_eq!(bare.price.get(), 97_012.5);
    }

    #[test]
    fn documented_errors_are_errors() {
        assert_eq!(
            Cexio.parse(&Pair::seed(), br#"{"error": "Invalid Symbols Pair"}"#),
            Err(ParseError::Exchange("Invalid Symbols Pair".into()))
        );
        let inside_a_ticker =
            br#"{"lprice": "97012.5", "curr1": "BTC", "curr2": "USD", "error": "Rate limit exceeded"}"#;
        assert!(matches!(Cexio.parse(&Pair::seed(), inside_a_ticker), Err(ParseError::Exchange(_))));
        assert!(matches!(Cexio.parse(&Pair::seed(), br#"{"error": {"code": 1}}"#), Err(ParseError::Exchange(_))));
    }

    #[test]
    fn another_pair_is_an_error() {
        let body = br#"{"lprice": "3012.5", "curr1": "ETH", "curr2": "USD"}"#;
        assert!(matches!(Cexio.parse(&Pair::seed(), body), Err(ParseError::Exchange(_))));
        let body = br#"{"lprice": "97012.5", "curr1": "BTC", "curr2": "EUR"}"#;
        assert!(matches!(Cexio.parse(&Pair::seed(), body), Err(ParseError::Exchange(_))));
    }

    #[test]
    fn failure_shapes_are_errors() {
        assert!(matches!(Cexio.parse(&Pair::seed(), b"<html>Cloudflare</html>"), Err(ParseError::Json(_))));
        assert!(matches!(Cexio.parse(&Pair::seed(), &REAL.as_bytes()[..20]), Err(ParseError::Json(_))));
        assert_eq!(
            Cexio.parse(&Pair::seed(), br#"{"curr1": "BTC", "curr2": "USD"}"#),
            Err(ParseError::MissingField("lprice"))
        );
        assert_eq!(Cexio.parse(&Pair::seed(), br#"{"lprice": false}"#), Err(ParseError::MissingField("lprice")));
        assert!(matches!(Cexio.parse(&Pair::seed(), b"null"), Err(ParseError::MissingField(_))));
        for bad in [r#""0""#, r#""-5""#, r#""NaN""#, r#""1e308""#, "1e308", r#""97 012.5""#] {
            let body = format!(r#"{{"lprice": {bad}, "curr1": "BTC", "curr2": "USD"}}"#);
            assert!(matches!(Cexio.parse(&Pair::seed(), body.as_bytes()), Err(ParseError::Price(_))), "{bad} accepted");
        }
    }
}
