//! Property: for any set of candles (closed, plus maybe the open one) and any range and limit,
//! following `next` from the first page returns exactly the candles starting in the range, in
//! order, each once, and never a page beyond `limit`.

use btc_contract::Interval;
use frontend::api::history_page::{PageRange, page};
use frontend::candles::{Bar, Series};
use proptest::prelude::*;

const M: i64 = 60_000;

fn bar(minute: i64) -> Bar {
    Bar {
        start_ms: minute * M,
        open: 1.0,
        high: 1.0,
        low: 1.0,
        close: 1.0,
        time_weighted: 1.0,
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
            series.insert(bar(*minute));
        }
        let newest = minutes.iter().max().copied().unwrap_or(-1);
        let open = open_after.map(|after| bar(newest + 1 + after));
        let (from_ms, to_ms) = (from * M, (from + span) * M);
        let mut expected: Vec<(i64, bool)> =
            minutes.iter().map(|m| m * M).filter(|s| (from_ms..to_ms).contains(s)).map(|s| (s, true)).collect();
        if let Some(open) = open.filter(|o| (from_ms..to_ms).contains(&o.start_ms)) {
            expected.push((open.start_ms, false));
        }
        let mut seen = Vec::new();
        let mut cursor = from_ms;
        for _ in 0..=expected.len() + 1 {
            let result = page(&series, open, Interval::OneMinute, PageRange { from_ms: cursor, to_ms, limit });
            prop_assert!(result.candles.len() <= limit);
            seen.extend(result.candles.iter().map(|(bar, closed)| (bar.start_ms, *closed)));
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
