//! One page of candles, as pure functions over the cached series and the state's open candle:
//! which candles, whether more follow, whether the page may be cached for good, and its body
//! (the cached candles' JSON copied in, not encoded again).

use btc_contract::Interval;
use chrono::{DateTime, TimeZone, Utc};
use poem_openapi::Object;
use poem_openapi::types::ToJSON;

use crate::candles::{Bar, CachedCandle, Series, retained};

/// Candles per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 500;
/// Most candles per page: a day of 1m candles.
pub const MAX_LIMIT: u32 = 1440;

/// Cache-Control of a page of closed candles only, over a range given in full: it never changes.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Cache-Control of any other page (the open candle changes with each tick).
pub const NO_STORE: &str = "no-store";

/// The longest range one request may ask for: the interval's retention.
pub fn max_range_ms(interval: Interval) -> i64 {
    interval.millis() * retained(interval) as i64
}

/// One candle as served.
#[derive(Debug, Clone, Object, PartialEq)]
pub struct CandleBody {
    /// Start of the interval (inclusive).
    pub start: DateTime<Utc>,
    /// End of the interval (exclusive).
    pub end: DateTime<Utc>,
    /// First price held in the interval.
    pub open: f64,
    /// Highest price held.
    pub high: f64,
    /// Lowest price held.
    pub low: f64,
    /// Last price held (so far, for the open candle).
    pub close: f64,
    /// Time-weighted average over the time a price covers.
    pub time_weighted: f64,
    /// Ticks inside the interval.
    pub samples: u32,
    /// Seconds of the interval a price covers.
    pub covered_seconds: f64,
    /// False for the current, still-open interval: its values change until it closes.
    pub closed: bool,
}

impl CandleBody {
    pub fn of(bar: &Bar, interval: Interval, closed: bool) -> Self {
        CandleBody {
            start: at(bar.start_ms),
            end: at(bar.start_ms + interval.millis()),
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            time_weighted: bar.time_weighted,
            samples: bar.samples,
            covered_seconds: bar.covered_ms as f64 / 1000.0,
            closed,
        }
    }
}

/// What a page is asked for: starts in `[from_ms, to_ms)`, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRange {
    pub from_ms: i64,
    pub to_ms: i64,
    pub limit: usize,
}

/// A page: its closed candles (cached), the open one when it belongs here, the `from` of the
/// next page when more follow, and whether every candle of its span is closed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page<'a> {
    pub closed: Vec<&'a CachedCandle>,
    pub open: Option<Bar>,
    pub next_from_ms: Option<i64>,
    pub all_closed: bool,
}

impl Page<'_> {
    /// Each candle's start and whether it is closed, in order.
    pub fn starts(&self) -> Vec<(i64, bool)> {
        let closed = self.closed.iter().map(|held| (held.start_ms, true));
        closed.chain(self.open.iter().map(|bar| (bar.start_ms, false))).collect()
    }
}

/// The page of `series` (closed candles) and `open` (the state's open candle of this interval)
/// in `range`. The open candle comes after every closed one; one whose start is already closed
/// here (a state older than the candle stream) is left out.
pub fn page(series: &Series, open: Option<Bar>, interval: Interval, range: PageRange) -> Page<'_> {
    let (closed, mut more) = series.range(range.from_ms, range.to_ms, range.limit);
    let newest_closed = series.newest_start_ms();
    let in_range = open.filter(|bar| {
        (range.from_ms..range.to_ms).contains(&bar.start_ms) && newest_closed.is_none_or(|newest| bar.start_ms > newest)
    });
    let mut open = None;
    if let (Some(bar), false) = (in_range, more) {
        if closed.len() < range.limit {
            open = Some(bar);
        } else {
            more = true;
        }
    }
    let last_start = open.map(|bar| bar.start_ms).or_else(|| closed.last().map(|held| held.start_ms));
    let next_from_ms = more.then(|| last_start.map(|start| start + interval.millis())).flatten();
    // The span this page answers for ends at `to`, or where the next page starts.
    let span_end = next_from_ms.unwrap_or(range.to_ms);
    let closed_until = match (in_range, newest_closed) {
        (Some(bar), _) => bar.start_ms,
        (None, Some(newest)) => newest + interval.millis(),
        (None, None) => i64::MIN,
    };
    let all_closed = open.is_none() && span_end <= closed_until;
    Page { closed, open, next_from_ms, all_closed }
}

/// A candle's JSON as served (`CandleBody`).
pub fn encode_candle(bar: &Bar, interval: Interval, closed: bool) -> Vec<u8> {
    encode(&CandleBody::of(bar, interval, closed))
}

/// `value` as JSON, by the same conversion poem-openapi's `Json` payload makes.
fn encode<T: ToJSON>(value: &T) -> Vec<u8> {
    value.to_json().map(|json| json.to_string().into_bytes()).unwrap_or_default()
}

/// What a page of candles says around its candles (`CandlePage` without them).
pub struct Envelope<'a> {
    pub pair: &'a str,
    pub interval: Interval,
    pub range: PageRange,
    pub next: Option<String>,
}

/// The body of `page` in `envelope`: `CandlePage`'s JSON (its fields in the order poem-openapi
/// writes them), written straight into one buffer sized for it, the cached candles' JSON and the
/// open candle's copied in. The same JSON as encoding the whole typed page (the paging proptest
/// checks every body against it), without encoding each candle again or building the envelope
/// as a `serde_json::Value` first.
pub fn encode_page(envelope: &Envelope<'_>, page: &Page<'_>, interval: Interval) -> Vec<u8> {
    let open = page.open.map(|bar| encode_candle(&bar, interval, false));
    let candles = page.closed.iter().map(|held| &held.json[..]).chain(open.as_deref());
    let size: usize = candles.clone().map(|json| json.len() + 1).sum::<usize>() + 256;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(br#"{"candles":["#);
    for (i, json) in candles.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(json);
    }
    body.extend_from_slice(br#"],"from":"#);
    push_json(&mut body, &at(envelope.range.from_ms).to_rfc3339());
    body.extend_from_slice(br#","interval":"#);
    push_json(&mut body, &envelope.interval.to_string());
    if let Some(next) = &envelope.next {
        body.extend_from_slice(br#","next":"#);
        push_json(&mut body, next);
    }
    body.extend_from_slice(br#","pair":"#);
    push_json(&mut body, envelope.pair);
    body.extend_from_slice(br#","to":"#);
    push_json(&mut body, &at(envelope.range.to_ms).to_rfc3339());
    body.push(b'}');
    body
}

/// `text` as a JSON string, escaped as serde_json escapes it.
fn push_json(body: &mut Vec<u8>, text: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *body, text);
}

pub fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A time in a `next` link: RFC 3339 in UTC with `Z`, nothing to escape in a query.
pub fn link_time(ms: i64) -> String {
    at(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(start_ms: i64) -> Bar {
        Bar { start_ms, open: 1.0, high: 2.0, low: 0.5, close: 1.5, time_weighted: 1.2, covered_ms: 60_000, samples: 3 }
    }

    fn series(starts: &[i64]) -> Series {
        let mut series = Series::new(100);
        starts.iter().for_each(|start| {
            series.insert(CachedCandle {
                start_ms: *start,
                json: encode_candle(&bar(*start), Interval::OneMinute, true).into(),
            });
        });
        series
    }

    const M: i64 = 60_000;

    #[test]
    fn the_open_candle_follows_the_closed_ones_and_a_full_page_links_the_next() {
        let closed = series(&[0, M, 2 * M]);
        let full =
            page(&closed, Some(bar(3 * M)), Interval::OneMinute, PageRange { from_ms: 0, to_ms: 10 * M, limit: 3 });
        assert_eq!(full.next_from_ms, Some(3 * M));
        assert!(full.starts().iter().all(|(_, closed)| *closed));
        let last =
            page(&closed, Some(bar(3 * M)), Interval::OneMinute, PageRange { from_ms: 3 * M, to_ms: 10 * M, limit: 3 });
        assert_eq!(last.starts(), vec![(3 * M, false)]);
        assert_eq!((last.next_from_ms, last.all_closed), (None, false));
    }

    #[test]
    fn only_a_span_entirely_closed_is_all_closed() {
        let closed = series(&[0, M, 2 * M]);
        let past =
            page(&closed, Some(bar(3 * M)), Interval::OneMinute, PageRange { from_ms: 0, to_ms: 2 * M, limit: 10 });
        assert!(past.all_closed);
        let reaching_now = page(&closed, None, Interval::OneMinute, PageRange { from_ms: 0, to_ms: 10 * M, limit: 10 });
        assert!(!reaching_now.all_closed, "later candles will still appear in the range");
        let stale_open =
            page(&closed, Some(bar(M)), Interval::OneMinute, PageRange { from_ms: 0, to_ms: 3 * M, limit: 10 });
        assert_eq!(stale_open.starts().len(), 3, "an open candle already closed here is left out");
    }
}
