//! Property: for any set of candles (closed, plus maybe the open one) and any range and limit,
//! following `next` from the first page returns exactly the candles starting in the range, in
//! order, each once, and never a page beyond `limit`; and each page's body, made of the cached
//! candles' JSON, is the JSON of the typed page.

use btc_contract::{Interval, Pair};
use frontend::api::history::{CandlePage, candles_link, page_body};
use frontend::api::history_page::{CandleBody, PageRange, at, encode_candle, page};
use frontend::candles::{Bar, CachedCandle, Series};
use poem_openapi::types::ToJSON;
use proptest::prelude::*;

const M: i64 = 60_000;

fn bar(minute: i64) -> Bar {
    Bar {
        start_ms: minute * M,
        open: 1.0 + minute as f64,
        high: 2.5,
        low: 0.125,
        close: 1.0 / 3.0,
        time_weighted: 1e-9 * minute as f64,
        covered_ms: M,
        samples: 1,
    }
}

proptest! {
    #[test]
    fn following_next_returns_exactly_the_candles_in_range(
        minutes in proptest::collection::btree_set(0i64..400, 0..200),
        open_after in proptest::option::of(0i64..20),
        from in -10i64..420,
        span in 0i64..450,
        limit in 1usize..60,
    ) {
        let mut series = Series::new(10_080);
        for minute in &minutes {
            let json = encode_candle(&bar(*minute), Interval::OneMinute, true).into();
            series.insert(CachedCandle { start_ms: minute * M, json });
        }
        let newest = minutes.iter().max().copied().unwrap_or(-1);
        let open = open_after.map(|after| bar(newest + 1 + after));
        let (from_ms, to_ms) = (from * M, (from + span) * M);
        let mut expected: Vec<(i64, bool)> =
            minutes.iter().map(|m| m * M).filter(|s| (from_ms..to_ms).contains(s)).map(|s| (s, true)).collect();
        if let Some(open) = open.filter(|o| (from_ms..to_ms).contains(&o.start_ms)) {
            expected.push((open.start_ms, false));
        }
        let pair = Pair::seed();
        let mut seen = Vec::new();
        let mut cursor = from_ms;
        for _ in 0..=expected.len() + 1 {
            let range = PageRange { from_ms: cursor, to_ms, limit };
            let result = page(&series, open, Interval::OneMinute, range);
            let starts = result.starts();
            prop_assert!(starts.len() <= limit);
            let body: serde_json::Value = serde_json::from_slice(&page_body(&pair, Interval::OneMinute, range, &result))
                .map_err(|error| TestCaseError::fail(error.to_string()))?;
            prop_assert_eq!(body, typed(&pair, range, &starts, result.next_from_ms));
            seen.extend(starts);
            match result.next_from_ms {
                Some(next) => {
                    prop_assert!(next > cursor, "next moves forward");
                    cursor = next;
                }
                None => break,
            }
        }
        prop_assert_eq!(seen, expected);
    }
}

/// The page with these candles encoded as a whole, as poem-openapi's `Json` would.
fn typed(pair: &Pair, range: PageRange, starts: &[(i64, bool)], next_from_ms: Option<i64>) -> serde_json::Value {
    let interval = Interval::OneMinute;
    let page = CandlePage {
        pair: pair.to_string(),
        interval: interval.to_string(),
        from: at(range.from_ms),
        to: at(range.to_ms),
        candles: starts.iter().map(|&(start, closed)| CandleBody::of(&bar(start / M), interval, closed)).collect(),
        next: next_from_ms.map(|from| candles_link(pair, interval, from, range.to_ms, range.limit)),
    };
    page.to_json().unwrap_or_default()
}
