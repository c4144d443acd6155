//! Every NATS name the pipeline uses. These are a public API for NATS subscribers: the README's
//! "NATS subjects" section documents them, so change both together.

use std::fmt;
use std::str::FromStr;

/// The JetStream stream that stores every consensus tick (durable history, de-duplication).
pub const TICKS_STREAM: &str = "PRICES";
/// Subjects captured by [`TICKS_STREAM`]: one subject per pair, [`Pair::ticks_subject`].
pub const TICKS_SUBJECTS: &str = "prices.ticks.>";
/// The seed's pair, BTC-USD: the one the seed's paths (`/btc/USD`, `/btc/average`) serve.
pub const PAIR: &str = "BTC-USD";
/// Subject a BTC-USD tick is published on (`Pair::ticks_subject` of [`PAIR`]).
pub const TICK_SUBJECT: &str = "prices.ticks.BTC-USD";
/// The pairs priced when `PAIRS` is not set: those that enough of the default exchanges quote
/// for the default quorum (the publisher checks this at start and in a test).
pub const DEFAULT_PAIRS: &str = "BTC-USD,BTC-EUR,BTC-GBP,ETH-USD";
/// Default durable consumer name of the aggregator on [`TICKS_STREAM`].
pub const AGGREGATOR_CONSUMER: &str = "aggregator";
/// KV bucket holding the aggregated state the frontends serve: one key per pair,
/// [`Pair::state_key`].
pub const STATE_BUCKET: &str = "price_state";
/// Key of the BTC-USD state inside [`STATE_BUCKET`] (KV subject `$KV.price_state.BTC-USD`).
pub const STATE_KEY: &str = "BTC-USD";
/// KV bucket holding the aggregator's window checkpoints: one key per pair ([`Pair::state_key`]),
/// whose value is everything its window, candles and position hold, so that a restart reads only
/// the ticks stored after it instead of the whole window. Internal to the aggregator (a binary
/// format of its own, versioned inside the value): not for other subscribers.
pub const CHECKPOINT_BUCKET: &str = "window_checkpoint";
/// KV bucket holding the publishers' lease: the replica named in it is the one that polls the
/// exchanges. Written only by publishers, compare-and-set; its entries expire after the lease TTL.
pub const LEASE_BUCKET: &str = "publisher_lease";
/// Key of the publishers' lease inside [`LEASE_BUCKET`] (KV subject `$KV.publisher_lease.BTC-USD`).
/// One lease covers every pair; the key keeps the name it had when BTC-USD was the only pair, so
/// that during a rolling upgrade old and new replicas still compete for the same lease.
pub const LEASE_KEY: &str = "BTC-USD";

/// A currency pair, `ASSET-CURRENCY` in upper case (`BTC-USD`): the last token of its ticks
/// subject and its key in the state bucket. Parsed case-insensitively; each side is 2 to 10 ASCII
/// letters or digits, so it is always a single, literal NATS subject token and a valid KV key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pair {
    /// `BTC-USD`: kept whole, since subjects, keys and logs all want this spelling.
    name: String,
    split: usize,
}

/// Why a text is not a pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a pair: expected ASSET-CURRENCY, each 2 to 10 letters or digits (e.g. BTC-USD)")]
pub struct PairError {
    pub text: String,
}

impl Pair {
    /// The pair of `asset` and `currency`, each checked and upper-cased.
    pub fn new(asset: &str, currency: &str) -> Result<Self, PairError> {
        let valid = |side: &str| (2..=10).contains(&side.len()) && side.bytes().all(|b| b.is_ascii_alphanumeric());
        if !valid(asset) || !valid(currency) {
            return Err(PairError { text: format!("{asset}-{currency}") });
        }
        Ok(Self {
            name: format!("{}-{}", asset.to_ascii_uppercase(), currency.to_ascii_uppercase()),
            split: asset.len(),
        })
    }

    /// The seed's pair, [`PAIR`].
    pub fn seed() -> Self {
        Self { name: PAIR.to_string(), split: 3 }
    }

    /// `BTC`.
    pub fn asset(&self) -> &str {
        &self.name[..self.split]
    }

    /// `USD`.
    pub fn currency(&self) -> &str {
        &self.name[self.split + 1..]
    }

    /// `/btc/USD`: the pair's HTTP path, the asset in lower case as the seed wrote `/btc/USD`.
    pub fn http_path(&self) -> String {
        format!("/{}/{}", self.asset().to_ascii_lowercase(), self.currency())
    }

    /// `BTC-USD`.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The subject its ticks are published on, `prices.ticks.BTC-USD`.
    pub fn ticks_subject(&self) -> String {
        format!("prices.ticks.{}", self.name)
    }

    /// The subject its closed `interval` candles are published on, `prices.candles.1m.BTC-USD`
    /// (stored in [`crate::Interval::stream`]).
    pub fn candles_subject(&self, interval: crate::Interval) -> String {
        format!("prices.candles.{interval}.{}", self.name)
    }

    /// Its key in [`STATE_BUCKET`].
    pub fn state_key(&self) -> &str {
        &self.name
    }

    /// The pair a ticks subject belongs to; `None` for any other subject.
    pub fn of_ticks_subject(subject: &str) -> Option<Self> {
        subject.strip_prefix("prices.ticks.")?.parse().ok()
    }

    /// A comma-separated list (`PAIRS`): at least one pair, repeats dropped, order kept.
    pub fn parse_list(text: &str) -> Result<Vec<Pair>, PairError> {
        let mut pairs: Vec<Pair> = Vec::new();
        for item in text.split(',') {
            let pair: Pair = item.parse()?;
            if !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
        Ok(pairs)
    }

    /// [`DEFAULT_PAIRS`].
    pub fn defaults() -> Vec<Pair> {
        Self::parse_list(DEFAULT_PAIRS).unwrap_or_else(|_| vec![Self::seed()])
    }
}

impl FromStr for Pair {
    type Err = PairError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (asset, currency) = text.split_once('-').ok_or_else(|| PairError { text: text.to_string() })?;
        Self::new(asset, currency).map_err(|_| PairError { text: text.to_string() })
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The `Nats-Msg-Id` of `pair`'s tick for the round that starts at `slot_start_ms` (unix
/// milliseconds).
///
/// Derived from the pair and the round's time slot alone, so two publisher replicas or a retry of
/// the same round produce the same id and JetStream stores the tick once.
pub fn tick_msg_id(pair: &Pair, slot_start_ms: i64) -> String {
    format!("{pair}:{slot_start_ms}")
}

/// The `Nats-Msg-Id` of `pair`'s `interval` candle starting at `start_ms`: from the interval's
/// start, so a replay or a second aggregator stores each candle once.
pub fn candle_msg_id(pair: &Pair, interval: crate::Interval, start_ms: i64) -> String {
    format!("{pair}:{interval}:{start_ms}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_pair_s_names_are_its_pair_s_names() {
        let seed = Pair::seed();
        assert_eq!(seed, PAIR.parse().expect("a pair"));
        assert_eq!(seed.ticks_subject(), TICK_SUBJECT);
        assert_eq!(seed.state_key(), STATE_KEY);
        assert!(TICK_SUBJECT.starts_with(TICKS_SUBJECTS.trim_end_matches('>')));
        assert_eq!((seed.asset(), seed.currency()), ("BTC", "USD"));
    }

    #[test]
    fn pairs_parse_in_any_case_and_print_in_upper_case() {
        let pair: Pair = "eth-Eur".parse().expect("a pair");
        assert_eq!((pair.as_str(), pair.asset(), pair.currency()), ("ETH-EUR", "ETH", "EUR"));
        assert_eq!(Pair::new("usdc", "usd").map(|p| p.to_string()), Ok("USDC-USD".to_string()));
        assert_eq!(Pair::of_ticks_subject("prices.ticks.BTC-GBP"), Some(Pair::new("BTC", "GBP").expect("a pair")));
        assert_eq!(Pair::of_ticks_subject("prices.candles.1m.BTC-GBP"), None);
    }

    #[test]
    fn anything_that_is_not_one_literal_subject_token_is_refused() {
        for text in
            ["BTC", "BTC-", "-USD", "B-USD", "BTC-USD-EUR", "BTC-U*D", "BTC->", "BTC-US.D", "BTC- USD", "ÄBC-USD"]
        {
            assert!(text.parse::<Pair>().is_err(), "{text} was accepted");
        }
        assert!("ABCDEFGHIJK-USD".parse::<Pair>().is_err());
    }

    #[test]
    fn the_default_list_parses_and_a_list_drops_repeats() {
        assert_eq!(Pair::defaults().len(), DEFAULT_PAIRS.split(',').count());
        let pairs = Pair::parse_list("btc-usd, ETH-USD,BTC-USD").expect("a list");
        assert_eq!(pairs.iter().map(Pair::as_str).collect::<Vec<_>>(), ["BTC-USD", "ETH-USD"]);
        assert!(Pair::parse_list("BTC-USD,,ETH-USD").is_err());
    }

    #[test]
    fn msg_id_depends_only_on_the_pair_and_the_slot() {
        let (usd, eur) = (Pair::seed(), Pair::new("BTC", "EUR").expect("a pair"));
        assert_eq!(tick_msg_id(&usd, 1_764_010_800_000), "BTC-USD:1764010800000");
        assert_eq!(tick_msg_id(&usd, 5), tick_msg_id(&usd, 5));
        assert_ne!(tick_msg_id(&usd, 5), tick_msg_id(&usd, 6));
        assert_ne!(tick_msg_id(&usd, 5), tick_msg_id(&eur, 5));
    }
}
