//! Which pair a request asks for, read as the venue reads it: from the path (Coinbase, Bitstamp,
//! Gemini, Bitfinex, cex.io) or from the query (Kraken's `pair`, Binance.US's `symbol`,
//! CoinGecko's `ids` and `vs_currencies`).

use btc_contract::Pair;

use crate::venue::{PAIRS, Venue};

/// What a request asks the venue for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Route {
    /// A pair the venue lists.
    Pair(Pair),
    /// The venue's ticker endpoint, for a symbol it does not list: the venue's own answer to an
    /// unknown pair.
    UnknownPair,
    /// No endpoint of the venue: a plain 404.
    NotFound,
}

pub(crate) fn route(venue: Venue, path: &str, query: Option<&str>) -> Route {
    match venue {
        Venue::Kraken => by_query(venue, path, query, "pair"),
        Venue::BinanceUs => by_query(venue, path, query, "symbol"),
        Venue::Coingecko => coingecko(path, query),
        _ => by_path(venue, path),
    }
}

/// The ticker route's parts around the symbol, for the venues that put it in the path.
fn around_symbol(venue: Venue) -> Option<(&'static str, &'static str)> {
    match venue {
        Venue::Coinbase => Some(("/v2/prices/", "/spot")),
        Venue::Bitstamp => Some(("/api/v2/ticker/", "/")),
        Venue::Gemini => Some(("/v1/pubticker/", "")),
        Venue::Bitfinex => Some(("/v2/ticker/", "")),
        Venue::Cexio => Some(("/api/last_price/", "")),
        Venue::Kraken | Venue::BinanceUs | Venue::Coingecko => None,
    }
}

fn by_path(venue: Venue, path: &str) -> Route {
    let Some((prefix, suffix)) = around_symbol(venue) else {
        return Route::NotFound;
    };
    let symbol = path.strip_prefix(prefix).and_then(|rest| rest.strip_suffix(suffix)).unwrap_or_default();
    if symbol.is_empty() {
        return Route::NotFound;
    }
    // Gemini takes its symbols in either case (its docs write BTCUSD, clients send btcusd).
    find(venue, |listed| if venue == Venue::Gemini { listed.eq_ignore_ascii_case(symbol) } else { listed == symbol })
}

/// A request without the symbol's parameter gets BTC-USD, as the seed's stand-ins did.
fn by_query(venue: Venue, path: &str, query: Option<&str>, name: &str) -> Route {
    if path != venue.path() {
        return Route::NotFound;
    }
    match param(query, name) {
        None => Route::Pair(Pair::seed()),
        Some(symbol) => find(venue, |listed| listed == symbol),
    }
}

fn coingecko(path: &str, query: Option<&str>) -> Route {
    if path != Venue::Coingecko.path() {
        return Route::NotFound;
    }
    let (ids, currencies) = (param(query, "ids"), param(query, "vs_currencies"));
    if ids.is_none() && currencies.is_none() {
        return Route::Pair(Pair::seed());
    }
    let wanted = format!("{}&vs_currencies={}", ids.unwrap_or_default(), currencies.unwrap_or_default());
    find(Venue::Coingecko, |listed| listed == wanted)
}

/// The listed pair whose symbol `matches`, else an unknown pair.
fn find(venue: Venue, matches: impl Fn(&str) -> bool) -> Route {
    PAIRS
        .iter()
        .filter_map(|text| text.parse::<Pair>().ok())
        .find(|pair| venue.symbol(pair).is_some_and(|symbol| matches(&symbol)))
        .map_or(Route::UnknownPair, Route::Pair)
}

fn param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').filter_map(|item| item.split_once('=')).find(|(key, _)| *key == name).map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(text: &str) -> Route {
        Route::Pair(text.parse().expect("a pair"))
    }

    #[test]
    fn every_listed_pair_routes_back_to_itself() {
        for venue in Venue::ALL {
            for text in PAIRS {
                let wanted: Pair = text.parse().expect("a pair");
                let Some(request) = venue.request(&wanted) else {
                    assert!(venue == Venue::BinanceUs && wanted.currency() != "USD", "{venue} {wanted}");
                    continue;
                };
                let (path, query) = request.split_once('?').map_or((request.as_str(), None), |(p, q)| (p, Some(q)));
                assert_eq!(route(venue, path, query), Route::Pair(wanted), "{venue} {request}");
            }
        }
    }

    #[test]
    fn unknown_symbols_and_paths_are_told_apart() {
        assert_eq!(route(Venue::Kraken, "/0/public/Ticker", Some("pair=XBTJPY")), Route::UnknownPair);
        assert_eq!(route(Venue::Kraken, "/0/public/Ticker", None), pair("BTC-USD"));
        assert_eq!(route(Venue::BinanceUs, "/api/v3/ticker/price", Some("symbol=BTCEUR")), Route::UnknownPair);
        assert_eq!(route(Venue::Bitstamp, "/api/v2/ticker/dogeusd/", None), Route::UnknownPair);
        assert_eq!(route(Venue::Bitstamp, "/api/v2/ticker/btcusd", None), Route::NotFound);
        assert_eq!(route(Venue::Gemini, "/v1/pubticker/BTCGBP", None), pair("BTC-GBP"));
        assert_eq!(route(Venue::Bitfinex, "/v2/ticker/tbtcusd", None), Route::UnknownPair);
        assert_eq!(route(Venue::Cexio, "/api/last_price/ETH/USD", None), pair("ETH-USD"));
        assert_eq!(route(Venue::Coinbase, "/v2/prices/BTC-USD/buy", None), Route::NotFound);
        let gecko = "ids=ethereum&vs_currencies=gbp&include_last_updated_at=true";
        assert_eq!(route(Venue::Coingecko, "/api/v3/simple/price", Some(gecko)), pair("ETH-GBP"));
        let gecko = "ids=dogecoin&vs_currencies=usd";
        assert_eq!(route(Venue::Coingecko, "/api/v3/simple/price", Some(gecko)), Route::UnknownPair);
        assert_eq!(route(Venue::Coingecko, "/", None), Route::NotFound);
    }
}
