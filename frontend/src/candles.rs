//! bitcoin-api's copy of every configured pair's closed candles, per interval, oldest first: what
//! `GET /{asset}/{currency}/candles` serves without a NATS round trip (see `candles_follow` for
//! how it is filled and kept current).
//!
//! What is cached and why: closed candles never change, a client pages through them, and the
//! frontend may not create a consumer (see `cache`), so reading them once at start and following
//! new ones costs far less than a batched read per page. Each series is capped at its interval's
//! retention ([`retained`]): 1m 7 days (10,080), 5m 30 days (8,640), 1h one year (8,760), 1d ten
//! years (3,650): 31,130 candles per pair. A candle is kept as a [`Bar`] of 64 bytes (no
//! strings), so a pair's history takes about 2 MiB and the four default pairs about 8 MiB.

use std::collections::VecDeque;
use std::sync::RwLock;

use btc_contract::{Candle, Interval, Pair};
use chrono::{DateTime, TimeZone, Utc};

/// Most closed candles kept per pair and interval: the interval's retention.
pub fn retained(interval: Interval) -> usize {
    match interval {
        Interval::OneMinute => 7 * 24 * 60,
        Interval::FiveMinutes => 30 * 24 * 12,
        Interval::OneHour => 365 * 24,
        Interval::OneDay => 3_650,
    }
}

/// A candle as cached and served: the contract's [`Candle`] without its pair, interval and exact
/// sums (64 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub start_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub time_weighted: f64,
    pub covered_ms: i64,
    pub samples: u32,
}

impl Bar {
    pub fn of(candle: &Candle) -> Self {
        Bar {
            start_ms: candle.start.timestamp_millis(),
            open: candle.open,
            high: candle.high,
            low: candle.low,
            close: candle.close,
            time_weighted: candle.time_weighted,
            covered_ms: candle.covered_ms,
            samples: candle.samples,
        }
    }

    pub fn start(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.start_ms).single().unwrap_or_default()
    }
}

/// One pair's closed candles of one interval, oldest first, distinct starts, at most `cap`.
#[derive(Debug, Default)]
pub struct Series {
    bars: VecDeque<Bar>,
    cap: usize,
}

impl Series {
    pub fn new(cap: usize) -> Self {
        Self { bars: VecDeque::new(), cap }
    }

    /// Adds `bar` in its place; a start already held (a replayed candle) is dropped. Beyond the
    /// cap the oldest goes. False when nothing was added.
    pub fn insert(&mut self, bar: Bar) -> bool {
        let at = match self.bars.back() {
            Some(last) if last.start_ms < bar.start_ms => self.bars.len(),
            None => 0,
            Some(_) => match self.bars.binary_search_by_key(&bar.start_ms, |held| held.start_ms) {
                Ok(_) => return false,
                Err(at) => at,
            },
        };
        if at == 0 && self.bars.len() >= self.cap {
            return false;
        }
        self.bars.insert(at, bar);
        while self.bars.len() > self.cap {
            self.bars.pop_front();
        }
        true
    }

    /// The candles starting in `[from_ms, to_ms)`, oldest first, at most `limit`, and whether
    /// more follow in the range.
    pub fn range(&self, from_ms: i64, to_ms: i64, limit: usize) -> (Vec<Bar>, bool) {
        let first = self.bars.partition_point(|bar| bar.start_ms < from_ms);
        let end = self.bars.partition_point(|bar| bar.start_ms < to_ms).max(first);
        let taken: Vec<Bar> = self.bars.range(first..end).take(limit).copied().collect();
        (taken, end - first > limit)
    }

    pub fn len(&self) -> usize {
        self.bars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bars.is_empty()
    }

    /// The newest start held.
    pub fn newest_start_ms(&self) -> Option<i64> {
        self.bars.back().map(|bar| bar.start_ms)
    }
}

/// Every configured pair's series, `series[pair][interval]`.
pub struct CandleCache {
    pairs: Vec<Pair>,
    series: Vec<[RwLock<Series>; 4]>,
}

impl CandleCache {
    pub fn new(pairs: Vec<Pair>) -> Self {
        let series = pairs.iter().map(|_| Interval::ALL.map(|interval| RwLock::new(Series::new(retained(interval)))));
        Self { series: series.collect(), pairs }
    }

    pub fn pairs(&self) -> &[Pair] {
        &self.pairs
    }

    /// Adds a closed candle; one of a pair not configured is ignored. False when nothing was added.
    pub fn insert(&self, candle: &Candle) -> bool {
        let Some(index) = self.pairs.iter().position(|pair| pair.as_str() == candle.pair) else { return false };
        self.with(index, candle.interval, |series| series.insert(Bar::of(candle)))
    }

    /// Runs `read` over the `index`th pair's `interval` series.
    pub fn read<T>(&self, index: usize, interval: Interval, read: impl FnOnce(&Series) -> T) -> Option<T> {
        let lock = &self.series.get(index)?[slot(interval)];
        Some(read(&lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)))
    }

    fn with<T>(&self, index: usize, interval: Interval, write: impl FnOnce(&mut Series) -> T) -> T {
        let lock = &self.series[index][slot(interval)];
        write(&mut lock.write().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Candles held, all pairs and intervals.
    pub fn len(&self) -> usize {
        let sizes = (0..self.pairs.len()).flat_map(|i| Interval::ALL.map(|iv| self.read(i, iv, Series::len)));
        sizes.flatten().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn slot(interval: Interval) -> usize {
    Interval::ALL.iter().position(|i| *i == interval).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(start_ms: i64) -> Bar {
        Bar { start_ms, open: 1.0, high: 1.0, low: 1.0, close: 1.0, time_weighted: 1.0, covered_ms: 60_000, samples: 1 }
    }

    fn starts(series: &Series) -> Vec<i64> {
        series.range(i64::MIN, i64::MAX, usize::MAX).0.iter().map(|b| b.start_ms).collect()
    }

    #[test]
    fn a_series_keeps_order_drops_replays_and_keeps_the_newest_within_its_cap() {
        let mut series = Series::new(3);
        assert!(series.insert(bar(2)) && series.insert(bar(4)) && series.insert(bar(3)));
        assert!(!series.insert(bar(3)), "a replayed start is dropped");
        assert_eq!(starts(&series), [2, 3, 4]);
        assert!(series.insert(bar(5)));
        assert_eq!(starts(&series), [3, 4, 5], "the oldest goes beyond the cap");
        assert!(!series.insert(bar(1)), "older than everything held in a full series");
    }

    #[test]
    fn a_range_is_half_open_limited_and_says_whether_more_follow() {
        let mut series = Series::new(100);
        (0..10).for_each(|i| {
            series.insert(bar(i * 10));
        });
        let (page, more) = series.range(20, 60, 2);
        assert_eq!(page.iter().map(|b| b.start_ms).collect::<Vec<_>>(), [20, 30]);
        assert!(more);
        let (page, more) = series.range(40, 60, 2);
        assert_eq!((page.len(), more), (2, false));
        assert_eq!(series.range(60, 20, 5).0.len(), 0);
    }

    #[test]
    fn a_pair_s_history_is_about_two_mebibytes() {
        let per_pair: usize = Interval::ALL.into_iter().map(retained).sum();
        assert_eq!(per_pair, 31_130);
        assert_eq!(std::mem::size_of::<Bar>(), 64);
        assert!(per_pair * std::mem::size_of::<Bar>() < 2 * 1024 * 1024);
    }
}
