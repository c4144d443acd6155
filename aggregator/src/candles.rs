//! Building one pair's candles from its ticks, every interval at once. Pure: no I/O, no clock.
//!
//! A tick's price holds from the tick until the next tick, at most `max_hold` (the window's
//! rule), and that held price is what a candle describes (see `btc_contract::candle`). Only ticks
//! newer than every tick before them move the candles: an out-of-order tick changes the window,
//! but a candle it would fall in may be closed and published already, and the order of the
//! stream (the same for every replica and every replay) decides which ticks count.
//!
//! A candle closes when the first tick at or after its end arrives: only then is the hold of its
//! last tick known. Sums are exact integers (prices in 1e-8, times in ms), so a candle rebuilt
//! after a restart, or put together from shorter ones, is bit for bit the one a continuous run
//! makes.

use btc_contract::candle::{PRICE_SCALE, Sums};
use btc_contract::{Candle, Interval};
use serde::{Deserialize, Serialize};

/// The candle of one interval still being built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Building {
    start_ms: i64,
    sums: Sums,
    /// Started before the builder saw every tick of it: never published or served.
    partial: bool,
}

impl Building {
    fn new(start_ms: i64, price: f64, partial: bool) -> Self {
        let sums = Sums { open: price, high: price, low: price, close: price, samples: 0, covered_ms: 0, price_ms: 0 };
        Self { start_ms, sums, partial }
    }

    /// The candle `seed` (its shorter candles combined) goes on being built.
    fn resumed(seed: &Candle) -> Option<Self> {
        let sums = Sums {
            open: seed.open,
            high: seed.high,
            low: seed.low,
            close: seed.close,
            samples: seed.samples,
            covered_ms: seed.covered_ms,
            price_ms: seed.price_ms()?,
        };
        Some(Self { start_ms: seed.start.timestamp_millis(), sums, partial: false })
    }

    /// The price held (or ticked) now: the last price held so far in the interval.
    fn see(&mut self, price: f64) {
        let sums = &mut self.sums;
        (sums.high, sums.low, sums.close) = (sums.high.max(price), sums.low.min(price), price);
    }
}

/// One pair's candles: one being built per interval, and the newest tick. Serialized whole in
/// a window checkpoint ([`crate::checkpoint`]): a change here changes its format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandleBuilder {
    pair: String,
    max_hold_ms: i64,
    /// The newest tick: time (ms) and price, whose hold is not known yet.
    last: Option<(i64, f64)>,
    /// Per interval of [`Interval::ALL`], the candle being built.
    building: [Option<Building>; 4],
    /// Ticks and holds before this time are already in stored candles (a resumed builder), or
    /// were never seen (a new one: the first tick's time): they count in no candle, and a
    /// candle that starts before it is partial unless it was resumed.
    counted_from_ms: Option<i64>,
}

impl CandleBuilder {
    /// A builder that counts from the first tick it sees: candles that started before it are
    /// partial and never published.
    pub fn new(pair: &str, max_hold_ms: i64) -> Self {
        let building = [None, None, None, None];
        Self { pair: pair.to_string(), max_hold_ms, last: None, building, counted_from_ms: None }
    }

    /// A builder that goes on from a stored state: its newest tick (time in ms, price) and the
    /// candles it had open then (`PriceState::open_candles`, which leaves out partial ones). A
    /// replay may then offer it every tick again: the ones up to that tick are not newer and are
    /// ignored.
    pub fn resume(pair: &str, max_hold_ms: i64, latest: (i64, f64), open: &[Candle]) -> Self {
        let mut builder = Self::new(pair, max_hold_ms);
        builder.counted_from_ms = Some(latest.0);
        builder.last = Some(latest);
        for candle in open {
            if let Some(slot) = Interval::ALL.iter().position(|interval| *interval == candle.interval) {
                builder.building[slot] = Building::resumed(candle);
            }
        }
        builder
    }

    /// This builder builds `pair`'s candles with prices held at most `max_hold_ms`.
    pub fn is_of(&self, pair: &str, max_hold_ms: i64) -> bool {
        self.pair == pair && self.max_hold_ms == max_hold_ms
    }

    /// Time of the newest tick, ms.
    pub fn newest_ms(&self) -> Option<i64> {
        self.last.map(|(time, _)| time)
    }

    /// Adds the tick at `time_ms`; the candles it closed, shortest interval first, oldest first.
    /// A tick not newer than the newest is ignored (see the module's comment).
    pub fn apply(&mut self, time_ms: i64, price: f64) -> Vec<Candle> {
        let mut closed = Vec::new();
        let counted_from = *self.counted_from_ms.get_or_insert(time_ms);
        if let Some((last_ms, last_price)) = self.last {
            if time_ms <= last_ms {
                return closed;
            }
            let held = (last_ms.max(counted_from), time_ms.min(last_ms + self.max_hold_ms));
            for (slot, interval) in Interval::ALL.into_iter().enumerate() {
                self.hold(slot, interval, held, last_price, &mut closed);
            }
        }
        self.last = Some((time_ms, price));
        if time_ms < counted_from {
            return closed;
        }
        for (slot, interval) in Interval::ALL.into_iter().enumerate() {
            let building = self.building_at(slot, interval, interval.start_of(time_ms), price, &mut closed);
            building.see(price);
            building.sums.samples += 1;
        }
        closed.sort_by_key(|candle| (candle.interval, candle.start));
        closed
    }

    /// Adds `price` held over `[from, to)` to the candles of `interval` it crosses.
    fn hold(
        &mut self,
        slot: usize,
        interval: Interval,
        (mut from, to): (i64, i64),
        price: f64,
        closed: &mut Vec<Candle>,
    ) {
        let scaled = (price * PRICE_SCALE).round() as i128;
        while from < to {
            let start = interval.start_of(from);
            let until = to.min(start + interval.millis());
            let building = self.building_at(slot, interval, start, price, closed);
            building.see(price);
            building.sums.covered_ms += until - from;
            building.sums.price_ms += scaled * i128::from(until - from);
            from = until;
        }
    }

    /// The candle of `interval` starting at `start`, closing (into `closed`) the one before it.
    fn building_at(
        &mut self,
        slot: usize,
        interval: Interval,
        start: i64,
        price: f64,
        closed: &mut Vec<Candle>,
    ) -> &mut Building {
        if self.building[slot].as_ref().is_some_and(|building| building.start_ms != start)
            && let Some(done) = self.building[slot].take().filter(|done| !done.partial)
        {
            closed.push(Candle::from_sums(&self.pair, interval, done.start_ms, done.sums));
        }
        let partial = self.counted_from_ms.is_some_and(|from| start < from);
        self.building[slot].get_or_insert_with(|| Building::new(start, price, partial))
    }

    /// The candles still open, shortest interval first, as of the newest tick (whose hold is not
    /// counted yet).
    pub fn open_candles(&self) -> Vec<Candle> {
        Interval::ALL
            .into_iter()
            .zip(&self.building)
            .filter_map(|(interval, building)| {
                let building = building.as_ref().filter(|building| !building.partial)?;
                Some(Candle::from_sums(&self.pair, interval, building.start_ms, building.sums))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX_HOLD_MS: i64 = 5_000;

    /// One interval's figures straight from the definition, gathered a millisecond at a time.
    #[derive(Default)]
    struct Held {
        open: Option<f64>,
        high: f64,
        low: f64,
        close: f64,
        covered_ms: i64,
        price_ms: i128,
        samples: u32,
    }

    impl Held {
        fn hold_one_ms(&mut self, price: f64, scaled: i128) {
            let open = *self.open.get_or_insert(price);
            if self.covered_ms == 0 {
                (self.high, self.low) = (open, open);
            }
            self.high = self.high.max(price);
            self.low = self.low.min(price);
            self.close = price;
            self.covered_ms += 1;
            self.price_ms += scaled;
        }
    }

    /// The reference: the candles of `interval` straight from the definition, over the ticks that
    /// count (each newer than all before it), closed by the last tick: every millisecond's held
    /// price (brute force), and each tick, by interval start.
    fn reference(ticks: &[(i64, f64)], interval: Interval) -> Vec<Candle> {
        let mut counted: Vec<(i64, f64)> = Vec::new();
        for &(time, price) in ticks {
            if counted.last().is_none_or(|&(last, _)| time > last) {
                counted.push((time, price));
            }
        }
        let Some(&(newest, _)) = counted.last() else { return Vec::new() };
        let mut by_start: std::collections::BTreeMap<i64, Held> = Default::default();
        for (i, &(time, price)) in counted.iter().enumerate() {
            by_start.entry(interval.start_of(time)).or_default().samples += 1;
            let until = counted.get(i + 1).map_or(time, |&(next, _)| next.min(time + MAX_HOLD_MS));
            let scaled = (price * PRICE_SCALE).round() as i128;
            let mut ms = time;
            while ms < until {
                let start = interval.start_of(ms);
                let held = by_start.entry(start).or_default();
                let end = (start + interval.millis()).min(until);
                (ms..end).for_each(|_| held.hold_one_ms(price, scaled));
                ms = end;
            }
        }
        let open_start = interval.start_of(newest);
        by_start
            .into_iter()
            .filter(|&(start, _)| start < open_start)
            .map(|(start, held)| {
                // Every counted tick but the newest holds at least 1 ms, in its own interval.
                let open = held.open.unwrap_or(f64::NAN);
                let sums = Sums {
                    open,
                    high: held.high,
                    low: held.low,
                    close: held.close,
                    samples: held.samples,
                    covered_ms: held.covered_ms,
                    price_ms: held.price_ms,
                };
                Candle::from_sums("BTC-USD", interval, start, sums)
            })
            .collect()
    }

    fn built(ticks: &[(i64, f64)]) -> (Vec<Candle>, CandleBuilder) {
        let mut builder = CandleBuilder::new("BTC-USD", MAX_HOLD_MS);
        let closed = ticks.iter().flat_map(|&(time, price)| builder.apply(time, price)).collect();
        (closed, builder)
    }

    /// Ticks mostly a second apart, sometimes far apart (outages), sometimes out of order.
    fn ticks() -> impl Strategy<Value = Vec<(i64, f64)>> {
        let step = prop_oneof![8 => 1i64..2_000, 2 => 2_000i64..400_000, 1 => -10_000i64..0];
        prop::collection::vec((step, 1u32..1_000), 1..150).prop_map(|steps| {
            let mut time = 1_800_000_000_000i64;
            steps
                .into_iter()
                .map(|(step, cents)| {
                    time += step;
                    (time, f64::from(cents) / 100.0)
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(150))]

        /// Every closed candle of every interval equals the definition recomputed from the ticks,
        /// and the longer candles are exactly their 1-minute candles combined.
        #[test]
        fn closed_candles_equal_a_recomputation_and_combine_exactly(ticks in ticks()) {
            let (closed, _) = built(&ticks);
            // A new builder counts from its first tick: candles that started before are partial.
            let first_ms = ticks[0].0;
            for interval in Interval::ALL {
                let mine: Vec<&Candle> = closed.iter().filter(|c| c.interval == interval).collect();
                let expected: Vec<Candle> = reference(&ticks, interval)
                    .into_iter()
                    .filter(|candle| candle.start.timestamp_millis() >= first_ms)
                    .collect();
                prop_assert_eq!(mine.len(), expected.len(), "{}", interval);
                for (a, b) in mine.iter().zip(&expected) {
                    prop_assert_eq!(*a, b);
                }
                let minutes: Vec<Candle> = closed.iter().filter(|c| c.interval == Interval::OneMinute).cloned().collect();
                for candle in &mine {
                    let parts: Vec<Candle> = minutes.iter().filter(|m| m.start >= candle.start && m.end <= candle.end).cloned().collect();
                    let combined = Candle::combine(interval, &parts).ok().flatten();
                    prop_assert_eq!(combined.as_ref(), Some(*candle));
                }
            }
        }
    }

    /// A builder resumed from what a state stored after any tick (the newest tick and the open
    /// candles), offered the ticks again from any earlier point, makes exactly the candles a
    /// builder that never stopped makes.
    fn resumed_equals_continuous(ticks: &[(i64, f64)], stop: usize, replay_from: usize) -> Result<(), TestCaseError> {
        let (all, continuous) = built(ticks);
        let (before, stopped) = built(&ticks[..stop]);
        let Some(latest) = stopped.last else { return Ok(()) };
        let mut resumed = CandleBuilder::resume("BTC-USD", MAX_HOLD_MS, latest, &stopped.open_candles());
        let again: Vec<Candle> = ticks[replay_from..].iter().flat_map(|&(t, p)| resumed.apply(t, p)).collect();
        prop_assert_eq!(&all[..before.len()], &before[..]);
        prop_assert_eq!(&again[..], &all[before.len()..]);
        prop_assert_eq!(resumed.open_candles(), continuous.open_candles());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(150))]

        #[test]
        fn a_resumed_builder_makes_the_candles_a_continuous_one_makes(
            ticks in ticks(),
            stop in any::<prop::sample::Index>(),
            replay_from in any::<prop::sample::Index>(),
        ) {
            let stop = stop.index(ticks.len()) + 1;
            resumed_equals_continuous(&ticks, stop, replay_from.index(stop))?;
        }
    }

    #[test]
    fn a_carried_in_price_makes_a_candle_without_ticks_and_an_outage_makes_none() {
        // After a first tick on the minute: ticks at 0:58 and 0:59, then nothing until 3:30: the
        // 0:59 price holds 5 s, 1 s of it in the first minute and 4 s in the second; the third
        // minute has no price at all.
        let base = 1_800_000_000_000; // on a minute's start
        let ticks = [(base, 100.0), (base + 58_000, 100.0), (base + 59_000, 110.0), (base + 210_000, 120.0)];
        let (closed, builder) = built(&ticks);
        let minutes: Vec<&Candle> = closed.iter().filter(|c| c.interval == Interval::OneMinute).collect();
        assert_eq!(minutes.len(), 2);
        assert_eq!(
            (minutes[0].open, minutes[0].close, minutes[0].samples, minutes[0].covered_ms),
            (100.0, 110.0, 3, 7_000)
        );
        assert_eq!(
            (minutes[1].open, minutes[1].close, minutes[1].samples, minutes[1].covered_ms),
            (110.0, 110.0, 0, 4_000)
        );
        // The day started before the first tick: its candle is partial, neither open nor closed.
        let open = builder.open_candles();
        assert_eq!(open.len(), 3);
        assert_eq!((open[0].samples, open[0].covered_ms, open[0].time_weighted), (1, 0, 120.0));
    }

    #[test]
    fn an_older_tick_moves_no_candle() {
        let (closed, builder) = built(&[(60_000, 100.0), (61_000, 101.0), (60_500, 5.0), (120_000, 102.0)]);
        let minute = closed.iter().find(|c| c.interval == Interval::OneMinute).expect("the first minute");
        assert_eq!((minute.low, minute.samples), (100.0, 2));
        assert_eq!(builder.newest_ms(), Some(120_000));
    }
}
