//! The venues' answer bodies, in the shapes of `shared/exchange-apis.md`.
//!
//! Bodies are built as JSON values with a placeholder in the price field, then the placeholder is
//! replaced by raw text: that is how [`crate::Behaviour::RawPrice`] can put text no JSON value
//! holds (a bare `NaN`, `1e308`) exactly where the real price goes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::Venue;

const PLACEHOLDER: &str = "@@PRICE@@";

/// Decimal places of the venue's BTC/USD tick.
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

/// A ticker answer at `price` (which also sets bid, ask, high, low...), with the price field set
/// to the raw JSON text `price_text`, or left out when it is `None`. `now` is since the epoch.
pub(crate) fn ticker(venue: Venue, price: f64, price_text: Option<&str>, now: Duration) -> String {
    let f = |value: f64| field(venue, value);
    let p = Value::String(PLACEHOLDER.to_string());
    let seconds = now.as_secs();
    let millis = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
    let mut body = match venue {
        Venue::Coinbase => json!({"data": {"amount": p, "base": "BTC", "currency": "USD"}}),
        Venue::Kraken => json!({"error": [], "result": {"XXBTZUSD": {
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
            "BTC": "2210.505328803", "USD": format!("{:.12}", 2_210.505_328_803 * price), "timestamp": millis}}),
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
        Venue::BinanceUs => json!({"symbol": "BTCUSD", "price": p}),
        Venue::Cexio => json!({"lprice": p, "curr1": "BTC", "curr2": "USD"}),
        Venue::Coingecko => json!({"bitcoin": {"usd": p, "last_updated_at": seconds}}),
    };
    let Some(price_text) = price_text else {
        remove_price(venue, &mut body);
        return body.to_string();
    };
    body.to_string().replace(&format!("\"{PLACEHOLDER}\""), price_text)
}

fn remove_price(venue: Venue, body: &mut Value) {
    let (parent, key) = match venue {
        Venue::Bitfinex => {
            // Without keys, an absent LAST_PRICE is an array that stops before index 6.
            if let Some(fields) = body.as_array_mut() {
                fields.truncate(6);
            }
            return;
        }
        Venue::Coinbase => ("/data", "amount"),
        Venue::Kraken => ("/result/XXBTZUSD", "c"),
        Venue::Bitstamp => ("", "last"),
        Venue::Gemini => ("", "last"),
        Venue::BinanceUs => ("", "price"),
        Venue::Cexio => ("", "lprice"),
        Venue::Coingecko => ("/bitcoin", "usd"),
    };
    if let Some(object) = body.pointer_mut(parent).and_then(Value::as_object_mut) {
        object.remove(key);
    }
}

/// The venue's error body for an HTTP status (429 gives its rate-limit body).
pub(crate) fn error(venue: Venue, status: u16) -> String {
    let kind = Kind::of(status);
    let body = match venue {
        Venue::Coinbase => {
            let (id, message) = match kind {
                Kind::RateLimit => ("rate_limit_exceeded", "Too many requests"),
                Kind::Unavailable | Kind::Server => ("internal_server_error", "Internal server error"),
                Kind::NotFound => ("not_found", "Not found"),
                Kind::Client => ("invalid_request", "Invalid currency (BTC-USD)"),
            };
            json!({"errors": [{"id": id, "message": message}]})
        }
        Venue::Kraken => {
            let text = match kind {
                Kind::RateLimit => "EGeneral:Too many requests",
                Kind::Unavailable => "EService:Unavailable",
                Kind::Server => "EGeneral:Internal error",
                Kind::NotFound | Kind::Client => "EQuery:Unknown asset pair",
            };
            json!({"error": [text]})
        }
        Venue::Bitstamp => {
            let (code, reason) = match kind {
                Kind::RateLimit => ("400.002".to_string(), "Request rejected due to exceeded rate limit"),
                Kind::Unavailable => (format!("{status}.000"), "Service temporarily unavailable"),
                Kind::Server => (format!("{status}.000"), "Internal server error"),
                Kind::NotFound | Kind::Client => (format!("{status}.000"), "Invalid currency pair"),
            };
            json!({"status": "error", "reason": reason, "response_code": code})
        }
        Venue::Gemini => {
            let (reason, message) = match kind {
                Kind::RateLimit => ("RateLimit", "Requests were made too frequently"),
                Kind::Unavailable => ("Maintenance", "The exchange is down for maintenance"),
                Kind::Server => ("System", "An internal error occurred"),
                Kind::NotFound => ("EndpointNotFound", "API entry point not found"),
                Kind::Client => ("InvalidSymbol", "Supplied value 'btcxyz' is not a valid symbol"),
            };
            json!({"result": "error", "reason": reason, "message": message})
        }
        Venue::Bitfinex | Venue::BinanceUs | Venue::Cexio | Venue::Coingecko => more_errors(venue, kind, status),
    };
    body.to_string()
}

/// [`error`] for the second half of the venues (one table would be one long function).
fn more_errors(venue: Venue, kind: Kind, status: u16) -> Value {
    match venue {
        Venue::Bitfinex => match kind {
            Kind::RateLimit => json!({"error": "ERR_RATE_LIMIT"}),
            Kind::Unavailable => json!(["error", 20060, "maintenance"]),
            Kind::Server => json!(["error", 10000, "unknown error"]),
            Kind::NotFound | Kind::Client => json!(["error", 10020, "symbol: invalid"]),
        },
        Venue::BinanceUs => {
            let (code, message) = match kind {
                Kind::RateLimit => (
                    -1003,
                    "Too many requests; current limit is 1200 request weight per 1 MINUTE. Please use \
                     the websocket for live updates to avoid polling the API.",
                ),
                Kind::Unavailable => (-1001, "Internal error; unable to process your request. Please try again."),
                Kind::Server => (-1000, "An unknown error occurred while processing the request."),
                Kind::NotFound | Kind::Client => (-1121, "Invalid symbol."),
            };
            json!({"code": code, "msg": message})
        }
        Venue::Cexio => {
            let text = match kind {
                Kind::RateLimit => "Rate limit exceeded",
                Kind::Unavailable => "Service unavailable",
                Kind::Server => "Internal server error",
                Kind::NotFound | Kind::Client => "Invalid Symbols Pair",
            };
            json!({"error": text})
        }
        // CoinGecko: the only venue `error` sends here besides the three above.
        _ => {
            let message = match kind {
                Kind::RateLimit => "You've exceeded the Rate Limit.",
                Kind::Unavailable => "Service Unavailable",
                Kind::Server => "Internal Server Error",
                Kind::NotFound | Kind::Client => "Invalid request",
            };
            json!({"status": {"error_code": status, "error_message": message}})
        }
    }
}

/// The status and body of the venue's own error answer, as for an unknown pair.
pub(crate) fn exchange_error(venue: Venue) -> (u16, String) {
    match venue {
        // These two report errors inside HTTP 200.
        Venue::Kraken | Venue::Bitfinex => (200, error(venue, 400)),
        // Keyless callers meet the documented 10002 code when the plan needs a key.
        Venue::Coingecko => {
            (401, json!({"status": {"error_code": 10002, "error_message": "API Key Missing"}}).to_string())
        }
        _ => (400, error(venue, 400)),
    }
}

/// The status and body of the venue's rate-limit answer: inside a 200 where the venue does that
/// (Kraken, Bitfinex; Binance.US says it in headers on a normal answer), else its 429.
pub(crate) fn throttled(venue: Venue, price: f64, now: Duration) -> (u16, String) {
    match venue {
        Venue::Kraken => (200, json!({"error": ["EAPI:Rate limit exceeded"]}).to_string()),
        Venue::Bitfinex => (200, json!({"error": "ERR_RATE_LIMIT"}).to_string()),
        Venue::BinanceUs => (200, ticker(venue, price, Some(&price_json(venue, price)), now)),
        _ => (429, error(venue, 429)),
    }
}

/// Hostile text for [`huge_error`]: what an attacker in the path (or a broken exchange) would put
/// in an error message to forge log lines, recolour a terminal or hide text.
pub const HOSTILE_TEXT: &str =
    "EGeneral:Internal error\u{1b}[2J\u{1b}[31m\r\nERROR forged log line source=kraken\u{0}\u{7}\u{202e}txet nedih\t ";

/// The venue's error shape with [`HOSTILE_TEXT`] repeated until the body is about `body_bytes`
/// long (never more), for a body as large as the publisher accepts.
pub(crate) fn huge_error(venue: Venue, body_bytes: usize) -> String {
    let empty = error_with(venue, "", "").len();
    let unit = serde_json::to_string(HOSTILE_TEXT).map_or(HOSTILE_TEXT.len(), |quoted| quoted.len() - 2);
    // Gemini's two texts share the room.
    let fields = if venue == Venue::Gemini { 2 } else { 1 };
    let repeats = body_bytes.saturating_sub(empty) / unit / fields;
    let text = HOSTILE_TEXT.repeat(repeats.max(1));
    error_with(venue, &text, &text)
}

/// The venue's error body with `text` as its message (`reason` too where it has two).
fn error_with(venue: Venue, text: &str, reason: &str) -> String {
    let body = match venue {
        Venue::Coinbase => json!({"errors": [{"id": "internal_server_error", "message": text}]}),
        Venue::Kraken => json!({"error": [text]}),
        Venue::Bitstamp => json!({"status": "error", "reason": text, "response_code": "500.000"}),
        Venue::Gemini => json!({"result": "error", "reason": reason, "message": text}),
        Venue::Bitfinex => json!(["error", 10000, text]),
        Venue::BinanceUs => json!({"code": -1000, "msg": text}),
        Venue::Cexio => json!({"error": text}),
        Venue::Coingecko => json!({"status": {"error_code": 500, "error_message": text}}),
    };
    body.to_string()
}

#[derive(Clone, Copy)]
enum Kind {
    RateLimit,
    Unavailable,
    Server,
    NotFound,
    Client,
}

impl Kind {
    fn of(status: u16) -> Kind {
        match status {
            429 => Kind::RateLimit,
            503 => Kind::Unavailable,
            404 => Kind::NotFound,
            500.. => Kind::Server,
            _ => Kind::Client,
        }
    }
}

#[cfg(test)]
mod tests;
