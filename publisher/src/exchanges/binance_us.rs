//! Binance.US `GET /api/v3/ticker/price?symbol=BTCUSD` (weight 1; `ETHUSD`).
//!
//! The answer is `{"symbol": "BTCUSD", "price": "97012.35000000"}`: a decimal string with eight
//! decimals and no time. `symbol` is checked when present, so a URL pointing at another market
//! cannot pass its price off as the pair's. Errors are `{"code": -1121, "msg": "Invalid symbol."}`,
//! checked before `price`. Binance.US bans IPs that ignore 429 (HTTP 418); that is the fetcher's job.
//! Every answer carries the weight the IP has used this minute (`X-MBX-USED-WEIGHT-1M`, and the
//! older `X-MBX-USED-WEIGHT`): near the limit, [`Exchange::throttle`] asks to wait for the next minute.

use std::time::Duration;

use btc_contract::Pair;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::{Exchange, ParseError, Parsed, Throttle, json, listed, price_field};

pub struct BinanceUs;

/// The pairs Binance.US lists: against USD only, symbol `BTCUSD` (exchange-apis.md). It has no
/// EUR or GBP markets: those pairs are not quoted here.
const PAIRS: [(&str, &str); 2] = [("BTC-USD", "BTCUSD"), ("ETH-USD", "ETHUSD")];

/// `REQUEST_WEIGHT` an IP may use per minute.
const WEIGHT_PER_MINUTE: u32 = 1200;
/// Stop at 90 % of it: the IP's other clients (another replica, anything behind the same NAT)
/// share the budget, and going over it draws 429s and then escalating 418 bans.
const STOP_AT_WEIGHT: u32 = WEIGHT_PER_MINUTE / 10 * 9;
/// The weight headers, the per-minute one first; the older one has no interval in its name.
const WEIGHT_HEADERS: [&str; 2] = ["x-mbx-used-weight-1m", "x-mbx-used-weight"];
/// Our clock and the exchange's may disagree about when the minute ends by about this much.
const CLOCK_MARGIN: Duration = Duration::from_secs(1);

impl Exchange for BinanceUs {
    fn default_base_url(&self) -> &'static str {
        "https://api.binance.us"
    }

    fn path(&self, pair: &Pair) -> Option<String> {
        listed(&PAIRS, pair).map(|symbol| format!("/api/v3/ticker/price?symbol={symbol}"))
    }

    fn min_interval(&self) -> Duration {
        // REQUEST_WEIGHT is 1200 a minute per IP and this call weighs 1, so 20/s would fit; one a
        // second keeps the venues in step and far from the escalating 418 bans.
        Duration::from_secs(1)
    }

    fn parse(&self, pair: &Pair, body: &[u8]) -> Result<Parsed, ParseError> {
        let body = json(body)?;
        if let Some(code) = body.get("code").filter(|c| !c.is_null()) {
            let message = body.get("msg").and_then(Value::as_str).unwrap_or("");
            return Err(ParseError::Exchange(format!("{code}: {message}").into()));
        }
        let wanted = listed(&PAIRS, pair).unwrap_or_default();
        if let Some(symbol) = body.get("symbol").filter(|s| !s.is_null())
            && symbol.as_str() != Some(wanted)
        {
            return Err(ParseError::Exchange(format!("answer is for symbol {symbol}, not {wanted}").into()));
        }
        Ok(Parsed { price: price_field(body.get("price"), "price")?, quote_time: None })
    }

    fn throttle(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Option<Throttle> {
        let (name, value) = WEIGHT_HEADERS.iter().find_map(|name| headers.get(*name).map(|value| (name, value)))?;
        let used: u32 = value.to_str().ok()?.trim().parse().ok()?;
        if used < STOP_AT_WEIGHT {
            return None;
        }
        // The weight counts per calendar minute: wait for the next one to begin.
        let into_minute = u64::try_from(now.timestamp_millis().rem_euclid(60_000)).unwrap_or_default();
        let wait = Duration::from_secs(60) - Duration::from_millis(into_minute) + CLOCK_MARGIN;
        Some(Throttle { reason: format!("{name} {used} of {WEIGHT_PER_MINUTE}"), wait })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = r#"{"symbol": "BTCUSD", "price": "97012.35000000"}"#;

    #[test]
    fn reads_the_price() {
        let parsed = BinanceUs.parse(&Pair::seed(), REAL.as_bytes()).expect("parses");
        assert_eq!(parsed.price.get(), 97_012.35);
        assert_eq!(parsed.quote_time, None);
        let no_symbol = BinanceUs.parse(&Pair::seed(), br#"{"price": "97012.35000000"}"#).expect("parses");
        assert_eq!(no_symbol.price.get(), 97_012.35);
    }

    #[test]
    fn documented_errors_are_errors() {
        let body = br#"{"code": -1121, "msg": "Invalid symbol."}"#;
        assert_eq!(BinanceUs.parse(&Pair::seed(), body), Err(ParseError::Exchange("-1121: Invalid symbol.".into())));
        let inside_a_ticker =
            br#"{"symbol": "BTCUSD", "price": "97012.35000000", "code": -1003, "msg": "Too many requests"}"#;
        assert!(matches!(BinanceUs.parse(&Pair::seed(), inside_a_ticker), Err(ParseError::Exchange(_))));
    }

    #[test]
    fn another_symbol_is_an_error() {
        let body = br#"{"symbol": "BTCUSDT", "price": "97012.35000000"}"#;
        assert!(matches!(BinanceUs.parse(&Pair::seed(), body), Err(ParseError::Exchange(_))));
        let body = br#"{"symbol": 1, "price": "97012.35000000"}"#;
        assert!(matches!(BinanceUs.parse(&Pair::seed(), body), Err(ParseError::Exchange(_))));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn a_weight_near_the_limit_backs_off_until_the_minute_rolls_over() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T18:59:45.250Z").expect("time").with_timezone(&Utc);
        // The headers of a real ticker answer: far from the limit, no wait.
        let quiet = headers(&[("x-mbx-used-weight", "12"), ("x-mbx-used-weight-1m", "12")]);
        assert_eq!(BinanceUs.throttle(&quiet, now), None);
        let busy = headers(&[("x-mbx-used-weight", "1100"), ("x-mbx-used-weight-1m", "1100")]);
        let throttle = BinanceUs.throttle(&busy, now).expect("backs off");
        // Until 19:00:00 by this clock, plus a second for the exchange's clock.
        assert_eq!(throttle.wait, Duration::from_millis(14_750 + 1_000));
        assert!(throttle.reason.contains("1100"), "{}", throttle.reason);
        // 90 % of the 1200 a minute is where it stops, leaving the rest to the IP's other clients.
        assert_eq!(BinanceUs.throttle(&headers(&[("x-mbx-used-weight-1m", "1079")]), now), None);
        assert!(BinanceUs.throttle(&headers(&[("x-mbx-used-weight-1m", "1080")]), now).is_some());
        // The older header alone counts too; the per-minute one wins when both are there.
        assert!(BinanceUs.throttle(&headers(&[("x-mbx-used-weight", "1199")]), now).is_some());
        let both = headers(&[("x-mbx-used-weight", "1199"), ("x-mbx-used-weight-1m", "3")]);
        assert_eq!(BinanceUs.throttle(&both, now), None);
        // A header that is not a number is no signal.
        assert_eq!(BinanceUs.throttle(&headers(&[("x-mbx-used-weight-1m", "lots")]), now), None);
        // On the minute exactly, the whole next minute is waited for.
        let on_the_minute = DateTime::parse_from_rfc3339("2026-11-24T19:00:00Z").expect("time").with_timezone(&Utc);
        assert_eq!(BinanceUs.throttle(&busy, on_the_minute).map(|t| t.wait), Some(Duration::from_secs(61)));
    }

    #[test]
    fn failure_shapes_are_errors() {
        assert!(matches!(BinanceUs.parse(&Pair::seed(), b"<html>403 Forbidden</html>"), Err(ParseError::Json(_))));
        assert!(matches!(BinanceUs.parse(&Pair::seed(), &REAL.as_bytes()[..30]), Err(ParseError::Json(_))));
        assert_eq!(BinanceUs.parse(&Pair::seed(), br#"{"symbol": "BTCUSD"}"#), Err(ParseError::MissingField("price")));
        assert_eq!(
            BinanceUs.parse(&Pair::seed(), br#"{"symbol": "BTCUSD", "price": {}}"#),
            Err(ParseError::MissingField("price"))
        );
        // The batch form of the endpoint (no symbol) answers an array.
        assert!(matches!(
            BinanceUs.parse(&Pair::seed(), &format!("[{REAL}]").into_bytes()),
            Err(ParseError::MissingField(_))
        ));
        for bad in [r#""0.00000000""#, r#""-5""#, r#""NaN""#, r#""1e308""#, "1e308", r#""""#] {
            let body = format!(r#"{{"symbol": "BTCUSD", "price": {bad}}}"#);
            assert!(
                matches!(BinanceUs.parse(&Pair::seed(), body.as_bytes()), Err(ParseError::Price(_))),
                "{bad} accepted"
            );
        }
    }
}
