//! Applying one batch of delivered ticks to the aggregate: pure (no NATS, no metrics, no clock),
//! so the consumer loop in [`crate::follow`] only moves data in and out of it.

use btc_contract::{Candle, PriceState};
use chrono::{DateTime, Utc};

use crate::aggregates::Aggregates;
use crate::state::TickOutcome;

/// One tick as the stream delivered it, with the span its processing belongs to.
pub struct Delivered<'a> {
    /// Its pair's ticks subject.
    pub subject: &'a str,
    pub sequence: u64,
    /// Messages the consumer still had pending after this one.
    pub pending: u64,
    /// When the stream stored it: ticks are judged by this, never by this host's clock.
    pub stored_at: DateTime<Utc>,
    pub payload: &'a [u8],
    pub span: tracing::Span,
}

/// What a batch did.
#[derive(Debug, Default)]
pub struct BatchApplied {
    /// What became of each tick, in order.
    pub outcomes: Vec<TickOutcome>,
    /// The consumer's pending count after the batch's last tick.
    pub pending: Option<u64>,
    /// The candles the batch closed: published before the states are written.
    pub candles: Vec<Candle>,
    /// The states to write: of each pair the batch moved forward, once it has a tick.
    pub states: Vec<PriceState>,
    /// The span of the batch's newest tick: the state write belongs to its trace.
    pub newest_span: Option<tracing::Span>,
}

/// Applies every tick of a batch in order, each inside its own span.
pub fn apply_batch<'a>(aggregates: &mut Aggregates, batch: impl IntoIterator<Item = Delivered<'a>>) -> BatchApplied {
    let before = aggregates.positions();
    let mut applied = BatchApplied::default();
    for tick in batch {
        let outcome =
            tick.span.in_scope(|| aggregates.ingest(tick.subject, tick.sequence, tick.payload, tick.stored_at));
        applied.outcomes.push(outcome);
        applied.pending = Some(tick.pending);
        applied.newest_span = Some(tick.span);
    }
    // Only a pair whose position moved needs a write; redeliveries change nothing.
    applied.states = aggregates.states_moved_since(&before);
    applied.candles = aggregates.take_closed_candles();
    applied
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{RULES, at, seed, tick};
    use crate::window::Applied;

    fn delivered(sequence: u64, pending: u64, seconds: i64, payload: &[u8]) -> Delivered<'_> {
        Delivered {
            subject: "prices.ticks.BTC-USD",
            sequence,
            pending,
            stored_at: at(seconds),
            payload,
            span: tracing::Span::none(),
        }
    }

    #[test]
    fn a_batch_is_applied_in_order_and_yields_the_state_to_write() {
        let (a, b) = (tick(0, 100.0), tick(1, 102.0));
        let mut aggregates = Aggregates::new(&[seed()], RULES);
        let applied = apply_batch(&mut aggregates, [delivered(1, 1, 0, &a), delivered(2, 0, 1, &b)]);
        assert_eq!(applied.outcomes, [TickOutcome::Applied(Applied::Appended); 2]);
        assert_eq!(applied.pending, Some(0));
        assert_eq!(applied.states.len(), 1);
        assert_eq!(applied.states[0].latest.price, 102.0);
        assert_eq!(aggregates.seen(), 2);
        assert!(applied.newest_span.is_some());
    }

    #[test]
    fn a_batch_of_redeliveries_writes_nothing() {
        let a = tick(0, 100.0);
        let mut aggregates = Aggregates::new(&[seed()], RULES);
        apply_batch(&mut aggregates, [delivered(1, 0, 0, &a)]);
        let applied = apply_batch(&mut aggregates, [delivered(1, 0, 0, &a)]);
        assert_eq!(applied.outcomes, [TickOutcome::AlreadyApplied]);
        assert!(applied.states.is_empty());
    }

    #[test]
    fn invalid_and_future_ticks_are_counted_and_skipped_but_move_the_position() {
        let (bad, future) = (b"not a tick".to_vec(), tick(120, 100.0));
        let mut aggregates = Aggregates::new(&[seed()], RULES);
        let applied = apply_batch(&mut aggregates, [delivered(1, 1, 0, &bad), delivered(2, 0, 0, &future)]);
        assert_eq!(applied.outcomes, [TickOutcome::Invalid, TickOutcome::Future]);
        // No tick yet, so nothing to write, but neither is read again.
        assert!(applied.states.is_empty());
        assert_eq!(aggregates.seen(), 2);
    }

    #[test]
    fn an_empty_batch_changes_nothing() {
        let mut aggregates = Aggregates::new(&[seed()], RULES);
        let applied = apply_batch(&mut aggregates, []);
        assert!(applied.outcomes.is_empty() && applied.pending.is_none() && applied.states.is_empty());
    }
}
