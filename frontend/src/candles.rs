//! bitcoin-api's copy of every configured pair's closed candles, per interval, oldest first: what
//! `GET /{asset}/{currency}/candles` serves without a NATS round trip (see `candles_follow` for
//! how it is filled and kept current).
//!
//! What is cached and why: closed candles never change, a client pages through them, and the
//! frontend may not create a consumer (see `cache`), so reading them once at start and following
//! new ones costs far less than a batched read per page. Each series is capped at its interval's
//! retention ([`retained`]): 1m 7 days (10,080), 5m 30 days (8,640), 1h one year (8,760), 1d ten
//! years (3,650): 31,130 candles per pair. A closed candle is kept as the JSON it is served as
//! (about 210 bytes, encoded once when it arrives): a page of 1,440 candles is then a copy of
//! bytes, not 1,440 encodings (`make bench`: about 550 -> 4,800 req/s for that page), for about
//! 7 MiB per pair and 28 MiB for the four default pairs (`make bench` measures the process with
//! all of it at about 50 MiB).

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

/// A candle's served figures: the contract's [`Candle`] without its pair, interval and exact sums.
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

/// A closed candle as cached: its start, and its JSON as served (`CandleBody`), encoded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedCandle {
    pub start_ms: i64,
    pub json: Box<[u8]>,
}

impl CachedCandle {
    pub fn of(candle: &Candle) -> Self {
        let bar = Bar::of(candle);
        Self {
            start_ms: bar.start_ms,
            json: crate::api::history_page::encode_candle(&bar, candle.interval, true).into(),
        }
    }
}

/// One pair's closed candles of one interval, oldest first, distinct starts, at most `cap`.
#[derive(Debug, Default)]
pub struct Series {
    candles: VecDeque<CachedCandle>,
    cap: usize,
}

impl Series {
    pub fn new(cap: usize) -> Self {
        Self { candles: VecDeque::new(), cap }
    }

    /// Adds `candle` in its place; a start already held (a replayed candle) is dropped. Beyond the
    /// cap the oldest goes. False when nothing was added.
    pub fn insert(&mut self, candle: CachedCandle) -> bool {
        let at = match self.candles.back() {
            Some(last) if last.start_ms < candle.start_ms => self.candles.len(),
            None => 0,
            Some(_) => match self.candles.binary_search_by_key(&candle.start_ms, |held| held.start_ms) {
                Ok(_) => return false,
                Err(at) => at,
            },
        };
        if at == 0 && self.candles.len() >= self.cap {
            return false;
        }
        self.candles.insert(at, candle);
        while self.candles.len() > self.cap {
            self.candles.pop_front();
        }
        true
    }

    /// The candles starting in `[from_ms, to_ms)`, oldest first, at most `limit`, and whether
    /// more follow in the range.
    pub fn range(&self, from_ms: i64, to_ms: i64, limit: usize) -> (Vec<&CachedCandle>, bool) {
        let first = self.candles.partition_point(|held| held.start_ms < from_ms);
        let end = self.candles.partition_point(|held| held.start_ms < to_ms).max(first);
        let taken: Vec<&CachedCandle> = self.candles.range(first..end).take(limit).collect();
        (taken, end - first > limit)
    }

    pub fn len(&self) -> usize {
        self.candles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.candles.is_empty()
    }

    /// The newest start held.
    pub fn newest_start_ms(&self) -> Option<i64> {
        self.candles.back().map(|held| held.start_ms)
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
        let cached = CachedCandle::of(candle);
        self.with(index, candle.interval, |series| series.insert(cached))
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

    fn held(start_ms: i64) -> CachedCandle {
        CachedCandle { start_ms, json: Box::new([]) }
    }

    fn starts(series: &Series) -> Vec<i64> {
        series.range(i64::MIN, i64::MAX, usize::MAX).0.iter().map(|held| held.start_ms).collect()
    }

    #[test]
    fn a_series_keeps_order_drops_replays_and_keeps_the_newest_within_its_cap() {
        let mut series = Series::new(3);
        assert!(series.insert(held(2)) && series.insert(held(4)) && series.insert(held(3)));
        assert!(!series.insert(held(3)), "a replayed start is dropped");
        assert_eq!(starts(&series), [2, 3, 4]);
        assert!(series.insert(held(5)));
        assert_eq!(starts(&series), [3, 4, 5], "the oldest goes beyond the cap");
        assert!(!series.insert(held(1)), "older than everything held in a full series");
    }

    #[test]
    fn a_range_is_half_open_limited_and_says_whether_more_follow() {
        let mut series = Series::new(100);
        (0..10).for_each(|i| {
            series.insert(held(i * 10));
        });
        let (page, more) = series.range(20, 60, 2);
        assert_eq!(page.iter().map(|held| held.start_ms).collect::<Vec<_>>(), [20, 30]);
        assert!(more);
        let (page, more) = series.range(40, 60, 2);
        assert_eq!((page.len(), more), (2, false));
        assert_eq!(series.range(60, 20, 5).0.len(), 0);
    }

    #[test]
    fn a_cached_candle_is_the_json_it_is_served_as() {
        let candle = Candle::from_sums(
            "BTC-USD",
            Interval::OneMinute,
            1_800_000_000_000,
            btc_contract::candle::Sums {
                open: 1.5,
                high: 2.0,
                low: 1.0,
                close: 1.25,
                samples: 3,
                covered_ms: 60_000,
                price_ms: 90_000 * 150_000_000,
            },
        );
        let cached = CachedCandle::of(&candle);
        let served: serde_json::Value = serde_json::from_slice(&cached.json).expect("JSON");
        assert_eq!(served["start"], "2027-01-15T08:00:00+00:00");
        assert_eq!((served["open"].as_f64(), served["closed"].as_bool()), (Some(1.5), Some(true)));
        assert_eq!(cached.start_ms, 1_800_000_000_000);
    }
}
