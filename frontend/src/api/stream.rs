//! `GET /{asset}/{currency}/stream`: Server-Sent Events of a pair, resumable by id.
//!
//! A stream starts with `retry:`, then either the pair's newest `price` and `average` (a new
//! client), or every tick after the client's id still in the ticks stream (`Last-Event-ID`, or
//! `?since=`), read page by page; then the live events of the pair's feed ([`crate::feeds`]).
//! The feed is subscribed to before anything is read, and a `price` event at or before the last
//! id sent is dropped: no gap and no duplicate across the switch. An id whose ticks the stream
//! no longer holds gets a `gap` event first.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use btc_contract::names::{TICKS_STREAM, TICKS_SUBJECTS};
use btc_runtime::direct_batch::{BatchRequest, Start, get_batch};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Response};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::{Enum, Object, OpenApi, Tags};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::broadcast::error::RecvError;

use super::bitcoin::RETRY_AFTER_SECONDS;
use super::errors::{ErrorBody, unknown_pair};
use super::responses::{Answer, Documented, WithParams};
use crate::cache::StateCache;
use crate::feeds::{self, FeedEvent, Subscription};

/// How long a client waits before reconnecting (`retry:`), milliseconds.
pub const RECONNECT_MS: u64 = 3_000;

#[derive(Tags)]
enum ApiTags {
    /// Prices pushed as they come.
    Stream,
}

/// One event of a stream, as an `EventSource` reads it (`retry:` and comment lines are not events).
#[derive(Debug, Object)]
pub struct StreamEvent {
    /// What the event is.
    pub event: StreamEventName,
    /// On `price` events: the tick's sequence in the ticks stream. The last one received is what
    /// a client resumes after (`Last-Event-ID`, `since`).
    #[oai(skip_serializing_if_is_none)]
    pub id: Option<String>,
    /// One line of JSON: the tick as `/{asset}/{currency}` serves it (`price`), the average as
    /// `/{asset}/{currency}/average` serves it (`average`), or `{"error": "gap", "message",
    /// "after"}` (`gap`).
    pub data: String,
}

/// `price`: a tick. `average`: the pair's new average, after the ticks it covers. `gap`: ticks
/// after the id asked for are no longer kept, or the id is unknown.
#[derive(Debug, Enum)]
#[oai(rename_all = "lowercase")]
pub enum StreamEventName {
    Price,
    Average,
    Gap,
}

/// The spec of the stream route.
pub struct StreamDoc;

impl Documented for StreamDoc {
    type Body = StreamEvent;
    const MEDIA_TYPE: &'static str = "text/event-stream";
    const OK: &'static str = "An endless stream of events (`text/event-stream`). `price`: a tick, the same JSON \
        as `/{asset}/{currency}`, its `id` the tick's sequence in the ticks stream. `average`: the pair's new \
        average, the same JSON as `/{asset}/{currency}/average`, after the ticks it covers. `gap`: the ticks \
        after the id asked for are no longer kept (retention), or the id is unknown; the events go on from the \
        oldest tick kept, or from the newest. A comment line (`:`) every 15 s keeps an idle stream open; \
        `retry:` is 3000 ms. A client that falls 256 events behind is disconnected, and resumes by id.";
    const CACHE_CONTROL: &'static str = "`no-store`.";
    const ERRORS: &'static [(u16, &'static str)] = &[
        (400, "`since` or `Last-Event-ID` is not a tick sequence: the body's `parameter` names it."),
        (404, "No such pair here: the body's `pairs` lists the configured ones."),
        (503, "As many streams are open as this process allows (`STREAM_LIMIT`): try another time."),
    ];
}

pub struct StreamApi {
    cache: Arc<StateCache>,
}

impl StreamApi {
    pub fn new(cache: Arc<StateCache>) -> Self {
        Self { cache }
    }
}

#[OpenApi(tag = "ApiTags::Stream")]
impl StreamApi {
    /// Stream of a pair's prices
    ///
    /// Server-Sent Events: every tick of `asset`-`currency` as it is priced, and its average as
    /// it moves. Reconnecting with `Last-Event-ID` (browsers send it by themselves) or `since`
    /// first replays every tick after that id still in the ticks stream, then goes live, with no
    /// gap and no duplicate. `curl -N <host>/btc/USD/stream`, or `new EventSource('/btc/USD/stream')`.
    #[oai(path = "/:asset/:currency/stream", method = "get", operation_id = "pair_stream")]
    async fn pair_stream(
        &self,
        /// The asset, e.g. `btc`.
        asset: Path<String>,
        /// The currency, e.g. `USD`.
        currency: Path<String>,
        /// Resume after this tick sequence (an event's `id`).
        #[oai(validator(minimum(value = "0"), maximum(value = "9223372036854775807")))]
        since: Query<Option<u64>>,
        /// Resume after this event id (a tick sequence); sent by browsers when they reconnect.
        /// Takes precedence over `since`.
        #[oai(name = "Last-Event-ID", validator(pattern = r"^[0-9]{1,18}$"))]
        last_event_id: Header<Option<String>>,
    ) -> Answer<WithParams<StreamDoc>> {
        Answer::new(self.open(&asset, &currency, since.0, last_event_id.0.as_deref()))
    }
}

impl StreamApi {
    fn open(&self, asset: &str, currency: &str, since: Option<u64>, last_event_id: Option<&str>) -> Response {
        let Some((index, feed)) =
            self.cache.index_of(asset, currency).and_then(|index| Some((index, self.cache.feeds().feed(index)?)))
        else {
            return unknown_pair(self.cache.pairs(), asset, currency).into_response();
        };
        let since = match last_event_id.map(str::parse::<u64>) {
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => {
                return ErrorBody::bad_parameter("Last-Event-ID", "not an event id of this stream (a tick sequence)")
                    .into_response();
            }
            None => since,
        };
        let Some(permit) = self.cache.feeds().admit() else {
            let body =
                ErrorBody::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_streams", "too many streams open here");
            let mut response = body.into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            return response;
        };
        // Subscribed now, before anything is read: every event after the cut comes live.
        let events = events(self.cache.clone(), index, feed.subscribe(), since, permit);
        let drained = self.cache.drain_token().clone().cancelled_owned();
        let stream = with_heartbeat(events.take_until(drained), self.cache.feeds().heartbeat);
        Response::builder()
            .content_type("text/event-stream")
            .header(header::CACHE_CONTROL, "no-store")
            // nginx (the ingress) would otherwise buffer the events.
            .header("X-Accel-Buffering", "no")
            .body(Body::from_bytes_stream(stream.map(Ok::<_, std::io::Error>)))
    }
}

/// Where a client's stream is.
enum Phase {
    Start { since: Option<u64> },
    Replay { next: u64, until: u64 },
    Live,
    Ended,
}

/// A client's stream: its subscription, what it was last sent, and the bytes waiting to go.
struct ClientStream {
    cache: Arc<StateCache>,
    index: usize,
    subscription: Subscription,
    phase: Phase,
    /// The sequence of the last tick sent.
    last_sent: u64,
    ready: VecDeque<Bytes>,
    /// Held while the stream is open: the limit counts it.
    _permit: OwnedSemaphorePermit,
}

/// The events of pair `index` for a client starting after `since`.
fn events(
    cache: Arc<StateCache>,
    index: usize,
    subscription: Subscription,
    since: Option<u64>,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let client = ClientStream {
        cache,
        index,
        last_sent: 0,
        subscription,
        phase: Phase::Start { since },
        ready: VecDeque::from([Bytes::from(format!("retry: {RECONNECT_MS}\n\n"))]),
        _permit: permit,
    };
    futures::stream::unfold(client, |mut client| async move {
        let next = client.next().await?;
        Some((next, client))
    })
}

impl ClientStream {
    /// The next bytes to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.ready.pop_front() {
                return Some(bytes);
            }
            // A start and a replay run once or for a while; a live stream waits here for good.
            // Boxed, their larger futures are held only while they run, not by every client.
            match self.phase {
                Phase::Start { since } => Box::pin(self.start(since)).await,
                Phase::Replay { next, until } => Box::pin(self.replay(next, until)).await?,
                Phase::Live => self.live().await?,
                Phase::Ended => return None,
            }
        }
    }

    /// A new client gets the newest events; a resuming one the ticks after its id.
    async fn start(&mut self, since: Option<u64>) {
        self.phase = Phase::Live;
        if self.subscription.cut.cursor == 0 && !self.wait_for_the_feed().await {
            self.phase = Phase::Ended;
            return;
        }
        let cut = self.subscription.cut.clone();
        let Some(since) = since else {
            self.send_newest();
            return;
        };
        if since >= cut.cursor {
            // Ahead of this feed: another replica's feed ran a moment ahead, or the id is from
            // a stream that is no more (created again).
            if since > cut.cursor && self.first_kept_from(since).await == Some(None) {
                self.send_gap(since, "the id is beyond the ticks stream; the events go on from the newest");
                self.send_newest();
            } else {
                self.last_sent = since;
            }
            return;
        }
        self.last_sent = since;
        // Sequences are contiguous: the next one kept not being `since + 1` means some are gone.
        if let Some(Some(first)) = self.first_kept_from(since + 1).await
            && first > since + 1
        {
            self.send_gap(since, "ticks after this id are no longer kept; the events go on from the oldest kept");
        }
        self.phase = Phase::Replay { next: since + 1, until: cut.cursor };
    }

    /// Waits for the feed's first state (this process has just started following the pair):
    /// the cut is then where the feed started. False if the stream must end.
    async fn wait_for_the_feed(&mut self) -> bool {
        loop {
            match self.subscription.live.recv().await {
                Ok(event) if event.restart => {
                    let Some(feed) = self.cache.feeds().feed(self.index) else { return false };
                    self.subscription.cut = feed.cut();
                    return true;
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// The sequence of the first tick (of any pair) stored at or after `sequence`: `Some(None)`
    /// when there is none, `None` when the stream cannot be read.
    async fn first_kept_from(&self, sequence: u64) -> Option<Option<u64>> {
        let client = self.cache.nats_client()?;
        let request = BatchRequest::new(TICKS_STREAM, TICKS_SUBJECTS, Start::Sequence(sequence), 1);
        let batch = get_batch(client, &request, feeds::READ_TIMEOUT).await.ok()?;
        Some(batch.messages.first().map(|message| message.sequence))
    }

    fn send_newest(&mut self) {
        let cut = &self.subscription.cut;
        self.last_sent = cut.cursor;
        self.ready.extend(cut.price.iter().chain(&cut.average).map(|event| event.bytes.clone()));
    }

    fn send_gap(&mut self, since: u64, message: &str) {
        let body = serde_json::json!({ "error": "gap", "message": message, "after": since });
        self.ready.push_back(FeedEvent::new(None, "gap", body.to_string().as_bytes()).bytes);
    }

    /// One page of the ticks after the client's id; `None` ends the stream (it resumes by id).
    async fn replay(&mut self, next: u64, until: u64) -> Option<()> {
        let client = self.cache.nats_client()?.clone();
        let subject = self.cache.pairs().get(self.index)?.ticks_subject();
        let page = {
            // A page is held in memory while it is sent: only so many clients replay at once.
            let _replaying = self.cache.feeds().replays.acquire().await.ok()?;
            feeds::read_ticks(&client, &subject, next, until).await
        };
        let page = match page {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, %subject, "cannot replay ticks; the client will resume by id");
                return None;
            }
        };
        match page.last().map(|message| message.sequence) {
            Some(last) if last < until => self.phase = Phase::Replay { next: last + 1, until },
            _ => self.phase = Phase::Live,
        }
        for message in &page {
            if let Some(event) = feeds::price_event(message) {
                self.ready.push_back(event.bytes);
            }
            self.last_sent = message.sequence;
        }
        Some(())
    }

    /// The next live event not sent yet; `None` ends the stream (too slow, or the feed is gone).
    async fn live(&mut self) -> Option<()> {
        match self.subscription.live.recv().await {
            Ok(event) if event.restart => {
                // The ticks stream was created again: ids start over, and this client's mean
                // nothing in it.
                self.send_gap(self.last_sent, "the ticks stream started over; the events go on from its newest");
                if let Some(feed) = self.cache.feeds().feed(self.index) {
                    self.subscription.cut = feed.cut();
                    self.send_newest();
                }
                Some(())
            }
            Ok(event) => {
                match event.sequence {
                    Some(sequence) if sequence <= self.last_sent => {}
                    Some(sequence) => {
                        self.last_sent = sequence;
                        self.ready.push_back(event.bytes);
                    }
                    None => self.ready.push_back(event.bytes),
                }
                Some(())
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "a client fell behind its stream; disconnected, it resumes by id");
                None
            }
            Err(RecvError::Closed) => None,
        }
    }
}

/// `events`, with a comment line whenever nothing was sent for `every`: proxies and this server's
/// idle timeout keep the stream open. Ends when `events` ends.
pub fn with_heartbeat(
    events: impl Stream<Item = Bytes> + Send + 'static,
    every: Duration,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let mut events: Pin<Box<dyn Stream<Item = Bytes> + Send>> = Box::pin(events);
    let mut idle = Box::pin(tokio::time::sleep(every));
    futures::stream::poll_fn(move |cx| {
        if let Poll::Ready(next) = events.poll_next_unpin(cx) {
            idle.as_mut().reset(tokio::time::Instant::now() + every);
            return Poll::Ready(next);
        }
        match idle.as_mut().poll(cx) {
            Poll::Ready(()) => {
                idle.as_mut().reset(tokio::time::Instant::now() + every);
                Poll::Ready(Some(Bytes::from_static(b":\n\n")))
            }
            Poll::Pending => Poll::Pending,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_gets_a_comment_line_each_interval_and_ends_with_its_events() {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let events = futures::stream::unfold(receiver, |mut receiver| async move {
            let next = receiver.recv().await?;
            Some((next, receiver))
        });
        let mut stream = Box::pin(with_heartbeat(events, Duration::from_secs(15)));
        let started = tokio::time::Instant::now();
        assert_eq!(stream.next().await.as_deref(), Some(&b":\n\n"[..]));
        assert_eq!(started.elapsed(), Duration::from_secs(15));
        tokio::time::advance(Duration::from_secs(10)).await;
        sender.send(Bytes::from_static(b"data: 1\n\n")).expect("send");
        assert_eq!(stream.next().await.as_deref(), Some(&b"data: 1\n\n"[..]));
        // An event resets the interval: the next comment is 15 s after it.
        let event_at = tokio::time::Instant::now();
        assert_eq!(stream.next().await.as_deref(), Some(&b":\n\n"[..]));
        assert_eq!(event_at.elapsed(), Duration::from_secs(15));
        drop(sender);
        assert_eq!(stream.next().await, None);
    }
}
