//! Ticks shaped like the publisher's, and loading many of them into the stream quickly.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{self, context::PublishAckFuture};
use btc_contract::{Dispersion, Pair, QuoteStatus, SCHEMA_VERSION, SourceQuote, Tick};
use chrono::{DateTime, TimeZone, Utc};

/// Publish acks in flight while loading (the async-nats context allows 5,000 by default).
pub const LOAD_ACKS_IN_FLIGHT: usize = 2_000;

/// The sources of a production tick: seven exchanges that vote, CoinGecko as a reference.
const SOURCES: [(&str, QuoteStatus); 8] = [
    ("coinbase", QuoteStatus::Used),
    ("kraken", QuoteStatus::Used),
    ("bitstamp", QuoteStatus::Used),
    ("gemini", QuoteStatus::Used),
    ("bitfinex", QuoteStatus::Used),
    ("binanceus", QuoteStatus::Used),
    ("cexio", QuoteStatus::Used),
    ("coingecko", QuoteStatus::Reference),
];

/// The current time in unix milliseconds.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A tick at `time_ms` as the publisher builds it (eight source quotes), with a price that varies
/// deterministically with `index` so that averages are not trivially constant.
pub fn tick_at(time_ms: i64, index: u64) -> Tick {
    let time = time_at(time_ms);
    let price = 97_000.0 + (index.wrapping_mul(7_919) % 4_001) as f64 * 0.01;
    let sources = SOURCES
        .iter()
        .enumerate()
        .map(|(i, &(source, status))| SourceQuote {
            source: source.to_string(),
            price: price + (i as f64 - 3.5) * 1.37,
            quote_time: time,
            status,
        })
        .collect();
    Tick {
        schema_version: SCHEMA_VERSION,
        pair: btc_contract::names::PAIR.to_string(),
        time,
        oldest_quote_time: Some(time),
        price,
        dispersion: Dispersion { low: price - 4.8, high: price + 4.8, std_dev: 3.2, used: 7 },
        sources,
    }
}

fn time_at(time_ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(time_ms).single().unwrap_or_default()
}

/// The encoded size of one tick, bytes.
pub fn encoded_tick_len() -> usize {
    tick_at(now_ms(), 0).encode().len()
}

/// What loading the stream gave.
pub struct Loaded {
    /// Stream sequence of the last tick stored.
    pub last_sequence: u64,
    /// The pair of the last tick stored.
    pub last_pair: Pair,
    /// Ticks stored per second.
    pub rate: f64,
}

/// Publishes `count` ticks `spacing_us` microseconds apart (stamped to the millisecond), the last
/// one stamped now (none in the future), with
/// up to [`LOAD_ACKS_IN_FLIGHT`] publish acks in flight, taking `pairs` in turn. No
/// `Nats-Msg-Id`: every tick is distinct, and a million ids would only fill the server's
/// de-duplication table.
pub async fn load(js: &jetstream::Context, count: u64, spacing_us: i64, pairs: &[Pair]) -> anyhow::Result<Loaded> {
    let subjects: Vec<String> = pairs.iter().map(Pair::ticks_subject).collect();
    anyhow::ensure!(!pairs.is_empty(), "no pair to load ticks for");
    let count_i64 = i64::try_from(count).context("tick count")?;
    let first_us = now_ms() * 1_000 - (count_i64 - 1) * spacing_us;
    let started = Instant::now();
    let mut in_flight: VecDeque<PublishAckFuture> = VecDeque::with_capacity(LOAD_ACKS_IN_FLIGHT);
    let mut last_sequence = 0;
    for index in 0..count {
        if in_flight.len() == LOAD_ACKS_IN_FLIGHT
            && let Some(ack) = in_flight.pop_front()
        {
            last_sequence = ack.await.context("publish ack while loading the stream")?.sequence;
        }
        let which = (index % pairs.len() as u64) as usize;
        let mut tick = tick_at((first_us + index as i64 * spacing_us).div_euclid(1_000), index);
        tick.pair = pairs[which].to_string();
        let subject = subjects[which].clone();
        let ack = js.publish(subject, tick.encode().into()).await.context("publishing a tick to the stream")?;
        in_flight.push_back(ack);
    }
    for ack in in_flight {
        last_sequence = ack.await.context("publish ack while loading the stream")?.sequence;
    }
    let last_pair = pairs[((count - 1) % pairs.len() as u64) as usize].clone();
    Ok(Loaded { last_sequence, last_pair, rate: per_second(count, started.elapsed()) })
}

/// `count` events in `elapsed`, per second.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}
