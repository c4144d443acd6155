//! `make bench`'s history: a nats-server whose candle streams hold every default pair's candles
//! to each interval's retention (124,520 candles, what a year and more of the aggregator leaves),
//! and the release bitcoin-api, started on it, that has cached them all. bench/run.sh then
//! measures the candles route with wrk beside a ceiling serving the same bytes, and reads the
//! process's memory.
//!
//! Usage: history-server <dir>. Writes the two measured pages' bodies to `<dir>/candles-1m.json`
//! (a day of 1m candles, 1,440) and `<dir>/candles-1h.json` (a week of 1h candles, 168), then
//! prints one line per fact, `name=value`: `stored`, `loaded_ms` (from bitcoin-api's start to its
//! last pair's newest day served), `pid`, `addr`, `path_1m`, `path_1h`, and last `ready=1`. Runs
//! until SIGTERM or SIGINT, then stops bitcoin-api and nats-server.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream;
use bench::http;
use btc_contract::{Interval, Pair};
use btc_runtime::jetstream::{WhenMissing, candle_streams};
use btc_runtime::stream_config::StreamArgs;
use frontend::candles::retained;
use testkit::NatsServer;
use testkit::process::ServiceProcess;
use tokio::signal::unix::{SignalKind, signal};

/// Longest wait for bitcoin-api to have read the whole history.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else { bail!("usage: history-server <dir>") };
    // Handlers first: a signal while loading must still reach the drops that stop the children.
    let (mut terminate, mut interrupt) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
    let nats = tokio::task::spawn_blocking(NatsServer::start).await.context("starting nats-server")?;
    let js = jetstream::new(async_nats::connect(nats.url()).await.context("connecting to nats-server")?);
    candle_streams(&js, &StreamArgs::default(), WhenMissing::Create).await.context("creating the candle streams")?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let stored = testkit::candles::fill(&js, &Pair::defaults(), now_ms, retained)
        .await
        .map_err(|error| anyhow::anyhow!("storing the candles: {error}"))?;
    println!("stored={stored}");

    let url = nats.url();
    let started = Instant::now();
    let api = ServiceProcess::spawn(
        "bitcoin-api",
        &["--nats-url", &url, "--listen-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0"],
        &[("RUST_LOG", "warn,frontend::server=info")],
    );
    let addr = api.listening("addr").await.to_string();
    // Pairs load in order, each interval shortest first: the last pair's newest day is the last read
    // (the two days before now hold that one closed day; nothing is open, there is no state).
    let newest_day =
        format!("{}/candles?interval=1d&limit=2", Pair::defaults().last().context("no pairs")?.http_path());
    let loaded = testkit::poll_every(Duration::from_millis(20), LOAD_TIMEOUT, || async {
        let (_, body) = http::Connection::open(&addr).await.ok()?.get(&newest_day).await.ok()?;
        let body: serde_json::Value = serde_json::from_slice(&body).ok()?;
        (body["candles"].as_array()?.len() == 1).then_some(())
    })
    .await;
    if loaded.is_none() {
        bail!("bitcoin-api did not load the history in {LOAD_TIMEOUT:?}; log:\n{}", api.log());
    }
    println!("loaded_ms={}", started.elapsed().as_millis());
    println!("pid={}", api.pid().context("bitcoin-api exited")?);
    println!("addr={addr}");
    for (interval, span_ms, name) in
        [(Interval::OneMinute, 86_400_000, "1m"), (Interval::OneHour, 7 * 86_400_000, "1h")]
    {
        let path = page_path(&Pair::seed(), interval, now_ms, span_ms);
        let (status, body) = http::Connection::open(&addr).await?.get(&path).await?;
        if !status.is_success() {
            bail!("GET {path}: {status}");
        }
        std::fs::write(dir.join(format!("candles-{name}.json")), &body).context("writing a body")?;
        println!("path_{name}={path}");
    }
    println!("ready=1");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    // Dropped here: bitcoin-api, then nats-server, are killed.
    drop(api);
    Ok(())
}

/// The page of `pair`'s closed candles of the `span_ms` before the start of the current interval:
/// all of them in one page, as a chart asks for them.
fn page_path(pair: &Pair, interval: Interval, now_ms: i64, span_ms: i64) -> String {
    let to_ms = interval.start_of(now_ms);
    let count = usize::try_from(span_ms / interval.millis()).unwrap_or(usize::MAX);
    frontend::api::history::candles_link(pair, interval, to_ms - span_ms, to_ms, count)
}
