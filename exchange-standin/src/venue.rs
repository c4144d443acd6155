//! The venues a stand-in can serve, by the publisher's `SOURCES` names, and the pairs each one
//! lists under which symbol, as the real exchange spells it (`shared/exchange-apis.md`).

use std::fmt;
use std::str::FromStr;

use btc_contract::Pair;

use crate::bodies;

/// The pairs the stand-ins know: BTC and ETH against USD, EUR and GBP. Every venue lists them all
/// but Binance.US, which has USD markets only.
pub const PAIRS: [&str; 6] = ["BTC-USD", "BTC-EUR", "BTC-GBP", "ETH-USD", "ETH-EUR", "ETH-GBP"];

/// Venues, same names as the publisher's `SOURCES` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Venue {
    Coinbase,
    Kraken,
    Bitstamp,
    Gemini,
    Bitfinex,
    BinanceUs,
    Cexio,
    Coingecko,
}

impl Venue {
    pub const ALL: [Venue; 8] = [
        Venue::Coinbase,
        Venue::Kraken,
        Venue::Bitstamp,
        Venue::Gemini,
        Venue::Bitfinex,
        Venue::BinanceUs,
        Venue::Cexio,
        Venue::Coingecko,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Venue::Coinbase => "coinbase",
            Venue::Kraken => "kraken",
            Venue::Bitstamp => "bitstamp",
            Venue::Gemini => "gemini",
            Venue::Bitfinex => "bitfinex",
            Venue::BinanceUs => "binanceus",
            Venue::Cexio => "cexio",
            Venue::Coingecko => "coingecko",
        }
    }

    /// True if the venue lists `pair`.
    pub fn lists(self, pair: &Pair) -> bool {
        PAIRS.contains(&pair.as_str()) && (self != Venue::BinanceUs || pair.currency() == "USD")
    }

    /// The venue's symbol of a pair it lists: `BTC-EUR` (Coinbase), `XBTEUR` (Kraken, which calls
    /// BTC XBT), `btceur` (Bitstamp, Gemini), `tBTCEUR` (Bitfinex), `BTCEUR` (Binance.US),
    /// `BTC/EUR` (cex.io), `bitcoin` and `eur` (CoinGecko's coin id and currency).
    pub fn symbol(self, pair: &Pair) -> Option<String> {
        if !self.lists(pair) {
            return None;
        }
        let (asset, currency) = (pair.asset(), pair.currency());
        let lower = |text: &str| text.to_ascii_lowercase();
        Some(match self {
            Venue::Coinbase => format!("{asset}-{currency}"),
            Venue::Kraken => format!("{}{currency}", if asset == "BTC" { "XBT" } else { asset }),
            Venue::Bitstamp | Venue::Gemini => lower(asset) + &lower(currency),
            Venue::Bitfinex => format!("t{asset}{currency}"),
            Venue::BinanceUs => format!("{asset}{currency}"),
            Venue::Cexio => format!("{asset}/{currency}"),
            Venue::Coingecko => format!("{}&vs_currencies={}", coingecko_id(asset)?, lower(currency)),
        })
    }

    /// Path and query of `pair`'s ticker, as the publisher asks for it; `None` if not listed.
    pub fn request(self, pair: &Pair) -> Option<String> {
        let symbol = self.symbol(pair)?;
        Some(match self {
            Venue::Coinbase => format!("/v2/prices/{symbol}/spot"),
            Venue::Kraken => format!("/0/public/Ticker?pair={symbol}"),
            Venue::Bitstamp => format!("/api/v2/ticker/{symbol}/"),
            Venue::Gemini => format!("/v1/pubticker/{symbol}"),
            Venue::Bitfinex => format!("/v2/ticker/{symbol}"),
            Venue::BinanceUs => format!("/api/v3/ticker/price?symbol={symbol}"),
            Venue::Cexio => format!("/api/last_price/{symbol}"),
            Venue::Coingecko => format!("/api/v3/simple/price?ids={symbol}&include_last_updated_at=true"),
        })
    }

    /// The route of the BTC-USD ticker, without the query: the pair a request without one (Kraken's
    /// `pair`, Binance.US's `symbol`, CoinGecko's `ids`) is answered for.
    pub fn path(self) -> &'static str {
        match self {
            Venue::Coinbase => "/v2/prices/BTC-USD/spot",
            Venue::Kraken => "/0/public/Ticker",
            Venue::Bitstamp => "/api/v2/ticker/btcusd/",
            Venue::Gemini => "/v1/pubticker/btcusd",
            Venue::Bitfinex => "/v2/ticker/tBTCUSD",
            Venue::BinanceUs => "/api/v3/ticker/price",
            Venue::Cexio => "/api/last_price/BTC/USD",
            Venue::Coingecko => "/api/v3/simple/price",
        }
    }

    /// The price as this venue shows it: rounded to its tick (Bitstamp whole dollars, Kraken and
    /// cex.io 0.1, Coinbase, Gemini, Binance.US and CoinGecko cents, Bitfinex five significant
    /// digits). Tests compare what the publisher read against this, not against the set price.
    pub fn quoted(self, price: f64) -> f64 {
        bodies::round_to(price, bodies::decimals(self, price))
    }
}

/// CoinGecko's API id of a coin.
pub(crate) fn coingecko_id(asset: &str) -> Option<&'static str> {
    match asset {
        "BTC" => Some("bitcoin"),
        "ETH" => Some("ethereum"),
        _ => None,
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Venue {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase();
        Venue::ALL.into_iter().find(|venue| venue.name() == wanted).ok_or_else(|| {
            let known: Vec<&str> = Venue::ALL.iter().map(|v| v.name()).collect();
            format!("unknown venue {text:?}; known venues: {}", known.join(", "))
        })
    }
}
