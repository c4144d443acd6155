//! The venues a stand-in can serve, by the publisher's `SOURCES` names.

use std::fmt;
use std::str::FromStr;

use crate::bodies;

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

    /// The route the stand-in serves, without the query (which is ignored).
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
