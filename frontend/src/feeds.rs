//! Pushing prices (`GET /{asset}/{currency}/stream`): one feed per configured pair, fed once for
//! every client of this process.
//!
//! A feed follows its pair's state in the cache: when the state moves to stream sequence `S`, the
//! feed reads its pair's ticks after the last one it sent, up to `S`, from the ticks stream (a
//! batched direct get, as the ticks route reads them: the frontend's NATS user has no consumer),
//! and broadcasts a `price` event for each, then an `average` event. Each event is encoded once,
//! as the bytes every client is sent.
//!
//! Clients get the events through a bounded `broadcast` channel: a client that falls
//! [`CLIENT_BUFFER`] events behind is disconnected (it resumes by id), so a slow reader costs no
//! memory beyond the one ring every client shares.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use btc_contract::names::TICKS_STREAM;
use btc_contract::{PriceState, Tick};
use btc_runtime::direct_batch::{BatchRequest, Start, StoredMessage, get_batch};
use btc_runtime::metrics::age_seconds;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::CancellationToken;

use crate::api::bodies::{average_price, current_price_of};
use crate::api::encoded::OpenObject;
use crate::cache::StateCache;

/// Events a client may fall behind by before it is disconnected.
pub const CLIENT_BUFFER: usize = 256;
/// Ticks read from the stream per request, live and when a client resumes.
pub const PAGE: usize = 100;
/// Longest wait for the stream's answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// Concurrent streams per process unless `STREAM_LIMIT` says otherwise.
pub const DEFAULT_STREAM_LIMIT: usize = 10_000;
/// Clients replaying history at once: each holds a page of ticks while it is sent.
const REPLAYS_AT_ONCE: usize = 16;

/// One event, encoded as it is sent: `id:` (the tick's stream sequence, for `price` events),
/// `event:` and `data:` lines and the blank line that ends it.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    /// The stream sequence of a `price` event's tick; `None` for the other events.
    pub sequence: Option<u64>,
    pub bytes: Bytes,
    /// Not sent: the feed started over at `sequence` (its first state, or a ticks stream
    /// created again), and its cut moved there.
    pub restart: bool,
}

impl FeedEvent {
    /// `event` with `data` (one line of JSON) and, for a tick, its sequence as the id.
    pub fn new(sequence: Option<u64>, event: &str, data: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(data.len() + event.len() + 40);
        if let Some(sequence) = sequence {
            bytes.extend_from_slice(format!("id: {sequence}\n").as_bytes());
        }
        bytes.extend_from_slice(format!("event: {event}\ndata: ").as_bytes());
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(b"\n\n");
        Self { sequence, bytes: bytes.into(), restart: false }
    }

    /// The `price` event of `tick`, stored at `sequence`: the JSON `/{asset}/{currency}` serves.
    pub fn price(sequence: u64, tick: &Tick) -> Option<Self> {
        let open = OpenObject::encode(&current_price_of(tick), "age_seconds").ok()?;
        Some(Self::new(Some(sequence), "price", &open.close_with(age_seconds(tick.data_time()))))
    }

    /// The `average` event of `state`: the JSON `/{asset}/{currency}/average` serves.
    pub fn average(state: &PriceState) -> Option<Self> {
        let open = OpenObject::encode(&average_price(state), "age_seconds").ok()?;
        Some(Self::new(None, "average", &open.close_with(age_seconds(state.average.to))))
    }
}

/// Where a feed stands: every tick up to `cursor` has been broadcast.
#[derive(Debug, Clone, Default)]
pub struct Cut {
    pub cursor: u64,
    /// The ticks stream the cursor counts in (a stream created again starts at 1 again).
    pub stream_created: Option<DateTime<Utc>>,
    /// The newest `price` and `average` events: a new client's first events.
    pub price: Option<FeedEvent>,
    pub average: Option<FeedEvent>,
}

/// A client's start: every event after `cut` comes through `live`, none before it.
pub struct Subscription {
    pub cut: Cut,
    pub live: broadcast::Receiver<FeedEvent>,
}

/// One pair's feed.
pub struct Feed {
    sender: broadcast::Sender<FeedEvent>,
    /// Changed and broadcast under this lock, and subscribed under it: a subscription starts at
    /// an exact cut.
    cut: Mutex<Cut>,
}

impl Feed {
    fn new() -> Self {
        Self { sender: broadcast::channel(CLIENT_BUFFER).0, cut: Mutex::default() }
    }

    pub fn subscribe(&self) -> Subscription {
        let cut = self.lock();
        Subscription { live: self.sender.subscribe(), cut: cut.clone() }
    }

    pub fn cut(&self) -> Cut {
        self.lock().clone()
    }

    /// Broadcasts a `price` event and moves the cursor to its tick.
    fn send_price(&self, event: FeedEvent, sequence: u64) {
        let mut cut = self.lock();
        cut.cursor = sequence;
        cut.price = Some(event.clone());
        // No receiver is not an error: the event is kept as the next client's first.
        let _ = self.sender.send(event);
    }

    fn send_average(&self, event: FeedEvent) {
        let mut cut = self.lock();
        cut.average = Some(event.clone());
        let _ = self.sender.send(event);
    }

    /// Starts over at `state` (the first state seen, or one of a stream created again): the
    /// cursor jumps to it, and its price and average become the first events of new clients.
    fn restart_at(&self, state: &PriceState) {
        let mut cut = self.lock();
        *cut = Cut {
            cursor: state.stream_sequence,
            stream_created: state.stream_created,
            price: FeedEvent::price(state.stream_sequence, &state.latest),
            average: FeedEvent::average(state),
        };
        let restart = FeedEvent { sequence: Some(state.stream_sequence), bytes: Bytes::new(), restart: true };
        let _ = self.sender.send(restart);
    }

    /// A panic elsewhere cannot leave the cut half-changed: a poisoned lock is still good.
    fn lock(&self) -> std::sync::MutexGuard<'_, Cut> {
        self.cut.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every configured pair's feed, and the bounds every stream shares.
pub struct PriceFeeds {
    feeds: Vec<Feed>,
    /// A permit per open stream: beyond the limit a stream is refused.
    streams: Arc<Semaphore>,
    limit: usize,
    /// Replays of history running now.
    pub replays: Semaphore,
    /// Comment lines sent on an idle stream this often.
    pub heartbeat: Duration,
}

/// Heartbeats every 15 s keep a stream well inside the idle timeouts of proxies (nginx's 60 s
/// `proxy_read_timeout` by default) and of this server (`HTTP_IDLE_TIMEOUT`, 60 s).
pub const HEARTBEAT: Duration = Duration::from_secs(15);

impl PriceFeeds {
    pub fn new(pairs: usize, limit: usize) -> Self {
        Self {
            feeds: (0..pairs).map(|_| Feed::new()).collect(),
            streams: Arc::new(Semaphore::new(limit)),
            limit,
            replays: Semaphore::new(REPLAYS_AT_ONCE),
            heartbeat: HEARTBEAT,
        }
    }

    /// The feed of the `index`th configured pair.
    pub fn feed(&self, index: usize) -> Option<&Feed> {
        self.feeds.get(index)
    }

    /// A permit for one more stream; `None` at the limit.
    pub fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.streams.clone().try_acquire_owned().ok()
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.limit.saturating_sub(self.streams.available_permits())
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Feeds every configured pair from its state until `shutdown`.
pub async fn follow_ticks(client: async_nats::Client, cache: Arc<StateCache>, shutdown: CancellationToken) {
    let pairs = (0..cache.pairs().len()).map(|index| follow_pair(&client, &cache, index, &shutdown));
    futures::future::join_all(pairs).await;
}

async fn follow_pair(client: &async_nats::Client, cache: &StateCache, index: usize, shutdown: &CancellationToken) {
    let Some(feed) = cache.feeds().feed(index) else { return };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = cache.changed(index) => {}
        }
        let Some(cached) = cache.get_at(index) else { continue };
        let state = &cached.state;
        let cut = feed.cut();
        if cut.stream_created != state.stream_created || cut.cursor == 0 {
            feed.restart_at(state);
            continue;
        }
        if state.stream_sequence <= cut.cursor {
            continue;
        }
        let subject = cache.pairs()[index].ticks_subject();
        if let Err(error) = send_ticks(client, feed, &subject, cut.cursor, state.stream_sequence).await {
            // The next state tries again from where the feed stands.
            tracing::warn!(%error, %subject, "cannot read the ticks to push; trying again on the next state");
            continue;
        }
        if let Some(average) = FeedEvent::average(state) {
            feed.send_average(average);
        }
    }
}

/// Broadcasts a `price` event for each tick of `subject` after `after`, up to `until`.
async fn send_ticks(
    client: &async_nats::Client,
    feed: &Feed,
    subject: &str,
    after: u64,
    until: u64,
) -> Result<(), btc_runtime::direct_batch::DirectBatchError> {
    let mut next = after + 1;
    while next <= until {
        let page = read_ticks(client, subject, next, until).await?;
        let Some(last) = page.last().map(|message| message.sequence) else { break };
        for message in page {
            if let Some(event) = price_event(&message) {
                feed.send_price(event, message.sequence);
            }
        }
        next = last + 1;
    }
    Ok(())
}

/// Up to [`PAGE`] ticks of `subject` from sequence `from` to `until`; empty when there are none.
pub async fn read_ticks(
    client: &async_nats::Client,
    subject: &str,
    from: u64,
    until: u64,
) -> Result<Vec<StoredMessage>, btc_runtime::direct_batch::DirectBatchError> {
    let request = BatchRequest::new(TICKS_STREAM, subject, Start::Sequence(from), PAGE);
    let batch = get_batch(client, &request, READ_TIMEOUT).await?;
    Ok(batch.messages.into_iter().take_while(|message| message.sequence <= until).collect())
}

/// The `price` event of a stored tick; `None` for a message that is not one (the stream holds
/// only ticks, and the aggregator skips what does not read).
pub fn price_event(message: &StoredMessage) -> Option<FeedEvent> {
    let tick = Tick::decode(&message.payload).ok()?;
    FeedEvent::price(message.sequence, &tick)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_its_id_name_and_one_data_line() {
        let event = FeedEvent::new(Some(42), "price", br#"{"price":1.5}"#);
        assert_eq!(&event.bytes[..], b"id: 42\nevent: price\ndata: {\"price\":1.5}\n\n");
        let average = FeedEvent::new(None, "average", b"{}");
        assert_eq!(&average.bytes[..], b"event: average\ndata: {}\n\n");
    }

    #[test]
    fn a_subscription_starts_at_an_exact_cut() {
        let feed = Feed::new();
        feed.send_price(FeedEvent::new(Some(1), "price", b"{}"), 1);
        let mut first = feed.subscribe();
        feed.send_price(FeedEvent::new(Some(2), "price", b"{}"), 2);
        assert_eq!(first.cut.cursor, 1);
        assert_eq!(first.live.try_recv().ok().and_then(|event| event.sequence), Some(2));
        assert!(first.live.try_recv().is_err(), "nothing before the cut comes live");
    }

    #[test]
    fn the_limit_admits_that_many_streams() {
        let feeds = PriceFeeds::new(1, 2);
        let (a, b) = (feeds.admit(), feeds.admit());
        assert!(a.is_some() && b.is_some() && feeds.admit().is_none());
        assert_eq!(feeds.open_streams(), 2);
        drop(a);
        assert!(feeds.admit().is_some());
    }
}
