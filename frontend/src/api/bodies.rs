//! The JSON bodies of a pair's price and average routes, and their encoding once per state.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use btc_contract::{PriceState, QuoteStatus, Tick};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};

use super::caching::Etag;
use super::encoded::OpenObject;
use crate::cache::CachedState;

/// The current price of a pair.
#[derive(Debug, Object, serde::Serialize)]
pub struct CurrentPrice {
    /// The pair, `ASSET-CURRENCY`: `BTC-USD`.
    pub pair: String,
    /// Currency of every price in this answer: `USD`.
    pub currency: String,
    /// The consensus price: median of the exchange quotes that were used, in `currency`.
    pub price: f64,
    /// Time of the tick: the start of the publisher's round, RFC 3339. Ticks are ordered and
    /// averaged by it.
    pub time: DateTime<Utc>,
    /// Time of the oldest exchange quote used in the price: the data is this old. `age_seconds`
    /// and staleness are judged on it.
    pub oldest_quote_time: DateTime<Utc>,
    /// How far apart the quotes behind `price` were.
    pub dispersion: Dispersion,
    /// Every fresh exchange quote of the round and whether it was used.
    pub sources: Vec<SourceQuote>,
    /// Seconds between `oldest_quote_time` and this answer.
    #[serde(skip)]
    pub age_seconds: f64,
}

/// Spread of the quotes used for the price: its confidence band.
#[derive(Debug, Object, serde::Serialize)]
pub struct Dispersion {
    /// Lowest quote used, in `currency`.
    pub low: f64,
    /// Highest quote used, in `currency`.
    pub high: f64,
    /// Standard deviation of the quotes used, in `currency`.
    pub std_dev: f64,
    /// Number of quotes used.
    pub used: u32,
}

/// One exchange's quote.
#[derive(Debug, Object, serde::Serialize)]
pub struct SourceQuote {
    /// Exchange name, e.g. `kraken`.
    pub source: String,
    /// The exchange's price, in `currency`.
    pub price: f64,
    /// The exchange's own time for the quote where it gives one, else when it was received.
    pub quote_time: DateTime<Utc>,
    /// Whether the quote went into the median.
    pub status: SourceStatus,
}

/// `used`: part of the median. `outlier`: too far from the median, excluded. `reference`: an
/// aggregator's price (CoinGecko) shown as a sanity check, never a vote.
#[derive(Debug, Enum, serde::Serialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum SourceStatus {
    Used,
    Outlier,
    Reference,
}

/// The rolling average over the last `window_seconds` of ticks.
#[derive(Debug, Object, serde::Serialize)]
pub struct AveragePrice {
    /// The pair, `ASSET-CURRENCY`: `BTC-USD`.
    pub pair: String,
    /// Currency of the averages: `USD`.
    pub currency: String,
    /// Time-weighted average: each price weighted by how long it held inside the window, in `currency`.
    pub time_weighted_average: f64,
    /// Plain arithmetic mean of the ticks inside the window, in `currency`.
    pub mean: f64,
    /// Length of the window, seconds (600).
    pub window_seconds: u32,
    /// Number of ticks inside the window.
    pub samples: u32,
    /// Start of the span the averages cover: the window start, or the first tick after a cold start.
    pub from: DateTime<Utc>,
    /// End of the span: the newest tick's time.
    pub to: DateTime<Utc>,
    /// Time inside the window that a price covers, seconds: a price holds until the next tick,
    /// at most `MAX_HOLD` (5 s by default).
    pub covered_seconds: f64,
    /// Time inside the window that no price covers, seconds (`window_seconds - covered_seconds`):
    /// outages, and the time before the first tick during a cold start. Gaps weigh nothing.
    pub gap_seconds: f64,
    /// `true` when the gaps add up to at most one `MAX_HOLD`: the averages cover the window.
    pub complete: bool,
    /// Seconds between `to` and this answer.
    #[serde(skip)]
    pub age_seconds: f64,
}

/// The bodies of a pair's price and average routes for one state, encoded once per state (by the
/// first request that needs them); each request only adds its `age_seconds`. Kept here, not in
/// the cache: the cache holds the state, each app its own wire format.
///
/// With them, the `text/plain` bodies (the bare price and time-weighted average, as the seed's app
/// printed them) and the state's tag in each representation.
#[derive(Debug, Clone)]
pub struct EncodedBodies {
    pub price: OpenObject,
    pub average: OpenObject,
    pub price_text: Bytes,
    pub average_text: Bytes,
    pub json_etag: Etag,
    pub text_etag: Etag,
}

impl EncodedBodies {
    pub fn encode(state: &PriceState) -> Result<Self, serde_json::Error> {
        Ok(Self {
            price: OpenObject::encode(&current_price(state), "age_seconds")?,
            average: OpenObject::encode(&average_price(state), "age_seconds")?,
            price_text: bare_number(state.latest.price)?,
            average_text: bare_number(state.average.time_weighted)?,
            json_etag: Etag::of_position(state.position(), "json"),
            text_etag: Etag::of_position(state.position(), "text"),
        })
    }
}

/// `97012.35` as Python's `str(float)` prints it (shortest round-trip digits, `97000.0` for a
/// whole number), which the seed's clients parse with `float()`.
fn bare_number(value: f64) -> Result<Bytes, serde_json::Error> {
    if !value.is_finite() {
        return Err(serde::ser::Error::custom("not a finite number"));
    }
    serde_json::to_vec(&value).map(Bytes::from)
}

/// The bodies of the state last served, swapped whole like the cache's state.
#[derive(Default)]
pub struct BodiesMemo(ArcSwapOption<(Arc<CachedState>, Arc<EncodedBodies>)>);

impl BodiesMemo {
    /// The bodies of `cached`, encoded now if it is a state not served before. A state that
    /// cannot be encoded leaves the previous one served, as if it had not arrived.
    pub fn of(&self, cached: Arc<CachedState>) -> Option<(Arc<CachedState>, Arc<EncodedBodies>)> {
        let memo = self.0.load_full();
        if let Some(memo) = memo.as_ref().filter(|memo| Arc::ptr_eq(&memo.0, &cached)) {
            return Some((memo.0.clone(), memo.1.clone()));
        }
        match EncodedBodies::encode(&cached.state) {
            Ok(bodies) => {
                let pair = (cached, Arc::new(bodies));
                self.0.store(Some(Arc::new(pair.clone())));
                Some(pair)
            }
            Err(error) => {
                tracing::warn!(%error, "cannot encode the state; kept the previous one");
                memo.map(|memo| (memo.0.clone(), memo.1.clone()))
            }
        }
    }
}

fn current_price(state: &PriceState) -> CurrentPrice {
    current_price_of(&state.latest)
}

/// The price body of `tick` (without its `age_seconds`, see [`OpenObject`]).
pub fn current_price_of(tick: &Tick) -> CurrentPrice {
    CurrentPrice {
        pair: tick.pair.clone(),
        currency: currency_of(&tick.pair).to_string(),
        price: tick.price,
        time: tick.time,
        oldest_quote_time: tick.data_time(),
        // Not encoded here: added to each answer (see `OpenObject`).
        age_seconds: 0.0,
        dispersion: Dispersion {
            low: tick.dispersion.low,
            high: tick.dispersion.high,
            std_dev: tick.dispersion.std_dev,
            used: tick.dispersion.used,
        },
        sources: tick
            .sources
            .iter()
            .map(|q| SourceQuote {
                source: q.source.clone(),
                price: q.price,
                quote_time: q.quote_time,
                status: match q.status {
                    QuoteStatus::Used => SourceStatus::Used,
                    QuoteStatus::Outlier => SourceStatus::Outlier,
                    QuoteStatus::Reference => SourceStatus::Reference,
                },
            })
            .collect(),
    }
}

/// The average body of `state` (without its `age_seconds`, see [`OpenObject`]).
pub fn average_price(state: &PriceState) -> AveragePrice {
    let average = &state.average;
    AveragePrice {
        pair: state.latest.pair.clone(),
        currency: currency_of(&state.latest.pair).to_string(),
        time_weighted_average: average.time_weighted,
        mean: average.mean,
        window_seconds: average.window_seconds,
        samples: average.samples,
        from: average.from,
        to: average.to,
        covered_seconds: average.covered_seconds,
        gap_seconds: average.gap_seconds,
        complete: average.complete,
        age_seconds: 0.0,
    }
}

/// `USD` of `BTC-USD`.
fn currency_of(pair: &str) -> &str {
    pair.rsplit_once('-').map_or(pair, |(_, currency)| currency)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::freshness::{self, Stale};
    use std::time::Duration;

    fn state(time: DateTime<Utc>, sequence: u64, price: f64) -> PriceState {
        testkit::prices::state(testkit::prices::tick("BTC-USD", price, time), sequence)
    }

    #[test]
    fn bodies_are_encoded_once_per_state() {
        let memo = BodiesMemo::default();
        let first = Arc::new(CachedState { state: state(Utc::now(), 1, 100.0) });
        let (_, a) = memo.of(first.clone()).expect("bodies");
        let (_, again) = memo.of(first).expect("bodies");
        assert!(Arc::ptr_eq(&a, &again), "the same state was encoded twice");
        let second = Arc::new(CachedState { state: state(Utc::now(), 2, 101.0) });
        let (served, b) = memo.of(second.clone()).expect("bodies");
        assert!(Arc::ptr_eq(&served, &second) && !Arc::ptr_eq(&a, &b));
        let body: serde_json::Value = serde_json::from_slice(&b.price.close_with(0.5)).expect("JSON");
        assert_eq!((body["price"].as_f64(), body["age_seconds"].as_f64()), (Some(101.0), Some(0.5)));
        assert_eq!((&b.price_text[..], &b.average_text[..]), (&b"101.0"[..], &b"101.0"[..]));
    }

    #[test]
    fn the_text_body_is_the_number_as_python_prints_it() {
        for (value, printed) in [(97012.35, "97012.35"), (97000.0, "97000.0"), (0.1 + 0.2, "0.30000000000000004")] {
            assert_eq!(&bare_number(value).expect("finite")[..], printed.as_bytes());
        }
        assert!(bare_number(f64::NAN).is_err());
    }

    #[test]
    fn a_price_is_fresh_up_to_the_limit_on_its_oldest_quote() {
        let limit = Duration::from_secs(30);
        let fresh = state(Utc::now() - chrono::Duration::seconds(20), 1, 100.0);
        assert!(freshness::judge(&fresh, limit).is_ok_and(|age| (20.0..21.0).contains(&age)));
        let stale = state(Utc::now() - chrono::Duration::seconds(40), 1, 100.0);
        assert!(matches!(freshness::judge(&stale, limit), Err(Stale { limit: l, .. }) if l == limit));
    }
}
