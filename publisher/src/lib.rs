//! The publisher: polls several exchanges for each configured pair (BTC-USD, BTC-EUR, ...), builds
//! one consensus tick per pair and round and publishes each on its pair's subject with a
//! de-duplicating message id. Of several replicas, only the one
//! holding the lease ([`lease`]) polls; the others stand by.

pub mod breaker;
pub mod config;
pub mod consensus;
pub mod error;
pub mod excerpt;
pub mod exchanges;
pub mod fetch;
pub mod lease;
pub mod metrics;
pub mod pairs;
pub mod price;
pub mod publish;
pub mod quote;
pub mod round;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use btc_contract::{Pair, Tick};
use btc_runtime::jetstream::{Provision, retry_until_ready};
use btc_runtime::ops::WorkerOps;
use chrono::{DateTime, TimeZone, Utc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use config::PublisherConfig;
pub use error::PublisherError;

/// A publisher that has started: its ops port's bound address and the task that runs it.
pub type Running = btc_runtime::running::RunningWorker<PublisherError>;

/// Runs the publisher until `shutdown` is cancelled.
pub async fn run(config: PublisherConfig, shutdown: CancellationToken) -> Result<(), PublisherError> {
    start(config, shutdown).await?.wait().await
}

/// Checks the configuration, connects to NATS (in the background: the client keeps retrying),
/// binds the ops port and starts the publisher. Logs one `listening` line with `ops_addr`.
pub async fn start(config: PublisherConfig, shutdown: CancellationToken) -> Result<Running, PublisherError> {
    if config.sources.is_empty() {
        return Err(PublisherError::NoSources);
    }
    let sources: Vec<exchanges::Source> = config.endpoints().into_iter().map(|(source, _)| source).collect();
    pairs::check_quorum(&sources, &config.pairs(), config.quorum as usize)?;
    if config.lease_ttl < 2 * config.poll_interval {
        return Err(PublisherError::LeaseTtl { ttl: config.lease_ttl, poll_interval: config.poll_interval });
    }
    let plaintext = config.plaintext();
    if plaintext == fetch::Plaintext::Allowed {
        let http: Vec<&str> =
            config.endpoints().iter().filter(|(_, url)| url.starts_with("http://")).map(|(s, _)| s.name()).collect();
        tracing::warn!(
            ?http,
            "SOURCE_URLS has plain http URLs (for local stand-ins); these sources are not authenticated"
        );
    }
    let fetcher = fetch::Fetcher::new(config.request_timeout, plaintext)?;
    let client = config.nats.connect("publisher").await?;
    let metrics = Arc::new(metrics::PublisherMetrics::for_pairs(&config.pairs()));
    let provision = Provision::new(config.stream.clone(), config.nats.when_missing());
    let ops = Arc::new(WorkerOps::new(
        metrics.clone(),
        client.clone(),
        "ticks stream or lease bucket not set up yet",
        provision.clone(),
    ));
    let (ops_addr, ops_server) = btc_runtime::ops::serve(config.ops_addr, ops.clone(), shutdown.clone())
        .await
        .map_err(|source| PublisherError::Bind { addr: config.ops_addr, source })?;
    tracing::info!(%ops_addr, "listening");
    let started = Started { config, fetcher, client, metrics, provision, ops, ops_server };
    Ok(Running::new(ops_addr, tokio::spawn(started.run(shutdown))))
}

/// What [`start`] set up, for the task that runs the publisher.
struct Started {
    config: PublisherConfig,
    fetcher: fetch::Fetcher,
    client: async_nats::Client,
    metrics: Arc<metrics::PublisherMetrics>,
    provision: Provision,
    ops: Arc<WorkerOps<metrics::PublisherMetrics>>,
    ops_server: tokio::task::JoinHandle<()>,
}

impl Started {
    /// Waits for the setup step's stream and lease bucket, then runs rounds until `shutdown`.
    async fn run(self, shutdown: CancellationToken) -> Result<(), PublisherError> {
        let Started { config, fetcher, client, metrics, provision, ops, ops_server } = self;
        let js = jetstream::new(client.clone());
        if retry_until_ready("ticks stream", &shutdown, || provision.ticks_stream(&js)).await.is_none() {
            return Ok(());
        }
        let settings = lease::LeaseSettings {
            holder: lease::LeaseSettings::holder_name(config.replica_name.as_deref()),
            ttl: config.lease_ttl,
            provision: provision.clone(),
        };
        let open_lease = || lease::Lease::open(&client, settings.clone(), metrics.clone());
        let Some(mut lease) = retry_until_ready("lease bucket", &shutdown, open_lease).await else {
            return Ok(());
        };
        // A standby is ready too: it is a hot spare, connected and set up.
        ops.mark_started();
        let sources: Vec<&str> = config.sources.iter().map(|s| s.name()).collect();
        let pairs: Vec<String> = config.pairs().iter().map(Pair::to_string).collect();
        tracing::info!(
            ?sources, ?pairs, poll_interval = ?config.poll_interval, quorum = config.quorum,
            replica = %settings.holder, instance = lease.instance(), lease_ttl = ?lease.ttl(), "publisher started"
        );

        let rounds = round::Rounds::new(&config, fetcher, metrics.clone());
        run_rounds(&config, &js, &provision, &metrics, &mut lease, rounds, &shutdown).await;
        lease.release().await;
        if let Err(error) = client.flush().await {
            tracing::warn!(%error, "could not flush NATS on shutdown");
        }
        let _ = ops_server.await;
        tracing::info!("publisher stopped");
        Ok(())
    }
}

/// One round per slot while this replica holds the lease, until `shutdown`; a standby only checks
/// the lease each round.
async fn run_rounds(
    config: &PublisherConfig,
    js: &jetstream::Context,
    provision: &Provision,
    metrics: &metrics::PublisherMetrics,
    lease: &mut lease::Lease,
    mut rounds: round::Rounds,
    shutdown: &CancellationToken,
) {
    while let Some(slot) = wait_for_slot(config.poll_interval, lease.is_valid(), shutdown).await {
        // Before any exchange request: renew the lease, or take it, or stand by this round.
        if !lease.refresh().await {
            continue;
        }
        // One trace per round: the fetches, the consensus and the publish are its children, and the
        // aggregator continues it from the message headers.
        let span = tracing::info_span!("round", slot = %slot);
        let ticks = keeping_lease(lease, rounds.run(slot).instrument(span.clone())).await;
        if ticks.is_empty() {
            continue;
        }
        // A round that outlived the lease (the process was paused mid-round, the lease was taken
        // over) is not published: another replica may already be storing later rounds.
        if !lease.is_valid() {
            tracing::warn!(%slot, "the lease lapsed during the round; its ticks are not published");
            continue;
        }
        let publish = publish_all(js, provision, &ticks, config.publish_timeout, metrics).instrument(span);
        keeping_lease(lease, publish).await;
    }
}

/// Publishes a round's ticks, one per pair, all at once: JetStream acks them in parallel, so a
/// round of four pairs waits about one ack, not four in a row. Each keeps its own retries.
async fn publish_all(
    js: &jetstream::Context,
    provision: &Provision,
    ticks: &[(Pair, Tick)],
    give_up_after: Duration,
    metrics: &metrics::PublisherMetrics,
) {
    let publishes =
        ticks.iter().map(|(pair, tick)| publish::publish_tick(js, provision, pair, tick, give_up_after, metrics));
    futures::future::join_all(publishes).await;
}

/// Sleeps until the next slot and returns it; None on shutdown. A standby wakes a quarter round
/// late: the holder renews at the start of the round, so the standby sees this round's renewal and
/// notices a silent holder a round sooner.
async fn wait_for_slot(interval: Duration, holding: bool, shutdown: &CancellationToken) -> Option<DateTime<Utc>> {
    let slot = next_slot(Utc::now(), interval);
    let mut wait = (slot - Utc::now()).to_std().unwrap_or_default();
    if !holding {
        wait += interval / 4;
    }
    tokio::select! {
        _ = shutdown.cancelled() => None,
        _ = tokio::time::sleep(wait) => Some(slot),
    }
}

/// Runs `work` (a round, a publish) and renews the lease meanwhile whenever it is due, so a round
/// longer than the lease's renewal interval does not let it lapse.
async fn keeping_lease<T>(lease: &mut lease::Lease, work: impl Future<Output = T>) -> T {
    let mut work = std::pin::pin!(work);
    // Not more often than this after a failed renewal, whose due time stays in the past.
    let pause = lease.ttl() / 10;
    let mut next_try = None::<tokio::time::Instant>;
    loop {
        let due = lease.renew_at().map(|at| next_try.map_or(at.into(), |next| next.max(at.into())));
        tokio::select! {
            output = &mut work => return output,
            _ = sleep_until_some(due) => {
                lease.refresh().await;
                next_try = Some(tokio::time::Instant::now() + pause);
            }
        }
    }
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Start of the first slot after `now`. Slots are aligned to the unix epoch, so every publisher
/// replica with the same interval agrees on them, and so on the tick ids.
pub fn next_slot(now: DateTime<Utc>, interval: Duration) -> DateTime<Utc> {
    let step = (interval.as_millis() as i64).max(1);
    let next = (now.timestamp_millis().div_euclid(step) + 1) * step;
    Utc.timestamp_millis_opt(next).single().unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lease_ttl_below_two_rounds_is_refused_before_anything_starts() {
        use clap::Parser;
        let config = PublisherConfig::try_parse_from(["publisher", "--poll-interval", "1s", "--lease-ttl", "1500ms"])
            .expect("parses");
        let error = run(config, CancellationToken::new()).await.expect_err("refused");
        assert!(matches!(error, PublisherError::LeaseTtl { .. }), "{error}");
        let defaults = PublisherConfig::try_parse_from(["publisher"]).expect("defaults parse");
        assert_eq!(defaults.lease_ttl, Duration::from_secs(3));
    }

    #[tokio::test]
    async fn a_pair_without_a_quorum_of_sources_is_refused_before_anything_starts() {
        use clap::Parser;
        let args =
            ["publisher", "--sources", "binanceus,kraken,coingecko", "--quorum", "2", "--pairs", "BTC-USD,BTC-EUR"];
        let config = PublisherConfig::try_parse_from(args).expect("parses");
        let error = run(config, CancellationToken::new()).await.expect_err("refused");
        let PublisherError::Pairs(refused) = &error else { panic!("not a pairs error: {error}") };
        assert_eq!(refused.pair.as_str(), "BTC-EUR");
        assert!(error.to_string().contains("not listed by binanceus"), "{error}");
    }

    #[test]
    fn slots_are_aligned_to_the_epoch() {
        let at = |ms| Utc.timestamp_millis_opt(ms).single().expect("valid");
        assert_eq!(next_slot(at(1_000_250), Duration::from_secs(1)), at(1_001_000));
        assert_eq!(next_slot(at(1_001_000), Duration::from_secs(1)), at(1_002_000));
        assert_eq!(next_slot(at(1_000_250), Duration::from_millis(200)), at(1_000_400));
    }
}
