//! The rolling window: a time-weighted average (TWAP) and a plain mean over the last
//! `window` of tick time, O(1) per in-order tick and per read. Pure: no I/O, no clock.
//!
//! Like a cumulative-price oracle it keeps, for every retained tick, `cum` = the integral of the
//! held price x time from an arbitrary base up to that tick, and `covered` = the time a price held.
//! The TWAP over `[T - window, T]` (T = the newest tick's time) is then the integral over that span
//! divided by the time covered, with the carry-in tick (the one that held across the window's
//! edge) cut at the edge. Prices are stored as integers of 1e-8 USD and times as milliseconds, so
//! the sums are exact: a window rebuilt by replay gives bit-for-bit the same average as one that
//! ran for days.
//!
//! Semantics, documented in the README:
//! - a price holds from its tick until the next tick, but at most `max_hold`: time that no price
//!   covers is a gap, weighted by nothing, so a price from before an outage never poses as an
//!   average over the outage;
//! - `covered` is the time inside the window some price covers, `gap = window - covered` (time
//!   before the first tick of a cold start is a gap too); the window is complete when the gaps
//!   add up to at most one `max_hold`;
//! - the mean counts ticks with `T - window < time <= T`: a tick exactly `window` old is out of
//!   the mean, and is the carry-in of the TWAP;
//! - a tick whose time is already stored is a duplicate and ignored (first one wins); a tick that
//!   can no longer cover any time inside the window is too old and ignored; any other
//!   out-of-order tick is inserted in place (cost: the ticks after it).
//!
//! What the window holds is therefore a function of the ticks that can still matter: the last
//! tick at or before the edge if it still holds across it (so at most `max_hold` before the
//! edge), and every tick after the edge. That is what lets a replay start at a fixed distance
//! before the newest tick and rebuild exactly what a continuous run holds.

use std::collections::VecDeque;
use std::time::Duration;

/// Prices are kept as integers of 1e-8 USD.
const PRICE_SCALE: f64 = 1e8;

/// The latest tick time a restored window takes (the year 2200), so its sums cannot overflow.
const MAX_TIME_MS: i64 = 7_258_118_400_000;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    time_ms: i64,
    price: i128,
    /// Integral of the held price x ms from the window's base up to `time_ms`.
    cum: i128,
    /// Milliseconds covered by some price from the window's base up to `time_ms`.
    covered_ms: i64,
}

/// What happened to a tick offered to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The newest tick so far.
    Appended,
    /// Older than the newest, inserted in place.
    Inserted,
    /// A tick with this time is already in the window.
    Duplicate,
    /// Older than anything that can still affect the window.
    TooOld,
}

/// The averages as of the newest tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Averages {
    pub time_weighted: f64,
    pub mean: f64,
    pub samples: u32,
    /// Start of the span the averages look at: the window's start, or the first tick after it.
    pub from_ms: i64,
    /// End of the span (the newest tick), unix ms.
    pub to_ms: i64,
    /// Time inside the window that a price covers, ms.
    pub covered_ms: i64,
    /// Time inside the window that no price covers, ms (`window - covered`).
    pub gap_ms: i64,
    /// The gaps add up to at most one `max_hold`.
    pub complete: bool,
}

#[derive(Debug, Clone)]
pub struct Window {
    window_ms: i64,
    max_hold_ms: i64,
    points: VecDeque<Point>,
    /// Sum of the prices of every retained point (carry-in included).
    price_sum: i128,
}

impl Window {
    /// A window of length `window` in which a price holds at most `max_hold` after its tick.
    pub fn new(window: Duration, max_hold: Duration) -> Self {
        Self { window_ms: millis(window), max_hold_ms: millis(max_hold), points: VecDeque::new(), price_sum: 0 }
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Time of the newest tick, unix ms.
    pub fn newest_ms(&self) -> Option<i64> {
        self.points.back().map(|p| p.time_ms)
    }

    /// The retained ticks, oldest first: time (ms) and price (1e-8 USD). What a checkpoint keeps.
    pub fn retained(&self) -> impl Iterator<Item = (i64, i128)> + '_ {
        self.points.iter().map(|point| (point.time_ms, point.price))
    }

    /// The window that retained `ticks` (as [`Window::retained`] gave them): the same averages, bit
    /// for bit, and the same answer to every later tick, as the window they came from (the sums
    /// count from another base, and only their differences are ever read). `None` unless the
    /// times strictly increase and every price is one the window can hold (see [`Window::apply`]).
    pub fn restored(
        window: Duration,
        max_hold: Duration,
        ticks: impl IntoIterator<Item = (i64, i128)>,
    ) -> Option<Self> {
        let mut restored = Self::new(window, max_hold);
        let max_price = (btc_contract::MAX_PRICE * PRICE_SCALE).round() as i128;
        for (time_ms, price) in ticks {
            if !(0..=max_price).contains(&price) || !(0..=MAX_TIME_MS).contains(&time_ms) {
                return None;
            }
            let point = match restored.points.back() {
                None => Point { time_ms, price, cum: 0, covered_ms: 0 },
                Some(&last) if time_ms > last.time_ms => restored.after(last, time_ms, price),
                Some(_) => return None,
            };
            restored.points.push_back(point);
            restored.price_sum += price;
        }
        Some(restored)
    }

    /// How long the price of a tick at `from_ms` holds when the next tick is at `to_ms`.
    fn held(&self, from_ms: i64, to_ms: i64) -> i64 {
        (to_ms - from_ms).min(self.max_hold_ms)
    }

    /// The point for a tick at `time_ms` that follows `before`.
    fn after(&self, before: Point, time_ms: i64, price: i128) -> Point {
        let held = self.held(before.time_ms, time_ms);
        Point {
            time_ms,
            price,
            cum: before.cum + before.price * i128::from(held),
            covered_ms: before.covered_ms + held,
        }
    }

    /// Adds the tick at `time_ms` with `price` USD. The price must be within the contract's
    /// bounds (`btc_contract::MAX_PRICE`), which keeps every sum far inside `i128`.
    pub fn apply(&mut self, time_ms: i64, price: f64) -> Applied {
        let price = (price * PRICE_SCALE).round() as i128;
        let outcome = match self.points.back() {
            None => {
                self.points.push_back(Point { time_ms, price, cum: 0, covered_ms: 0 });
                Applied::Appended
            }
            Some(&last) if time_ms > last.time_ms => {
                self.points.push_back(self.after(last, time_ms, price));
                Applied::Appended
            }
            Some(_) => return self.insert_out_of_order(time_ms, price),
        };
        self.price_sum += price;
        self.evict();
        outcome
    }

    fn insert_out_of_order(&mut self, time_ms: i64, price: i128) -> Applied {
        let index = self.points.partition_point(|p| p.time_ms < time_ms);
        if self.points.get(index).is_some_and(|p| p.time_ms == time_ms) {
            return Applied::Duplicate;
        }
        if index == 0 && self.cannot_cover_the_window(time_ms) {
            return Applied::TooOld;
        }
        let point = match index {
            0 => {
                let next = self.points[0];
                let held = self.held(time_ms, next.time_ms);
                Point { time_ms, price, cum: next.cum - price * i128::from(held), covered_ms: next.covered_ms - held }
            }
            _ => self.after(self.points[index - 1], time_ms, price),
        };
        self.points.insert(index, point);
        // The ticks after the new one now follow a different price: redo their running sums.
        for i in index + 1..self.points.len() {
            let (before, current) = (self.points[i - 1], self.points[i]);
            self.points[i] = self.after(before, current.time_ms, current.price);
        }
        self.price_sum += price;
        self.evict();
        Applied::Inserted
    }

    /// True if a tick at `time_ms`, older than every retained tick, would hold no time inside the
    /// window: the window already has a carry-in, or the tick's hold ends before the edge.
    fn cannot_cover_the_window(&self, time_ms: i64) -> bool {
        let Some(edge) = self.edge() else { return false };
        self.points.front().is_some_and(|first| first.time_ms <= edge) || time_ms + self.max_hold_ms <= edge
    }

    /// The window's start: `window` before the newest tick.
    fn edge(&self) -> Option<i64> {
        self.points.back().map(|p| p.time_ms - self.window_ms)
    }

    /// Drops ticks that can no longer affect the window, keeping at most one carry-in at or
    /// before the edge, and only while its hold still reaches past the edge.
    fn evict(&mut self) {
        let Some(edge) = self.edge() else { return };
        while self.points.len() >= 2
            && (self.points[1].time_ms <= edge || self.points[0].time_ms + self.max_hold_ms <= edge)
        {
            if let Some(gone) = self.points.pop_front() {
                self.price_sum -= gone.price;
            }
        }
    }

    /// The averages as of the newest tick, or `None` before the first tick.
    pub fn averages(&self) -> Option<Averages> {
        let first = *self.points.front()?;
        let last = *self.points.back()?;
        let edge = last.time_ms - self.window_ms;
        let (integral, covered_ms, from_ms, sum, count) = match self.points.get(1) {
            // A carry-in: only the part of its hold after the edge counts, and it is out of the mean.
            Some(&second) if first.time_ms <= edge => {
                let carried = (first.time_ms + self.held(first.time_ms, second.time_ms) - edge).max(0);
                (
                    last.cum - second.cum + first.price * i128::from(carried),
                    last.covered_ms - second.covered_ms + carried,
                    edge,
                    self.price_sum - first.price,
                    self.points.len() - 1,
                )
            }
            _ => (
                last.cum - first.cum,
                last.covered_ms - first.covered_ms,
                first.time_ms,
                self.price_sum,
                self.points.len(),
            ),
        };
        let newest = last.price as f64 / PRICE_SCALE;
        // With nothing covered (a lone tick after an outage) the newest price is all there is;
        // `covered_ms = 0` and `complete = false` say so.
        let time_weighted = if covered_ms > 0 { integral as f64 / covered_ms as f64 / PRICE_SCALE } else { newest };
        let mean = if count > 0 { sum as f64 / count as f64 / PRICE_SCALE } else { newest };
        let gap_ms = self.window_ms - covered_ms;
        Some(Averages {
            time_weighted,
            mean,
            samples: count as u32,
            from_ms,
            to_ms: last.time_ms,
            covered_ms,
            gap_ms,
            complete: gap_ms <= self.max_hold_ms,
        })
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEN_MINUTES: Duration = Duration::from_secs(600);
    const HOLD: Duration = Duration::from_secs(5);
    const S: i64 = 1000;

    fn window_of(ticks: &[(i64, f64)]) -> Window {
        let mut window = Window::new(TEN_MINUTES, HOLD);
        for &(t, p) in ticks {
            window.apply(t, p);
        }
        window
    }

    /// One tick a second from `from` to `to` seconds, inclusive, at `price`.
    fn every_second(from: i64, to: i64, price: f64) -> Vec<(i64, f64)> {
        (from..=to).map(|t| (t * S, price)).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn empty_window_has_no_average() {
        assert_eq!(Window::new(TEN_MINUTES, HOLD).averages(), None);
    }

    #[test]
    fn one_tick_is_its_own_average_covers_nothing_and_is_incomplete() {
        let averages = window_of(&[(1_000 * S, 100.0)]).averages().expect("one tick");
        assert_eq!((averages.time_weighted, averages.mean, averages.samples), (100.0, 100.0, 1));
        assert_eq!((averages.covered_ms, averages.gap_ms), (0, 600 * S));
        assert!(!averages.complete);
    }

    #[test]
    fn after_an_outage_the_old_price_holds_only_max_hold_and_the_rest_is_a_gap() {
        // One hour without ticks: the price from before the outage must not pose as the average.
        let averages = window_of(&[(0, 100.0), (3_600 * S, 200.0)]).averages().expect("ticks");
        assert_eq!(averages.time_weighted, 200.0);
        assert_eq!((averages.samples, averages.covered_ms, averages.gap_ms), (1, 0, 600 * S));
        assert!(!averages.complete);
    }

    #[test]
    fn a_gap_inside_the_window_carries_no_weight() {
        // 100 every second up to 100 s, nothing until 400 s, then 200 every second up to 700 s.
        let mut ticks = every_second(0, 100, 100.0);
        ticks.extend(every_second(400, 700, 200.0));
        let averages = window_of(&ticks).averages().expect("ticks");
        // Window [100 s, 700 s]: the tick at 100 s holds 5 s, then 400..700 s: 305 s covered.
        assert_eq!((averages.covered_ms, averages.gap_ms, averages.from_ms), (305 * S, 295 * S, 100 * S));
        assert!(close(averages.time_weighted, (100.0 * 5.0 + 200.0 * 300.0) / 305.0), "{averages:?}");
        assert_eq!(averages.samples, 301);
        assert!(!averages.complete);
    }

    #[test]
    fn gaps_up_to_one_max_hold_in_total_still_make_a_complete_window() {
        // Ticks every second with an 8 s hole: 3 s of it is not covered by the 5 s hold.
        let mut ticks = every_second(0, 300, 100.0);
        ticks.extend(every_second(308, 700, 100.0));
        let averages = window_of(&ticks).averages().expect("ticks");
        assert_eq!(averages.gap_ms, 3 * S);
        assert!(averages.complete);
        // A second hole of 7 s (2 s uncovered) brings the gaps to 5 s: still complete; a third
        // hole of 6 s (1 s uncovered) makes it incomplete.
        ticks = every_second(0, 300, 100.0);
        ticks.extend(every_second(308, 500, 100.0));
        ticks.extend(every_second(507, 700, 100.0));
        assert_eq!(window_of(&ticks).averages().map(|a| (a.gap_ms, a.complete)), Some((5 * S, true)));
        ticks.retain(|&(t, _)| !(601 * S..606 * S).contains(&t));
        assert_eq!(window_of(&ticks).averages().map(|a| (a.gap_ms, a.complete)), Some((6 * S, false)));
    }

    #[test]
    fn a_cold_start_counts_the_time_before_the_first_tick_as_a_gap() {
        let averages = window_of(&every_second(0, 120, 100.0)).averages().expect("ticks");
        assert_eq!((averages.from_ms, averages.covered_ms, averages.gap_ms), (0, 120 * S, 480 * S));
        assert!(!averages.complete);
    }

    #[test]
    fn time_weighting_counts_how_long_each_price_held() {
        // 100 for 540 s, then 200 for 60 s (ticks every second): TWAP 110.
        let mut ticks = every_second(0, 539, 100.0);
        ticks.extend(every_second(540, 600, 200.0));
        let averages = window_of(&ticks).averages().expect("ticks");
        assert!(averages.complete);
        assert!(close(averages.time_weighted, 110.0), "{averages:?}");
        // The tick at 0 is exactly 600 s old: the carry-in, out of the mean.
        assert_eq!(averages.samples, 600);
    }

    #[test]
    fn eviction_happens_exactly_at_600_seconds() {
        let mut window = window_of(&every_second(0, 599, 100.0));
        window.apply(600 * S, 300.0);
        // Tick 0 is the carry-in (exactly at the edge) and out of the mean; tick 1 s is inside.
        let averages = window.averages().expect("ticks");
        assert_eq!((averages.samples, averages.from_ms), (600, 0));
        assert!(close(averages.time_weighted, 100.0));
        window.apply(601 * S, 300.0);
        // Now tick 1 s is exactly at the edge: tick 0 is dropped, tick 1 s is the carry-in.
        assert_eq!(window.len(), 601);
        let averages = window.averages().expect("ticks");
        assert_eq!((averages.samples, averages.from_ms), (600, S));
        assert!(close(averages.time_weighted, (100.0 * 599.0 + 300.0) / 600.0), "{averages:?}");
    }

    #[test]
    fn the_carry_in_is_cut_at_the_edge_and_at_its_hold() {
        // Window [-300 s, 300 s]; the carry-in at -302 s holds until -297 s: 3 s inside.
        let mut ticks = vec![(-302 * S, 100.0)];
        ticks.extend(every_second(-290, 300, 200.0));
        let averages = window_of(&ticks).averages().expect("ticks");
        assert_eq!((averages.covered_ms, averages.from_ms), (3 * S + 590 * S, -300 * S));
        assert!(close(averages.time_weighted, (100.0 * 3.0 + 200.0 * 590.0) / 593.0));
        assert_eq!(averages.samples, 591);
    }

    #[test]
    fn duplicates_are_ignored() {
        let mut window = window_of(&[(0, 100.0), (3 * S, 110.0)]);
        assert_eq!(window.apply(3 * S, 999.0), Applied::Duplicate);
        assert_eq!(window.apply(0, 999.0), Applied::Duplicate);
        let averages = window.averages().expect("ticks");
        assert_eq!(averages.samples, 2);
        assert!(close(averages.time_weighted, 100.0));
    }

    #[test]
    fn out_of_order_ticks_give_the_same_window_as_in_order() {
        let ordered = [(0, 100.0), (2 * S, 101.0), (5 * S, 99.0), (8 * S, 105.0), (30 * S, 102.0)];
        let shuffled = [(8 * S, 105.0), (0, 100.0), (30 * S, 102.0), (5 * S, 99.0), (2 * S, 101.0)];
        assert_eq!(window_of(&ordered).averages(), window_of(&shuffled).averages());
    }

    #[test]
    fn ticks_that_cannot_reach_the_window_are_too_old() {
        let mut window = window_of(&every_second(0, 700, 100.0));
        // Older than the carry-in (100 s):
        assert_eq!(window.apply(-5 * S, 1.0), Applied::TooOld);
        assert_eq!(window.apply(99_500, 1.0), Applied::TooOld);
        // Without a carry-in, a tick whose hold ends at or before the edge cannot matter either.
        let mut window = window_of(&every_second(300, 700, 100.0));
        assert_eq!(window.apply(95 * S, 1.0), Applied::TooOld);
        assert_eq!(window.apply(96 * S, 1.0), Applied::Inserted);
    }

    #[test]
    fn a_rebuilt_window_matches_a_long_running_one_exactly() {
        let ticks: Vec<(i64, f64)> =
            (0..20_000).map(|i| (i * S, 90_000.0 + ((i * 7919) % 1000) as f64 * 0.37)).collect();
        let long_running = window_of(&ticks);
        let rebuilt = window_of(&ticks[ticks.len() - 700..]);
        assert_eq!(long_running.averages(), rebuilt.averages());
        assert!(long_running.len() <= 602, "window keeps only what it needs: {}", long_running.len());
    }

    /// Reference: the definition, computed by brute force over every tick ever seen (first of
    /// equal times wins), with plain integer milliseconds and no running sums.
    fn reference(ticks: &[(i64, f64)], hold_ms: i64) -> Option<(f64, f64, u32, i64)> {
        let mut sorted: Vec<(i64, f64)> = Vec::new();
        for &(t, p) in ticks {
            if !sorted.iter().any(|&(u, _)| u == t) {
                sorted.push((t, p));
            }
        }
        sorted.sort_by_key(|&(t, _)| t);
        let last = sorted.last()?.0;
        let edge = last - 600 * S;
        let (mut weighted, mut covered) = (0.0, 0i64);
        for pair in sorted.windows(2) {
            let start = pair[0].0.max(edge);
            let end = pair[1].0.min(pair[0].0 + hold_ms);
            if end > start {
                weighted += pair[0].1 * (end - start) as f64;
                covered += end - start;
            }
        }
        let twap = if covered > 0 { weighted / covered as f64 } else { sorted[sorted.len() - 1].1 };
        let inside: Vec<f64> = sorted.iter().filter(|&&(t, _)| t > edge).map(|&(_, p)| p).collect();
        Some((twap, inside.iter().sum::<f64>() / inside.len() as f64, inside.len() as u32, covered))
    }

    /// Tick histories with irregular spacing: mostly a second apart, sometimes a gap longer than
    /// the hold or than the window, sometimes back in time or repeating a time.
    fn histories() -> impl Strategy<Value = Vec<(i64, f64)>> {
        let step = prop_oneof![
            6 => 500i64..1_500,
            2 => 1_500i64..12_000,
            1 => 12_000i64..900_000,
            1 => -20_000i64..=0,
        ];
        prop::collection::vec((step, 50_000.0f64..60_000.0), 1..700).prop_map(|steps| {
            let mut t = 0;
            steps
                .into_iter()
                .map(|(dt, price)| {
                    t += dt;
                    (t, (price * 100.0).round() / 100.0)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn matches_the_reference_on_random_histories(ticks in histories()) {
            let ours = window_of(&ticks).averages().expect("non-empty");
            let (twap, mean, samples, covered) = reference(&ticks, 5 * S).expect("non-empty");
            prop_assert!(close(ours.time_weighted, twap), "twap {} vs {twap}", ours.time_weighted);
            prop_assert!(close(ours.mean, mean), "mean {} vs {mean}", ours.mean);
            prop_assert_eq!(ours.samples, samples);
            prop_assert_eq!(ours.covered_ms, covered);
            prop_assert_eq!(ours.gap_ms, 600 * S - covered);
            prop_assert_eq!(ours.complete, 600 * S - covered <= 5 * S);
        }

        #[test]
        fn only_the_ticks_that_can_still_matter_are_kept(ticks in histories(), cut in 0usize..700) {
            // Feeding only the ticks after any prefix that cannot reach the final window gives the
            // same window: what is retained depends on the ticks that matter, not on history.
            let full = window_of(&ticks);
            let newest = full.newest_ms().expect("non-empty");
            let cut = cut.min(ticks.len());
            let unreachable = ticks[..cut].iter().all(|&(t, _)| t + 5 * S < newest - 600 * S - 1);
            if unreachable {
                prop_assert_eq!(full.averages(), window_of(&ticks[cut..]).averages());
            }
        }
    }
}
