//! Candles from a real aggregator: closed candles stored once in their interval's stream, the
//! open ones in the state, and a restarted or new aggregator going on with exactly the candles
//! one that never stopped makes.

mod support;

use aggregator::candles::CandleBuilder;
use btc_contract::names::{STATE_BUCKET, TICKS_STREAM};
use btc_contract::{Candle, Interval, Pair, PriceState};
use exchange_standin::Venue;
use futures::StreamExt;
use support::{DEADLINE, Pipeline};
use testkit::wait_for;

/// The aggregator's default MAX_HOLD.
const MAX_HOLD_MS: i64 = 5_000;

/// A second of ticks from `from_ms` for `count` seconds, the price walking up and down.
fn seconds(from_ms: i64, count: i64) -> Vec<(i64, f64)> {
    (0..count).map(|i| (from_ms + i * 1_000, 90_000.0 + ((i * 7) % 13) as f64)).collect()
}

/// Publishes `ticks`; their stream sequences.
async fn publish(js: &async_nats::jetstream::Context, pair: &Pair, ticks: &[(i64, f64)]) -> Vec<u64> {
    let mut sequences = Vec::with_capacity(ticks.len());
    for &(time, price) in ticks {
        let payload = support::tick_at(pair, time, price).encode();
        let ack = js.publish(pair.ticks_subject(), payload.into()).await.expect("publish").await.expect("stored");
        sequences.push(ack.sequence);
    }
    sequences
}

/// Every candle stored on `pair`'s subject of `interval`, in stream order.
async fn stored_candles(js: &async_nats::jetstream::Context, pair: &Pair, interval: Interval) -> Vec<Candle> {
    let Ok(stream) = js.get_stream(interval.stream()).await else { return Vec::new() };
    let config = async_nats::jetstream::consumer::pull::OrderedConfig {
        filter_subject: pair.candles_subject(interval),
        ..Default::default()
    };
    let consumer = stream.create_consumer(config).await.expect("ordered consumer");
    let total = consumer.cached_info().num_pending as usize;
    let messages = consumer.messages().await.expect("messages").take(total);
    messages.map(|m| Candle::decode(&m.expect("message").payload).expect("a candle")).collect().await
}

async fn state(kv: &async_nats::jetstream::kv::Store, pair: &Pair) -> Option<PriceState> {
    PriceState::decode(&kv.get(pair.state_key()).await.ok()??).ok()
}

/// What a builder that saw every tick makes: the closed candles and the open ones.
fn expected(ticks: &[(i64, f64)]) -> (Vec<Candle>, Vec<Candle>) {
    let mut builder = CandleBuilder::new("BTC-USD", MAX_HOLD_MS);
    let closed = ticks.iter().flat_map(|&(time, price)| builder.apply(time, price)).collect();
    (closed, builder.open_candles())
}

/// Once `pair`'s 1m and 5m candles are stored, they are exactly `closed`'s: each once, each as a
/// builder that saw every tick makes it.
async fn assert_stored_as(js: &async_nats::jetstream::Context, pair: &Pair, closed: &[Candle]) {
    for interval in [Interval::OneMinute, Interval::FiveMinutes] {
        let wanted: Vec<Candle> = closed.iter().filter(|c| c.interval == interval).cloned().collect();
        let stored = wait_for(&format!("the {interval} candles"), DEADLINE, || async {
            let stored = stored_candles(js, pair, interval).await;
            (stored.len() >= wanted.len()).then_some(stored)
        })
        .await;
        assert_eq!(stored, wanted, "{interval}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_candles_are_stored_once_and_a_restart_goes_on_exactly() {
    let pipeline = Pipeline::start(&[(Venue::Coinbase, 1.0)]).await;
    let pair = Pair::seed();
    let aggregator = pipeline.start_aggregator_with("candles", &["--pairs", "BTC-USD"]).await;
    let js = pipeline.jetstream().await;
    wait_for("the ticks stream", DEADLINE, || async { js.get_stream(TICKS_STREAM).await.ok() }).await;
    let kv = js.get_key_value(STATE_BUCKET).await.expect("state bucket");

    // Three and a half minutes of ticks from a minute's start, ten minutes ago.
    let now = chrono::Utc::now().timestamp_millis();
    let first = Interval::OneMinute.start_of(now - 600_000);
    let before = seconds(first, 210);
    let sequences = publish(&js, &pair, &before).await;
    let (closed, _) = expected(&before);
    assert_eq!(closed.iter().filter(|c| c.interval == Interval::OneMinute).count(), 3);
    let minutes = wait_for("three closed 1m candles", DEADLINE, || async {
        let stored = stored_candles(&js, &pair, Interval::OneMinute).await;
        (stored.len() == 3).then_some(stored)
    })
    .await;
    let expected_minutes: Vec<Candle> = closed.iter().filter(|c| c.interval == Interval::OneMinute).cloned().collect();
    assert_eq!(minutes, expected_minutes);
    assert_eq!((minutes[0].samples, minutes[0].covered_ms, minutes[0].open), (60, 60_000, 90_000.0));

    // Stopped mid-minute, ticks go on meanwhile, and the aggregator comes back: the candles go
    // on from the stored state as if it had never stopped. All but the last few ticks before the
    // stop are purged, so the open minute, 5 minutes, hour and day can only be right if they go
    // on from the state (the replay would otherwise start them at the first tick it finds).
    aggregator.stop().await;
    let stream = js.get_stream(TICKS_STREAM).await.expect("ticks stream");
    stream.purge().sequence(sequences[205]).await.expect("purge");
    let after = seconds(first + 210_000, 200);
    publish(&js, &pair, &after).await;
    let _aggregator = pipeline.start_aggregator_with("candles", &["--pairs", "BTC-USD"]).await;
    let all: Vec<(i64, f64)> = before.iter().chain(&after).copied().collect();
    let (closed, open) = expected(&all);
    let newest = all.last().map(|&(time, _)| time).expect("ticks");
    let state = wait_for("the state after the last tick", DEADLINE, || async {
        state(&kv, &pair).await.filter(|s| s.latest.time.timestamp_millis() == newest)
    })
    .await;
    assert_eq!(state.open_candles, open, "the open candles are a continuous run's");
    assert_stored_as(&js, &pair, &closed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_without_a_stored_state_fills_the_candles_from_the_ticks_in_the_stream() {
    let pipeline = Pipeline::start(&[(Venue::Coinbase, 1.0)]).await;
    let pair = Pair::seed();
    let js = pipeline.jetstream().await;
    // The ticks are there before any aggregator: a new deployment over an existing stream.
    let setup = pipeline.start_aggregator_with("setup", &["--pairs", "ETH-USD"]).await;
    wait_for("the ticks stream", DEADLINE, || async { js.get_stream(TICKS_STREAM).await.ok() }).await;
    setup.stop().await;
    let now = chrono::Utc::now().timestamp_millis();
    let ticks = seconds(Interval::FiveMinutes.start_of(now - 3_600_000) + 30_000, 700);
    publish(&js, &pair, &ticks).await;

    let _aggregator = pipeline.start_aggregator_with("fresh", &["--pairs", "BTC-USD"]).await;
    let (closed, _) = expected(&ticks);
    assert_stored_as(&js, &pair, &closed).await;
    // The first tick came 30 s into its minute: that minute, and the 5 minutes around it, are
    // partial and left out.
    let first_minute = stored_candles(&js, &pair, Interval::OneMinute).await[0].start.timestamp_millis();
    assert_eq!(first_minute, ticks[0].0 + 30_000);
}
