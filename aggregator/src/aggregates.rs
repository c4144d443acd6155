//! Every pair this aggregator handles, fed by one consumer: a message goes to the aggregate of
//! its subject's pair. Pure, like [`crate::state`].
//!
//! The consumer delivers the pairs' ticks interleaved, in stream order, so once a message is read
//! every earlier one of these subjects has been: [`Aggregates::seen`] is where a consumer created
//! again resumes. Each pair keeps its own applied sequence, which drops redeliveries per pair.

use btc_contract::{Candle, Pair, PriceState};
use chrono::{DateTime, Utc};

use crate::state::{Aggregate, TickOutcome, WindowRules};

#[derive(Debug, Clone)]
pub struct Aggregates {
    /// In the configured order.
    pairs: Vec<Aggregate>,
    /// Every message of these pairs' subjects up to this stream sequence has been read.
    seen: u64,
}

impl Aggregates {
    /// Empty aggregates of `pairs`.
    pub fn new(pairs: &[Pair], rules: WindowRules) -> Self {
        Self::rebuilt(pairs.iter().map(|pair| Aggregate::new(pair.clone(), rules)).collect(), 0)
    }

    /// Aggregates rebuilt from a stream up to sequence `seen`.
    pub fn rebuilt(mut pairs: Vec<Aggregate>, seen: u64) -> Self {
        for aggregate in &mut pairs {
            aggregate.skip_to(seen);
        }
        Self { pairs, seen }
    }

    pub fn seen(&self) -> u64 {
        self.seen
    }

    pub fn iter(&self) -> impl Iterator<Item = &Aggregate> {
        self.pairs.iter()
    }

    /// Creation time of the ticks stream these were read from (all pairs read the same one).
    pub fn stream_created(&self) -> Option<DateTime<Utc>> {
        self.pairs.first().and_then(Aggregate::stream_created)
    }

    /// The lowest sequence any pair's window may still need from the stream.
    pub fn oldest_held_sequence(&self) -> Option<u64> {
        self.pairs.iter().filter_map(Aggregate::oldest_held_sequence).min()
    }

    /// Each pair's applied sequence, in order: compared after a batch to see which pairs moved.
    pub fn positions(&self) -> Vec<u64> {
        self.pairs.iter().map(Aggregate::applied_sequence).collect()
    }

    /// The states of the pairs whose position is past the one in `before` (from [`positions`]).
    ///
    /// [`positions`]: Aggregates::positions
    pub fn states_moved_since(&mut self, before: &[u64]) -> Vec<PriceState> {
        let moved = self.pairs.iter_mut().zip(before).filter(|(aggregate, was)| aggregate.applied_sequence() > **was);
        moved.filter_map(|(aggregate, _)| aggregate.state()).collect()
    }

    /// Every pair's candles closed since the last call, pair by pair.
    pub fn take_closed_candles(&mut self) -> Vec<Candle> {
        self.pairs.iter_mut().flat_map(Aggregate::take_closed_candles).collect()
    }

    /// Every pair's state, where it has one.
    pub fn states(&mut self) -> Vec<PriceState> {
        self.pairs.iter_mut().filter_map(Aggregate::state).collect()
    }

    /// Reads the message stored at `sequence` on `subject` into its pair's aggregate.
    pub fn ingest(&mut self, subject: &str, sequence: u64, payload: &[u8], stored_at: DateTime<Utc>) -> TickOutcome {
        self.seen = self.seen.max(sequence);
        let pair = subject.strip_prefix("prices.ticks.");
        match self.pairs.iter_mut().find(|aggregate| pair == Some(aggregate.pair().as_str())) {
            Some(aggregate) => aggregate.ingest(sequence, payload, stored_at),
            None => {
                tracing::warn!(sequence, subject, "message on a subject of no configured pair; ignored");
                TickOutcome::Invalid
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{RULES, at, tick};
    use crate::window::Applied;

    fn pair(text: &str) -> Pair {
        text.parse().expect("a pair")
    }

    /// A tick of `pair` at `seconds`.
    fn tick_of(pair: &str, seconds: i64, price: f64) -> Vec<u8> {
        String::from_utf8_lossy(&tick(seconds, price)).replace("BTC-USD", pair).into_bytes()
    }

    #[test]
    fn each_message_goes_to_its_subject_s_pair_and_the_position_is_shared() {
        let mut aggregates = Aggregates::new(&[pair("BTC-USD"), pair("ETH-USD")], RULES);
        let applied = TickOutcome::Applied(Applied::Appended);
        assert_eq!(aggregates.ingest("prices.ticks.BTC-USD", 1, &tick_of("BTC-USD", 0, 90_000.0), at(0)), applied);
        assert_eq!(aggregates.ingest("prices.ticks.ETH-USD", 2, &tick_of("ETH-USD", 0, 3_000.0), at(0)), applied);
        assert_eq!(aggregates.ingest("prices.ticks.BTC-USD", 3, &tick_of("BTC-USD", 1, 90_010.0), at(1)), applied);
        let states = aggregates.states();
        let latest: Vec<(&str, f64, u64)> =
            states.iter().map(|s| (s.latest.pair.as_str(), s.latest.price, s.stream_sequence)).collect();
        assert_eq!(latest, [("BTC-USD", 90_010.0, 3), ("ETH-USD", 3_000.0, 2)]);
        assert_eq!(aggregates.seen(), 3);
        // A redelivery of ETH's tick is dropped by ETH's own position.
        assert_eq!(
            aggregates.ingest("prices.ticks.ETH-USD", 2, &tick_of("ETH-USD", 0, 1.0), at(0)),
            TickOutcome::AlreadyApplied
        );
    }

    #[test]
    fn only_the_pairs_that_moved_are_written() {
        let mut aggregates = Aggregates::new(&[pair("BTC-USD"), pair("ETH-USD")], RULES);
        aggregates.ingest("prices.ticks.BTC-USD", 1, &tick_of("BTC-USD", 0, 90_000.0), at(0));
        aggregates.ingest("prices.ticks.ETH-USD", 2, &tick_of("ETH-USD", 0, 3_000.0), at(0));
        let before = aggregates.positions();
        aggregates.ingest("prices.ticks.ETH-USD", 3, &tick_of("ETH-USD", 1, 3_001.0), at(1));
        let moved = aggregates.states_moved_since(&before);
        assert_eq!(moved.iter().map(|s| s.latest.pair.as_str()).collect::<Vec<_>>(), ["ETH-USD"]);
    }

    #[test]
    fn a_message_of_another_subject_or_a_mislabelled_tick_is_invalid_but_seen() {
        let mut aggregates = Aggregates::new(&[pair("BTC-USD")], RULES);
        let other = tick_of("BTC-EUR", 0, 80_000.0);
        assert_eq!(aggregates.ingest("prices.ticks.BTC-EUR", 4, &other, at(0)), TickOutcome::Invalid);
        assert_eq!(aggregates.ingest("prices.ticks.BTC-USD", 5, &other, at(0)), TickOutcome::Invalid);
        assert_eq!((aggregates.seen(), aggregates.states().len()), (5, 0));
    }

    #[test]
    fn rebuilt_aggregates_start_every_pair_at_the_rebuilt_position() {
        let aggregates = Aggregates::rebuilt(vec![Aggregate::new(pair("BTC-USD"), RULES)], 42);
        assert_eq!((aggregates.seen(), aggregates.positions()), (42, vec![42]));
    }
}
