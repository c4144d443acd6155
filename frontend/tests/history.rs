//! The history routes against a real nats-server: the candle streams and the ticks stream made
//! as in production, candles and ticks published straight to them, the candle cache loading and
//! following them, and the routes served in process through Poem's test client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use btc_contract::{Candle, Interval, Pair, PriceState, Tick};
use btc_runtime::jetstream::{WhenMissing, candle_streams, ensure_ticks_stream};
use btc_runtime::stream_config::StreamArgs;
use chrono::{DateTime, TimeZone, Utc};
use frontend::App;
use frontend::cache::StateCache;
use frontend::server::endpoint;
use poem::test::TestClient;
use serde_json::Value;
use testkit::NatsServer;
use testkit::candles::candle_at;
use tokio_util::sync::CancellationToken;

const M: i64 = 60_000;

struct History {
    _server: NatsServer,
    js: jetstream::Context,
    cache: Arc<StateCache>,
    http: TestClient<poem::endpoint::BoxEndpoint<'static>>,
    _stop: tokio_util::sync::DropGuard,
}

/// A server with the candle and ticks streams, `before` published first, then bitcoin-api's
/// cache following the candles (BTC-USD and ETH-USD configured).
async fn start(before: &[Candle]) -> History {
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client.clone());
    // As the setup step makes them.
    candle_streams(&js, &StreamArgs::default(), WhenMissing::Create).await.expect("candle streams");
    ensure_ticks_stream(&js, &StreamArgs::default()).await.expect("ticks stream");
    for candle in before {
        publish(&js, candle).await;
    }
    let pairs = vec![Pair::seed(), "ETH-USD".parse().expect("pair")];
    let cache = Arc::new(StateCache::new(Some(client.clone()), pairs));
    let stop = CancellationToken::new();
    tokio::spawn(frontend::candles_follow::follow_candles(client, cache.candles().clone(), stop.clone()));
    let http = TestClient::new(endpoint(App::BitcoinApi, cache.clone(), Duration::from_secs(30)));
    History { _server: server, js, cache, http, _stop: stop.drop_guard() }
}

async fn publish(js: &jetstream::Context, candle: &Candle) {
    let pair: Pair = candle.pair.parse().expect("pair");
    let subject = pair.candles_subject(candle.interval);
    js.publish(subject, candle.encode().into()).await.expect("publish").await.expect("stored");
}

/// `count` contiguous 1m BTC-USD candles ending before the current minute.
fn minutes(count: i64) -> (i64, Vec<Candle>) {
    let first = Interval::OneMinute.start_of(Utc::now().timestamp_millis()) - count * M;
    let candles =
        (0..count).map(|i| candle_at("BTC-USD", Interval::OneMinute, first + i * M, 100.0 + i as f64)).collect();
    (first, candles)
}

async fn wait_for_candles(cache: &StateCache, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while cache.candles().len() < count {
        assert!(Instant::now() < deadline, "{} of {count} candles cached", cache.candles().len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(http: &TestClient<poem::endpoint::BoxEndpoint<'static>>, uri: &str) -> (u16, String, Value) {
    let response = http.get(uri).send().await;
    let status = response.0.status().as_u16();
    let cache_control = response.0.headers().get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or("").into();
    let text = response.0.into_body().into_string().await.expect("body");
    (status, cache_control, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")))
}

fn time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms).single().expect("time").to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn starts(page: &Value) -> Vec<DateTime<Utc>> {
    let candles = page["candles"].as_array().expect("candles");
    candles.iter().map(|c| c["start"].as_str().expect("start").parse().expect("an RFC 3339 start")).collect()
}

#[tokio::test]
async fn following_next_to_the_end_returns_every_candle_once_in_order() {
    let (first, candles) = minutes(1_200);
    let history = start(&candles).await;
    wait_for_candles(&history.cache, 1_200).await;
    let mut uri = format!("/btc/USD/candles?interval=1m&from={}&to={}&limit=500", time(first), time(first + 1_200 * M));
    let (mut seen, mut pages, mut controls) = (Vec::new(), 0, Vec::new());
    loop {
        let (status, cache_control, page) = get(&history.http, &uri).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(starts(&page));
        controls.push(cache_control);
        pages += 1;
        match page["next"].as_str() {
            Some(next) => uri = next.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<DateTime<Utc>> = candles.iter().map(|c| c.start).collect();
    assert_eq!(seen.len(), expected.len());
    assert!(seen == expected, "every candle once, in order");
    assert_eq!(controls, ["public, max-age=31536000, immutable"; 3], "every page's span is closed");
    let (_, _, body) = get(&history.http, &format!("/btc/USD/candles?interval=1m&from={}&limit=1", time(first))).await;
    let one = &body["candles"][0];
    assert_eq!(
        (one["open"].as_f64(), one["high"].as_f64(), one["closed"].as_bool()),
        (Some(100.0), Some(102.0), Some(true))
    );
    assert_eq!((one["samples"].as_u64(), one["covered_seconds"].as_f64()), (Some(3), Some(60.0)));
}

#[tokio::test]
async fn the_cache_follows_a_candle_published_after_start_and_ignores_replays_and_other_pairs() {
    let (first, candles) = minutes(3);
    let history = start(&candles).await;
    wait_for_candles(&history.cache, 3).await;
    let later = candle_at("BTC-USD", Interval::FiveMinutes, Interval::FiveMinutes.start_of(first), 90.0);
    publish(&history.js, &later).await;
    publish(&history.js, &candles[0]).await;
    publish(&history.js, &candle_at("BTC-GBP", Interval::OneMinute, first, 1.0)).await;
    wait_for_candles(&history.cache, 4).await;
    let (status, _, page) = get(&history.http, "/btc/USD/candles?interval=5m&limit=10").await;
    assert_eq!((status, page["candles"].as_array().map(Vec::len)), (200, Some(1)), "{page}");
    let (_, _, minutes) = get(&history.http, "/btc/USD/candles?interval=1m&limit=10").await;
    assert_eq!(starts(&minutes).len(), 3, "the replayed candle is held once: {minutes}");
    assert_eq!(history.cache.candles().len(), 4, "BTC-GBP is not configured");
}

#[tokio::test]
async fn the_open_candle_comes_from_the_state_and_is_not_cached() {
    let (first, candles) = minutes(2);
    let history = start(&candles).await;
    wait_for_candles(&history.cache, 2).await;
    let open = candle_at("BTC-USD", Interval::OneMinute, first + 2 * M, 200.0);
    history.cache.set(state_with(vec![open]));
    let (status, cache_control, page) = get(&history.http, "/btc/USD/candles?interval=1m&limit=10").await;
    assert_eq!((status, cache_control.as_str()), (200, "no-store"));
    let list = page["candles"].as_array().expect("candles");
    assert_eq!(list.len(), 3, "{page}");
    assert_eq!((list[2]["closed"].as_bool(), list[2]["open"].as_f64()), (Some(false), Some(200.0)));
    assert!(page["next"].is_null());
}

#[tokio::test]
async fn bad_parameters_are_json_400s_naming_the_parameter_and_unknown_pairs_404() {
    let history = start(&[]).await;
    let now = Utc::now().timestamp_millis();
    let cases = [
        ("/btc/USD/candles", "interval"),
        ("/btc/USD/candles?interval=2m", "interval"),
        ("/btc/USD/candles?interval=1m&limit=0", "limit"),
        ("/btc/USD/candles?interval=1m&limit=1441", "limit"),
        ("/btc/USD/candles?interval=1m&from=yesterday", "from"),
        ("/btc/USD/candles?interval=1m&to=2026-13-01T00:00:00Z", "to"),
        ("/btc/USD/ticks?limit=1001", "limit"),
        ("/btc/USD/ticks?after_sequence=x", "after_sequence"),
    ];
    for (uri, parameter) in cases {
        let (status, _, body) = get(&history.http, uri).await;
        assert_eq!(
            (status, body["error"].as_str(), body["parameter"].as_str()),
            (400, Some("bad_parameter"), Some(parameter)),
            "{uri}: {body}"
        );
    }
    let reversed = format!("/btc/USD/candles?interval=1m&from={}&to={}", time(now), time(now - M));
    let too_long = format!("/btc/USD/candles?interval=1m&from={}&to={}", time(now - 8 * 1440 * M), time(now));
    let ticks_too_long = format!("/btc/USD/ticks?from={}&to={}", time(now - 25 * 60 * M), time(now));
    for uri in [reversed, too_long, ticks_too_long] {
        let (status, _, body) = get(&history.http, &uri).await;
        assert_eq!((status, body["parameter"].as_str()), (400, Some("from")), "{uri}: {body}");
    }
    for uri in ["/doge/USD/candles?interval=1m", "/doge/USD/ticks"] {
        let (status, _, body) = get(&history.http, uri).await;
        assert_eq!((status, body["error"].as_str()), (404, Some("unknown_pair")), "{body}");
        assert_eq!(body["pairs"], serde_json::json!(["BTC-USD", "ETH-USD"]));
    }
}

fn tick(pair: &str, price: f64) -> Tick {
    testkit::prices::tick(pair, price, Utc::now())
}

#[tokio::test]
async fn ticks_page_to_the_end_of_the_range_with_every_sequence_once() {
    let history = start(&[]).await;
    let mut stored = Vec::new();
    for i in 0..25 {
        let ack = history.js.publish("prices.ticks.BTC-USD", tick("BTC-USD", 100.0 + f64::from(i)).encode().into());
        stored.push(ack.await.expect("publish").await.expect("stored").sequence);
        history.js.publish("prices.ticks.ETH-USD", tick("ETH-USD", 5.0).encode().into()).await.expect("publish");
    }
    // `to` a second ahead: a tick stored in the very millisecond of the request is after a default `to`.
    let to = time(Utc::now().timestamp_millis() + 1_000);
    let mut uri = format!("/btc/USD/ticks?limit=10&to={to}");
    let (mut seen, mut pages) = (Vec::new(), 0);
    loop {
        let (status, cache_control, page) = get(&history.http, &uri).await;
        assert_eq!((status, cache_control.as_str()), (200, "no-store"), "{page}");
        let ticks = page["ticks"].as_array().expect("ticks");
        assert!(ticks.len() <= 10);
        assert!(ticks.iter().all(|t| t["tick"]["pair"] == "BTC-USD"));
        seen.extend(ticks.iter().map(|t| t["sequence"].as_u64().expect("sequence")));
        pages += 1;
        match page["next"].as_str() {
            Some(next) => uri = next.to_string(),
            None => break,
        }
    }
    assert_eq!((seen, pages), (stored, 3));
}

#[tokio::test]
async fn to_caps_a_ticks_read_and_an_old_from_starts_at_the_first() {
    let history = start(&[]).await;
    for i in 0..6 {
        history
            .js
            .publish("prices.ticks.BTC-USD", tick("BTC-USD", 10.0 + f64::from(i)).encode().into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    let ahead = time(Utc::now().timestamp_millis() + 1_000);
    let (_, _, all) = get(&history.http, &format!("/btc/USD/ticks?to={ahead}")).await;
    let ticks = all["ticks"].as_array().expect("ticks");
    assert_eq!(ticks.len(), 6, "{all}");
    let fourth: DateTime<Utc> = ticks[3]["stored"].as_str().expect("stored").parse().expect("time");
    let to = fourth.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let (_, _, capped) = get(&history.http, &format!("/btc/USD/ticks?to={to}")).await;
    let capped: Vec<u64> =
        capped["ticks"].as_array().expect("ticks").iter().filter_map(|t| t["sequence"].as_u64()).collect();
    assert!(capped.len() <= 3 && capped.iter().all(|s| *s <= 3), "{capped:?}");
}

fn state_with(open_candles: Vec<Candle>) -> PriceState {
    PriceState { open_candles, ..testkit::prices::state(tick("BTC-USD", 200.0), 1) }
}
