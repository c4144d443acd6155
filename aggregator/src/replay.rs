//! Rebuilding the window from the stream on start, so that a restarted aggregator holds exactly
//! what one that never stopped holds.
//!
//! A tick can change the window only if it is the carry-in (at most `max_hold` before the
//! window's start) or inside the window, so replay must read every tick stamped after
//! `newest - window - max_hold`. JetStream reads by storage time, and a tick is stored at most
//! `max_clock_skew` before its own time (later ones are refused), so reading from
//! `newest - window - max_hold - max_clock_skew` is exact. The newest tick is only known after
//! reading; the first read starts from a guess based on the last message's storage time and is
//! repeated from the exact start in the rare case the guess was late (a tick stored long after
//! its time) or found no tick at all.

use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;

use btc_contract::{Pair, PriceState};

use crate::aggregates::Aggregates;
use crate::checkpoint::Checkpoint;
use crate::error::AggregatorError;
use crate::metrics::AggregatorMetrics;
use crate::state::{Aggregate, WindowRules};

/// Where a read of the stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The first message stored at or after this time.
    Time(DateTime<Utc>),
    /// The stream's first message.
    Beginning,
    /// The message at this sequence, or the first after it.
    Sequence(u64),
}

/// The first read's start, from the time the stream stored its last message: ticks are
/// normally stored within `max_clock_skew` after their own time, so the newest tick is at most
/// that much older than the last message.
pub fn first_read(rules: &WindowRules, last_stored: DateTime<Utc>) -> ReadFrom {
    ReadFrom::Time(last_stored - span(rules) - span_of(rules.max_clock_skew))
}

/// After a read from `from` into `aggregate`: `None` if it saw every tick that can change the
/// window, else where to read again from (into a fresh aggregate).
pub fn read_again_from(from: ReadFrom, aggregate: &Aggregate) -> Option<ReadFrom> {
    let ReadFrom::Time(start) = from else { return None };
    let Some(newest_ms) = aggregate.newest_time_ms() else { return Some(ReadFrom::Beginning) };
    let newest = Utc.timestamp_millis_opt(newest_ms).single()?;
    let exact = newest - span(&aggregate.rules());
    (exact < start).then_some(ReadFrom::Time(exact))
}

/// Where a pair's replay starts: the window's first read, or earlier where the candles go on
/// from an older stored state (a tick after its newest was stored at most `max_clock_skew` before
/// its own time); without a stored state, the stream's beginning (the candles are filled in).
pub fn replay_start(rules: &WindowRules, last_stored: DateTime<Utc>, stored: Option<&PriceState>) -> ReadFrom {
    match stored {
        Some(state) => earlier(first_read(rules, last_stored), state.latest.time - span_of(rules.max_clock_skew)),
        None => ReadFrom::Beginning,
    }
}

/// The earlier of a read from `from` and one from `time`.
fn earlier(from: ReadFrom, time: DateTime<Utc>) -> ReadFrom {
    match from {
        ReadFrom::Time(start) => ReadFrom::Time(start.min(time)),
        other => other,
    }
}

/// `window + max_hold + max_clock_skew`: how far before the newest tick a tick that can still
/// change the window may have been stored.
fn span(rules: &WindowRules) -> chrono::Duration {
    span_of(rules.window) + span_of(rules.max_hold) + span_of(rules.max_clock_skew)
}

fn span_of(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// What was stored for a pair before a start: its state and its window checkpoint.
#[derive(Debug, Clone)]
pub struct StoredPair {
    pub pair: Pair,
    pub state: Option<PriceState>,
    pub checkpoint: Option<Checkpoint>,
}

/// Rebuilds every pair's window from the ticks stored on its subject, up to the stream's last
/// message at start, and returns them with every sequence up to that message marked as seen. The
/// pairs are read concurrently, each by its own ordered consumer.
///
/// A pair with a usable checkpoint ([`crate::checkpoint`]) starts from it and reads only the
/// ticks stored after it.
///
/// Candles go on from the state stored for the pair (its newest tick and open candles), so the
/// read starts early enough for the ticks after that state too. A pair without a stored state
/// reads every tick the stream still holds: the candles of that history are filled in (those
/// that started before the oldest tick are partial and left out).
pub async fn rebuild(
    stream: &stream::Stream,
    pairs: Vec<StoredPair>,
    rules: WindowRules,
    metrics: &AggregatorMetrics,
) -> Result<Aggregates, AggregatorError> {
    let mut stream_handle = stream.clone();
    let info = stream_handle.info().await.map_err(|e| AggregatorError::Stream(e.to_string()))?.clone();
    let info = &info;
    let rebuilt = pairs.into_iter().map(|mut stored| async move {
        match restored(&mut stored, rules, info) {
            Some(aggregate) => {
                metrics.count_window_start("checkpoint");
                resume(stream, info, aggregate, metrics).await
            }
            None => {
                metrics.count_window_start("replay");
                rebuild_pair(stream, info, (&stored.pair, stored.state.as_ref()), rules, metrics).await
            }
        }
    });
    let rebuilt = futures::future::try_join_all(rebuilt).await?;
    Ok(Aggregates::rebuilt(rebuilt, info.state.last_sequence))
}

/// The aggregate `stored`'s checkpoint (taken out of it) holds, if it is usable with the stream as `info` found it:
/// one of this pair, rules and stream, after which the stream still holds every tick (none was
/// purged or aged out since, nor any the window still holds).
fn restored(stored: &mut StoredPair, rules: WindowRules, info: &stream::Info) -> Option<Aggregate> {
    // Taken, not copied: a checkpoint holds up to a whole window of ticks.
    let checkpoint = stored.checkpoint.take()?;
    let pair = stored.pair.as_str();
    let aggregate = match Aggregate::restore(stored.pair.clone(), rules, info.created, checkpoint) {
        Ok(aggregate) => aggregate,
        Err(why) => {
            tracing::info!(pair, why, "window checkpoint not used; replaying the window");
            return None;
        }
    };
    let needed = aggregate.oldest_held_sequence().unwrap_or(u64::MAX).min(aggregate.applied_sequence() + 1);
    if info.state.first_sequence > needed {
        tracing::info!(
            pair,
            first_sequence = info.state.first_sequence,
            needed,
            "the stream no longer holds the ticks after the window checkpoint; replaying the window"
        );
        return None;
    }
    Some(aggregate)
}

/// Reads the ticks stored after `aggregate`'s checkpoint, up to the stream's last message as
/// `info` found it.
async fn resume(
    stream: &stream::Stream,
    info: &stream::Info,
    mut aggregate: Aggregate,
    metrics: &AggregatorMetrics,
) -> Result<Aggregate, AggregatorError> {
    let (from, target) = (aggregate.applied_sequence() + 1, info.state.last_sequence);
    tracing::info!(pair = aggregate.pair().as_str(), from_sequence = from, "window restored from its checkpoint");
    if from <= target {
        let subject = aggregate.pair().ticks_subject();
        read(stream, &subject, ReadFrom::Sequence(from), target, &mut aggregate, metrics).await?;
    }
    Ok(aggregate)
}

/// Rebuilds one pair's window and candles from the stream as `info` found it.
async fn rebuild_pair(
    stream: &stream::Stream,
    info: &stream::Info,
    (pair, stored): (&Pair, Option<&PriceState>),
    rules: WindowRules,
    metrics: &AggregatorMetrics,
) -> Result<Aggregate, AggregatorError> {
    let (subject, target) = (pair.ticks_subject(), info.state.last_sequence);
    let stored = stored.filter(|state| state.stream_created == Some(info.created));
    let mut from = replay_start(&rules, info.state.last_timestamp, stored);
    loop {
        let mut aggregate = Aggregate::for_stream(pair.clone(), rules, info.created);
        if let Some(state) = stored {
            aggregate.resume_candles(state);
        }
        if info.state.messages > 0 {
            read(stream, &subject, from, target, &mut aggregate, metrics).await?;
        }
        match read_again_from(from, &aggregate) {
            Some(earlier) if info.state.messages > 0 => from = earlier,
            _ => return Ok(aggregate),
        }
    }
}

/// How long a replay may wait for the next message before it gives up.
const REPLAY_STALL: Duration = Duration::from_secs(10);

/// Reads the messages on `subject` from `from` up to sequence `target` into `aggregate`.
async fn read(
    stream: &stream::Stream,
    subject: &str,
    from: ReadFrom,
    target: u64,
    aggregate: &mut Aggregate,
    metrics: &AggregatorMetrics,
) -> Result<(), AggregatorError> {
    let deliver_policy = match from {
        ReadFrom::Time(start_time) => consumer::DeliverPolicy::ByStartTime { start_time },
        ReadFrom::Beginning => consumer::DeliverPolicy::All,
        ReadFrom::Sequence(start_sequence) => consumer::DeliverPolicy::ByStartSequence { start_sequence },
    };
    let ordered = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy,
            filter_subject: subject.to_string(),
            ..Default::default()
        })
        .await
        .map_err(|e| AggregatorError::Stream(e.to_string()))?;
    // A pair with no tick from there on (a pair just added, one silent since) has nothing to
    // deliver: waiting for a first message would only end in the stall timeout.
    if ordered.cached_info().num_pending == 0 {
        return Ok(());
    }
    let mut messages = ordered.messages().await.map_err(|e| AggregatorError::Stream(e.to_string()))?;
    loop {
        let message = match tokio::time::timeout(REPLAY_STALL, messages.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => return Err(AggregatorError::Stream(error.to_string())),
            Ok(None) => return Ok(()),
            Err(_) => return Err(AggregatorError::Stream(format!("replay stalled for {REPLAY_STALL:?}"))),
        };
        let Ok(info) = message.info() else { continue };
        let (sequence, pending) = (info.stream_sequence, info.pending);
        if sequence > target {
            return Ok(());
        }
        metrics.count_tick(aggregate.ingest(sequence, &message.payload, info.published));
        if sequence == target || pending == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{RULES, at_ms as at, seed, tick_ms as tick, tick_with_broken_quotes};
    use chrono::DateTime;
    use proptest::prelude::*;

    /// A message as the stream stores it.
    #[derive(Debug, Clone)]
    struct Stored {
        sequence: u64,
        stored_ms: i64,
        payload: Vec<u8>,
    }

    /// The same rebuild as [`rebuild`], over an in-memory stream (JetStream's by-start-time
    /// delivery: the first message stored at or after the time).
    fn rebuild_from(stream: &[Stored], stored: Option<&PriceState>) -> Aggregate {
        let target = stream.last().map_or(0, |m| m.sequence);
        let mut from = replay_start(&RULES, at(stream.last().map_or(0, |m| m.stored_ms)), stored);
        loop {
            let mut aggregate = Aggregate::new(seed(), RULES);
            if let Some(state) = stored {
                aggregate.resume_candles(state);
            }
            for message in stream {
                let wanted = match from {
                    ReadFrom::Time(start) => at(message.stored_ms) >= start,
                    ReadFrom::Beginning => true,
                    ReadFrom::Sequence(first) => message.sequence >= first,
                };
                if wanted {
                    aggregate.ingest(message.sequence, &message.payload, at(message.stored_ms));
                }
            }
            match read_again_from(from, &aggregate) {
                Some(earlier) if !stream.is_empty() => from = earlier,
                _ => {
                    aggregate.skip_to(target);
                    return aggregate;
                }
            }
        }
    }

    /// One published message: storage time advances (sometimes by more than the window), the
    /// tick's own time is usually a little before it but can be far before or after (a late
    /// publish, a skewed publisher clock, some refused as future), and now and then it repeats an
    /// earlier tick's time, is garbage, or is a tick whose quotes do not read (its head does).
    #[derive(Debug, Clone)]
    enum Published {
        Tick { advance_ms: i64, delay_ms: i64, price_cents: u32 },
        RepeatTimeOf { back: usize, advance_ms: i64, price_cents: u32 },
        Garbage { advance_ms: i64 },
        BrokenQuotes { advance_ms: i64, price_cents: u32 },
    }

    fn published() -> impl Strategy<Value = Published> {
        let advance = prop_oneof![8 => 0i64..2_000, 2 => 2_000i64..20_000, 1 => 20_000i64..1_500_000];
        let delay = prop_oneof![8 => 0i64..3_000, 1 => -90_000i64..0, 1 => 3_000i64..200_000];
        prop_oneof![
            12 => (advance.clone(), delay, 5_000_000u32..6_000_000)
                .prop_map(|(advance_ms, delay_ms, price_cents)| Published::Tick { advance_ms, delay_ms, price_cents }),
            1 => (1usize..50, advance.clone(), 5_000_000u32..6_000_000)
                .prop_map(|(back, advance_ms, price_cents)| Published::RepeatTimeOf { back, advance_ms, price_cents }),
            1 => advance.clone().prop_map(|advance_ms| Published::Garbage { advance_ms }),
            1 => (advance, 5_000_000u32..6_000_000)
                .prop_map(|(advance_ms, price_cents)| Published::BrokenQuotes { advance_ms, price_cents }),
        ]
    }

    fn store(history: &[Published]) -> Vec<Stored> {
        let (mut stored_ms, mut times, mut stream) = (0i64, Vec::new(), Vec::new());
        for (index, message) in history.iter().enumerate() {
            let (advance_ms, payload) = match *message {
                Published::Tick { advance_ms, delay_ms, price_cents } => {
                    let time = stored_ms + advance_ms - delay_ms;
                    times.push(time);
                    (advance_ms, tick(time, f64::from(price_cents) / 100.0))
                }
                Published::RepeatTimeOf { back, advance_ms, price_cents } => {
                    let time = times.len().checked_sub(back).map_or(stored_ms, |i| times[i]);
                    (advance_ms, tick(time, f64::from(price_cents) / 100.0))
                }
                Published::Garbage { advance_ms } => (advance_ms, b"{\"schema_version\":1,\"price\":".to_vec()),
                Published::BrokenQuotes { advance_ms, price_cents } => {
                    let time = stored_ms + advance_ms;
                    times.push(time);
                    (advance_ms, tick_with_broken_quotes(time, f64::from(price_cents) / 100.0))
                }
            };
            stored_ms += advance_ms;
            stream.push(Stored { sequence: index as u64 + 1, stored_ms, payload });
        }
        stream
    }

    fn state_bytes(aggregate: &mut Aggregate) -> Option<Vec<u8>> {
        aggregate.state().map(|state| state.encode())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// A restart at any point, with the consumer redelivering from any earlier point,
        /// rebuilds the state a continuous run holds, bit for bit, at every later message,
        /// wherever the continuous run's batches ended.
        #[test]
        fn a_rebuilt_window_equals_one_that_ran_throughout(
            history in prop::collection::vec(published(), 1..400),
            restart_at in any::<prop::sample::Index>(),
            redelivered_from in any::<prop::sample::Index>(),
            redeliveries in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
            batch_ends in prop::collection::vec(any::<bool>(), 400),
        ) {
            let stream = store(&history);
            let restart = restart_at.index(stream.len()) + 1;
            let mut continuous = Aggregate::new(seed(), RULES);
            for (i, message) in stream.iter().enumerate() {
                continuous.ingest(message.sequence, &message.payload, at(message.stored_ms));
                // Redeliveries of earlier messages to the running aggregator change nothing.
                if let Some(again) = redeliveries.get(i).map(|r| &stream[r.index(i + 1)]) {
                    continuous.ingest(again.sequence, &again.payload, at(again.stored_ms));
                }
                // A batch ends here and its state is made: where batches end changes nothing.
                if batch_ends[i] {
                    continuous.state();
                }
                if i + 1 == restart {
                    break;
                }
            }
            // The state the aggregator stored before the restart: where its candles go on from.
            let stored = continuous.state();
            let mut rebuilt = rebuild_from(&stream[..restart], stored.as_ref());
            prop_assert_eq!(state_bytes(&mut rebuilt), state_bytes(&mut continuous));
            // After the restart the durable consumer delivers from its ack floor, which may be
            // anywhere before: both go on with the same messages and stay equal.
            for message in &stream[redelivered_from.index(restart)..] {
                rebuilt.ingest(message.sequence, &message.payload, at(message.stored_ms));
                if message.sequence as usize > restart {
                    continuous.ingest(message.sequence, &message.payload, at(message.stored_ms));
                    prop_assert_eq!(state_bytes(&mut rebuilt), state_bytes(&mut continuous));
                }
            }
        }
    }

    /// The ticks stream's creation time in these tests.
    fn created() -> DateTime<Utc> {
        at(-1_000)
    }

    /// What a restart reads back of `aggregate`'s checkpoint, through its stored bytes.
    fn restored_from_checkpoint(aggregate: &Aggregate) -> Aggregate {
        let bytes = aggregate.checkpoint().encode().expect("a checkpoint encodes");
        let checkpoint = Checkpoint::decode(&bytes).expect("a checkpoint decodes");
        Aggregate::restore(seed(), RULES, created(), checkpoint).expect("the checkpoint restores")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// An aggregate restored from a checkpoint taken after any message goes on, with the
        /// messages after it, exactly as one that never stopped: the same state and closed candles
        /// at every later message, and in the end the same checkpoint, byte for byte (window,
        /// held sequences, candles being built, newest tick).
        #[test]
        fn a_window_restored_from_its_checkpoint_equals_one_that_ran_throughout(
            history in prop::collection::vec(published(), 1..400),
            checkpoint_at in any::<prop::sample::Index>(),
            batch_ends in prop::collection::vec(any::<bool>(), 400),
        ) {
            let stream = store(&history);
            let checkpoint_after = checkpoint_at.index(stream.len());
            let mut continuous = Aggregate::for_stream(seed(), RULES, created());
            let mut restored = None;
            for (i, message) in stream.iter().enumerate() {
                continuous.ingest(message.sequence, &message.payload, at(message.stored_ms));
                if batch_ends[i] {
                    continuous.state();
                }
                match restored.as_mut() {
                    None if i == checkpoint_after => {
                        // A checkpoint is taken once the batch's closed candles are published.
                        continuous.take_closed_candles();
                        let mut from_checkpoint = restored_from_checkpoint(&continuous);
                        prop_assert_eq!(state_bytes(&mut from_checkpoint), state_bytes(&mut continuous));
                        restored = Some(from_checkpoint);
                    }
                    None => {}
                    Some(from_checkpoint) => {
                        from_checkpoint.ingest(message.sequence, &message.payload, at(message.stored_ms));
                        prop_assert_eq!(state_bytes(from_checkpoint), state_bytes(&mut continuous));
                        prop_assert_eq!(from_checkpoint.take_closed_candles(), continuous.take_closed_candles());
                    }
                }
            }
            let from_checkpoint = restored.expect("a checkpoint was taken");
            prop_assert_eq!(from_checkpoint.checkpoint().encode().ok(), continuous.checkpoint().encode().ok());
        }
    }

    #[test]
    fn after_an_outage_longer_than_the_window_the_carry_in_is_rebuilt() {
        // The old replay started 60 s before `now - window`: after a gap of more than 60 s the
        // tick that holds across the window's edge was missed.
        let mut stream = Vec::new();
        for (sequence, (time_ms, stored_ms)) in
            [(0, 500), (1_000, 1_500), (599_000, 700_000), (603_000, 703_500)].into_iter().enumerate()
        {
            stream.push(Stored {
                sequence: sequence as u64 + 1,
                stored_ms,
                payload: tick(time_ms, 100.0 + sequence as f64),
            });
        }
        let mut continuous = Aggregate::new(seed(), RULES);
        for message in &stream {
            continuous.ingest(message.sequence, &message.payload, at(message.stored_ms));
        }
        assert_eq!(state_bytes(&mut rebuild_from(&stream, continuous.state().as_ref())), state_bytes(&mut continuous));
        let average = continuous.state().expect("state").average;
        // Window [3 s, 603 s]: the tick at 1 s holds until 6 s (3 s inside), then 599..603 s.
        assert_eq!((average.covered_seconds, average.gap_seconds), (7.0, 593.0));
    }
}
