//! End to end on loopback: exchange stand-ins -> publisher -> JetStream -> aggregator -> frontends.

mod support;

use btc_contract::PriceState;
use exchange_standin::{Behaviour, Venue};
use frontend::App;
use support::{Pipeline, count_ticks, read_ticks, sources_with_status, tick_times};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_flows_from_the_exchanges_to_both_frontends() {
    let pipeline =
        Pipeline::start(&[(Venue::Coinbase, 50_000.0), (Venue::Kraken, 50_010.0), (Venue::Bitstamp, 49_990.0)]).await;
    let (bitcoin_api, _api) = pipeline.start_frontend(App::BitcoinApi).await;
    let (rest_api, _rest) = pipeline.start_frontend(App::RestApi).await;
    let _publisher = pipeline.start_publisher(&[]).await;
    let _aggregator = pipeline.start_aggregator("aggregator").await;

    let price = pipeline.wait_for_body(&format!("{bitcoin_api}/btc/USD"), "a price", |b| b["price"].is_number()).await;
    assert_eq!(price["price"], 50_000.0, "median of the three stand-ins: {price}");
    assert_eq!(price["currency"], "USD");
    assert_eq!(sources_with_status(&price, "used"), ["bitstamp", "coinbase", "kraken"]);
    assert_eq!(price["dispersion"]["low"], 49_990.0);
    assert_eq!(price["dispersion"]["high"], 50_010.0);

    let average = pipeline
        .wait_for_body(&format!("{bitcoin_api}/btc/average"), "an average", |b| b["samples"].as_u64() >= Some(3))
        .await;
    assert_eq!(average["time_weighted_average"], 50_000.0);
    assert_eq!(average["mean"], 50_000.0);
    assert_eq!(average["window_seconds"], 600);
    assert_eq!(average["complete"], false, "a fresh stream cannot cover 10 minutes");

    let (status, body) = pipeline.get(&format!("{rest_api}/")).await;
    assert_eq!((status, body), (200, serde_json::json!({"result": "OK"})));
    for base in [&bitcoin_api, &rest_api] {
        let readiness = pipeline.http.get(format!("{base}/readiness")).send().await.expect("readiness answers");
        assert_eq!(readiness.status().as_u16(), 200);
        assert_eq!(readiness.text().await.expect("text"), "OK");
    }

    // A new price reaches the frontend.
    for stand_in in &pipeline.stand_ins {
        stand_in.set_price(stand_in.price() + 1_000.0);
    }
    pipeline.wait_for_body(&format!("{bitcoin_api}/btc/USD"), "the new price", |b| b["price"] == 51_000.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bitcoin_api_replicas_serve_the_same_average() {
    let pipeline =
        Pipeline::start(&[(Venue::Coinbase, 60_000.0), (Venue::Kraken, 60_100.0), (Venue::Gemini, 59_950.0)]).await;
    let _publisher = pipeline.start_publisher(&[]).await;
    let _aggregator = pipeline.start_aggregator("aggregator").await;
    let (first, _a) = pipeline.start_frontend(App::BitcoinApi).await;
    let (second, _b) = pipeline.start_frontend(App::BitcoinApi).await;
    for stand_in in &pipeline.stand_ins {
        stand_in.set_noise(0.001);
    }

    let compared = std::sync::atomic::AtomicUsize::new(0);
    testkit::wait_for("both replicas to agree on five successive states", support::DEADLINE, || async {
        let (_, a) = pipeline.get(&format!("{first}/btc/average")).await;
        let (_, b) = pipeline.get(&format!("{second}/btc/average")).await;
        if a["to"].is_string() && a["to"] == b["to"] {
            for field in ["time_weighted_average", "mean", "samples", "from", "covered_seconds", "complete"] {
                assert_eq!(a[field], b[field], "replicas disagree on {field}: {a} vs {b}");
            }
            compared.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        (compared.load(std::sync::atomic::Ordering::Relaxed) >= 5).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_aggregator_rebuilds_the_window_from_the_stream() {
    let pipeline =
        Pipeline::start(&[(Venue::Coinbase, 70_000.0), (Venue::Kraken, 70_020.0), (Venue::Bitstamp, 69_990.0)]).await;
    let (api, _api) = pipeline.start_frontend(App::BitcoinApi).await;
    let publisher = pipeline.start_publisher(&[]).await;
    let aggregator = pipeline.start_aggregator("aggregator").await;
    for stand_in in &pipeline.stand_ins {
        stand_in.set_noise(0.002);
    }
    pipeline.wait_for_body(&format!("{api}/btc/average"), "a few samples", |b| b["samples"].as_u64() >= Some(10)).await;
    publisher.stop().await;
    aggregator.kill();

    // Whatever the aggregator had written is the reference; then the state is wiped, so only a
    // replay from the stream can bring it back.
    let js = pipeline.jetstream().await;
    let kv = js.get_key_value(btc_contract::names::STATE_BUCKET).await.expect("state bucket");
    let before =
        btc_contract::PriceState::decode(&kv.get(btc_contract::names::STATE_KEY).await.expect("get").expect("state"))
            .expect("state decodes");
    let stream_ticks = count_ticks(&js).await;
    assert_eq!(before.stream_sequence as usize, stream_ticks, "the aggregator had applied every stored tick");
    kv.purge(btc_contract::names::STATE_KEY).await.expect("purge state");

    let _aggregator = pipeline.start_aggregator("aggregator").await;
    let after = testkit::wait_for("the state to be rebuilt", support::DEADLINE, || async {
        kv.get(btc_contract::names::STATE_KEY)
            .await
            .ok()
            .flatten()
            .and_then(|v| btc_contract::PriceState::decode(&v).ok())
    })
    .await;
    assert_eq!(after.average, before.average, "replayed window equals the window before the crash");
    assert_eq!(after.latest, before.latest);
    assert_eq!(after.stream_sequence, before.stream_sequence);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_aggregator_resumes_from_its_window_checkpoint_or_replays_without_a_usable_one() {
    use btc_contract::names::{CHECKPOINT_BUCKET, STATE_BUCKET, STATE_KEY};
    let pipeline =
        Pipeline::start(&[(Venue::Coinbase, 70_000.0), (Venue::Kraken, 70_020.0), (Venue::Bitstamp, 69_990.0)]).await;
    let publisher = pipeline.start_publisher(&[]).await;
    let aggregator = pipeline.start_aggregator("aggregator").await;
    for stand_in in &pipeline.stand_ins {
        stand_in.set_noise(0.002);
    }
    let js = pipeline.jetstream().await;
    let states = testkit::wait_for("the state bucket", support::DEADLINE, || async {
        js.get_key_value(STATE_BUCKET).await.ok()
    })
    .await;
    let state = || async { states.get(STATE_KEY).await.ok().flatten().and_then(|v| PriceState::decode(&v).ok()) };
    testkit::wait_for("a few samples", support::DEADLINE, || async {
        state().await.filter(|s| s.average.samples >= 10)
    })
    .await;
    publisher.stop().await;
    // A graceful stop checkpoints every tick it applied on its way out.
    aggregator.stop().await;
    let before = state().await.expect("a state");
    let checkpoints = js.get_key_value(CHECKPOINT_BUCKET).await.expect("checkpoint bucket");
    let stored = checkpoints.get(STATE_KEY).await.expect("get").expect("a checkpoint");
    let checkpoint = aggregator::checkpoint::Checkpoint::decode(&stored).expect("the checkpoint decodes");
    assert_eq!(checkpoint.applied_sequence, before.stream_sequence);

    // Then from the checkpoints, and after BTC-USD's was damaged, that pair by replay (the other
    // three of the default pairs still from theirs): the same state either way.
    let pairs = btc_contract::names::DEFAULT_PAIRS.split(',').count() as f64;
    for (damage, from_checkpoint, replayed) in
        [(None, Some(pairs), None), (Some("not a checkpoint"), Some(pairs - 1.0), Some(1.0))]
    {
        if let Some(damage) = damage {
            checkpoints.put(STATE_KEY, damage.into()).await.expect("checkpoint overwritten");
        }
        states.purge(STATE_KEY).await.expect("purge state");
        let restarted = pipeline.start_aggregator("aggregator").await;
        let after = testkit::wait_for("the state after the restart", support::DEADLINE, state).await;
        assert_eq!((after.average, &after.latest), (before.average, &before.latest), "damaged: {damage:?}");
        assert_eq!((after.stream_sequence, &after.open_candles), (before.stream_sequence, &before.open_candles));
        let starts = |from: &str| format!("btc_aggregator_window_starts_total{{from=\"{from}\"}}");
        let checkpoint_starts = pipeline.metric(&restarted.ops_url, &starts("checkpoint")).await;
        let replay_starts = pipeline.metric(&restarted.ops_url, &starts("replay")).await;
        assert_eq!((checkpoint_starts, replay_starts), (from_checkpoint, replayed), "damaged: {damage:?}");
        restarted.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_publishers_store_each_tick_once() {
    let pipeline =
        Pipeline::start(&[(Venue::Coinbase, 80_000.0), (Venue::Kraken, 80_010.0), (Venue::Bitfinex, 79_990.0)]).await;
    let first = pipeline.start_publisher(&[]).await;
    let second = pipeline.start_publisher(&[]).await;
    let js = pipeline.jetstream().await;
    testkit::wait_for("20 ticks in the stream", support::DEADLINE, || async {
        (count_ticks(&js).await >= 20).then_some(())
    })
    .await;
    first.stop().await;
    second.stop().await;

    let times = tick_times(&js).await;
    let mut unique = times.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(times.len(), unique.len(), "a slot was stored twice: {times:?}");
    // The ticks came from polling: each stand-in was asked about once a second, by whichever
    // publisher held the lease (e2e/tests/lease.rs shows only one polls).
    for stand_in in &pipeline.stand_ins {
        assert!(stand_in.requests() >= 3, "{} was polled {} times", stand_in.venue(), stand_in.requests());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_lying_exchanges_are_skipped_while_the_others_serve() {
    let pipeline = Pipeline::start(&[
        (Venue::Coinbase, 90_000.0),
        (Venue::Bitstamp, 90_010.0),
        (Venue::Kraken, 90_020.0),
        (Venue::Gemini, 90_030.0),
        (Venue::Bitfinex, 90_040.0),
        (Venue::BinanceUs, 90_050.0),
    ])
    .await;
    let (api, _api) = pipeline.start_frontend(App::BitcoinApi).await;
    let _aggregator = pipeline.start_aggregator("aggregator").await;
    let _publisher = pipeline.start_publisher(&["--max-quote-age", "1500ms", "--breaker-cooldown", "1s"]).await;
    let url = format!("{api}/btc/USD");
    pipeline.wait_for_body(&url, "all six sources used", |b| sources_with_status(b, "used").len() == 6).await;

    pipeline.stand_in(Venue::Kraken).set_behaviour(Behaviour::Status(500));
    pipeline.stand_in(Venue::Gemini).set_behaviour(Behaviour::Hang);
    pipeline.stand_in(Venue::Bitfinex).set_behaviour(Behaviour::Garbage);
    pipeline.stand_in(Venue::BinanceUs).set_price(90_050.0 * 1.2);
    let body = pipeline
        .wait_for_body(&url, "only the healthy sources in the price", |b| {
            sources_with_status(b, "used") == ["bitstamp", "coinbase"]
                && sources_with_status(b, "outlier") == ["binanceus"]
        })
        .await;
    assert_eq!(body["price"], 90_005.0, "median of the two healthy, honest sources");

    for venue in [Venue::Kraken, Venue::Gemini, Venue::Bitfinex] {
        pipeline.stand_in(venue).set_behaviour(Behaviour::Normal);
    }
    pipeline.stand_in(Venue::BinanceUs).set_price(90_050.0);
    pipeline.wait_for_body(&url, "every source back", |b| sources_with_status(b, "used").len() == 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_frontend_fails_readiness_but_keeps_serving_during_the_shutdown_delay() {
    let pipeline =
        Pipeline::start(&[(Venue::Coinbase, 20_000.0), (Venue::Kraken, 20_000.0), (Venue::Bitstamp, 20_000.0)]).await;
    let _publisher = pipeline.start_publisher(&[]).await;
    let _aggregator = pipeline.start_aggregator("aggregator").await;
    let (api, frontend) = pipeline.start_frontend_with(App::BitcoinApi, &["--shutdown-delay", "2s"]).await;
    pipeline.wait_for_body(&format!("{api}/btc/USD"), "a price", |b| b["price"].is_number()).await;

    frontend.cancel();
    let (status, text) = testkit::wait_for("readiness to fail", support::DEADLINE, || async {
        let (status, text) = pipeline.get_text(&format!("{api}/readiness")).await;
        (status == 503).then_some((status, text))
    })
    .await;
    assert_eq!((status, text.as_str()), (503, "NOT READY: shutting down"));
    assert_eq!(pipeline.get(&format!("{api}/btc/USD")).await.0, 200, "still serving during the delay");
    assert_eq!(pipeline.get_text(&format!("{api}/liveness")).await.0, 200);
    testkit::wait_for("the server to stop after the delay", support::DEADLINE, || async {
        frontend.is_finished().then_some(())
    })
    .await;
    assert_eq!(pipeline.get(&format!("{api}/btc/USD")).await.0, 0, "no longer listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_aggregators_and_two_publishers_leave_one_state_equal_to_a_recomputation() {
    let pipeline =
        Pipeline::start(&[(Venue::Coinbase, 45_000.0), (Venue::Kraken, 45_010.0), (Venue::Bitstamp, 44_990.0)]).await;
    for stand_in in &pipeline.stand_ins {
        stand_in.set_noise(0.002);
    }
    let publishers = [pipeline.start_publisher(&[]).await, pipeline.start_publisher(&[]).await];
    let _aggregators =
        [pipeline.start_aggregator("aggregator-a").await, pipeline.start_aggregator("aggregator-b").await];
    let js = pipeline.jetstream().await;
    testkit::wait_for("30 ticks", support::DEADLINE, || async { (count_ticks(&js).await >= 30).then_some(()) }).await;
    for publisher in publishers {
        publisher.stop().await;
    }
    let ticks = support::read_ticks(&js).await;
    let kv = js.get_key_value(btc_contract::names::STATE_BUCKET).await.expect("state bucket");
    let state = testkit::wait_for("the state to cover every tick", support::DEADLINE, || async {
        let value = kv.get(btc_contract::names::STATE_KEY).await.ok().flatten()?;
        let state = btc_contract::PriceState::decode(&value).ok()?;
        (state.stream_sequence == ticks.len() as u64).then_some(state)
    })
    .await;

    // From scratch: every stored tick, in stream order, into a fresh window.
    assert_eq!(support::recompute_state(&js).await, state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slow_exchange_does_not_slow_the_ticks() {
    // Three fast stand-ins make the quorum of two; Binance.US answers every request after 1.5 s,
    // longer than the 1 s round, well within the request timeout.
    let pipeline = Pipeline::start(&[
        (Venue::Coinbase, 30_000.0),
        (Venue::Kraken, 30_010.0),
        (Venue::Bitstamp, 29_990.0),
        (Venue::BinanceUs, 30_005.0),
    ])
    .await;
    pipeline.stand_in(Venue::BinanceUs).set_behaviour(Behaviour::Delayed { delay_ms: 1_500 });
    let publisher = pipeline.start_publisher(&["--poll-interval", "1s", "--request-timeout", "3s"]).await;
    let js = pipeline.jetstream().await;

    // The window starts two slots after the first tick, past the start-up, and spans 20 slots.
    let first = testkit::wait_for("a first tick", support::DEADLINE, || async {
        if count_ticks(&js).await == 0 {
            return None;
        }
        read_ticks(&js).await.first().map(|tick| tick.time)
    })
    .await;
    let (start, end) = (first + chrono::TimeDelta::seconds(2), first + chrono::TimeDelta::seconds(22));
    let stored = testkit::wait_for("a tick at the window's end", std::time::Duration::from_secs(60), || async {
        let ticks = read_ticks(&js).await;
        ticks.last().is_some_and(|tick| tick.time >= end).then_some(ticks)
    })
    .await;
    let window: Vec<_> = stored.iter().filter(|tick| tick.time >= start && tick.time < end).collect();
    let rate = window.len() as f64 / (end - start).as_seconds_f64();
    println!("ticks stored: {} in {} s of slots = {rate:.2} per second", window.len(), (end - start).num_seconds());
    assert!(rate >= 0.95, "{rate:.2} ticks per second with one exchange answering in 1.5 s");

    // The slow exchange's quotes still count, once they arrive, in a later round.
    let with_slow = window.iter().filter(|tick| tick.sources.iter().any(|s| s.source == "binanceus")).count();
    assert_eq!(with_slow, window.len(), "binanceus is missing from some ticks");
    // It was never asked again while a request was in flight, and each late answer was counted.
    let slow = pipeline.stand_in(Venue::BinanceUs);
    assert_eq!(slow.max_concurrent_requests(), 1, "binanceus had requests in flight at once");
    let metrics = pipeline.get_text(&format!("{}/metrics", publisher.ops_url)).await.1;
    let ok_fetches = metrics
        .lines()
        .find(|line| {
            line.starts_with("btc_publisher_fetches_total{")
                && line.contains(r#"source="binanceus""#)
                && line.contains(r#"outcome="ok""#)
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(ok_fetches as u64 + 1 >= slow.requests(), "{ok_fetches} ok fetches of {} requests", slow.requests());
    publisher.stop().await;
}
