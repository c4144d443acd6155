//! The venues' answer bodies, in the shapes of `shared/exchange-apis.md`.
//!
//! Bodies are built as JSON values with a placeholder in the price field, then the placeholder is
//! replaced by raw text: that is how [`crate::Behaviour::RawPrice`] can put text no JSON value
//! holds (a bare `NaN`, `1e308`) exactly where the real price goes.

mod errors;

use std::time::Duration;

use btc_contract::Pair;
use serde_json::{Value, json};

pub use errors::HOSTILE_TEXT;
pub(crate) use errors::{error, exchange_error, huge_error, throttled, unknown_pair};

use crate::Venue;
use crate::venue::coingecko_id;

const PLACEHOLDER: &str = "@@PRICE@@";

/// Decimal places of the venue's tick (the same for every pair here).
pub(crate) fn decimals(venue: Venue, price: f64) -> usize {
    match venue {
        Venue::Bitstamp => 0,
        Venue::Kraken | Venue::Cexio => 1,
        Venue::Coinbase | Venue::Gemini | Venue::BinanceUs | Venue::Coingecko => 2,
        // Bitfinex quotes five significant digits, so the decimals depend on the size.
        Venue::Bitfinex => significant_decimals(price, 5),
    }
}

fn significant_decimals(value: f64, digits: i32) -> usize {
    if !value.is_finite() || value == 0.0 {
        return 0;
    }
    let magnitude = value.abs().log10().floor() as i32;
    (digits - 1 - magnitude).clamp(0, 12) as usize
}

/// Rounds through the decimal text so the result is the shortest double of the printed digits.
pub(crate) fn round_to(value: f64, decimals: usize) -> f64 {
    format!("{value:.decimals$}").parse().unwrap_or(value)
}

/// A price-like field as the venue writes it: a string with its usual decimals, or a JSON number.
fn field(venue: Venue, value: f64) -> Value {
    let rounded = round_to(value, decimals(venue, value));
    match venue {
        Venue::Bitfinex | Venue::Coingecko => json!(rounded),
        // cex.io writes the shortest form ("97012.5", "97012").
        Venue::Cexio => Value::String(rounded.to_string()),
        // Kraken pads its 0.1 tick to five decimals, Binance.US its cent tick to eight.
        Venue::Kraken => Value::String(format!("{rounded:.5}")),
        Venue::BinanceUs => Value::String(format!("{rounded:.8}")),
        _ => Value::String(format!("{rounded:.prec$}", prec = decimals(venue, value))),
    }
}

/// The JSON text of the price field in a normal answer.
pub(crate) fn price_json(venue: Venue, price: f64) -> String {
    field(venue, price).to_string()
}

/// Kraken's full name of a pair, the key its ticker answers under: an X before a crypto asset
/// (BTC is XBT) and a Z before a fiat currency, `XXBTZEUR`, `XETHZUSD`.
pub(crate) fn kraken_key(pair: &Pair) -> String {
    let asset = if pair.asset() == "BTC" { "XBT" } else { pair.asset() };
    format!("X{asset}Z{}", pair.currency())
}

/// A `pair` ticker answer at `price` (which also sets bid, ask, high, low...), with the price
/// field set to the raw JSON text `price_text`, or left out when it is `None`. `now` is since the
/// epoch.
pub(crate) fn ticker(venue: Venue, pair: &Pair, price: f64, price_text: Option<&str>, now: Duration) -> String {
    let f = |value: f64| field(venue, value);
    let p = Value::String(PLACEHOLDER.to_string());
    let seconds = now.as_secs();
    let millis = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
    let (asset, currency) = (pair.asset(), pair.currency());
    let mut body = match venue {
        Venue::Coinbase => json!({"data": {"amount": p, "base": asset, "currency": currency}}),
        Venue::Kraken => json!({"error": [], "result": {kraken_key(pair): {
            "a": [f(price + 0.1), "1", "1.000"], "b": [f(price - 0.1), "2", "2.000"],
            "c": [p, "0.00012000"], "v": ["512.34567890", "2345.67890123"],
            "p": [f(price * 0.9994), f(price * 0.9948)], "t": [12345, 67890],
            "l": [f(price * 0.9906), f(price * 0.9875)], "h": [f(price * 1.005), f(price * 1.008)],
            "o": f(price * 0.9978)}}}),
        Venue::Bitstamp => json!({
            "timestamp": seconds.to_string(), "open": f(price * 0.9978), "high": f(price * 1.008),
            "low": f(price * 0.9875), "last": p, "volume": "1234.56789012", "vwap": f(price * 0.9994),
            "bid": f(price - 1.0), "ask": f(price + 1.0), "side": "0", "open_24": f(price * 0.9947),
            "percent_change_24": "0.53", "market_type": "SPOT"}),
        Venue::Gemini => json!({"bid": f(price - 0.37), "ask": f(price + 0.67), "last": p, "volume": {
            asset: "2210.505328803", currency: format!("{:.12}", 2_210.505_328_803 * price), "timestamp": millis}}),
        Venue::Bitfinex => json!([
            f(price - 1.0),
            12.5,
            f(price + 1.0),
            10.3,
            f(price * 0.0084),
            0.0084,
            p,
            1543.21,
            f(price * 1.008),
            f(price * 0.9875)
        ]),
        Venue::BinanceUs => json!({"symbol": format!("{asset}{currency}"), "price": p}),
        Venue::Cexio => json!({"lprice": p, "curr1": asset, "curr2": currency}),
        Venue::Coingecko => json!({coingecko_id(asset).unwrap_or("bitcoin"): {
            currency.to_ascii_lowercase(): p, "last_updated_at": seconds}}),
    };
    let Some(price_text) = price_text else {
        remove_price(venue, pair, &mut body);
        return body.to_string();
    };
    body.to_string().replace(&format!("\"{PLACEHOLDER}\""), price_text)
}

fn remove_price(venue: Venue, pair: &Pair, body: &mut Value) {
    let kraken = format!("/result/{}", kraken_key(pair));
    let coingecko = format!("/{}", coingecko_id(pair.asset()).unwrap_or("bitcoin"));
    let currency = pair.currency().to_ascii_lowercase();
    let (parent, key) = match venue {
        Venue::Bitfinex => {
            // Without keys, an absent LAST_PRICE is an array that stops before index 6.
            if let Some(fields) = body.as_array_mut() {
                fields.truncate(6);
            }
            return;
        }
        Venue::Coinbase => ("/data", "amount"),
        Venue::Kraken => (kraken.as_str(), "c"),
        Venue::Bitstamp => ("", "last"),
        Venue::Gemini => ("", "last"),
        Venue::BinanceUs => ("", "price"),
        Venue::Cexio => ("", "lprice"),
        Venue::Coingecko => (coingecko.as_str(), currency.as_str()),
    };
    if let Some(object) = body.pointer_mut(parent).and_then(Value::as_object_mut) {
        object.remove(key);
    }
}

#[cfg(test)]
mod tests;
