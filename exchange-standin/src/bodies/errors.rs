//! The venues' error bodies: for an HTTP status, a rate limit, an unknown pair, and a huge
//! hostile one.

use std::time::Duration;

use btc_contract::Pair;
use serde_json::{Value, json};

use super::{price_json, ticker};
use crate::Venue;

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

/// The status and body of the venue's answer to a pair it does not list (exchange-apis.md): Kraken
/// `{"error":["EQuery:Unknown asset pair"]}` in a 200, Binance.US `{"code":-1121,"msg":"Invalid
/// symbol."}` with 400, CoinGecko an empty object (an unknown coin is simply absent), the others
/// their error shape with 404 (Coinbase, Bitstamp: no such route) or 400 (Gemini's
/// `InvalidSymbol`, cex.io), Bitfinex its `["error", 10020, "symbol: invalid"]`.
pub(crate) fn unknown_pair(venue: Venue) -> (u16, String) {
    match venue {
        Venue::Coingecko => (200, "{}".to_string()),
        Venue::Coinbase | Venue::Bitstamp => (404, error(venue, 404)),
        _ => exchange_error(venue),
    }
}

/// The status and body of the venue's rate-limit answer: inside a 200 where the venue does that
/// (Kraken, Bitfinex; Binance.US says it in headers on a normal answer), else its 429.
pub(crate) fn throttled(venue: Venue, pair: &Pair, price: f64, now: Duration) -> (u16, String) {
    match venue {
        Venue::Kraken => (200, json!({"error": ["EAPI:Rate limit exceeded"]}).to_string()),
        Venue::Bitfinex => (200, json!({"error": "ERR_RATE_LIMIT"}).to_string()),
        Venue::BinanceUs => (200, ticker(venue, pair, price, Some(&price_json(venue, price)), now)),
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
