//! When the price is fresh enough to serve: the one rule behind the 503 of the price routes and
//! the `btc_price_age_seconds` gauge. Readiness never follows it ([`super::probes`] says why).

use std::time::Duration;

use btc_contract::PriceState;
use btc_runtime::metrics::age_seconds;

/// The newest price is `age_seconds` old, above `limit`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stale {
    pub age_seconds: f64,
    pub limit: Duration,
}

/// How old the price of `state` is, seconds: judged on the oldest quote behind the newest tick
/// (the data is that old), not on the tick's own time.
pub fn price_age_seconds(state: &PriceState) -> f64 {
    age_seconds(state.latest.data_time())
}

/// The price's age if it is no older than `stale_after`.
pub fn judge(state: &PriceState, stale_after: Duration) -> Result<f64, Stale> {
    let age = price_age_seconds(state);
    if age > stale_after.as_secs_f64() {
        return Err(Stale { age_seconds: age, limit: stale_after });
    }
    Ok(age)
}
