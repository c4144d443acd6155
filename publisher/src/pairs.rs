//! Which configured source quotes which configured pair: the check at start that every pair has
//! a quorum of voting sources, and the feeds the rounds poll, one per (source, pair), paced so
//! that an exchange's requests for all of its pairs together stay within its rate limit.

use std::fmt;
use std::time::Duration;

use btc_contract::Pair;

use crate::exchanges::Source;

/// A pair that fewer than `QUORUM` of the configured voting sources quote: no tick could ever be
/// made for it, so the publisher refuses to start rather than publish nothing for it silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairQuorumError {
    pub pair: Pair,
    pub quorum: usize,
    /// Configured voting sources that quote the pair.
    pub quoting: Vec<Source>,
    /// Configured voting sources that do not list it.
    pub not_quoting: Vec<Source>,
    /// Configured reference sources (CoinGecko) that quote it: shown beside a tick, never a vote.
    pub reference: Vec<Source>,
}

impl std::error::Error for PairQuorumError {}

impl fmt::Display for PairQuorumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |sources: &[Source]| {
            if sources.is_empty() {
                "none".to_string()
            } else {
                sources.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
            }
        };
        write!(
            f,
            "pair {} (PAIRS) is quoted by {} configured source(s), fewer than QUORUM {}: quoted by {}; \
             not listed by {}",
            self.pair,
            self.quoting.len(),
            self.quorum,
            names(&self.quoting),
            names(&self.not_quoting),
        )?;
        if !self.reference.is_empty() {
            write!(f, "; {} quote(s) it but never vote(s)", names(&self.reference))?;
        }
        write!(f, ". Add sources that list it to SOURCES, lower QUORUM, or drop it from PAIRS")
    }
}

/// Checks that every pair has at least `quorum` configured voting sources that quote it; the
/// error names the first pair that has not.
pub fn check_quorum(sources: &[Source], pairs: &[Pair], quorum: usize) -> Result<(), PairQuorumError> {
    for pair in pairs {
        let (voting, reference): (Vec<Source>, Vec<Source>) =
            sources.iter().copied().partition(|s| !s.exchange().is_reference());
        let (quoting, not_quoting): (Vec<Source>, Vec<Source>) = voting.into_iter().partition(|s| s.quotes(pair));
        if quoting.len() < quorum {
            let reference = reference.into_iter().filter(|s| s.quotes(pair)).collect();
            return Err(PairQuorumError { pair: pair.clone(), quorum, quoting, not_quoting, reference });
        }
    }
    Ok(())
}

/// One (source, pair) the rounds poll.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    pub source: Source,
    pub pair: Pair,
    /// The source's base URL (its own or the `SOURCE_URLS` override).
    pub url: String,
    /// Shortest time between two requests of this feed.
    pub interval: Duration,
    /// How long after start this feed's first request waits.
    pub first_after: Duration,
}

/// The feeds of `endpoints` (sources with their base URLs) for `pairs`: every pair each source
/// quotes, in pair order.
///
/// An exchange's documented limit is per IP, so all of its pairs share it: each of its `n` feeds
/// is held to `n` times the exchange's minimum interval, and the `i`-th starts `i` minimum
/// intervals late, so its requests take turns, one minimum interval apart, instead of `n` at once.
/// More pairs therefore make each pair's quote older, never the exchange's request rate higher.
pub fn feeds(endpoints: &[(Source, String)], pairs: &[Pair]) -> Vec<Feed> {
    let mut feeds = Vec::new();
    for (source, url) in endpoints {
        let quoted: Vec<&Pair> = pairs.iter().filter(|pair| source.quotes(pair)).collect();
        let step = source.exchange().min_interval();
        let interval = step * u32::try_from(quoted.len()).unwrap_or(u32::MAX).max(1);
        for (turn, pair) in quoted.into_iter().enumerate() {
            let first_after = step * u32::try_from(turn).unwrap_or(u32::MAX);
            feeds.push(Feed { source: *source, pair: pair.clone(), url: url.clone(), interval, first_after });
        }
    }
    feeds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<Pair> {
        Pair::parse_list(text).expect("pairs")
    }

    fn sources(text: &str) -> Vec<Source> {
        text.split(',').map(|s| s.parse().expect("a source")).collect()
    }

    #[test]
    fn every_default_pair_has_a_quorum_among_the_default_sources() {
        use clap::Parser;
        let config = crate::PublisherConfig::try_parse_from(["publisher"]).expect("defaults parse");
        assert_eq!(config.pairs(), Pair::defaults());
        assert_eq!(check_quorum(&config.sources, &config.pairs(), config.quorum as usize), Ok(()));
    }

    #[test]
    fn a_pair_without_a_quorum_is_refused_naming_who_quotes_it_and_who_does_not() {
        let error = check_quorum(&sources("binanceus,kraken,gemini,coingecko"), &pairs("BTC-USD,BTC-EUR"), 3)
            .expect_err("BTC-EUR has two voting sources");
        assert_eq!(error.pair.as_str(), "BTC-EUR");
        assert_eq!(error.quoting, [Source::Kraken, Source::Gemini]);
        assert_eq!(error.not_quoting, [Source::BinanceUs]);
        assert_eq!(error.reference, [Source::Coingecko]);
        let text = error.to_string();
        for needle in ["BTC-EUR", "QUORUM 3", "quoted by kraken, gemini", "not listed by binanceus", "coingecko"] {
            assert!(text.contains(needle), "{needle:?} not in {text}");
        }
        // The same sources are enough for a lower quorum, or for USD alone.
        assert_eq!(check_quorum(&sources("binanceus,kraken,gemini,coingecko"), &pairs("BTC-USD,BTC-EUR"), 2), Ok(()));
        assert_eq!(check_quorum(&sources("binanceus,kraken,gemini"), &pairs("ETH-USD"), 3), Ok(()));
    }

    #[test]
    fn a_reference_source_never_counts_towards_the_quorum() {
        let error = check_quorum(&sources("coingecko,kraken"), &pairs("ETH-USD"), 2).expect_err("one voter");
        assert_eq!((error.quoting.len(), error.reference.len()), (1, 1));
        let error = check_quorum(&sources("coingecko"), &pairs("BTC-USD"), 1).expect_err("no voter");
        assert!(error.to_string().contains("quoted by none"), "{error}");
    }

    #[test]
    fn an_exchange_s_pairs_share_its_rate_limit_and_take_turns() {
        let endpoints = [(Source::Kraken, "k".to_string()), (Source::BinanceUs, "b".to_string())];
        let feeds = feeds(&endpoints, &pairs("BTC-USD,BTC-EUR,BTC-GBP,ETH-USD"));
        let second = Duration::from_secs(1);
        let kraken: Vec<_> = feeds.iter().filter(|f| f.source == Source::Kraken).collect();
        assert_eq!(kraken.len(), 4);
        assert!(kraken.iter().all(|f| f.interval == 4 * second && f.url == "k"));
        assert_eq!(
            kraken.iter().map(|f| f.first_after).collect::<Vec<_>>(),
            [Duration::ZERO, second, 2 * second, 3 * second]
        );
        // Binance.US lists two of them: each every two seconds, a second apart.
        let binance: Vec<_> = feeds.iter().filter(|f| f.source == Source::BinanceUs).collect();
        assert_eq!(binance.iter().map(|f| f.pair.as_str()).collect::<Vec<_>>(), ["BTC-USD", "ETH-USD"]);
        assert!(binance.iter().all(|f| f.interval == 2 * second));
        // Whatever the pairs, no exchange is asked more often than its minimum interval allows.
        for feed in &feeds {
            let per_second =
                feeds.iter().filter(|f| f.source == feed.source).count() as f64 / feed.interval.as_secs_f64();
            assert!(per_second <= 1.0 / feed.source.exchange().min_interval().as_secs_f64() + 1e-9);
        }
    }
}
