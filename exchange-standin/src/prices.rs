//! The price a stand-in shows for each pair: one set for the pair, else a level derived from its
//! BTC-USD price by fixed rates, so a test that sets one price gets every pair at a plausible,
//! consistent level, and `make demo` walks them all with one random walk.

use std::sync::{Mutex, PoisonError};

use btc_contract::Pair;

/// USD per unit of a currency, fixed (a demo, not a rate feed).
fn usd_per(currency: &str) -> f64 {
    match currency {
        "EUR" => 1.16,
        "GBP" => 1.33,
        _ => 1.0,
    }
}

/// An asset's price in BTC: ETH at about 3,000 USD when BTC is at 97,000.
fn btc_per(asset: &str) -> f64 {
    match asset {
        "ETH" => 3_000.0 / 97_000.0,
        _ => 1.0,
    }
}

/// `pair`'s level when BTC-USD is at `btc_usd`.
pub fn level(pair: &Pair, btc_usd: f64) -> f64 {
    btc_usd * btc_per(pair.asset()) / usd_per(pair.currency())
}

/// Prices set for single pairs, besides BTC-USD.
#[derive(Debug, Default)]
pub(crate) struct PairPrices(Mutex<Vec<(Pair, f64)>>);

impl PairPrices {
    /// The price set for `pair`, else its level from `btc_usd`.
    pub fn get(&self, pair: &Pair, btc_usd: f64) -> f64 {
        let set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        set.iter().find(|(p, _)| p == pair).map_or_else(|| level(pair, btc_usd), |(_, price)| *price)
    }

    pub fn set(&self, pair: &Pair, price: f64) {
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        set.retain(|(p, _)| p != pair);
        set.push((pair.clone(), price));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_plausible_and_btc_usd_is_itself() {
        let at = |pair: &str| level(&pair.parse().expect("a pair"), 97_000.0);
        assert_eq!(at("BTC-USD"), 97_000.0);
        assert!((83_000.0..84_000.0).contains(&at("BTC-EUR")), "{}", at("BTC-EUR"));
        assert!((72_000.0..73_500.0).contains(&at("BTC-GBP")), "{}", at("BTC-GBP"));
        assert!((at("ETH-USD") - 3_000.0).abs() < 1e-6, "{}", at("ETH-USD"));
    }

    #[test]
    fn a_price_set_for_a_pair_wins_over_its_level() {
        let prices = PairPrices::default();
        let eth: Pair = "ETH-USD".parse().expect("a pair");
        prices.set(&eth, 3_210.5);
        prices.set(&eth, 3_200.0);
        assert_eq!(prices.get(&eth, 50_000.0), 3_200.0);
        assert_eq!(prices.get(&"BTC-EUR".parse().expect("a pair"), 116.0), 100.0);
    }
}
