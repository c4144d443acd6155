//! What the aggregator holds in memory: the window, the newest tick and the last stream sequence
//! applied, and how a stored message becomes part of it. Pure: no I/O, no clock; a message is
//! judged by what it carries and by the time the stream stored it, never by this host's clock.

use std::collections::VecDeque;
use std::time::Duration;

use btc_contract::{Candle, Pair, PriceState, SCHEMA_VERSION, Tick, TickHead, WindowAverage};
use chrono::{DateTime, TimeZone, Utc};

use crate::candles::CandleBuilder;
use crate::checkpoint::Checkpoint;
use crate::window::{Applied, Window};

/// The rules every replica applies, so that all of them compute the same state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRules {
    /// Length of the rolling window.
    pub window: Duration,
    /// How long a price holds at most after its tick.
    pub max_hold: Duration,
    /// How far after the time the stream stored it a tick may be stamped.
    pub max_clock_skew: Duration,
}

impl WindowRules {
    pub fn window_seconds(&self) -> u32 {
        u32::try_from(self.window.as_secs()).unwrap_or(u32::MAX)
    }

    fn max_hold_ms(&self) -> i64 {
        i64::try_from(self.max_hold.as_millis()).unwrap_or(i64::MAX)
    }

    /// Window, max hold and max clock skew, ms: what a checkpoint was taken under.
    fn millis(&self) -> [u64; 3] {
        [self.window, self.max_hold, self.max_clock_skew].map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// What became of a message read from the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickOutcome {
    Applied(Applied),
    /// Its sequence was applied before (replay overlap, redelivery).
    AlreadyApplied,
    /// A head ([`TickHead`]) that does not read, an unknown schema version, a price outside the
    /// contract's bounds, or a tick of another pair than its subject's.
    Invalid,
    /// Stamped more than `max_clock_skew` after the stream stored it: a publisher clock running
    /// ahead would otherwise push the window's end forward and evict real prices.
    Future,
}

/// One pair's window and candles plus its newest tick and the last stream sequence applied.
#[derive(Debug, Clone)]
pub struct Aggregate {
    pair: Pair,
    rules: WindowRules,
    window: Window,
    candles: CandleBuilder,
    /// Candles closed and not yet taken to be published, oldest first.
    closed: Vec<Candle>,
    /// The newest tick appended, read whole: what a state serves.
    latest: Option<Tick>,
    /// The newest tick appended, as stored: only the tick a state is made with needs its quotes
    /// read, and a batch makes one state per pair.
    newest_appended: StoredTick,
    applied_sequence: u64,
    /// How long after its own time the stream stored the newest tick read, ms: the publisher's
    /// round and publish time plus any clock difference between publisher and NATS.
    store_delay_ms: Option<i64>,
    /// Creation time of the ticks stream this aggregate was read from (its identity: a stream
    /// created again starts its sequences at 1 again).
    stream_created: Option<DateTime<Utc>>,
    /// `(sequence, time ms)` of the applied ticks, in sequence order, trimmed from the front once
    /// a tick cannot change the window any more: tells whether a purge of the stream removed
    /// ticks this window still holds.
    held_sequences: VecDeque<(u64, i64)>,
}

impl Aggregate {
    pub fn new(pair: Pair, rules: WindowRules) -> Self {
        Self {
            candles: CandleBuilder::new(pair.as_str(), rules.max_hold_ms()),
            closed: Vec::new(),
            pair,
            rules,
            window: Window::new(rules.window, rules.max_hold),
            latest: None,
            newest_appended: StoredTick::default(),
            applied_sequence: 0,
            store_delay_ms: None,
            stream_created: None,
            held_sequences: VecDeque::new(),
        }
    }

    /// An empty aggregate of `pair` from the ticks stream created at `created`.
    pub fn for_stream(pair: Pair, rules: WindowRules, created: DateTime<Utc>) -> Self {
        Self { stream_created: Some(created), ..Self::new(pair, rules) }
    }

    pub fn pair(&self) -> &Pair {
        &self.pair
    }

    /// Goes on building candles from `stored`, the state last written for this pair from this
    /// stream: its newest tick and open candles are where the candles stood. A state of another
    /// pair or stream is ignored (the candles then count from the first tick read).
    pub fn resume_candles(&mut self, stored: &PriceState) {
        if stored.latest.pair != self.pair.as_str() || stored.stream_created != self.stream_created {
            return;
        }
        let latest = (stored.latest.time.timestamp_millis(), stored.latest.price);
        self.candles =
            CandleBuilder::resume(self.pair.as_str(), self.rules.max_hold_ms(), latest, &stored.open_candles);
    }

    /// The candles closed since the last call, oldest first (shortest interval first).
    pub fn take_closed_candles(&mut self) -> Vec<Candle> {
        std::mem::take(&mut self.closed)
    }

    pub fn rules(&self) -> WindowRules {
        self.rules
    }

    pub fn stream_created(&self) -> Option<DateTime<Utc>> {
        self.stream_created
    }

    /// The lowest stream sequence of a tick that may still be in the window: if the stream no
    /// longer holds it (purged), the window differs from what the stream gives and is rebuilt.
    pub fn oldest_held_sequence(&self) -> Option<u64> {
        self.held_sequences.front().map(|&(sequence, _)| sequence)
    }

    pub fn applied_sequence(&self) -> u64 {
        self.applied_sequence
    }

    pub fn newest_time_ms(&self) -> Option<i64> {
        self.window.newest_ms()
    }

    /// Seconds between the newest tick read and its storage in the stream.
    pub fn store_delay_seconds(&self) -> Option<f64> {
        self.store_delay_ms.map(|ms| ms as f64 / 1000.0)
    }

    /// Ticks the window retains (those inside it and the carry-in): the size of its checkpoint.
    pub fn retained_ticks(&self) -> usize {
        self.window.len()
    }

    /// Ticks inside the window.
    pub fn samples(&self) -> u32 {
        self.window.averages().map_or(0, |a| a.samples)
    }

    /// Marks everything up to `sequence` as seen without applying it.
    pub fn skip_to(&mut self, sequence: u64) {
        self.applied_sequence = self.applied_sequence.max(sequence);
    }

    /// Reads the message the stream stored at `sequence` and time `stored_at` into the window.
    /// A sequence already applied is ignored, so redelivery and the overlap of replay and
    /// consumer cannot count a tick twice.
    pub fn ingest(&mut self, sequence: u64, payload: &[u8], stored_at: DateTime<Utc>) -> TickOutcome {
        if sequence <= self.applied_sequence {
            return TickOutcome::AlreadyApplied;
        }
        self.applied_sequence = sequence;
        let tick = match TickHead::decode(payload) {
            Ok(tick) => tick,
            Err(error) => {
                tracing::warn!(sequence, %error, "unreadable tick; ignored");
                return TickOutcome::Invalid;
            }
        };
        if tick.pair != self.pair.as_str() {
            tracing::warn!(sequence, pair = %tick.pair, subject_pair = %self.pair, "tick of another pair than its subject's; ignored");
            return TickOutcome::Invalid;
        }
        let skew = chrono::Duration::from_std(self.rules.max_clock_skew).unwrap_or(chrono::Duration::MAX);
        if tick.time > stored_at + skew {
            tracing::warn!(sequence, time = %tick.time, %stored_at, "tick is stamped after its storage time; ignored");
            return TickOutcome::Future;
        }
        self.store_delay_ms = Some((stored_at - tick.time).num_milliseconds());
        let time_ms = tick.time.timestamp_millis();
        let outcome = self.window.apply(time_ms, tick.price);
        self.closed.extend(self.candles.apply(time_ms, tick.price));
        if outcome == Applied::Appended {
            self.newest_appended.keep(sequence, payload);
        }
        if matches!(outcome, Applied::Appended | Applied::Inserted) {
            self.hold_sequence(sequence, time_ms);
        }
        TickOutcome::Applied(outcome)
    }

    fn hold_sequence(&mut self, sequence: u64, time_ms: i64) {
        self.held_sequences.push_back((sequence, time_ms));
        let Some(newest) = self.window.newest_ms() else { return };
        let reach = i64::try_from((self.rules.window + self.rules.max_hold).as_millis()).unwrap_or(i64::MAX);
        while self.held_sequences.front().is_some_and(|&(_, time)| time <= newest.saturating_sub(reach)) {
            self.held_sequences.pop_front();
        }
    }

    /// Everything this aggregate holds, for [`Aggregate::restore`]. Taken once the candles it
    /// closed were taken ([`Aggregate::take_closed_candles`]) and published.
    pub fn checkpoint(&self) -> Checkpoint {
        let newest = &self.newest_appended;
        Checkpoint {
            pair: self.pair.as_str().to_string(),
            stream_created_ns: self.stream_created.and_then(|created| created.timestamp_nanos_opt()),
            rules_ms: self.rules.millis(),
            applied_sequence: self.applied_sequence,
            store_delay_ms: self.store_delay_ms,
            newest: (!newest.bytes.is_empty()).then(|| (newest.sequence, newest.bytes.clone())),
            candles: self.candles.clone(),
            window: self.window.retained().collect(),
            held: self.held_sequences.iter().copied().collect(),
        }
    }

    /// The aggregate `checkpoint` was taken of, if it is one of `pair` under `rules` from the
    /// ticks stream created at `created`; else why not.
    pub fn restore(
        pair: Pair,
        rules: WindowRules,
        created: DateTime<Utc>,
        checkpoint: Checkpoint,
    ) -> Result<Self, &'static str> {
        if checkpoint.pair != pair.as_str() || !checkpoint.candles.is_of(pair.as_str(), rules.max_hold_ms()) {
            return Err("of another pair");
        }
        if checkpoint.rules_ms != rules.millis() {
            return Err("taken under other window rules");
        }
        if checkpoint.stream_created_ns != created.timestamp_nanos_opt() {
            return Err("of another ticks stream");
        }
        let window =
            Window::restored(rules.window, rules.max_hold, checkpoint.window).ok_or("its window does not read")?;
        let mut newest_appended = StoredTick::default();
        if let Some((sequence, bytes)) = checkpoint.newest {
            newest_appended.keep(sequence, &bytes);
        }
        Ok(Self {
            pair,
            rules,
            window,
            candles: checkpoint.candles,
            closed: Vec::new(),
            latest: None,
            newest_appended,
            applied_sequence: checkpoint.applied_sequence,
            store_delay_ms: checkpoint.store_delay_ms,
            stream_created: Some(created),
            held_sequences: checkpoint.held.into(),
        })
    }

    /// The state to publish, once there is a tick, if the newest one reads whole.
    pub fn state(&mut self) -> Option<PriceState> {
        self.read_newest_whole();
        let latest = self.latest.clone()?;
        let averages = self.window.averages()?;
        Some(PriceState {
            schema_version: SCHEMA_VERSION,
            latest,
            average: WindowAverage {
                window_seconds: self.rules.window_seconds(),
                time_weighted: averages.time_weighted,
                mean: averages.mean,
                samples: averages.samples,
                from: millis(averages.from_ms),
                to: millis(averages.to_ms),
                covered_seconds: averages.covered_ms as f64 / 1000.0,
                gap_seconds: averages.gap_ms as f64 / 1000.0,
                complete: averages.complete,
            },
            stream_sequence: self.applied_sequence,
            stream_created: self.stream_created,
            open_candles: self.candles.open_candles(),
        })
    }

    /// Reads the newest appended tick whole to serve it, once. Its head was read, so the window
    /// holds its price; if its quotes do not read there is no state to serve until a tick that
    /// reads whole comes. Falling back to an older tick instead would make the state depend on
    /// where batches happened to end, and replicas would disagree.
    fn read_newest_whole(&mut self) {
        let newest = &mut self.newest_appended;
        if !newest.unread {
            return;
        }
        newest.unread = false;
        self.latest = match Tick::decode(&newest.bytes) {
            Ok(tick) => Some(tick),
            Err(error) => {
                tracing::warn!(sequence = newest.sequence, %error, "the newest tick's quotes do not read; no state until one does");
                None
            }
        };
    }
}

/// A tick as the stream stored it, in a buffer reused from tick to tick.
#[derive(Debug, Clone, Default)]
struct StoredTick {
    sequence: u64,
    bytes: Vec<u8>,
    /// Not read whole yet.
    unread: bool,
}

impl StoredTick {
    fn keep(&mut self, sequence: u64, payload: &[u8]) {
        self.sequence = sequence;
        self.bytes.clear();
        self.bytes.extend_from_slice(payload);
        self.unread = true;
    }
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{RULES, at, seed, tick, tick_with_broken_quotes};

    #[test]
    fn a_tick_is_judged_by_its_storage_time_not_by_this_host_s_clock() {
        // Stored in 2027 (this host may believe it is 2026): judged against the stream's time.
        let mut aggregate = Aggregate::new(seed(), RULES);
        assert!(matches!(aggregate.ingest(1, &tick(0, 90_000.0), at(1)), TickOutcome::Applied(Applied::Appended)));
        assert_eq!(aggregate.store_delay_seconds(), Some(1.0));
        // 60 s ahead of its storage is allowed, 61 s is not.
        assert!(matches!(aggregate.ingest(2, &tick(61, 90_000.0), at(1)), TickOutcome::Applied(_)));
        assert_eq!(aggregate.ingest(3, &tick(63, 90_000.0), at(2)), TickOutcome::Future);
        assert_eq!(aggregate.applied_sequence(), 3);
    }

    #[test]
    fn a_tick_outside_the_price_bounds_is_refused_and_the_window_is_unharmed() {
        let mut aggregate = Aggregate::new(seed(), RULES);
        assert!(matches!(aggregate.ingest(1, &tick(0, 90_000.0), at(0)), TickOutcome::Applied(_)));
        for (sequence, price) in [(2, 1e300), (3, 10_000_000.01), (4, -1.0), (5, 0.0)] {
            assert_eq!(aggregate.ingest(sequence, &tick(sequence as i64, price), at(1)), TickOutcome::Invalid);
        }
        assert!(matches!(aggregate.ingest(6, &tick(3, 91_000.0), at(3)), TickOutcome::Applied(_)));
        let state = aggregate.state().expect("a state");
        assert_eq!((state.latest.price, state.average.samples, state.stream_sequence), (91_000.0, 2, 6));
        assert_eq!(state.average.time_weighted, 90_000.0);
    }

    #[test]
    fn the_oldest_held_sequence_follows_the_window() {
        let mut aggregate = Aggregate::new(seed(), RULES);
        aggregate.ingest(1, &tick(0, 90_000.0), at(0));
        aggregate.ingest(2, &tick(300, 90_000.0), at(300));
        assert_eq!(aggregate.oldest_held_sequence(), Some(1));
        // At 605 s the tick at 0 can no longer reach the window [5 s, 605 s].
        aggregate.ingest(3, &tick(605, 90_000.0), at(605));
        assert_eq!(aggregate.oldest_held_sequence(), Some(2));
    }

    #[test]
    fn a_checkpoint_restores_only_for_its_pair_rules_and_stream() {
        let created = at(-10);
        let mut aggregate = Aggregate::for_stream(seed(), RULES, created);
        aggregate.ingest(1, &tick(0, 90_000.0), at(0));
        let checkpoint = aggregate.checkpoint();
        let restore = |pair: Pair, rules, created| Aggregate::restore(pair, rules, created, checkpoint.clone()).err();
        assert_eq!(restore(seed(), RULES, created), None);
        assert_eq!(restore("ETH-USD".parse().expect("a pair"), RULES, created), Some("of another pair"));
        let longer = WindowRules { window: Duration::from_secs(900), ..RULES };
        assert_eq!(restore(seed(), longer, created), Some("taken under other window rules"));
        assert_eq!(restore(seed(), RULES, at(-9)), Some("of another ticks stream"));
        let mut unordered = checkpoint.clone();
        unordered.window = vec![(2, 1), (1, 1)];
        assert_eq!(Aggregate::restore(seed(), RULES, created, unordered).err(), Some("its window does not read"));
    }

    #[test]
    fn a_tick_of_another_pair_than_its_subject_s_is_refused() {
        let mut aggregate = Aggregate::new("ETH-USD".parse().expect("a pair"), RULES);
        assert_eq!(aggregate.ingest(1, &tick(0, 90_000.0), at(0)), TickOutcome::Invalid);
        assert!(aggregate.state().is_none());
    }

    #[test]
    fn a_sequence_is_applied_once() {
        let mut aggregate = Aggregate::new(seed(), RULES);
        aggregate.ingest(5, &tick(0, 90_000.0), at(0));
        assert_eq!(aggregate.ingest(5, &tick(1, 1.0), at(1)), TickOutcome::AlreadyApplied);
        assert_eq!(aggregate.ingest(4, &tick(2, 1.0), at(2)), TickOutcome::AlreadyApplied);
        assert_eq!(aggregate.state().map(|s| s.latest.price), Some(90_000.0));
    }

    #[test]
    fn only_a_state_s_latest_tick_is_read_whole_and_one_whose_quotes_do_not_read_is_never_served() {
        let mut aggregate = Aggregate::new(seed(), RULES);
        aggregate.ingest(1, &tick(0, 90_000.0), at(0));
        assert_eq!(aggregate.state().map(|s| (s.latest.price, s.stream_sequence)), Some((90_000.0, 1)));
        // The window reads the tick's head; its quotes are read only for the state, and do not read.
        let broken = tick_with_broken_quotes(1_000, 91_000.0);
        assert!(matches!(aggregate.ingest(2, &broken, at(1)), TickOutcome::Applied(Applied::Appended)));
        assert!(aggregate.state().is_none());
        // The next tick that reads whole is served again, with the broken one's price in the window.
        aggregate.ingest(3, &tick(2, 92_000.0), at(2));
        let state = aggregate.state().expect("a state");
        assert_eq!((state.latest.price, state.average.samples, state.stream_sequence), (92_000.0, 3, 3));
    }
}
