//! An aggregator whose clock is wrong still computes the right state: ticks are judged against
//! the time the NATS server stored them, never against the aggregator's own clock. The real
//! aggregator binary runs with its wall clock set 2 minutes behind by libfaketime (Debian package
//! `faketime`, installed by `make tools`); its monotonic clock, which its timers use, is left alone.

mod support;

use std::path::Path;

use btc_contract::names::{STATE_BUCKET, STATE_KEY};
use exchange_standin::Venue;
use support::{DEADLINE, Pipeline};
use testkit::process::ServiceProcess;
use testkit::wait_for;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_whose_clock_runs_two_minutes_behind_applies_every_tick() {
    assert!(Path::new(LIBFAKETIME).exists(), "{LIBFAKETIME} is missing: `make tools` installs Debian's faketime");
    let pipeline =
        Pipeline::start(&[(Venue::Coinbase, 42_000.0), (Venue::Kraken, 42_000.0), (Venue::Bitstamp, 42_000.0)]).await;
    let publisher = pipeline.start_publisher(&[]).await;
    let url = pipeline.nats.url();
    let args = ["--nats-url", url.as_str(), "--ops-addr", "127.0.0.1:0", "--consumer-name", "aggregator"];
    let clock_behind = [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME", "-120s"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ("RUST_LOG", "info"),
    ];
    let aggregator = ServiceProcess::spawn("aggregator", &args, &clock_behind);
    let ops = aggregator.listening("ops_addr").await;

    let js = pipeline.jetstream().await;
    wait_for("10 ticks", DEADLINE, || async { (support::count_ticks(&js).await >= 10).then_some(()) }).await;
    publisher.stop().await;
    let last = support::read_stored(&js).await.last().map(|m| m.sequence).expect("ticks");
    let kv = wait_for("the state bucket", DEADLINE, || async { js.get_key_value(STATE_BUCKET).await.ok() }).await;
    let state = testkit::poll_every(std::time::Duration::from_millis(25), DEADLINE, || async {
        let state = btc_contract::PriceState::decode(&kv.get(STATE_KEY).await.ok()??).ok()?;
        (state.stream_sequence == last).then_some(state)
    })
    .await
    .unwrap_or_else(|| panic!("no state covering every tick; aggregator log:\n{}", aggregator.log()));
    assert_eq!(support::recompute_state(&js).await, state);
    assert!(state.average.samples >= 10, "every tick is in the window: {:?}", state.average);
    let metrics = pipeline.get_text(&format!("http://{ops}/metrics")).await.1;
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("btc_aggregator_ticks_total{outcome=\"future\"} ") && !l.ends_with(" 0"))
    );
    let delay = metrics
        .lines()
        .find_map(|l| l.strip_prefix("btc_aggregator_tick_store_delay_seconds{pair=\"BTC-USD\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("the store delay gauge");
    assert!((0.0..5.0).contains(&delay), "ticks are stored within seconds of their time: {delay}");
}
