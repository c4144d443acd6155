//! Pairs on the aggregator side: each pair is its own subject, window and state key, and
//! aggregator replicas can split the pairs between them by subject filter (README, "Pairs").

mod support;

use btc_contract::names::{STATE_BUCKET, TICKS_STREAM};
use btc_contract::{Pair, PriceState};
use exchange_standin::Venue;
use support::{DEADLINE, Pipeline};
use testkit::wait_for;

fn pair(text: &str) -> Pair {
    text.parse().expect("a pair")
}

/// `count` ticks of each of `pairs`, interleaved as a publisher's rounds are, one second apart.
async fn publish_rounds(js: &async_nats::jetstream::Context, pairs: &[(Pair, f64)], count: i64) {
    for round in 0..count {
        for (pair, level) in pairs {
            let time_ms = chrono::Utc::now().timestamp_millis() - (count - round) * 1_000;
            let payload = support::tick_at(pair, time_ms, level + round as f64).encode();
            js.publish(pair.ticks_subject(), payload.into()).await.expect("publish").await.expect("stored");
        }
    }
}

/// `pair`'s state once its latest price is `price`.
async fn state_with_price(kv: &async_nats::jetstream::kv::Store, pair: &Pair, price: f64) -> PriceState {
    wait_for(&format!("{pair}'s state at {price}"), DEADLINE, || async {
        let state = PriceState::decode(&kv.get(pair.state_key()).await.ok()??).ok()?;
        (state.latest.price == price).then_some(state)
    })
    .await
}

/// The subjects `consumer`'s durable delivers.
async fn filters_of(js: &async_nats::jetstream::Context, consumer: &str) -> Vec<String> {
    let stream = js.get_stream(TICKS_STREAM).await.expect("ticks stream");
    let info = stream.consumer_info(consumer).await.expect("consumer info");
    let mut filters = info.config.filter_subjects.clone();
    if !info.config.filter_subject.is_empty() {
        filters.push(info.config.filter_subject.clone());
    }
    filters.sort();
    filters
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_aggregators_split_the_pairs_and_each_pair_s_state_is_its_own_ticks_only() {
    let pipeline = Pipeline::start(&[(Venue::Coinbase, 1.0)]).await;
    let (usd, eur, gbp, eth) = (pair("BTC-USD"), pair("BTC-EUR"), pair("BTC-GBP"), pair("ETH-USD"));
    let first = pipeline.start_aggregator_with("split-a", &["--pairs", "BTC-USD,BTC-EUR"]).await;
    let second = pipeline.start_aggregator_with("split-b", &["--pairs", "ETH-USD"]).await;
    let js = pipeline.jetstream().await;
    wait_for("the ticks stream", DEADLINE, || async { js.get_stream(TICKS_STREAM).await.ok() }).await;

    let levels = [(usd.clone(), 90_000.0), (eur.clone(), 80_000.0), (gbp.clone(), 70_000.0), (eth.clone(), 3_000.0)];
    publish_rounds(&js, &levels, 20).await;
    let kv = js.get_key_value(STATE_BUCKET).await.expect("state bucket");
    for (pair, level) in [(&usd, 90_000.0), (&eur, 80_000.0), (&eth, 3_000.0)] {
        let state = state_with_price(&kv, pair, level + 19.0).await;
        assert_eq!(state.average.samples, 20, "{pair}: its own 20 ticks, no other pair's");
        assert_eq!(state.average.mean, level + 9.5, "{pair}");
        assert_eq!(support::recompute_state_of(&js, pair).await, state, "{pair}");
    }
    assert!(kv.get(gbp.state_key()).await.expect("get").is_none(), "no aggregator handles BTC-GBP");
    assert_eq!(filters_of(&js, "split-a").await, ["prices.ticks.BTC-EUR", "prices.ticks.BTC-USD"]);
    assert_eq!(filters_of(&js, "split-b").await, ["prices.ticks.ETH-USD"]);
    let appended = |text: String| {
        text.lines()
            .find_map(|l| l.strip_prefix("btc_aggregator_ticks_total{outcome=\"appended\"} ")?.parse::<f64>().ok())
    };
    assert_eq!(appended(pipeline.get_text(&format!("{}/metrics", first.ops_url)).await.1), Some(40.0));
    assert_eq!(appended(pipeline.get_text(&format!("{}/metrics", second.ops_url)).await.1), Some(20.0));

    // The first replica restarted with one more pair: its consumer's filters follow, and the new
    // pair's window is rebuilt from the ticks already in the stream.
    first.stop().await;
    let _first = pipeline.start_aggregator_with("split-a", &["--pairs", "BTC-USD,BTC-EUR,BTC-GBP"]).await;
    let state = state_with_price(&kv, &gbp, 70_019.0).await;
    assert_eq!(state.average.samples, 20);
    wait_for("the consumer's filters updated", DEADLINE, || async {
        (filters_of(&js, "split-a").await.len() == 3).then_some(())
    })
    .await;
    publish_rounds(&js, &[(gbp.clone(), 71_000.0), (usd.clone(), 91_000.0)], 1).await;
    state_with_price(&kv, &gbp, 71_000.0).await;
    state_with_price(&kv, &usd, 91_000.0).await;
}
