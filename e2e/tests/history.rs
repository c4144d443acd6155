//! bitcoin-api's history, end to end with the real binary: every default pair's candle series
//! filled to its retention in the candle streams, loaded at start, served by the candles route,
//! and the process's resident memory with all of it cached (target: at most 64 MiB).

use std::time::Duration;

use async_nats::jetstream;
use btc_contract::candle::Sums;
use btc_contract::{Candle, Interval, Pair};
use btc_runtime::jetstream::{WhenMissing, candle_streams};
use btc_runtime::stream_config::StreamArgs;
use chrono::Utc;
use frontend::candles::retained;
use testkit::NatsServer;
use testkit::process::ServiceProcess;

const TARGET_RSS_KIB: u64 = 64 * 1024;

/// Fills every stream to its retention for every default pair, the newest candles ending before
/// `now`; returns how many were stored.
async fn fill_candle_streams(js: &jetstream::Context, now: i64) -> usize {
    let mut published = 0;
    // As the setup step makes them.
    candle_streams(js, &StreamArgs::default(), WhenMissing::Create).await.expect("candle streams");
    for interval in Interval::ALL {
        for pair in Pair::defaults() {
            let first = interval.start_of(now) - retained(interval) as i64 * interval.millis();
            let starts: Vec<i64> = (0..retained(interval) as i64).map(|i| first + i * interval.millis()).collect();
            for chunk in starts.chunks(1_000) {
                let mut acks = Vec::with_capacity(chunk.len());
                for start in chunk {
                    let candle = candle(pair.as_str(), interval, *start);
                    acks.push(
                        js.publish(pair.candles_subject(interval), candle.encode().into()).await.expect("publish"),
                    );
                }
                for ack in acks {
                    ack.await.expect("stored");
                }
                published += chunk.len();
            }
        }
    }
    published
}

fn candle(pair: &str, interval: Interval, start_ms: i64) -> Candle {
    let price = 60_000.0 + (start_ms / 60_000 % 1_000) as f64;
    let covered_ms = interval.millis();
    let price_ms = (price * 1e8) as i128 * i128::from(covered_ms);
    let sums = Sums {
        open: price,
        high: price + 5.0,
        low: price - 5.0,
        close: price + 1.0,
        samples: 60,
        covered_ms,
        price_ms,
    };
    Candle::from_sums(pair, interval, start_ms, sums)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmRSS in kB")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitcoin_api_with_every_pair_s_history_cached_stays_under_64_mib() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let now = Utc::now().timestamp_millis();
    let published = fill_candle_streams(&jetstream::new(client), now).await;
    assert_eq!(published, 4 * 31_130);
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
    assert_eq!(body["candles"].as_array().map(Vec::len), Some(1000), "{body}");
    assert!(body["next"].is_string(), "a week of 1m candles is more than a page");
    let rss = rss_kib(api.pid().expect("running"));
    eprintln!(
        "bitcoin-api RSS with {published} candles of 4 pairs cached: {} KiB ({:.1} MiB)",
        rss,
        rss as f64 / 1024.0
    );
    assert!(rss <= TARGET_RSS_KIB, "RSS {rss} KiB above {TARGET_RSS_KIB} KiB");
}
