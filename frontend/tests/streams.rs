//! `GET /{asset}/{currency}/stream` against a real nats-server: ticks published to the ticks
//! stream as the publisher stores them, each pair's state set in the cache as the state watch sets
//! it (the aggregator's state points at the newest tick applied), the feeds following those
//! states, and the route served in process through Poem's test client.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use btc_contract::{Pair, Tick};
use btc_runtime::jetstream::ensure_ticks_stream;
use btc_runtime::stream_config::StreamArgs;
use bytes::Bytes;
use chrono::Utc;
use frontend::App;
use frontend::cache::StateCache;
use frontend::server::endpoint;
use futures::Stream;
use poem::test::TestClient;
use serde_json::Value;
use testkit::NatsServer;
use testkit::sse::Event;
use tokio_util::sync::CancellationToken;

/// Longest wait for any one event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

struct Streams {
    _server: NatsServer,
    js: jetstream::Context,
    cache: Arc<StateCache>,
    http: TestClient<poem::endpoint::BoxEndpoint<'static>>,
    /// The next tick's price, so every tick differs.
    next_price: f64,
    _stop: tokio_util::sync::DropGuard,
}

async fn start(stream_limit: usize) -> Streams {
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client.clone());
    ensure_ticks_stream(&js, &StreamArgs::default()).await.expect("ticks stream");
    let pairs = vec![Pair::seed(), "ETH-USD".parse().expect("pair")];
    let cache = Arc::new(StateCache::new(Some(client.clone()), pairs).with_stream_limit(stream_limit));
    let stop = CancellationToken::new();
    tokio::spawn(frontend::feeds::follow_ticks(client, cache.clone(), stop.clone()));
    let http = TestClient::new(endpoint(App::BitcoinApi, cache.clone(), Duration::from_secs(30)));
    Streams { _server: server, js, cache, http, next_price: 100.0, _stop: stop.drop_guard() }
}

impl Streams {
    /// Stores one tick of `pair` and returns its sequence in the ticks stream.
    async fn publish(&mut self, pair: &str) -> u64 {
        self.next_price += 1.0;
        let tick = tick(pair, self.next_price);
        let subject = format!("prices.ticks.{pair}");
        let ack = self.js.publish(subject, tick.encode().into()).await.expect("publish").await.expect("stored");
        ack.sequence
    }

    /// Stores `count` ticks of `pair`, then sets the state that stands at the last: the feed
    /// reads every one of them.
    async fn publish_then_state(&mut self, pair: &str, count: usize) -> Vec<u64> {
        let mut sequences = Vec::with_capacity(count);
        for _ in 0..count {
            sequences.push(self.publish(pair).await);
        }
        if let Some(&last) = sequences.last() {
            self.cache.set(testkit::prices::state(tick(pair, self.next_price), last));
        }
        sequences
    }

    async fn open(&self, uri: &str, last_event_id: Option<u64>) -> (u16, EventReader) {
        let mut request = self.http.get(uri);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await;
        let status = response.0.status().as_u16();
        (status, EventReader::new(Box::pin(response.0.into_body().into_bytes_stream())))
    }
}

fn tick(pair: &str, price: f64) -> Tick {
    testkit::prices::tick(pair, price, Utc::now())
}

type Body = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;
type EventReader = testkit::sse::EventReader<Body>;

/// The next event, within [`EVENT_TIMEOUT`]; `None` when the stream ended.
async fn next(events: &mut EventReader) -> Option<Event> {
    tokio::time::timeout(EVENT_TIMEOUT, events.next()).await.expect("an event in time")
}

/// The ids of the `price` events until the one with id `last` (inclusive), skipping the others.
async fn prices_until(events: &mut EventReader, last: u64) -> Vec<u64> {
    let mut ids = Vec::new();
    while let Some(event) = next(events).await {
        if event.name == "price" {
            let id = event.sequence().expect("a price event has a numeric id");
            ids.push(id);
            if id >= last {
                return ids;
            }
        }
    }
    panic!("the stream ended after {ids:?}, before {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_gets_the_newest_price_and_average_then_every_tick_live() {
    let mut streams = start(100).await;
    let first = streams.publish_then_state("BTC-USD", 1).await;
    // The feed has taken the first state before the client comes.
    testkit::wait_for("the feed to start", EVENT_TIMEOUT, || async {
        (streams.cache.feeds().feed(0)?.cut().cursor == first[0]).then_some(())
    })
    .await;
    let (status, mut events) = streams.open("/btc/USD/stream", None).await;
    assert_eq!(status, 200);
    let newest = next(&mut events).await.expect("the newest price");
    assert_eq!((newest.name.as_str(), newest.sequence()), ("price", Some(first[0])));
    assert_eq!(newest.json()["price"], 101.0);
    assert!(newest.json()["age_seconds"].is_number(), "the same JSON as /btc/USD: {}", newest.data);
    let average = next(&mut events).await.expect("the newest average");
    assert_eq!((average.name.as_str(), average.id.as_deref()), ("average", None));
    assert_eq!(average.json()["time_weighted_average"], 101.0);
    assert_eq!(events.retry, Some(3_000));

    let live = streams.publish_then_state("BTC-USD", 5).await;
    // Another pair's ticks are not this stream's.
    streams.publish_then_state("ETH-USD", 2).await;
    let later = streams.publish_then_state("BTC-USD", 1).await;
    let mut expected = live.clone();
    expected.extend(&later);
    assert_eq!(prices_until(&mut events, later[0]).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resuming_by_id_gets_every_later_tick_once_in_order_while_ticks_keep_coming() {
    let mut streams = start(100).await;
    let mut sent = streams.publish_then_state("BTC-USD", 1).await;
    let (_, mut events) = streams.open("/btc/USD/stream", None).await;
    next(&mut events).await.expect("the newest price");
    let live = streams.publish_then_state("BTC-USD", 10).await;
    sent.extend(&live);
    assert_eq!(prices_until(&mut events, live[9]).await, live);
    let last_seen = live[9];
    drop(events);

    // Missed while away: 250 ticks in states of 25, interleaved with another pair's.
    let mut missed = Vec::new();
    for _ in 0..10 {
        streams.publish_then_state("ETH-USD", 1).await;
        missed.extend(streams.publish_then_state("BTC-USD", 25).await);
    }
    let (status, mut events) = streams.open("/btc/USD/stream?since=1", Some(last_seen)).await;
    assert_eq!(status, 200, "Last-Event-ID takes precedence over since");
    // More come while it replays.
    let during = streams.publish_then_state("BTC-USD", 30).await;
    let mut expected = missed.clone();
    expected.extend(&during);
    let received = prices_until(&mut events, *during.last().expect("ticks")).await;
    assert_eq!(received.len(), expected.len(), "every tick once");
    assert!(received == expected, "every tick after the id, once, in order");

    // `?since=` resumes the same way.
    let (_, mut again) = streams.open(&format!("/btc/USD/stream?since={}", missed[99]), None).await;
    assert_eq!(prices_until(&mut again, missed[102]).await, missed[100..=102]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resuming_before_this_process_has_a_state_waits_for_it_and_misses_nothing() {
    let mut streams = start(100).await;
    let mut stored = Vec::new();
    for _ in 0..10 {
        stored.push(streams.publish("BTC-USD").await);
    }
    // A replica just started: no state yet, and a client comes back with its id. Its stream
    // took its start from the feed when it was answered, before the state below.
    let (status, mut events) = streams.open(&format!("/btc/USD/stream?since={}", stored[2]), None).await;
    assert_eq!(status, 200);
    let last = stored[9];
    let resumed = tokio::spawn(async move { prices_until(&mut events, last).await });
    streams.cache.set(testkit::prices::state(tick("BTC-USD", streams.next_price), last));
    assert_eq!(resumed.await.expect("reader"), stored[3..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_older_than_the_stream_keeps_gets_a_gap_event_then_the_oldest_tick_kept() {
    let mut streams = start(100).await;
    let sequences = streams.publish_then_state("BTC-USD", 20).await;
    // Nothing is lost yet: from the beginning is every tick, no gap.
    let (_, mut everything) = streams.open("/btc/USD/stream?since=0", None).await;
    let first = next(&mut everything).await.expect("the first tick");
    assert_eq!((first.name.as_str(), first.sequence()), ("price", Some(sequences[0])));
    let stream = streams.js.get_stream(btc_contract::names::TICKS_STREAM).await.expect("ticks stream");
    // Retention removed the first ten.
    stream.purge().sequence(sequences[10]).await.expect("purge");
    let (_, mut events) = streams.open(&format!("/btc/USD/stream?since={}", sequences[2]), None).await;
    let gap = next(&mut events).await.expect("a gap event");
    assert_eq!((gap.name.as_str(), gap.id.as_deref()), ("gap", None));
    assert_eq!(gap.json()["after"], sequences[2]);
    assert_eq!(prices_until(&mut events, sequences[19]).await, sequences[10..]);

    // An id the stream has not reached (a stream created again): a gap, then the newest.
    let (_, mut ahead) = streams.open("/btc/USD/stream?since=1000000", None).await;
    assert_eq!(next(&mut ahead).await.map(|event| event.name), Some("gap".to_string()));
    let newest = next(&mut ahead).await.expect("the newest price");
    assert_eq!((newest.name.as_str(), newest.sequence()), ("price", Some(sequences[19])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_disconnected_while_the_others_get_every_tick() {
    let mut streams = start(100).await;
    streams.publish_then_state("BTC-USD", 1).await;
    let (_, mut fast) = streams.open("/btc/USD/stream", None).await;
    let (_, mut slow) = streams.open("/btc/USD/stream", None).await;
    next(&mut fast).await.expect("the newest price");
    // More ticks than a client may fall behind by (256 events), each state a tick apart.
    let reader = tokio::spawn(async move {
        let mut received = Vec::new();
        while received.len() < 300 {
            let event = next(&mut fast).await.expect("the fast client's stream goes on");
            if event.name == "price" {
                received.push(event.sequence().expect("id"));
            }
        }
        received
    });
    let mut published = Vec::new();
    for _ in 0..30 {
        published.extend(streams.publish_then_state("BTC-USD", 10).await);
    }
    assert_eq!(reader.await.expect("reader"), published, "the reading client got every tick");
    // The one that read nothing gets what it was sent before it fell behind, then the end.
    let mut slow_prices = 0;
    while let Some(event) = next(&mut slow).await {
        slow_prices += usize::from(event.name == "price");
    }
    assert!(slow_prices < 300, "the slow client was cut off after {slow_prices} prices");
    assert_eq!(streams.cache.feeds().open_streams(), 0, "both streams are closed: the fast one was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_limit_a_stream_is_refused_with_a_json_503_and_retry_after() {
    let mut streams = start(2).await;
    streams.publish_then_state("BTC-USD", 1).await;
    let (a, _first) = streams.open("/btc/USD/stream", None).await;
    let (b, second) = streams.open("/eth/USD/stream", None).await;
    assert_eq!((a, b), (200, 200));
    let refused = streams.http.get("/btc/USD/stream").send().await;
    assert_eq!(refused.0.status().as_u16(), 503);
    assert_eq!(refused.0.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    let body: Value = serde_json::from_str(&refused.0.into_body().into_string().await.expect("body")).expect("JSON");
    assert_eq!(body["error"], "too_many_streams");
    drop(second);
    let (again, _third) = streams.open("/btc/USD/stream", None).await;
    assert_eq!(again, 200, "a closed stream frees its place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_ends_every_open_stream() {
    let mut streams = start(100).await;
    streams.publish_then_state("BTC-USD", 1).await;
    let (_, mut events) = streams.open("/btc/USD/stream", None).await;
    next(&mut events).await.expect("the newest price");
    streams.cache.start_draining();
    while let Some(event) = next(&mut events).await {
        assert_ne!(event.name, "price", "no tick after draining began: {event:?}");
    }
    // The server drops a body once it has ended.
    drop(events);
    assert_eq!(streams.cache.feeds().open_streams(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_and_unknown_pairs_are_json_errors() {
    let streams = start(100).await;
    let bad_id = streams.http.get("/btc/USD/stream").header("Last-Event-ID", "yesterday").send().await;
    assert_eq!(bad_id.0.status().as_u16(), 400);
    let body: Value = serde_json::from_str(&bad_id.0.into_body().into_string().await.expect("body")).expect("JSON");
    assert_eq!((body["error"].as_str(), body["parameter"].as_str()), (Some("bad_parameter"), Some("Last-Event-ID")));
    let bad_since = streams.http.get("/btc/USD/stream?since=-1").send().await;
    assert_eq!(bad_since.0.status().as_u16(), 400);
    let unknown = streams.http.get("/doge/USD/stream").send().await;
    assert_eq!(unknown.0.status().as_u16(), 404);
    let body: Value = serde_json::from_str(&unknown.0.into_body().into_string().await.expect("body")).expect("JSON");
    assert!(body["pairs"].as_array().is_some_and(|pairs| pairs.len() == 2), "{body}");
    assert_eq!(streams.cache.feeds().open_streams(), 0, "no refused stream holds a place");
}
