//! The rolling window: a time-weighted average (TWAP) and a plain mean over the last
//! `window` of tick time, O(1) per in-order tick and per read. Pure: no I/O, no clock.
//!
//! Like a cumulative-price oracle it keeps, for every retained tick, `cum` = the integral of
//! price x time from an arbitrary base up to that tick. The TWAP over `[T - window, T]` (T = the
//! newest tick's time) is then `(cum(T) - cum(T - window)) / window`, with `cum` at the window's
//! edge interpolated from the one tick that held across it (the carry-in tick). Prices are stored
//! as integers of 1e-8 USD and times as milliseconds, so the sums are exact: a window rebuilt by
//! replay after a restart gives bit-for-bit the same average as one that ran for days.
//!
//! Semantics, documented in the README:
//! - a price holds from its tick until the next tick;
//! - the mean counts ticks with `T - window < time <= T`: a tick exactly `window` old is out of
//!   the mean, and is the carry-in of the TWAP;
//! - before the first tick is `window` old, both cover only `[first tick, T]` and say so
//!   (`complete = false`);
//! - a tick whose time is already stored is a duplicate and ignored (first one wins); a tick
//!   older than the carry-in cannot change the window and is ignored; any other out-of-order tick
//!   is inserted in place (cost: the ticks after it).

use std::collections::VecDeque;

/// Prices are kept as integers of 1e-8 USD.
const PRICE_SCALE: f64 = 1e8;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    time_ms: i64,
    price: i128,
    /// Integral of price x ms from the window's base up to `time_ms`.
    cum: i128,
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
    /// Start of the covered span, unix ms.
    pub from_ms: i64,
    /// End of the covered span (the newest tick), unix ms.
    pub to_ms: i64,
    pub complete: bool,
}

#[derive(Debug, Clone)]
pub struct Window {
    window_ms: i64,
    points: VecDeque<Point>,
    /// Sum and count of the prices of every retained point (carry-in included).
    price_sum: i128,
}

impl Window {
    pub fn new(window: std::time::Duration) -> Self {
        Self { window_ms: window.as_millis() as i64, points: VecDeque::new(), price_sum: 0 }
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

    /// Adds the tick at `time_ms` with `price` USD.
    pub fn apply(&mut self, time_ms: i64, price: f64) -> Applied {
        let price = (price * PRICE_SCALE).round() as i128;
        let outcome = match self.points.back() {
            None => {
                self.points.push_back(Point { time_ms, price, cum: 0 });
                Applied::Appended
            }
            Some(last) if time_ms > last.time_ms => {
                let cum = last.cum + last.price * i128::from(time_ms - last.time_ms);
                self.points.push_back(Point { time_ms, price, cum });
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
        if index == 0 && self.edge().is_some_and(|edge| self.points[0].time_ms <= edge) {
            // The window already has a carry-in tick; anything older than it holds no time inside.
            return Applied::TooOld;
        }
        let cum = match index {
            0 => self.points[0].cum - price * i128::from(self.points[0].time_ms - time_ms),
            _ => {
                let before = self.points[index - 1];
                before.cum + before.price * i128::from(time_ms - before.time_ms)
            }
        };
        self.points.insert(index, Point { time_ms, price, cum });
        // The ticks after the new one now follow a different price: redo their running sums.
        for i in index + 1..self.points.len() {
            let before = self.points[i - 1];
            self.points[i].cum = before.cum + before.price * i128::from(self.points[i].time_ms - before.time_ms);
        }
        self.price_sum += price;
        self.evict();
        Applied::Inserted
    }

    /// The window's start: `window` before the newest tick.
    fn edge(&self) -> Option<i64> {
        self.points.back().map(|p| p.time_ms - self.window_ms)
    }

    /// Drops ticks that can no longer affect the window, keeping one carry-in at or before the edge.
    fn evict(&mut self) {
        let Some(edge) = self.edge() else { return };
        while self.points.len() >= 2 && self.points[1].time_ms <= edge {
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
        let (from_ms, cum_from, complete) = if first.time_ms <= edge {
            (edge, first.cum + first.price * i128::from(edge - first.time_ms), true)
        } else {
            (first.time_ms, first.cum, false)
        };
        let (sum, count) = if first.time_ms <= edge {
            (self.price_sum - first.price, self.points.len() - 1)
        } else {
            (self.price_sum, self.points.len())
        };
        let span = last.time_ms - from_ms;
        let time_weighted = if span > 0 {
            (last.cum - cum_from) as f64 / span as f64 / PRICE_SCALE
        } else {
            last.price as f64 / PRICE_SCALE
        };
        let mean = if count > 0 { sum as f64 / count as f64 / PRICE_SCALE } else { last.price as f64 / PRICE_SCALE };
        Some(Averages { time_weighted, mean, samples: count as u32, from_ms, to_ms: last.time_ms, complete })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TEN_MINUTES: Duration = Duration::from_secs(600);
    const S: i64 = 1000;

    fn window_of(ticks: &[(i64, f64)]) -> Window {
        let mut window = Window::new(TEN_MINUTES);
        for &(t, p) in ticks {
            window.apply(t, p);
        }
        window
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn empty_window_has_no_average() {
        assert_eq!(Window::new(TEN_MINUTES).averages(), None);
    }

    #[test]
    fn one_tick_is_its_own_average_and_incomplete() {
        let averages = window_of(&[(1_000 * S, 100.0)]).averages().expect("one tick");
        assert_eq!(averages.time_weighted, 100.0);
        assert_eq!(averages.mean, 100.0);
        assert_eq!(averages.samples, 1);
        assert!(!averages.complete);
    }

    #[test]
    fn time_weighting_counts_how_long_each_price_held() {
        // 100 for 540 s, then 200 for 60 s: TWAP 110, mean of the three ticks 133.33.
        let averages = window_of(&[(0, 100.0), (540 * S, 200.0), (600 * S, 200.0)]).averages().expect("ticks");
        assert!(averages.complete);
        assert!(close(averages.time_weighted, 110.0), "{averages:?}");
        // The tick at 0 is exactly 600 s old: the carry-in, out of the mean.
        assert_eq!(averages.samples, 2);
        assert!(close(averages.mean, 200.0));
    }

    #[test]
    fn eviction_happens_exactly_at_600_seconds() {
        let mut window = window_of(&[(0, 100.0), (S, 300.0)]);
        window.apply(600 * S, 300.0);
        // Tick 0 is the carry-in (exactly at the edge) and out of the mean; tick 1 s is inside.
        let averages = window.averages().expect("ticks");
        assert_eq!((averages.samples, averages.from_ms), (2, 0));
        assert!(close(averages.time_weighted, (100.0 + 300.0 * 599.0) / 600.0));
        window.apply(601 * S, 300.0);
        // Now tick 1 s is exactly at the edge: tick 0 is dropped, tick 1 s is the carry-in.
        assert_eq!(window.len(), 3);
        let averages = window.averages().expect("ticks");
        assert_eq!((averages.samples, averages.from_ms), (2, S));
        assert!(close(averages.time_weighted, 300.0));
    }

    #[test]
    fn interpolates_at_the_edge_when_ticks_are_sparse() {
        // Window [-300 s, 300 s]: the carry-in 100 holds for 200 s, then 200 for 400 s.
        let averages = window_of(&[(-700 * S, 100.0), (-100 * S, 200.0), (300 * S, 400.0)]).averages().expect("ticks");
        assert!(close(averages.time_weighted, (100.0 * 200.0 + 200.0 * 400.0) / 600.0));
        assert_eq!(averages.samples, 2);
        assert!(close(averages.mean, 300.0));
    }

    #[test]
    fn duplicates_are_ignored() {
        let mut window = window_of(&[(0, 100.0), (10 * S, 110.0)]);
        assert_eq!(window.apply(10 * S, 999.0), Applied::Duplicate);
        assert_eq!(window.apply(0, 999.0), Applied::Duplicate);
        let averages = window.averages().expect("ticks");
        assert_eq!(averages.samples, 2);
        assert!(close(averages.time_weighted, 100.0));
    }

    #[test]
    fn out_of_order_ticks_give_the_same_window_as_in_order() {
        let ordered = [(0, 100.0), (5 * S, 101.0), (9 * S, 99.0), (20 * S, 105.0), (30 * S, 102.0)];
        let shuffled = [(20 * S, 105.0), (0, 100.0), (30 * S, 102.0), (9 * S, 99.0), (5 * S, 101.0)];
        assert_eq!(window_of(&ordered).averages(), window_of(&shuffled).averages());
    }

    #[test]
    fn ticks_older_than_the_carry_in_are_too_old() {
        let mut window = window_of(&[(0, 100.0), (700 * S, 100.0)]);
        assert_eq!(window.apply(-5 * S, 1.0), Applied::TooOld);
        // Between the carry-in and the edge: it becomes the carry-in, the average is unchanged.
        assert_eq!(window.apply(50 * S, 100.0), Applied::Inserted);
        assert!(close(window.averages().expect("ticks").time_weighted, 100.0));
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

    /// Reference: the definition, computed by brute force over every tick ever seen.
    fn reference(ticks: &[(i64, f64)]) -> Option<(f64, f64, u32)> {
        let mut sorted: Vec<(i64, f64)> = Vec::new();
        for &(t, p) in ticks {
            if !sorted.iter().any(|&(u, _)| u == t) {
                sorted.push((t, p));
            }
        }
        sorted.sort_by_key(|&(t, _)| t);
        let last = sorted.last()?.0;
        let edge = last - 600 * S;
        let from = sorted[0].0.max(edge);
        let mut weighted = 0.0;
        for pair in sorted.windows(2) {
            let (start, end) = (pair[0].0.max(from), pair[1].0);
            if end > start {
                weighted += pair[0].1 * (end - start) as f64;
            }
        }
        let span = (last - from) as f64;
        let twap = if span > 0.0 { weighted / span } else { sorted[sorted.len() - 1].1 };
        let inside: Vec<f64> = sorted.iter().filter(|&&(t, _)| t > edge).map(|&(_, p)| p).collect();
        Some((twap, inside.iter().sum::<f64>() / inside.len() as f64, inside.len() as u32))
    }

    #[test]
    fn matches_the_reference_on_random_histories() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let count = 1 + (next() % 60) as usize;
            let mut ticks = Vec::new();
            let mut t = 0i64;
            for _ in 0..count {
                // Irregular spacing, sometimes going back in time, sometimes repeating a time.
                t += (next() % 90_000) as i64 - 15_000;
                let price = 50_000.0 + (next() % 1_000_000) as f64 / 100.0;
                ticks.push((t, price));
            }
            let ours = window_of(&ticks).averages().expect("non-empty");
            let (twap, mean, samples) = reference(&ticks).expect("non-empty");
            assert!(close(ours.time_weighted, twap), "twap {} vs {twap} for {ticks:?}", ours.time_weighted);
            assert!(close(ours.mean, mean), "mean {} vs {mean}", ours.mean);
            assert_eq!(ours.samples, samples);
        }
    }
}
