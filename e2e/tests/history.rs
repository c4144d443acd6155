//! bitcoin-api's history, end to end with the real binary: every default pair's 1m series filled to
//! its retention (10,080 candles, read in many batches) and a day of each longer interval are
//! loaded at start and served by the candles route, a page at a time. (Every series filled to its
//! retention, and the memory that takes, is `make bench`'s history figure; the cap of each series
//! is `frontend::candles`' unit test.)

use std::time::Duration;

use async_nats::jetstream;
use btc_contract::{Interval, Pair};
use btc_runtime::jetstream::{WhenMissing, candle_streams};
use btc_runtime::stream_config::StreamArgs;
use chrono::Utc;
use frontend::candles::retained;
use testkit::NatsServer;
use testkit::process::ServiceProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitcoin_api_serves_every_pair_s_minutes_to_their_retention() {
    let nats = NatsServer::start();
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("connect"));
    // As the setup step makes them.
    candle_streams(&js, &StreamArgs::default(), WhenMissing::Create).await.expect("candle streams");
    let now = Utc::now().timestamp_millis();
    let depth = |interval: Interval| match interval {
        Interval::OneMinute => retained(interval),
        _ => (86_400_000 / interval.millis()) as usize,
    };
    let stored = testkit::candles::fill(&js, &Pair::defaults(), now, depth).await.expect("candles stored");
    assert_eq!(stored, 4 * (10_080 + 288 + 24 + 1));
    let url = nats.url();
    let args = ["--nats-url", url.as_str(), "--listen-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0"];
    let api = ServiceProcess::spawn("bitcoin-api", &args, &[]);
    let addr = api.listening("addr").await;
    let http = reqwest::Client::new();
    // Pairs load in order, each interval shortest first: ETH-USD's newest day is the last read.
    let loaded = testkit::poll_every(Duration::from_millis(100), Duration::from_secs(120), || async {
        let url = format!("http://{addr}/eth/USD/candles?interval=1d&limit=2");
        let body: serde_json::Value = http.get(&url).send().await.ok()?.json().await.ok()?;
        (body["candles"].as_array()?.len() == 1).then_some(())
    })
    .await;
    assert!(loaded.is_some(), "the history did not load in 120 s; log:\n{}", api.log());
    let oldest = Interval::OneMinute.start_of(now) - 10_080 * 60_000;
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms).expect("time").to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let (from, to) = (time(oldest), time(oldest + 86_400_000));
    let url = format!("http://{addr}/btc/USD/candles?interval=1m&from={from}&to={to}&limit=1000");
    let body: serde_json::Value = http.get(&url).send().await.expect("candles").json().await.expect("JSON");
    let candles = body["candles"].as_array().expect("candles");
    assert_eq!(candles.len(), 1000, "{body}");
    let first: chrono::DateTime<Utc> = candles[0]["start"].as_str().and_then(|t| t.parse().ok()).expect("a start");
    assert_eq!(first.timestamp_millis(), oldest, "the oldest retained minute comes first");
    assert!(body["next"].is_string(), "a day of 1m candles is more than a page");
}
