//! Freshness: from the publisher path's ack of a tick to the moment bitcoin-api serves that tick,
//! through the real aggregator and bitcoin-api processes; and its floor, the same hops in bare
//! async-nats with nothing else.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use btc_contract::{Pair, Tick};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use publisher::metrics::PublisherMetrics;

use crate::catch_up::wait_for_pull_request;
use crate::publish_rate::{self, GIVE_UP_AFTER};
use bench::http;
use bench::stack::{Nats, START_TIMEOUT, Service};
use bench::stats::percentile;
use bench::ticks;
use testkit::process::ServiceProcess;

/// Longest time a tick may take to be served before the run fails.
const SERVE_TIMEOUT: Duration = Duration::from_secs(10);
const PRICE_PATH: &str = "/btc/USD";

/// Ack-to-served latencies of one run, milliseconds.
pub struct Freshness {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Publishes `count` ticks one at a time, each only after the previous one was served.
pub async fn measure(count: u64) -> anyhow::Result<Freshness> {
    let nats = Nats::start(count).await?;
    let aggregator = Service::aggregator(&nats).await;
    let api = Service::bitcoin_api(&nats).await;
    aggregator.wait_until_ok("/readiness").await?;
    api.wait_until_ok("/liveness").await?;
    let mut connection = http::Connection::open(&api.addr).await?;
    let mut probe = Probe { nats: &nats, connection: &mut connection, metrics: PublisherMetrics::default() };
    let mut times = TickTimes::default();
    // Warm-up, not counted: the first tick also waits for bitcoin-api to start watching the state.
    probe.time_to_served(&ticks::tick_at(times.next(), 0), START_TIMEOUT).await?;
    let mut samples = Vec::with_capacity(usize::try_from(count).unwrap_or_default());
    for index in 1..=count {
        samples.push(probe.time_to_served(&ticks::tick_at(times.next(), index), SERVE_TIMEOUT).await?);
    }
    Ok(Freshness::of(samples))
}

/// The floor: the hops a tick takes, in bare async-nats with the same stream and bucket settings
/// and the same processes, and nothing else. Each of `count` ticks is published with its
/// `Nats-Msg-Id` and its ack awaited; `kv-relay` (another process, as the aggregator is) puts each
/// tick's bytes under the pair's state key and acks it; a KV watch on that key (a frontend's
/// watch, here in this process) yields them. Timed from the ack to the watch yielding the tick,
/// one tick at a time, like the service.
pub async fn floor(count: u64) -> anyhow::Result<Freshness> {
    let nats = Nats::start(count).await?;
    let (pair, bucket) = (Pair::seed(), nats.state_bucket().await?);
    let env = nats.service_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (*key, value.as_str())).collect();
    let _relay = ServiceProcess::spawn("kv-relay", &[], &env);
    wait_for_pull_request(&nats, bench::consumer::RELAY).await?;
    let mut watch = bucket.watch(pair.state_key()).await.context("watching the state key")?;
    let mut times = TickTimes::default();
    let mut samples = Vec::with_capacity(usize::try_from(count).unwrap_or_default());
    for index in 0..=count {
        let tick = ticks::tick_at(times.next(), index);
        let payload = tick.encode();
        publish_rate::publish_bare(&nats.js, &tick).await?;
        let acked = Instant::now();
        loop {
            let entry = tokio::time::timeout(SERVE_TIMEOUT, watch.next())
                .await
                .context("the floor's watch saw no tick")?
                .context("the state watch ended")?
                .context("reading the state watch")?;
            if entry.value[..] == payload[..] {
                break;
            }
        }
        // The first tick warms up, as the service's does.
        if index > 0 {
            samples.push(acked.elapsed());
        }
    }
    Ok(Freshness::of(samples))
}

impl Freshness {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
        Self {
            p50_ms: ms(percentile(&samples, 0.50)),
            p99_ms: ms(percentile(&samples, 0.99)),
            max_ms: ms(samples.last()),
        }
    }
}

/// Tick times in unix ms: now, and always later than the previous one (distinct `Nats-Msg-Id`s,
/// and each tick is the newest, so the aggregator makes it the served one).
#[derive(Default)]
struct TickTimes {
    last_ms: i64,
}

impl TickTimes {
    fn next(&mut self) -> i64 {
        self.last_ms = ticks::now_ms().max(self.last_ms + 1);
        self.last_ms
    }
}

/// Publishes through the publisher path and watches bitcoin-api on one keep-alive connection.
struct Probe<'a> {
    nats: &'a Nats,
    connection: &'a mut http::Connection,
    metrics: PublisherMetrics,
}

impl Probe<'_> {
    /// Publishes `tick`, then polls bitcoin-api as fast as it answers until it serves the tick:
    /// the time from the ack to that answer.
    async fn time_to_served(&mut self, tick: &Tick, timeout: Duration) -> anyhow::Result<Duration> {
        publisher::publish::publish_tick(
            &self.nats.js,
            &Default::default(),
            &Pair::seed(),
            tick,
            GIVE_UP_AFTER,
            &self.metrics,
        )
        .await
        .context("the publisher path gave a tick up")?;
        let acked = Instant::now();
        loop {
            if self.served_time().await? == Some(tick.time) {
                return Ok(acked.elapsed());
            }
            if acked.elapsed() > timeout {
                bail!("bitcoin-api did not serve the tick of {} within {timeout:?}", tick.time);
            }
        }
    }

    /// The time of the tick bitcoin-api serves now; `None` while it has no price.
    async fn served_time(&mut self) -> anyhow::Result<Option<DateTime<Utc>>> {
        #[derive(serde::Deserialize)]
        struct ServedPrice {
            time: DateTime<Utc>,
        }
        let (status, body) = self.connection.get(PRICE_PATH).await?;
        if !status.is_success() {
            return Ok(None);
        }
        let served: ServedPrice = serde_json::from_slice(&body).context("reading bitcoin-api's price")?;
        Ok(Some(served.time))
    }
}
