//! A tick and a state as the publisher and the aggregator write them: the frontends' tests store
//! ticks in the ticks stream and set states in their cache with these.

use btc_contract::{Dispersion, PriceState, SCHEMA_VERSION, Tick, WindowAverage};
use chrono::{DateTime, Utc};

/// A tick of `pair` at `price`, stamped `time`, from three agreeing quotes (none listed).
pub fn tick(pair: &str, price: f64, time: DateTime<Utc>) -> Tick {
    Tick {
        schema_version: SCHEMA_VERSION,
        pair: pair.into(),
        time,
        oldest_quote_time: Some(time),
        price,
        dispersion: Dispersion { low: price, high: price, std_dev: 0.0, used: 3 },
        sources: Vec::new(),
    }
}

/// The state the aggregator writes after its first tick, `latest`, stored at `sequence`.
pub fn state(latest: Tick, sequence: u64) -> PriceState {
    let (price, time) = (latest.price, latest.time);
    PriceState {
        schema_version: SCHEMA_VERSION,
        latest,
        average: WindowAverage {
            window_seconds: 600,
            time_weighted: price,
            mean: price,
            samples: 1,
            from: time,
            to: time,
            covered_seconds: 1.0,
            gap_seconds: 599.0,
            complete: false,
        },
        stream_sequence: sequence,
        stream_created: None,
        open_candles: Vec::new(),
    }
}
