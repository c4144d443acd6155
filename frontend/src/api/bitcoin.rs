//! bitcoin-api: every configured pair's price and average (`/{asset}/{currency}`,
//! `/{asset}/{currency}/average`), the seed's `/btc/USD` and `/btc/average`, and `/pairs`.

use std::sync::Arc;
use std::time::Duration;

use btc_contract::Pair;
use bytes::Bytes;
use poem::http::{HeaderMap, HeaderValue, StatusCode, header};
use poem::{IntoResponse, Request, Response};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use btc_runtime::metrics::age_seconds;

use super::bodies::{AveragePrice, BodiesMemo, CurrentPrice, EncodedBodies};
use super::caching::{self, CachePolicy, Validators};
use super::errors::ErrorBody;
use super::freshness::{self, Stale};
use super::negotiation::{self, Representation};
use super::responses::{Answer, Documented, WithParams};
use crate::cache::{CachedState, StateCache};

/// Seconds a client should wait before asking again after a 503.
pub const RETRY_AFTER_SECONDS: u64 = 5;

#[derive(Tags)]
enum ApiTags {
    /// Prices and averages of every configured pair.
    Price,
}

/// The spec of the price routes.
pub struct PriceDoc;

impl Documented for PriceDoc {
    type Body = CurrentPrice;
    const OK: &'static str = "The current price: JSON by default, the bare number (`97012.35`) with \
        `Accept: text/plain`.";
    const TEXT: bool = true;
    const ETAG: bool = true;
    const CACHE_CONTROL: &'static str = "`public, max-age=1`: a CDN may serve it for a second (a publisher round).";
    const ERRORS: &'static [(u16, &'static str)] = PRICE_ERRORS;
}

/// The spec of the average routes.
pub struct AverageDoc;

impl Documented for AverageDoc {
    type Body = AveragePrice;
    const OK: &'static str = "The rolling average: JSON by default (during a cold start `complete` is false and \
        `from` shows the span), the bare time-weighted average with `Accept: text/plain`.";
    const TEXT: bool = true;
    const ETAG: bool = true;
    const CACHE_CONTROL: &'static str = "`public, max-age=1`: a CDN may serve it for a second (a publisher round).";
    const ERRORS: &'static [(u16, &'static str)] = PRICE_ERRORS;
}

/// The spec of `/pairs`.
pub struct PairsDoc;

impl Documented for PairsDoc {
    type Body = PairList;
    const OK: &'static str = "The configured pairs.";
    const CACHE_CONTROL: &'static str = "`public, max-age=1`: the freshness it reports changes every second.";
    const ERRORS: &'static [(u16, &'static str)] = &[];
}

const PRICE_ERRORS: &[(u16, &str)] = &[
    (404, "No such pair here: the body's `pairs` lists the configured ones."),
    (503, "No price yet, or the newest is older than the staleness limit (or the request timed out)."),
];

/// How long a price or an average may be reused.
const PRICE_CACHE: CachePolicy = CachePolicy::MaxAge(1);

/// The pairs this API serves.
#[derive(Debug, Object)]
pub struct PairList {
    /// In the configured order.
    pub pairs: Vec<PairInfo>,
}

/// One configured pair, its paths, and how fresh its price is here.
#[derive(Debug, Object)]
pub struct PairInfo {
    /// `BTC-USD`.
    pub pair: String,
    /// `BTC`.
    pub asset: String,
    /// `USD`.
    pub currency: String,
    /// Path of its current price, e.g. `/btc/USD`.
    pub price_path: String,
    /// Path of its rolling average, e.g. `/btc/USD/average`.
    pub average_path: String,
    /// The exchanges behind its newest price (every fresh quote of the round, used or not).
    pub sources: Vec<String>,
    /// Seconds since the oldest quote behind its newest price; absent before the first.
    #[oai(skip_serializing_if_is_none)]
    pub price_age_seconds: Option<f64>,
    /// True when its price is served (200); false when its routes answer 503.
    pub fresh: bool,
}

/// Why a pair's state cannot be served.
enum Refusal {
    UnknownPair(ErrorBody),
    Unavailable(ErrorBody),
}

impl Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::UnknownPair(body) => body.into_response(),
            Refusal::Unavailable(body) => {
                let mut response = body.into_response();
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
                response
            }
        }
    }
}

/// The answers of the price and average routes, shared by their operations and by the hot path
/// that serves them without the router ([`crate::hot_routes`]): one code for both.
pub struct Prices {
    cache: Arc<StateCache>,
    stale_after: Duration,
    /// One per configured pair, in the cache's order.
    bodies: Vec<BodiesMemo>,
}

impl Prices {
    pub fn new(cache: Arc<StateCache>, stale_after: Duration) -> Self {
        let bodies = cache.pairs().iter().map(|_| BodiesMemo::default()).collect();
        Self { cache, stale_after, bodies }
    }

    /// The configured pair's state, its bodies and its price's age if it is fresh.
    fn fresh_state(&self, asset: &str, currency: &str) -> Result<(Arc<CachedState>, Arc<EncodedBodies>, f64), Refusal> {
        let index = self
            .cache
            .index_of(asset, currency)
            .ok_or_else(|| Refusal::UnknownPair(super::errors::unknown_pair(self.cache.pairs(), asset, currency)))?;
        let Some((cached, bodies)) = self.cache.get_at(index).and_then(|cached| self.bodies[index].of(cached)) else {
            return Err(Refusal::Unavailable(ErrorBody::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_price_yet",
                "no price has been received yet",
            )));
        };
        match freshness::judge(&cached.state, self.stale_after) {
            Ok(age) => Ok((cached, bodies, age)),
            Err(Stale { age_seconds, limit }) => Err(Refusal::Unavailable(ErrorBody::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stale_price",
                format!("the newest price is {age_seconds:.0} s old, above the {} s limit", limit.as_secs()),
            ))),
        }
    }

    /// The price of a pair, negotiated and conditional on the request's `headers`.
    pub fn price(&self, headers: &HeaderMap, asset: &str, currency: &str) -> Response {
        match self.fresh_state(asset, currency) {
            Ok((_, bodies, age)) => serve(headers, &bodies, |representation| match representation {
                Representation::Json => bodies.price.close_with(age),
                Representation::Text => bodies.price_text.clone(),
            }),
            Err(refusal) => refusal.into_response(),
        }
    }

    /// The average of a pair, negotiated and conditional on the request's `headers`.
    pub fn average(&self, headers: &HeaderMap, asset: &str, currency: &str) -> Response {
        match self.fresh_state(asset, currency) {
            Ok((cached, bodies, _)) => {
                let age = age_seconds(cached.state.average.to);
                serve(headers, &bodies, |representation| match representation {
                    Representation::Json => bodies.average.close_with(age),
                    Representation::Text => bodies.average_text.clone(),
                })
            }
            Err(refusal) => refusal.into_response(),
        }
    }
}

pub struct BitcoinApi {
    prices: Arc<Prices>,
}

impl BitcoinApi {
    pub fn new(cache: Arc<StateCache>, stale_after: Duration) -> Self {
        Self { prices: Arc::new(Prices::new(cache, stale_after)) }
    }

    /// The answers of its price and average routes, to serve them beside the router too.
    pub fn prices(&self) -> Arc<Prices> {
        self.prices.clone()
    }

    fn pair_info(&self, index: usize, pair: &Pair) -> PairInfo {
        let state = self.prices.cache.get_at(index);
        let age = state.as_ref().map(|cached| freshness::price_age_seconds(&cached.state));
        let price_path = pair.http_path();
        PairInfo {
            pair: pair.to_string(),
            asset: pair.asset().to_string(),
            currency: pair.currency().to_string(),
            average_path: format!("{price_path}/average"),
            price_path,
            sources: state
                .iter()
                .flat_map(|cached| cached.state.latest.sources.iter().map(|q| q.source.clone()))
                .collect(),
            fresh: age.is_some_and(|age| age <= self.prices.stale_after.as_secs_f64()),
            price_age_seconds: age,
        }
    }
}

#[OpenApi(tag = "ApiTags::Price")]
impl BitcoinApi {
    /// Current BTC price in USD
    ///
    /// BTC-USD at the seed's path: the newest consensus tick, the median of several exchanges, with
    /// the quotes behind it.
    #[oai(path = "/btc/USD", method = "get", operation_id = "current_price")]
    async fn current_price(&self, request: &Request) -> Answer<PriceDoc> {
        Answer::new(self.prices.price(request.headers(), "BTC", "USD"))
    }

    /// Rolling 10-minute average of the BTC price in USD
    ///
    /// BTC-USD's average at the seed's path (also `/btc/USD/average`): time-weighted average and
    /// plain mean over the last 600 s of ticks, with the span they cover.
    #[oai(path = "/btc/average", method = "get", operation_id = "average_price")]
    async fn average_price(&self, request: &Request) -> Answer<AverageDoc> {
        Answer::new(self.prices.average(request.headers(), "BTC", "USD"))
    }

    /// Current price of a pair
    ///
    /// The newest consensus tick of `asset`-`currency` (any case: `/eth/USD`, `/btc/EUR`): the
    /// median of several exchanges, with the quotes behind it. `GET /pairs` lists the pairs.
    #[oai(path = "/:asset/:currency", method = "get", operation_id = "pair_price")]
    async fn pair_price(
        &self,
        request: &Request,
        /// The asset, e.g. `btc`.
        asset: Path<String>,
        /// The currency, e.g. `USD`.
        currency: Path<String>,
    ) -> Answer<WithParams<PriceDoc>> {
        Answer::new(self.prices.price(request.headers(), &asset, &currency))
    }

    /// Rolling 10-minute average of a pair
    ///
    /// Time-weighted average and plain mean of `asset`-`currency` over the last 600 s of ticks.
    #[oai(path = "/:asset/:currency/average", method = "get", operation_id = "pair_average")]
    async fn pair_average(
        &self,
        request: &Request,
        /// The asset, e.g. `btc`.
        asset: Path<String>,
        /// The currency, e.g. `USD`.
        currency: Path<String>,
    ) -> Answer<WithParams<AverageDoc>> {
        Answer::new(self.prices.average(request.headers(), &asset, &currency))
    }

    /// The configured pairs
    ///
    /// Every pair this API serves, with its paths, the exchanges behind its newest price and how
    /// fresh that price is.
    #[oai(path = "/pairs", method = "get", operation_id = "list_pairs")]
    async fn list_pairs(&self) -> Answer<PairsDoc> {
        let pairs =
            self.prices.cache.pairs().iter().enumerate().map(|(index, pair)| self.pair_info(index, pair)).collect();
        Answer::new(caching::with_policy(Json(PairList { pairs }).into_response(), PRICE_CACHE))
    }
}

/// The answer of a fresh state: the representation the `request` headers prefer (`body` gives it),
/// or a 304 when their `If-None-Match` names that representation's tag (no body is built).
fn serve(request: &HeaderMap, bodies: &EncodedBodies, body: impl FnOnce(Representation) -> Bytes) -> Response {
    let representation = negotiation::preferred(request);
    let etag = match representation {
        Representation::Json => &bodies.json_etag,
        Representation::Text => &bodies.text_etag,
    };
    let validators = Validators { etag, policy: PRICE_CACHE, vary: Some("accept") };
    validators.answer(request, || {
        let content_type = match representation {
            Representation::Json => JSON,
            Representation::Text => TEXT,
        };
        Response::builder().content_type(content_type).body(body(representation))
    })
}

const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
