//! Binance.US `GET /api/v3/ticker/price?symbol=BTCUSD` (weight 1).
//!
//! The answer is `{"symbol": "BTCUSD", "price": "97012.35000000"}`: a decimal string with eight
//! decimals and no time. `symbol` is checked when present, so a URL pointing at another market
//! cannot pass its price off as BTC/USD. Errors are `{"code": -1121, "msg": "Invalid symbol."}`,
//! checked before `price`. Binance.US bans IPs that ignore 429 (HTTP 418); that is the poller's job.

use std::time::Duration;

use serde_json::Value;

use super::{Exchange, ParseError, Parsed, json, price_field};

pub struct BinanceUs;

impl Exchange for BinanceUs {
    fn default_base_url(&self) -> &'static str {
        "https://api.binance.us"
    }

    fn path(&self) -> &'static str {
        "/api/v3/ticker/price?symbol=BTCUSD"
    }

    fn min_interval(&self) -> Duration {
        // REQUEST_WEIGHT is 1200 a minute per IP and this call weighs 1, so 20/s would fit; one a
        // second keeps the venues in step and far from the escalating 418 bans.
        Duration::from_secs(1)
    }

    fn parse(&self, body: &[u8]) -> Result<Parsed, ParseError> {
        let body = json(body)?;
        if let Some(code) = body.get("code").filter(|c| !c.is_null()) {
            let message = body.get("msg").and_then(Value::as_str).unwrap_or("");
            return Err(ParseError::Exchange(format!("{code}: {message}")));
        }
        if let Some(symbol) = body.get("symbol").filter(|s| !s.is_null())
            && symbol.as_str() != Some("BTCUSD")
        {
            return Err(ParseError::Exchange(format!("answer is for symbol {symbol}, not BTCUSD")));
        }
        Ok(Parsed { price: price_field(body.get("price"), "price")?, quote_time: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = r#"{"symbol": "BTCUSD", "price": "97012.35000000"}"#;

    #[test]
    fn reads_the_price() {
        let parsed = BinanceUs.parse(REAL.as_bytes()).expect("parses");
        assert_eq!(parsed.price.get(), 97_012.35);
        assert_eq!(parsed.quote_time, None);
        let no_symbol = BinanceUs.parse(br#"{"price": "97012.35000000"}"#).expect("parses");
        assert_eq!(no_symbol.price.get(), 97_012.35);
    }

    #[test]
    fn documented_errors_are_errors() {
        let body = br#"{"code": -1121, "msg": "Invalid symbol."}"#;
        assert_eq!(BinanceUs.parse(body), Err(ParseError::Exchange("-1121: Invalid symbol.".into())));
        let inside_a_ticker =
            br#"{"symbol": "BTCUSD", "price": "97012.35000000", "code": -1003, "msg": "Too many requests"}"#;
        assert!(matches!(BinanceUs.parse(inside_a_ticker), Err(ParseError::Exchange(_))));
    }

    #[test]
    fn another_symbol_is_an_error() {
        let body = br#"{"symbol": "BTCUSDT", "price": "97012.35000000"}"#;
        assert!(matches!(BinanceUs.parse(body), Err(ParseError::Exchange(_))));
        let body = br#"{"symbol": 1, "price": "97012.35000000"}"#;
        assert!(matches!(BinanceUs.parse(body), Err(ParseError::Exchange(_))));
    }

    #[test]
    fn failure_shapes_are_errors() {
        assert!(matches!(BinanceUs.parse(b"<html>403 Forbidden</html>"), Err(ParseError::Json(_))));
        assert!(matches!(BinanceUs.parse(&REAL.as_bytes()[..30]), Err(ParseError::Json(_))));
        assert_eq!(BinanceUs.parse(br#"{"symbol": "BTCUSD"}"#), Err(ParseError::MissingField("price")));
        assert_eq!(BinanceUs.parse(br#"{"symbol": "BTCUSD", "price": {}}"#), Err(ParseError::MissingField("price")));
        // The batch form of the endpoint (no symbol) answers an array.
        assert!(matches!(BinanceUs.parse(&format!("[{REAL}]").into_bytes()), Err(ParseError::MissingField(_))));
        for bad in [r#""0.00000000""#, r#""-5""#, r#""NaN""#, r#""1e308""#, "1e308", r#""""#] {
            let body = format!(r#"{{"symbol": "BTCUSD", "price": {bad}}}"#);
            assert!(matches!(BinanceUs.parse(body.as_bytes()), Err(ParseError::Price(_))), "{bad} accepted");
        }
    }
}
