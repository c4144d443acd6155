//! One pair's part of a round: its consensus over the fresh quotes of the sources that quote it,
//! its outlier filter (an exclusion holds for that pair only), and its "lost/regained quorum" log.

use btc_contract::{Pair, QuoteStatus, SCHEMA_VERSION, SourceQuote, Tick};
use chrono::{DateTime, Utc};

use crate::consensus::{Consensus, ConsensusRules, NoTick, OutlierFilter};
use crate::metrics::PublisherMetrics;
use crate::quote::Quote;

pub(super) struct PairRound {
    pub pair: Pair,
    filter: OutlierFilter,
    /// Why the previous round made no tick for this pair, to log a lost or regained quorum once.
    last_no_tick: Option<NoTick>,
}

impl PairRound {
    pub fn new(pair: Pair) -> Self {
        Self { pair, filter: OutlierFilter::default(), last_no_tick: None }
    }

    /// The pair's tick of `slot` from its fresh quotes (one per source), if they make a quorum.
    pub fn tick(
        &mut self,
        fresh: &[Quote],
        slot: DateTime<Utc>,
        rules: ConsensusRules,
        metrics: &PublisherMetrics,
    ) -> Option<Tick> {
        let pair = &self.pair;
        let (result, changes) = self.filter.apply(fresh, rules);
        for source in &changes.excluded {
            metrics.outliers.with_label_values(&[source.name(), pair.as_str()]).inc();
            tracing::warn!(%source, %pair, "quote excluded as an outlier");
        }
        for source in &changes.readmitted {
            tracing::info!(%source, %pair, "outlier back within half the threshold; re-admitted");
        }
        match result {
            Ok(consensus) => {
                if self.last_no_tick.take().is_some() {
                    tracing::info!(%pair, used = consensus.dispersion.used, "quorum regained; publishing ticks again");
                }
                Some(tick_of(consensus, pair, slot))
            }
            Err(no_tick) => {
                let reason = match no_tick {
                    NoTick::NoQuotes => "no_quotes",
                    NoTick::NoQuorum { .. } => "no_quorum",
                };
                metrics.rounds_without_tick.with_label_values(&[pair.as_str(), reason]).inc();
                if self.last_no_tick.as_ref() != Some(&no_tick) {
                    tracing::warn!(%pair, reason = %no_tick, fresh_quotes = fresh.len(), "no tick: not publishing a price for this pair this round");
                }
                self.last_no_tick = Some(no_tick);
                None
            }
        }
    }
}

/// The tick of `pair` for `slot` from a round's consensus.
fn tick_of(consensus: Consensus, pair: &Pair, slot: DateTime<Utc>) -> Tick {
    let oldest_quote_time = consensus
        .quotes
        .iter()
        .filter(|(_, status)| *status == QuoteStatus::Used)
        .map(|(quote, _)| quote.effective_time())
        .min();
    Tick {
        schema_version: SCHEMA_VERSION,
        pair: pair.to_string(),
        time: slot,
        oldest_quote_time,
        price: consensus.price,
        dispersion: consensus.dispersion,
        sources: consensus
            .quotes
            .into_iter()
            .map(|(quote, status)| SourceQuote {
                source: quote.source.name().to_string(),
                price: quote.price.get(),
                quote_time: quote.effective_time(),
                status,
            })
            .collect(),
    }
}
