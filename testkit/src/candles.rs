//! A year of history without waiting a year: every pair's candle streams filled to a given depth
//! with well-formed candles, as the aggregator would have left them (the history e2e test and
//! `make bench`'s candles route both need it).

use async_nats::jetstream;
use btc_contract::candle::Sums;
use btc_contract::{Candle, Interval, Pair};

/// How many candles are stored per acknowledgement round: enough in flight to load quickly.
const IN_FLIGHT: usize = 1_000;

/// Publishes `depth(interval)` closed candles per interval for each of `pairs`, the newest one
/// ending at the start of the interval that holds `now_ms`; returns how many were stored. The
/// streams must exist (the setup step's `candle_streams`).
pub async fn fill(
    js: &jetstream::Context,
    pairs: &[Pair],
    now_ms: i64,
    depth: impl Fn(Interval) -> usize,
) -> Result<usize, async_nats::Error> {
    let mut stored = 0;
    for interval in Interval::ALL {
        let count = depth(interval) as i64;
        let first = interval.start_of(now_ms) - count * interval.millis();
        let starts: Vec<i64> = (0..count).map(|i| first + i * interval.millis()).collect();
        for pair in pairs {
            for chunk in starts.chunks(IN_FLIGHT) {
                let mut acks = Vec::with_capacity(chunk.len());
                for &start_ms in chunk {
                    let payload = candle(pair, interval, start_ms).encode();
                    acks.push(js.publish(pair.candles_subject(interval), payload.into()).await?);
                }
                for ack in acks {
                    ack.await?;
                }
                stored += chunk.len();
            }
        }
    }
    Ok(stored)
}

/// A closed candle of `pair` starting at `start_ms`, covering its whole interval, its prices
/// varying with the start so neighbouring candles differ.
pub fn candle(pair: &Pair, interval: Interval, start_ms: i64) -> Candle {
    candle_at(pair.as_str(), interval, start_ms, 60_000.0 + (start_ms / 60_000 % 1_000) as f64)
}

/// A closed candle of `pair` starting at `start_ms`, covering its whole interval at `price`: open
/// `price`, high `price + 2`, low `price - 2`, close `price + 1`, 3 samples.
pub fn candle_at(pair: &str, interval: Interval, start_ms: i64, price: f64) -> Candle {
    let covered_ms = interval.millis();
    let sums = Sums {
        open: price,
        high: price + 2.0,
        low: price - 2.0,
        close: price + 1.0,
        samples: 3,
        covered_ms,
        price_ms: (price * 1e8) as i128 * i128::from(covered_ms),
    };
    Candle::from_sums(pair, interval, start_ms, sums)
}
