//! `GET /{asset}/{currency}/ticks`: raw ticks read on demand from the ticks stream with one
//! batched direct get per page (at most `limit` + 1 messages: the one past the page says whether
//! more follow), continued by stream sequence. Not cached: ticks are many (one a second per
//! pair) and rarely asked for; a page costs one request to NATS.

use std::time::Duration;

use btc_contract::Pair;
use btc_contract::names::TICKS_STREAM;
use btc_runtime::direct_batch::{BatchRequest, Start, StoredMessage, get_batch};
use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use super::bitcoin::RETRY_AFTER_SECONDS;
use super::errors::ErrorBody;
use super::history_page::{NO_STORE, at, link_time};
use crate::cache::StateCache;

/// Ticks per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 500;
/// The longest range one request may ask for.
pub const MAX_RANGE_MS: i64 = 24 * 3_600_000;
/// The range when `from` is not given: one hour before `to`.
pub const DEFAULT_SPAN_MS: i64 = 3_600_000;
/// Longest wait for the stream's answer.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// One tick as stored.
#[derive(Debug, Object)]
pub struct StoredTick {
    /// Its sequence in the ticks stream.
    pub sequence: u64,
    /// When the stream stored it.
    pub stored: DateTime<Utc>,
    /// The tick as published on `prices.ticks.<PAIR>` (schema in the README).
    pub tick: serde_json::Value,
}

/// A page of ticks, oldest first.
#[derive(Debug, Object)]
pub struct TickPage {
    /// `BTC-USD`.
    pub pair: String,
    /// Ticks stored at or after `from`...
    pub from: DateTime<Utc>,
    /// ...and before `to`.
    pub to: DateTime<Utc>,
    pub ticks: Vec<StoredTick>,
    /// The URL of the next page of this range; absent when the range is exhausted.
    #[oai(skip_serializing_if_is_none)]
    pub next: Option<String>,
}

#[derive(ApiResponse)]
pub enum TicksResponse {
    /// A page of ticks (Cache-Control: `no-store`: ticks leave the stream with its retention).
    #[oai(status = 200)]
    Ok(Json<TickPage>, #[oai(header = "Cache-Control")] String),
    /// A query parameter is malformed or out of bounds: the body's `parameter` names it.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No such pair here: the body's `pairs` lists the configured ones.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The ticks stream cannot be read now.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

/// The query as given.
pub struct TicksQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
    pub after_sequence: Option<u64>,
}

/// One page of `pair`'s ticks.
pub async fn ticks(cache: &StateCache, pair: &Pair, query: TicksQuery) -> TicksResponse {
    let (from_ms, to_ms) = match range(&query) {
        Ok(range) => range,
        Err(body) => return TicksResponse::BadRequest(Json(body)),
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT) as usize;
    let Some(client) = cache.nats_client() else { return unavailable("not connected to NATS") };
    let start = match query.after_sequence {
        Some(sequence) => Start::Sequence(sequence.saturating_add(1)),
        None => Start::Time(at(from_ms)),
    };
    let request = BatchRequest::new(TICKS_STREAM, pair.ticks_subject(), start, limit + 1);
    let batch = match get_batch(client, &request, READ_TIMEOUT).await {
        Ok(batch) => batch,
        Err(error) => {
            tracing::warn!(%error, "cannot read the ticks");
            return unavailable("cannot read the ticks stream now");
        }
    };
    let received = batch.messages.len();
    let pending = batch.messages.last().and_then(|message| message.pending).unwrap_or(0);
    let in_range: Vec<StoredMessage> =
        batch.messages.into_iter().take_while(|message| message.time.timestamp_millis() < to_ms).collect();
    // More follow in the range if the page is full, or if everything read is in the range and the
    // stream has more of the subject (a batch cut by its byte cap or its timeout).
    let more = in_range.len() > limit || (in_range.len() == received && (pending > 0 || !batch.ended));
    let page: Vec<StoredMessage> = in_range.into_iter().take(limit).collect();
    let next = page.last().filter(|_| more).map(|last| {
        let (from, to) = (link_time(from_ms), link_time(to_ms));
        format!("{}/ticks?from={from}&to={to}&limit={limit}&after_sequence={}", pair.http_path(), last.sequence)
    });
    let body = TickPage { pair: pair.to_string(), from: at(from_ms), to: at(to_ms), ticks: stored(page), next };
    TicksResponse::Ok(Json(body), NO_STORE.to_string())
}

/// `[from, to)` in ms: `to` defaults to now, `from` to [`DEFAULT_SPAN_MS`] before it.
fn range(query: &TicksQuery) -> Result<(i64, i64), ErrorBody> {
    let to_ms = query.to.unwrap_or_else(Utc::now).timestamp_millis();
    let from_ms = query.from.map_or(to_ms - DEFAULT_SPAN_MS, |from| from.timestamp_millis());
    if from_ms > to_ms {
        return Err(ErrorBody::bad_parameter("from", "from is after to"));
    }
    if to_ms - from_ms > MAX_RANGE_MS {
        return Err(ErrorBody::bad_parameter("from", "the range is longer than 24 hours; page it"));
    }
    Ok((from_ms, to_ms))
}

/// The ticks as served; a message that is not JSON is left out (the stream only holds ticks).
fn stored(messages: Vec<StoredMessage>) -> Vec<StoredTick> {
    let tick = |message: StoredMessage| {
        let tick = serde_json::from_slice(&message.payload).ok()?;
        Some(StoredTick { sequence: message.sequence, stored: message.time, tick })
    };
    messages.into_iter().filter_map(tick).collect()
}

fn unavailable(message: &str) -> TicksResponse {
    let body = ErrorBody::new(StatusCode::SERVICE_UNAVAILABLE, "history_unavailable", message);
    TicksResponse::Unavailable(Json(body), RETRY_AFTER_SECONDS)
}
