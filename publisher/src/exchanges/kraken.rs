//! Kraken `GET /0/public/Ticker?pair=XBTUSD` (`XBTEUR`, `ETHUSD`, ...).
//!
//! Errors arrive inside HTTP 200 as a non-empty `error` array, so it is checked before `result`;
//! `EAPI:Rate limit exceeded` and `EGeneral:Too many requests` there are rate limits, not faults.
//! The answer is keyed by Kraken's full pair name (`XXBTZUSD`), not the requested one (`XBTUSD`):
//! the single value of `result` is read, and its key must be the pair's full or requested name.
//! `c[0]` is the last trade price; there is no quote time.

use std::time::Duration;

use btc_contract::Pair;
use serde_json::Value;

use super::{Exchange, ParseError, Parsed, json, listed, price_field, reported_error};

pub struct Kraken;

/// What Kraken answers, with HTTP 200, to a caller that polls too fast.
const RATE_LIMITED: [&str; 2] = ["EAPI:Rate limit exceeded", "EGeneral:Too many requests"];

/// The pairs Kraken lists: (request name, the key it answers under). Kraken calls BTC `XBT`, and
/// its older pairs have full names with an X (crypto) or Z (fiat) before each side: `XBTUSD`
/// answers under `XXBTZUSD` (exchange-apis.md), `ETHUSD` under `XETHZUSD` (Kraken's AssetPairs
/// list, as mirrored in client libraries' pair tables).
const PAIRS: [(&str, (&str, &str)); 6] = [
    ("BTC-USD", ("XBTUSD", "XXBTZUSD")),
    ("BTC-EUR", ("XBTEUR", "XXBTZEUR")),
    ("BTC-GBP", ("XBTGBP", "XXBTZGBP")),
    ("ETH-USD", ("ETHUSD", "XETHZUSD")),
    ("ETH-EUR", ("ETHEUR", "XETHZEUR")),
    ("ETH-GBP", ("ETHGBP", "XETHZGBP")),
];

impl Exchange for Kraken {
    fn default_base_url(&self) -> &'static str {
        "https://api.kraken.com"
    }

    fn path(&self, pair: &Pair) -> Option<String> {
        listed(&PAIRS, pair).map(|(name, _)| format!("/0/public/Ticker?pair={name}"))
    }

    fn min_interval(&self) -> Duration {
        // Public endpoints are limited per IP to about one call a second.
        Duration::from_secs(1)
    }

    fn parse(&self, pair: &Pair, body: &[u8]) -> Result<Parsed, ParseError> {
        let body = json(body)?;
        // Kraken reports failures inside HTTP 200, so the error list is checked before the result.
        let mut errors = body.get("error").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
        if let Some(signal) = errors.find(|e| RATE_LIMITED.iter().any(|limit| e.starts_with(limit))) {
            return Err(ParseError::RateLimited(signal.into()));
        }
        reported_error(&body, "error")?;
        let pairs = body.get("result").and_then(|r| r.as_object()).ok_or(ParseError::MissingField("result"))?;
        let (key, ticker) = match pairs.len() {
            1 => pairs.iter().next().ok_or(ParseError::MissingField("result"))?,
            _ => return Err(ParseError::MissingField("result.<one pair>")),
        };
        // Any other pair here means the URL points at another market.
        if !listed(&PAIRS, pair).is_some_and(|(name, full)| key == name || key == full) {
            return Err(ParseError::Exchange(format!("answer is for pair {key}, not {pair}").into()));
        }
        let last = ticker.get("c").and_then(|c| c.get(0));
        Ok(Parsed { price: price_field(last, "result.*.c[0]")?, quote_time: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = r#"{"error": [],
       "result": {"XXBTZUSD": {
         "a": ["97012.40000", "1", "1.000"], "b": ["97012.30000", "2", "2.000"],
         "c": ["97012.40000", "0.00012000"], "v": ["512.34567890", "2345.67890123"],
         "p": ["96950.12345", "96500.98765"], "t": [12345, 67890],
         "l": ["96100.00000", "95800.00000"], "h": ["97500.00000", "97800.00000"], "o": "96800.10000"}}}"#;

    #[test]
    fn reads_the_last_trade_price_under_any_pair_key() {
        let parsed = Kraken.parse(&Pair::seed(), REAL.as_bytes()).expect("parses");
        assert_eq!(parsed.price.get(), 97_012.4);
        assert_eq!(parsed.quote_time, None);
    }

    #[test]
    fn error_inside_a_200_is_an_error() {
        let body = br#"{"error": ["EQuery:Unknown asset pair"]}"#;
        assert_eq!(Kraken.parse(&Pair::seed(), body), Err(ParseError::Exchange("EQuery:Unknown asset pair".into())));
        let throttled = br#"{"error": ["EGeneral:Too many requests"], "result": {}}"#;
        assert_eq!(
            Kraken.parse(&Pair::seed(), throttled),
            Err(ParseError::RateLimited("EGeneral:Too many requests".into()))
        );
    }

    #[test]
    fn a_rate_limit_inside_a_200_is_a_rate_limit_not_a_failure() {
        // Both strings Kraken sends with HTTP 200 when a caller polls too fast.
        for body in
            [r#"{"error": ["EAPI:Rate limit exceeded"]}"#, r#"{"error": ["EGeneral:Too many requests"], "result": {}}"#]
        {
            assert_eq!(super::super::outcome(&Kraken.parse(&Pair::seed(), body.as_bytes())), "rate_limited", "{body}");
        }
        // Any other error is still the exchange's error.
        assert_eq!(
            super::super::outcome(&Kraken.parse(&Pair::seed(), br#"{"error": ["EQuery:Unknown asset pair"]}"#)),
            "exchange_error"
        );
    }

    #[test]
    fn error_text_is_cut_and_escaped() {
        let long = format!("EAPI:Rate limit exceeded\r\nERROR forged{}", "x".repeat(60_000));
        let body = serde_json::json!({"error": [long]}).to_string();
        let Err(ParseError::RateLimited(signal)) = Kraken.parse(&Pair::seed(), body.as_bytes()) else {
            panic!("not a rate limit");
        };
        assert!(signal.as_str().starts_with(r"EAPI:Rate limit exceeded\r\nERROR forged"), "{signal}");
        assert!(signal.as_str().len() < 300, "{} bytes", signal.as_str().len());
        let pair = format!(r#"{{"error": [], "result": {{"{}": {{"c": ["1.0"]}}}}}}"#, "\\u001b".repeat(10_000));
        let Err(ParseError::Exchange(text)) = Kraken.parse(&Pair::seed(), pair.as_bytes()) else {
            panic!("not an exchange error");
        };
        assert!(!text.as_str().chars().any(char::is_control) && text.as_str().len() < 300, "{text}");
    }

    #[test]
    fn failure_shapes_are_errors() {
        assert!(matches!(Kraken.parse(&Pair::seed(), b"<html>502</html>"), Err(ParseError::Json(_))));
        assert!(matches!(
            Kraken.parse(&Pair::seed(), br#"{"error":[],"result":{}}"#),
            Err(ParseError::MissingField(_))
        ));
        assert!(matches!(
            Kraken.parse(&Pair::seed(), br#"{"error":[],"result":{"XXBTZUSD":{"c":["0.00000","1"]}}}"#),
            Err(ParseError::Price(_))
        ));
        assert!(Kraken.parse(&Pair::seed(), br#"{"error":[],"result":{"XXBTZUSD":{"c":[]}}}"#).is_err());
    }
}
