//! One round's consensus: the median of the fresh quotes, outliers excluded with hysteresis, a
//! quorum, and the dispersion of what was used. Pure: no I/O, no clock.
//!
//! The outlier rule follows index providers: a source further than `outlier_threshold` from the
//! median of all voting quotes is excluded, and re-admitted only once it is back within half that
//! distance, so a source hovering at the threshold does not flap in and out of the price.

use std::collections::BTreeSet;

use btc_contract::{Dispersion, QuoteStatus};

use crate::exchanges::Source;
use crate::quote::Quote;

/// The consensus settings of the publisher.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConsensusRules {
    /// Minimum number of agreeing sources for a tick.
    pub quorum: usize,
    /// Relative distance from the median beyond which a quote is an outlier (0.02 = 2 %).
    pub outlier_threshold: f64,
}

/// A round that produced a price.
#[derive(Debug, Clone, PartialEq)]
pub struct Consensus {
    pub price: f64,
    pub dispersion: Dispersion,
    /// Every quote of the round with what happened to it, in the order given.
    pub quotes: Vec<(Quote, QuoteStatus)>,
}

/// Why a round produced no tick.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoTick {
    #[error("no fresh quote from any voting source")]
    NoQuotes,
    #[error("only {agreeing} agreeing source(s), quorum is {quorum}")]
    NoQuorum { agreeing: usize, quorum: usize },
}

/// What changed in the outlier state this round, for counters and one log line per change.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OutlierChanges {
    pub excluded: Vec<Source>,
    pub readmitted: Vec<Source>,
}

/// Remembers which sources are currently excluded, across rounds.
#[derive(Debug, Default)]
pub struct OutlierFilter {
    excluded: BTreeSet<Source>,
}

impl OutlierFilter {
    pub fn is_excluded(&self, source: Source) -> bool {
        self.excluded.contains(&source)
    }

    /// Builds the round's consensus from fresh quotes (one per source) and updates the exclusions.
    pub fn apply(&mut self, quotes: &[Quote], rules: ConsensusRules) -> (Result<Consensus, NoTick>, OutlierChanges) {
        let mut changes = OutlierChanges::default();
        let voting: Vec<&Quote> = quotes.iter().filter(|q| !q.source.exchange().is_reference()).collect();
        let all_prices: Vec<f64> = voting.iter().map(|q| q.price.get()).collect();
        let Some(reference) = median(&all_prices) else {
            return (Err(NoTick::NoQuotes), changes);
        };

        for quote in &voting {
            let distance = (quote.price.get() - reference).abs() / reference;
            if self.excluded.contains(&quote.source) {
                if distance <= rules.outlier_threshold / 2.0 {
                    self.excluded.remove(&quote.source);
                    changes.readmitted.push(quote.source);
                }
            } else if distance > rules.outlier_threshold {
                self.excluded.insert(quote.source);
                changes.excluded.push(quote.source);
            }
        }

        let used: Vec<f64> =
            voting.iter().filter(|q| !self.excluded.contains(&q.source)).map(|q| q.price.get()).collect();
        let quorum = rules.quorum.max(1);
        let (Some(price), true) = (median(&used), used.len() >= quorum) else {
            return (Err(NoTick::NoQuorum { agreeing: used.len(), quorum }), changes);
        };

        let statuses = quotes
            .iter()
            .map(|q| {
                let status = if q.source.exchange().is_reference() {
                    QuoteStatus::Reference
                } else if self.excluded.contains(&q.source) {
                    QuoteStatus::Outlier
                } else {
                    QuoteStatus::Used
                };
                (q.clone(), status)
            })
            .collect();
        (Ok(Consensus { price, dispersion: dispersion(&used), quotes: statuses }), changes)
    }
}

/// Median of a set of prices; the mean of the two middle ones for an even count.
pub fn median(prices: &[f64]) -> Option<f64> {
    if prices.is_empty() {
        return None;
    }
    let mut sorted = prices.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 { sorted[middle] } else { (sorted[middle - 1] + sorted[middle]) / 2.0 })
}

fn dispersion(prices: &[f64]) -> Dispersion {
    let count = prices.len() as f64;
    let mean = prices.iter().sum::<f64>() / count;
    let variance = prices.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / count;
    Dispersion {
        low: prices.iter().copied().fold(f64::INFINITY, f64::min),
        high: prices.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        std_dev: variance.sqrt(),
        used: prices.len() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::price::Price;
    use chrono::{TimeZone, Utc};

    const RULES: ConsensusRules = ConsensusRules { quorum: 3, outlier_threshold: 0.02 };

    fn quote(source: Source, price: f64) -> Quote {
        let time = Utc.timestamp_opt(1_764_010_800, 0).single().expect("valid time");
        Quote { source, price: Price::new(price).expect("valid price"), quote_time: None, received_at: time }
    }

    fn round(filter: &mut OutlierFilter, prices: &[(Source, f64)]) -> (Result<Consensus, NoTick>, OutlierChanges) {
        let quotes: Vec<Quote> = prices.iter().map(|&(s, p)| quote(s, p)).collect();
        filter.apply(&quotes, RULES)
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn price_is_the_median_and_dispersion_covers_the_used_quotes() {
        let mut filter = OutlierFilter::default();
        let (result, changes) = round(
            &mut filter,
            &[(Source::Coinbase, 100.0), (Source::Kraken, 101.0), (Source::Bitstamp, 99.0), (Source::Gemini, 100.5)],
        );
        let consensus = result.expect("quorum reached");
        assert_eq!(consensus.price, 100.25);
        assert_eq!(consensus.dispersion.low, 99.0);
        assert_eq!(consensus.dispersion.high, 101.0);
        assert_eq!(consensus.dispersion.used, 4);
        assert!((consensus.dispersion.std_dev - 0.739509).abs() < 1e-6);
        assert_eq!(changes, OutlierChanges::default());
    }

    #[test]
    fn a_source_lying_by_20_percent_is_excluded_and_does_not_move_the_price() {
        let mut filter = OutlierFilter::default();
        let (result, changes) = round(
            &mut filter,
            &[(Source::Coinbase, 100.0), (Source::Kraken, 100.2), (Source::Bitstamp, 99.8), (Source::Gemini, 120.0)],
        );
        let consensus = result.expect("quorum reached");
        assert_eq!(consensus.price, 100.0);
        assert_eq!(changes.excluded, vec![Source::Gemini]);
        assert_eq!(consensus.quotes[3].1, QuoteStatus::Outlier);
        assert_eq!(consensus.dispersion.used, 3);
    }

    #[test]
    fn an_outlier_is_readmitted_only_within_half_the_threshold() {
        let mut filter = OutlierFilter::default();
        let honest = [(Source::Coinbase, 100.0), (Source::Kraken, 100.0), (Source::Bitstamp, 100.0)];
        let with = |gemini: f64| {
            let mut all = honest.to_vec();
            all.push((Source::Gemini, gemini));
            all
        };
        let _ = round(&mut filter, &with(103.0));
        assert!(filter.is_excluded(Source::Gemini));
        // Back inside the threshold but not inside half of it: still excluded.
        let (_, changes) = round(&mut filter, &with(101.5));
        assert!(filter.is_excluded(Source::Gemini));
        assert!(changes.readmitted.is_empty());
        // Within half the threshold: re-admitted and used again.
        let (result, changes) = round(&mut filter, &with(100.9));
        assert_eq!(changes.readmitted, vec![Source::Gemini]);
        assert_eq!(result.expect("quorum").dispersion.used, 4);
        // An admitted source between half and the full threshold stays admitted.
        let _ = round(&mut filter, &with(101.9));
        assert!(!filter.is_excluded(Source::Gemini));
    }

    #[test]
    fn below_quorum_there_is_no_tick() {
        let mut filter = OutlierFilter::default();
        let (result, _) = round(&mut filter, &[(Source::Coinbase, 100.0), (Source::Kraken, 100.1)]);
        assert_eq!(result, Err(NoTick::NoQuorum { agreeing: 2, quorum: 3 }));
        let (result, _) = round(&mut filter, &[]);
        assert_eq!(result, Err(NoTick::NoQuotes));
    }

    #[test]
    fn sources_that_disagree_with_each_other_do_not_make_a_quorum() {
        let mut filter = OutlierFilter::default();
        let (result, changes) =
            round(&mut filter, &[(Source::Coinbase, 100.0), (Source::Kraken, 110.0), (Source::Bitstamp, 90.0)]);
        assert_eq!(result, Err(NoTick::NoQuorum { agreeing: 1, quorum: 3 }));
        assert_eq!(changes.excluded, vec![Source::Kraken, Source::Bitstamp]);
    }

    #[test]
    fn a_reference_source_is_shown_but_never_votes() {
        let mut filter = OutlierFilter::default();
        let (result, _) = round(
            &mut filter,
            &[(Source::Coinbase, 100.0), (Source::Kraken, 100.0), (Source::Bitstamp, 100.0), (Source::Coingecko, 50.0)],
        );
        let consensus = result.expect("quorum");
        assert_eq!(consensus.price, 100.0);
        assert_eq!(consensus.quotes[3].1, QuoteStatus::Reference);
        assert_eq!(consensus.dispersion.used, 3);
        // Alone, a reference source makes no tick.
        let (result, _) = round(&mut filter, &[(Source::Coingecko, 100.0)]);
        assert_eq!(result, Err(NoTick::NoQuotes));
    }
}
