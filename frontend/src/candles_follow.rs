//! Fills the [`CandleCache`] from the candle streams and keeps it current, with no consumer (the
//! frontend's user may not create one, see `cache`): batched direct gets to load, a core
//! subscription to `prices.candles.>` to follow.
//!
//! At start each configured pair's series of each interval is read from its stream
//! ([`Interval::stream`], subject [`Pair::candles_subject`]) from one retention back. The
//! subscription is made first, so a candle closed during the load is either read or heard. Each
//! closed candle the aggregator publishes is seen by core subscribers as it is stored; the
//! aggregator's candles are deterministic, so the payload heard is the one stored. Core NATS
//! delivers at most once (a reconnect loses what was sent meanwhile), so every [`CATCH_UP`] each
//! series is also read on from the last stream sequence seen: a lost candle is back within it.

use std::sync::Arc;
use std::time::Duration;

use btc_contract::{Candle, Interval};
use btc_runtime::backoff::Backoff;
use btc_runtime::direct_batch::{BatchRequest, DirectBatchError, MAX_BATCH, Start, get_batch};
use chrono::Utc;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::candles::{CandleCache, retained};

/// Subjects of every closed candle.
pub const CANDLES_SUBJECTS: &str = "prices.candles.>";
/// How often every series is read on from the last sequence seen.
pub const CATCH_UP: Duration = Duration::from_secs(30);
/// Longest wait for one batch.
const BATCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Most batches one catch-up of one series reads (a 1m series from empty takes 6).
const MAX_BATCHES: usize = 64;

/// Where each series goes on from: `cursors[pair][interval]`.
type Cursors = Vec<[Start; 4]>;

/// Keeps `candles` current until shutdown.
pub async fn follow_candles(client: async_nats::Client, candles: Arc<CandleCache>, shutdown: CancellationToken) {
    let mut backoff = Backoff::NATS;
    let now = Utc::now();
    let mut cursors: Cursors = candles
        .pairs()
        .iter()
        .map(|_| {
            Interval::ALL.map(|iv| Start::Time(now - chrono::Duration::milliseconds(iv.millis() * retained(iv) as i64)))
        })
        .collect();
    while !shutdown.is_cancelled() {
        match client.subscribe(CANDLES_SUBJECTS).await {
            Ok(notices) => {
                catch_up_all(&client, &candles, &mut cursors).await;
                tracing::info!(candles = candles.len(), "following the closed candles");
                backoff.reset();
                follow(notices, &client, &candles, &mut cursors, &shutdown).await;
            }
            Err(error) => tracing::warn!(%error, "cannot subscribe to the candles"),
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

async fn follow(
    mut notices: async_nats::Subscriber,
    client: &async_nats::Client,
    candles: &CandleCache,
    cursors: &mut Cursors,
    shutdown: &CancellationToken,
) {
    let mut check = tokio::time::interval(CATCH_UP);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = check.tick() => catch_up_all(client, candles, cursors).await,
            notice = notices.next() => match notice {
                Some(notice) => heard(candles, &notice.payload),
                None => return,
            },
        }
    }
}

/// A candle heard on `prices.candles.>`; one of a pair not configured is ignored.
pub fn heard(candles: &CandleCache, payload: &[u8]) {
    match Candle::decode(payload) {
        Ok(candle) => {
            candles.insert(&candle);
        }
        Err(error) => tracing::warn!(%error, "unreadable candle; ignored"),
    }
}

async fn catch_up_all(client: &async_nats::Client, candles: &CandleCache, cursors: &mut Cursors) {
    for (index, series) in cursors.iter_mut().enumerate() {
        for (slot, interval) in Interval::ALL.into_iter().enumerate() {
            if let Err(error) = catch_up(client, candles, index, interval, &mut series[slot]).await {
                // A stream not made yet answers no one: the next catch-up reads it.
                tracing::debug!(%error, interval = %interval, "cannot read the candles yet");
            }
        }
    }
}

/// Reads the `index`th pair's `interval` candles stored from `cursor` on, moving it past them.
pub async fn catch_up(
    client: &async_nats::Client,
    candles: &CandleCache,
    index: usize,
    interval: Interval,
    cursor: &mut Start,
) -> Result<usize, DirectBatchError> {
    let Some(pair) = candles.pairs().get(index) else { return Ok(0) };
    let subject = pair.candles_subject(interval);
    let mut read = 0;
    for _ in 0..MAX_BATCHES {
        let request = BatchRequest::new(interval.stream(), subject.as_str(), *cursor, MAX_BATCH);
        let batch = get_batch(client, &request, BATCH_TIMEOUT).await?;
        for message in &batch.messages {
            heard(candles, &message.payload);
            *cursor = Start::Sequence(message.sequence + 1);
        }
        read += batch.messages.len();
        let last_pending = batch.messages.last().and_then(|message| message.pending);
        if batch.messages.len() < MAX_BATCH || last_pending == Some(0) {
            break;
        }
    }
    Ok(read)
}
