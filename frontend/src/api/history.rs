//! bitcoin-api's history: `GET /{asset}/{currency}/candles` (closed candles from the cache in
//! `candles`, the open one from the state) and `GET /{asset}/{currency}/ticks` (raw ticks read
//! on demand from the ticks stream, see `history_ticks`). Every range is capped and paged: a
//! page's `next` is the URL of the one after it, null at the end of the range.

use std::sync::Arc;

use btc_contract::{Interval, Pair};
use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};

use super::encoded::EncodedJson;
use super::errors::{ErrorBody, unknown_pair};
use super::history_page::{self, CandleBody, DEFAULT_LIMIT, IMMUTABLE, NO_STORE, Page, PageRange};
use super::history_ticks::{self, TicksQuery};
use super::responses::Hardened;
use crate::cache::StateCache;
use crate::candles::Bar;

#[derive(Tags)]
enum ApiTags {
    /// Candles and raw ticks of every configured pair.
    History,
}

/// A candle interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum IntervalParam {
    #[oai(rename = "1m")]
    OneMinute,
    #[oai(rename = "5m")]
    FiveMinutes,
    #[oai(rename = "1h")]
    OneHour,
    #[oai(rename = "1d")]
    OneDay,
}

impl From<IntervalParam> for Interval {
    fn from(param: IntervalParam) -> Self {
        match param {
            IntervalParam::OneMinute => Interval::OneMinute,
            IntervalParam::FiveMinutes => Interval::FiveMinutes,
            IntervalParam::OneHour => Interval::OneHour,
            IntervalParam::OneDay => Interval::OneDay,
        }
    }
}

/// A page of candles, oldest first.
#[derive(Debug, Object)]
pub struct CandlePage {
    /// `BTC-USD`.
    pub pair: String,
    /// `1m`, `5m`, `1h` or `1d`.
    pub interval: String,
    /// The range asked for: candles starting at or after `from`...
    pub from: DateTime<Utc>,
    /// ...and before `to`.
    pub to: DateTime<Utc>,
    pub candles: Vec<CandleBody>,
    /// The URL of the next page of this range; absent when the range is exhausted.
    #[oai(skip_serializing_if_is_none)]
    pub next: Option<String>,
}

#[derive(ApiResponse)]
pub enum CandlesResponse {
    /// A page of candles. Cache-Control: `public, max-age=31536000, immutable` for a page of
    /// closed candles over a range given in full, `no-store` otherwise.
    #[oai(status = 200)]
    Ok(EncodedJson<CandlePage>, #[oai(header = "Cache-Control")] String),
    /// A query parameter is malformed or out of bounds: the body's `parameter` names it.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No such pair here: the body's `pairs` lists the configured ones.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
}

pub struct HistoryApi {
    cache: Arc<StateCache>,
}

impl HistoryApi {
    pub fn new(cache: Arc<StateCache>) -> Self {
        Self { cache }
    }

    fn pair_index(&self, asset: &str, currency: &str) -> Result<usize, ErrorBody> {
        self.cache.index_of(asset, currency).ok_or_else(|| unknown_pair(self.cache.pairs(), asset, currency))
    }

    fn candles(&self, index: usize, interval: Interval, query: RangeQuery) -> CandlesResponse {
        let (range, explicit) = match query.resolve(interval) {
            Ok(resolved) => resolved,
            Err(body) => return CandlesResponse::BadRequest(Json(body)),
        };
        let open = self.cache.get_at(index).and_then(|cached| {
            cached.state.open_candles.iter().find(|candle| candle.interval == interval).map(Bar::of)
        });
        let pair = &self.cache.pairs()[index];
        let answer = self.cache.candles().read(index, interval, |series| {
            let page = history_page::page(series, open, interval, range);
            let cache_control = if explicit && page.all_closed { IMMUTABLE } else { NO_STORE };
            (page_body(pair, interval, range, &page), cache_control)
        });
        // `index` is a configured pair's: the cache has its series.
        let (body, cache_control) =
            answer.unwrap_or_else(|| (page_body(pair, interval, range, &Page::default()), NO_STORE));
        CandlesResponse::Ok(EncodedJson::new(body), cache_control.to_string())
    }
}

/// `from`, `to` and `limit` as given.
pub struct RangeQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
}

impl RangeQuery {
    /// The range to read, and whether `from` and `to` were both given (only then is a page's
    /// URL always the same page). `to` defaults to now, `from` to `limit` intervals before `to`.
    pub fn resolve(&self, interval: Interval) -> Result<(PageRange, bool), ErrorBody> {
        let limit = i64::from(self.limit.unwrap_or(DEFAULT_LIMIT));
        let to_ms = self.to.unwrap_or_else(Utc::now).timestamp_millis();
        let from_ms = self.from.map_or(to_ms - limit * interval.millis(), |from| from.timestamp_millis());
        if from_ms > to_ms {
            return Err(ErrorBody::bad_parameter("from", "from is after to"));
        }
        let max = history_page::max_range_ms(interval);
        if to_ms - from_ms > max {
            let days = max / 86_400_000;
            let message = format!("the range is longer than the {days} days of {interval} candles kept; page it");
            return Err(ErrorBody::bad_parameter("from", message));
        }
        let range = PageRange { from_ms, to_ms, limit: limit as usize };
        Ok((range, self.from.is_some() && self.to.is_some()))
    }
}

/// The JSON of `page` of `range`.
pub fn page_body(pair: &Pair, interval: Interval, range: PageRange, page: &Page<'_>) -> Vec<u8> {
    let next = page.next_from_ms.map(|from| candles_link(pair, interval, from, range.to_ms, range.limit));
    let envelope = history_page::Envelope { pair: pair.as_str(), interval, range, next };
    history_page::encode_page(&envelope, page, interval)
}

/// The path and query of a page of candles (a `next` link).
pub fn candles_link(pair: &Pair, interval: Interval, from_ms: i64, to_ms: i64, limit: usize) -> String {
    format!(
        "{}/candles?interval={interval}&from={}&to={}&limit={limit}",
        pair.http_path(),
        history_page::link_time(from_ms),
        history_page::link_time(to_ms),
    )
}

#[OpenApi(tag = "ApiTags::History")]
impl HistoryApi {
    /// Candles of a pair
    ///
    /// Open, high, low, close, time-weighted average, sample count and covered seconds per
    /// interval, oldest first, for candles starting in `[from, to)`. Closed candles, and the
    /// current open one (`closed: false`) when it is in the range. Follow `next` to the end of
    /// the range. A range may span at most the interval's retention (1m: 7 days, 5m: 30 days,
    /// 1h: 365 days, 1d: 3650 days).
    #[oai(path = "/:asset/:currency/candles", method = "get", operation_id = "pair_candles")]
    async fn pair_candles(
        &self,
        /// The asset, e.g. `btc`.
        asset: Path<String>,
        /// The currency, e.g. `USD`.
        currency: Path<String>,
        /// The candle interval.
        interval: Query<IntervalParam>,
        /// Candles starting at or after this time (RFC 3339) [default: `limit` intervals before `to`].
        from: Query<Option<DateTime<Utc>>>,
        /// Candles starting before this time (RFC 3339) [default: now].
        to: Query<Option<DateTime<Utc>>>,
        /// Most candles in this page (1 to 1440) [default: 500].
        #[oai(validator(minimum(value = "1"), maximum(value = "1440")))]
        limit: Query<Option<u32>>,
    ) -> Hardened<CandlesResponse> {
        let index = match self.pair_index(&asset, &currency) {
            Ok(index) => index,
            Err(body) => return Hardened(CandlesResponse::NotFound(Json(body))),
        };
        Hardened(self.candles(index, interval.0.into(), RangeQuery { from: from.0, to: to.0, limit: limit.0 }))
    }

    /// Raw ticks of a pair
    ///
    /// The ticks stored in `[from, to)` (by the time the stream stored them), oldest first, each
    /// with its stream sequence, read from the ticks stream within its retention. Follow `next`
    /// (it continues by sequence) to the end of the range. A range may span at most 24 hours.
    #[oai(path = "/:asset/:currency/ticks", method = "get", operation_id = "pair_ticks")]
    async fn pair_ticks(
        &self,
        /// The asset, e.g. `btc`.
        asset: Path<String>,
        /// The currency, e.g. `USD`.
        currency: Path<String>,
        /// Ticks stored at or after this time (RFC 3339) [default: one hour before `to`].
        from: Query<Option<DateTime<Utc>>>,
        /// Ticks stored before this time (RFC 3339) [default: now].
        to: Query<Option<DateTime<Utc>>>,
        /// Most ticks in this page (1 to 1000) [default: 500].
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// Continue after this stream sequence (set by `next`) instead of at `from`.
        after_sequence: Query<Option<u64>>,
    ) -> Hardened<history_ticks::TicksResponse> {
        let index = match self.pair_index(&asset, &currency) {
            Ok(index) => index,
            Err(body) => return Hardened(history_ticks::TicksResponse::NotFound(Json(body))),
        };
        let query = TicksQuery { from: from.0, to: to.0, limit: limit.0, after_sequence: after_sequence.0 };
        Hardened(history_ticks::ticks(&self.cache, &self.cache.pairs()[index], query).await)
    }
}
